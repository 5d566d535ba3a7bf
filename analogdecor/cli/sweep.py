"""`analogdecor sweep SPEC.toml`: run a sweep of training runs on Dask (see :mod:`analogdecor.sweep`).

Example (the README's worked example)::

    analogdecor sweep scripts/sweeps/noise_vs_levels.toml --workers 2

Re-running the same command resumes: finished runs are skipped, failed runs
retried. ``--check`` validates the spec and lists the runs without running them.
"""

from __future__ import annotations

import sys
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "sweep",
        help="run a grid/random/list sweep of training runs on Dask (resumable)",
        description="Validate SPEC completely, then run every training run it describes as a Dask task "
        "(a local cluster, or --scheduler). Writes OUT/results.csv (one row per run), OUT/summary.csv "
        "(mean and std over seeds), OUT/plots/ and each run's directory OUT/runs/<id>/. Re-running the "
        "same command skips finished runs and retries failed ones.",
    )
    p.add_argument("spec", help="sweep spec (TOML with [sweep], [base], [axes] or [[runs]])")
    p.add_argument("--out", help="sweep directory (default: runs/sweeps/<spec name without .toml>)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--workers", type=int, help="worker processes of the local cluster (default: all cores)")
    g.add_argument("--scheduler", metavar="ADDRESS",
                   help="use an existing Dask scheduler, e.g. tcp://10.0.0.5:8786 (workers need analogdecor "
                        "installed and OUT on a shared file system). It must be trusted: Dask exchanges "
                        "pickles, which can run code")  # fmt: skip
    p.add_argument("--dashboard", metavar="HOST:PORT",
                   help="serve the local cluster's Dask dashboard there, e.g. localhost:8787 (default: none; "
                        "it has no authentication, so keep it on localhost)")  # fmt: skip
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="dotted override of the base config for every run, e.g. optim.epochs=1 or "
                        "tile.forward.out_bits=6 (changes the run ids)")  # fmt: skip
    p.add_argument("--max-runs", type=int, help="run at most this many pending runs now, leave the rest")
    p.add_argument("--check", action="store_true", help="validate the spec, list the runs, run nothing")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-plots", action="store_true", help="do not draw the plots at the end")
    p.set_defaults(func=run)


def run(args: Any) -> int:
    from pathlib import Path

    from analogdecor.errors import ConfigError
    from analogdecor.sweep import load_spec, plan_runs, run_sweep
    from analogdecor.sweep.results import read_result
    from analogdecor.sweep.runner import DONE

    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers {args.workers}: must be >= 1")
    if args.max_runs is not None and args.max_runs < 0:
        raise ConfigError(f"--max-runs {args.max_runs}: must be >= 0")
    spec = load_spec(args.spec)
    if args.set:
        from dataclasses import replace

        from analogdecor.cli.train import _pairs

        spec = replace(spec, base_overrides=_pairs(args.set, "--set"))
    out = Path(args.out) if args.out else Path("runs") / "sweeps" / Path(args.spec).stem
    if args.check:
        planned = plan_runs(spec)
        print(f"{args.spec}: valid; {len(planned)} runs ({spec.settings.mode} over {', '.join(spec.axis_names)})")
        for r in planned:
            record = read_result(out / "runs" / r.run_id)
            state = record["status"] if record and record.get("status") in DONE else "to run"
            values = ", ".join(f"{k}={v}" for k, v in r.overrides.items())
            print(f"  {r.run_id}  {values}  [{state}]")
        return 0
    report = run_sweep(spec, out, workers=args.workers, scheduler=args.scheduler, dashboard=args.dashboard,
                       max_runs=args.max_runs,
                       progress=not args.no_progress, plots=not args.no_plots)
    print(f"{report}", file=sys.stderr)
    print(f"table: {report.table}", file=sys.stderr)
    for path in report.plots:
        print(f"wrote {path}", file=sys.stderr)
    if report.failed:
        print(f"{len(report.failed)} run(s) failed; their errors are in the table and in "
              f"{out}/runs/<id>/error.txt; re-run the same command to retry them", file=sys.stderr)
        return 1
    return 0
