"""``analogdecor bench <benchmark>``: speed benchmarks that print ratios measured in one run.

Each benchmark is one sub-command registered by a ``_register_<name>(sub)``
function listed in :data:`BENCHMARKS`; to add one, write such a function
(parser + ``set_defaults(func=...)``, heavy imports inside ``func``) and list it.
"""

from __future__ import annotations

import argparse
import dataclasses
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
    p.add_argument("--threads", type=int, default=None,
                   help="threads of both numba and BLAS for the run (default: as configured)")  # fmt: skip
    p.add_argument("--contended", action="store_true",
                   help="repeat the timings beside a busy process (started and stopped by the benchmark)")
    p.add_argument("--memory-size", type=int, default=4096,
                   help="tile size for the peak memory of one update (default 4096; 0 skips it)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the summary")
    p.set_defaults(func=_run_crossbar)


def _run_crossbar(args: argparse.Namespace) -> int:
    from analogdecor.crossbar.bench import CrossbarBenchConfig, bench_crossbar, format_report

    cfg = CrossbarBenchConfig(size=args.size, batch=args.batch, update_batch=args.update_batch, bl=args.bl,
                              preset=args.preset, repeats=args.repeats, update_repeats=args.update_repeats,
                              seed=args.seed, threads=args.threads, memory_size=args.memory_size,
                              contended=args.contended)  # fmt: skip
    res = bench_crossbar(cfg)
    print(json.dumps(res, sort_keys=True) if args.json else format_report(res))
    return 0


def _register_backends(sub) -> None:
    p = sub.add_parser("backends", help="one training step on the numba emulator vs aihwkit (ratio)",
                       description="Times the same BP training step (forward reads, backward reads, pulsed "
                                   "updates) of an MLP on the numba emulator and on aihwkit's CPU simulator in "
                                   "one run, and prints the ratio numba / aihwkit per preset.")  # fmt: skip
    p.add_argument("--preset", action="append", metavar="NAME",
                   help="device preset (repeatable; default GokmenVlasov and ReRamES)")  # fmt: skip
    p.add_argument("--sizes", default="784,256,10", help="layer widths, comma-separated (default 784,256,10)")
    p.add_argument("--batch", type=int, default=64, help="samples per step (default 64)")
    p.add_argument("--steps", type=int, default=20, help="timed steps per backend; the median is reported")
    p.add_argument("--threads", type=int, default=None,
                   help="threads for both backends (sets NUMBA_NUM_THREADS / OMP_NUM_THREADS)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.set_defaults(func=_run_backends)


def _run_backends(args: argparse.Namespace) -> int:
    import os
    import sys
    from dataclasses import asdict

    from analogdecor.errors import ConfigError

    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"--threads = {args.threads}: must be >= 1")
        if "numba" in sys.modules and os.environ.get("NUMBA_NUM_THREADS") != str(args.threads):
            raise ConfigError("--threads: numba is already imported; set NUMBA_NUM_THREADS in the environment")
        # numba sizes its pool at import; aihwkit's OpenMP and torch read OMP_NUM_THREADS; NumPy's BLAS
        # reads OPENBLAS_NUM_THREADS (or MKL's) before OMP_NUM_THREADS, so set those too
        for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.threads)
    try:
        sizes = tuple(int(v) for v in args.sizes.split(","))
    except ValueError:
        raise ConfigError(f"--sizes = {args.sizes!r}: expected comma-separated integers such as 784,256,10") from None

    from analogdecor.validation.speed import compare_backends, format_timings

    pairs = compare_backends(args.preset or ["GokmenVlasov", "ReRamES"], sizes=sizes, batch=args.batch,
                             steps=args.steps)  # fmt: skip
    if args.json:
        rows = [{"numba": asdict(a), "aihwkit": asdict(b), "ratio_numba_over_aihwkit": a.median_s / b.median_s,
                 "cpu_ratio_numba_over_aihwkit": a.cpu_median_s / b.cpu_median_s} for a, b in pairs]  # fmt: skip
        print(json.dumps(rows))
    else:
        print(format_timings(pairs))
    return 0


def _register_conv(sub) -> None:
    p = sub.add_parser("conv", help="one BP step of the paper's conv net: float vs torch, numba, aihwkit",
                       description="Times one BP training step of the paper's conv net on analogdecor's float "
                                   "and numba backends, torch and aihwkit (AnalogConv2d + AnalogSGD), with and "
                                   "without decorrelation, and prints the ratios measured in one run.")  # fmt: skip
    p.add_argument("--batch", type=int, default=64, help="images per step (default 64)")
    p.add_argument("--preset", default="ReRamES", help="device preset (default ReRamES)")
    p.add_argument("--steps", type=int, default=5, help="timed steps per variant; the median is reported")
    p.add_argument("--image", default="1x28x28", metavar="CxHxW",
                   help="image shape (default 1x28x28, MNIST; 3x32x32 for CIFAR, 3x64x64 for Tiny ImageNet)")
    p.add_argument("--only", action="append", metavar="VARIANT",
                   help="run only these variants (repeatable): float, torch, float+decor, numba-mixed, "
                        "numba-per_sample, aihwkit")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.set_defaults(func=_run_conv)


def _run_conv(args: argparse.Namespace) -> int:
    from analogdecor.errors import ConfigError
    from analogdecor.networks.bench import ConvBenchConfig, bench_conv, format_conv_report

    try:
        shape = tuple(int(v) for v in args.image.lower().split("x"))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise ConfigError(f"--image {args.image!r}: expected CxHxW with positive integers, e.g. 3x32x32")
    cfg = ConvBenchConfig(batch=args.batch, preset=args.preset, steps=args.steps, in_shape=shape)  # type: ignore[arg-type]
    if args.only:
        cfg = dataclasses.replace(cfg, variants=tuple(args.only))
    res = bench_conv(cfg)
    print(json.dumps(res, sort_keys=True) if args.json else format_conv_report(res))
    return 0


def _register_training(sub) -> None:
    p = sub.add_parser("training", help="one training epoch: torch, aihwkit (as its users run it), analogdecor",
                       description="One epoch of BP (MLP IN-HIDDEN-10, ReLU, or with --arch paper-convnet the "
                                   "paper's conv net on 1x28x28 images; batch 64, SGD) on MNIST (digits "
                                   "when absent), interleaved in one process: torch float, aihwkit AnalogLinear "
                                   "(AnalogConv2d) + AnalogSGD with the matching preset, analogdecor's torch "
                                   "modules, analogdecor float, numba per_sample and numba mixed.")  # fmt: skip
    p.add_argument("--preset", default="ReRamES", help="device preset (and aihwkit <NAME>Preset; default ReRamES)")
    p.add_argument("--dataset", default="mnist", help="data set (default mnist; falls back to digits)")
    p.add_argument("--data-dir", default=None, help="directory of the data set's files ($ANALOGDECOR_DATA/<name>)")
    p.add_argument("--n-train", type=int, default=6400, help="images per epoch (default 6400)")
    p.add_argument("--arch", choices=("mlp", "paper-convnet"), default="mlp",  # training.bench.ARCHS
                   help="network: mlp (IN-HIDDEN-10, the default) or paper-convnet (the paper's conv net; a conv "
                        "epoch is slow, keep --n-train small, e.g. 640)")  # fmt: skip
    p.add_argument("--hidden", type=int, default=256, help="hidden width of --arch mlp (default 256)")
    p.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    p.add_argument("--lr", type=float, default=0.05, help="SGD learning rate (default 0.05)")
    p.add_argument("--rounds", type=int, default=3, help="timed epochs per system, interleaved (default 3)")
    p.add_argument("--system", action="append", metavar="NAME",
                   help="time only these systems (repeatable): torch_float, aihwkit, analogdecor_torch, "
                        "analogdecor_float, numba_per_sample, numba_mixed")  # fmt: skip
    p.add_argument("--loaded", action="store_true",
                   help="repeat the rounds beside cpu_count - 1 busy processes; report each path's slow-down")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.set_defaults(func=_run_training)


def _run_training(args: argparse.Namespace) -> int:
    import sys

    from analogdecor.training.bench import (
        SYSTEMS,
        TrainingBenchConfig,
        bench_training,
        format_training_report,
    )

    cfg = TrainingBenchConfig(dataset=args.dataset, data_dir=args.data_dir, n_train=args.n_train, arch=args.arch,
                              hidden=args.hidden, batch=args.batch, lr=args.lr, preset=args.preset,
                              rounds=args.rounds, seed=args.seed, loaded=args.loaded,
                              systems=tuple(args.system) if args.system else SYSTEMS)  # fmt: skip
    res = bench_training(cfg, log=lambda msg: print(msg, file=sys.stderr))
    print(json.dumps(res, sort_keys=True) if args.json else format_training_report(res))
    return 0


BENCHMARKS = (_register_crossbar, _register_backends, _register_conv, _register_training)
"""Sub-command registration functions, in --help order."""


def register(subparsers) -> None:
    parser = subparsers.add_parser("bench", help="speed benchmarks (ratios measured in one run)",
                                   description="Speed benchmarks; each prints figures measured in one run.")  # fmt: skip
    sub = parser.add_subparsers(dest="bench_command", metavar="BENCHMARK")
    for add in BENCHMARKS:
        add(sub)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])
