"""``analogdecor bench <benchmark>``: speed benchmarks that print ratios measured in one run.

Each benchmark is one sub-command registered by a ``_register_<name>(sub)``
function listed in :data:`BENCHMARKS`; to add one, write such a function
(parser + ``set_defaults(func=...)``, heavy imports inside ``func``) and list it.
"""

from __future__ import annotations

import argparse
import json


def _register_crossbar(sub) -> None:
    p = sub.add_parser("crossbar", help="noisy forward read vs float32 matmul; pulsed updates per second",
                       description="Forward read of a noisy, quantised tile vs a float32 NumPy matmul, and "
                                   "stochastic pulsed updates per second, measured in one run.")  # fmt: skip
    p.add_argument("--size", type=int, default=512, help="tile is SIZE x SIZE (default 512)")
    p.add_argument("--batch", type=int, default=256, help="vectors per forward read (default 256)")
    p.add_argument("--update-batch", type=int, default=64, help="samples per pulsed update (default 64)")
    p.add_argument("--bl", type=int, default=31, help="pulse-train length (default 31)")
    p.add_argument("--preset", default="GokmenVlasov", help="device preset (default GokmenVlasov)")
    p.add_argument("--repeats", type=int, default=30, help="timed forward reads (default 30)")
    p.add_argument("--update-repeats", type=int, default=5, help="timed pulsed updates (default 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of data and tile (default 0)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the summary")
    p.set_defaults(func=_run_crossbar)


def _run_crossbar(args: argparse.Namespace) -> int:
    from analogdecor.crossbar.bench import CrossbarBenchConfig, bench_crossbar, format_report

    cfg = CrossbarBenchConfig(size=args.size, batch=args.batch, update_batch=args.update_batch, bl=args.bl,
                              preset=args.preset, repeats=args.repeats, update_repeats=args.update_repeats,
                              seed=args.seed)  # fmt: skip
    res = bench_crossbar(cfg)
    print(json.dumps(res, sort_keys=True) if args.json else format_report(res))
    return 0


BENCHMARKS = (_register_crossbar,)
"""Sub-command registration functions, in --help order."""


def register(subparsers) -> None:
    parser = subparsers.add_parser("bench", help="speed benchmarks (ratios measured in one run)",
                                   description="Speed benchmarks; each prints figures measured in one run.")  # fmt: skip
    sub = parser.add_subparsers(dest="bench_command", metavar="BENCHMARK")
    for add in BENCHMARKS:
        add(sub)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])
