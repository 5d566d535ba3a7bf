"""``analogdecor cost RUN_DIR [RUN_DIR ...] [--json]``: energy and latency of a run on hardware."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "cost",
        help="first-order energy/latency of one inference and one training step of a run",
        description=(
            "Per layer and in total: array reads (MVM), DAC and ADC conversions, pulsed updates (from the "
            "run's pulse counts) and digital work, for one inference (as deployed) and one training step. "
            "Coefficients from device_models/cost/NAME.toml (each with its source and units). Give two runs "
            "(e.g. decorrelation on and off) to compare their totals."
        ),
    )
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="training run directories")
    p.add_argument("--coefficients", default="default", help="cost file name (device_models/cost) or path")
    p.add_argument("--deploy", default="separate", choices=("folded", "separate", "digital"),
                   help="how a decorrelated network is deployed for inference (default separate)")  # fmt: skip
    p.add_argument(
        "--array-size",
        default=None,
        metavar="RxC",
        help="also count the arrays needed at this size, e.g. 256x256 (default: the run's mapping)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import json

    from analogdecor.cli.export import parse_array_size
    from analogdecor.cost import format_cost, load_coefficients, run_cost

    c = load_coefficients(args.coefficients)
    size = parse_array_size(args.array_size) if args.array_size else None
    results = [run_cost(r, c, args.deploy, size) for r in args.run_dirs]
    if args.json:
        print(json.dumps(results if len(results) > 1 else results[0], indent=2))
        return 0
    print("\n\n".join(format_cost(r) for r in results))
    if len(results) > 1:
        base = results[-1]
        print("\ntotals (energy nJ / latency us), relative to the last run:")
        for r in results:
            for phase in ("inference", "training"):
                t, b = r[phase]["total"]["total"], base[phase]["total"]["total"]
                ratio = t["energy_J"] / b["energy_J"] if b["energy_J"] else float("nan")
                print(f"  {r['run']} {phase}: {t['energy_J'] * 1e9:.4g} nJ / {t['latency_s'] * 1e6:.4g} us "
                      f"(energy x{ratio:.3g})")  # fmt: skip
    return 0
