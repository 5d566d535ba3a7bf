"""``analogdecor export RUN_DIR --format npz|hdf5|csv|png``: write a run's conductance maps."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="export a trained run's conductance maps (npz, hdf5, csv, png)",
        description=(
            "Write G+ and G- (uS) of every analogue layer (decorrelation tiles included), the "
            "weight-to-conductance mapping, shapes, layer names, device parameters, seed and package "
            "version. npz/hdf5 write one file, csv and png a folder."
        ),
    )
    p.add_argument("run_dir", help="training run directory (from `analogdecor train`)")
    p.add_argument("--format", dest="fmt", default="npz", choices=("npz", "hdf5", "csv", "png", "chip"),
                   help="chip: a folder with every physical array's G+/G- and a streamable manifest.jsonl")
    p.add_argument("--deploy", choices=("folded", "separate", "digital"), default=None,
                   help="chip format: how a decorrelated network goes on the chip (default: as trained)")
    p.add_argument("--array-size", default=None, metavar="RxC",
                   help="chip format: split every matrix into arrays of R rows x C columns (default: the run's)")
    p.add_argument(
        "--out", default=None, help="output file (npz/hdf5) or folder (csv/png); default RUN_DIR/export/..."
    )
    p.add_argument("--force", action="store_true",
                   help="export a run that is not finished (diverged, interrupted, still running), with a "
                   "warning; refused otherwise")  # fmt: skip
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from analogdecor.export import export_run
    from analogdecor.export.chip import export_run_chip

    if args.fmt != "chip" and (args.deploy or args.array_size):
        from analogdecor.errors import ConfigError

        raise ConfigError("--deploy and --array-size apply to --format chip only")
    if args.fmt == "chip":
        size = parse_array_size(args.array_size) if args.array_size else None
        paths = export_run_chip(args.run_dir, args.out, deploy=args.deploy, array_size=size, force=args.force)
        print(f"{paths[0]}  ({sum(1 for p in paths if p.name.endswith('.npy') and 'pulses' not in p.name)} arrays)")
        return 0
    paths = export_run(args.run_dir, args.fmt, args.out, force=args.force)
    for path in paths:
        print(path)
    return 0


def parse_array_size(text: str) -> tuple[int, int]:
    """``"256x256"`` -> (256, 256); a ConfigError naming --array-size otherwise."""
    from analogdecor.errors import ConfigError

    parts = text.lower().split("x")
    try:
        rows, cols = (int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"--array-size = {text!r}: write ROWSxCOLS with positive integers, e.g. 256x256") from None
    if rows < 1 or cols < 1:
        raise ConfigError(f"--array-size = {text!r}: rows and columns must be positive integers")
    return rows, cols
