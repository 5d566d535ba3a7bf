#!/usr/bin/env python
"""Time one training step (forward, backward, pulsed update) on the numba emulator and on aihwkit.

Usage (from the repository root, after ``bash scripts/dev.sh setup``):

    .venv/bin/python scripts/bench_backends.py                       # GokmenVlasov and ReRamES, 784-256-10, batch 64
    .venv/bin/python scripts/bench_backends.py --preset Idealized --steps 50 --json bench.json

The same function backs ``analogdecor bench backends``. Prints ms per step on each backend and the
ratio numba / aihwkit (below 1: the emulator is faster); issue 4's target is a ratio of 1/3 or less.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--preset", action="append", help="device preset (repeatable; default GokmenVlasov and ReRamES)"
    )
    p.add_argument("--sizes", default="784,256,10", help="layer widths, comma-separated (default 784,256,10)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=20, help="timed steps per backend (median reported)")
    p.add_argument(
        "--threads", type=int, default=None, help="threads for both backends (default: numba's default)"
    )
    p.add_argument("--json", metavar="PATH", help="also write the timings as JSON")
    args = p.parse_args(argv)

    if args.threads is not None:
        if args.threads < 1:
            p.error("--threads must be >= 1")
        if "numba" in sys.modules:
            p.error("--threads must be applied before numba is imported")
        # numba sizes its thread pool at import; aihwkit's OpenMP and torch read OMP_NUM_THREADS
        for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.threads)

    from analogdecor.validation.speed import compare_backends, format_timings

    sizes = tuple(int(s) for s in args.sizes.split(","))
    pairs = compare_backends(args.preset or ["GokmenVlasov", "ReRamES"], sizes=sizes, batch=args.batch,
                             steps=args.steps)  # fmt: skip
    print(format_timings(pairs))
    if args.json:
        rows = [{"numba": asdict(a), "aihwkit": asdict(b), "threads": args.threads,
                 "ratio_numba_over_aihwkit": a.median_s / b.median_s,
                 "cpu_ratio_numba_over_aihwkit": a.cpu_median_s / b.cpu_median_s} for a, b in pairs]  # fmt: skip
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
