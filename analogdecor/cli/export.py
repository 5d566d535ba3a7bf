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
    p.add_argument("--format", dest="fmt", default="npz", choices=("npz", "hdf5", "csv", "png"))
    p.add_argument(
        "--out", default=None, help="output file (npz/hdf5) or folder (csv/png); default RUN_DIR/export/..."
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from analogdecor.export import export_run

    paths = export_run(args.run_dir, args.fmt, args.out)
    for path in paths:
        print(path)
    return 0
