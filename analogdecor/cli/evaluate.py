"""``analogdecor evaluate RUN_DIR --times 1s,1h,1d,30d,1y --model pcm --seeds N [--noise-backend aihwkit]``."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="accuracy vs time after programming a trained run onto devices (drift, noise, IR drop)",
        description=(
            "Program a trained run's tiles with an inference noise model (programming noise, drift, read "
            "noise), read them at the given times, and report test accuracy (mean and spread over noise "
            "seeds) with and without global drift compensation. Writes evaluate.csv, evaluate.json and "
            "evaluate.png to RUN_DIR/evaluate (or --out)."
        ),
    )
    p.add_argument("run_dir", help="training run directory (from `analogdecor train`)")
    p.add_argument("--times", default="1s,1h,1d,30d,1y", help="times after programming, e.g. 1s,1h,1d,30d,1y")
    p.add_argument(
        "--model",
        default="pcm",
        help="noise model: none, pcm, reram, a file name in device_models/inference, or a .toml path",
    )
    p.add_argument(
        "--noise-backend",
        choices=("analogdecor", "aihwkit"),
        default="analogdecor",
        help="implementation of the noise model: analogdecor's own (default) or IBM aihwkit's "
        "PCMLikeNoiseModel / ReRamWan2022NoiseModel (models pcm and reram; needs aihwkit)",
    )
    p.add_argument("--seeds", type=int, default=3, help="number of noise seeds (default 3)")
    p.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    p.add_argument("--n-test", type=int, default=None, help="use the first N test samples")
    p.add_argument(
        "--n-ref", type=int, default=256, help="reference batch for drift compensation (default 256)"
    )
    p.add_argument(
        "--no-drift-compensation", action="store_true", help="skip the drift-compensated column (faster)"
    )
    p.add_argument("--write-verify", action="store_true", help="program with write-verify")
    p.add_argument(
        "--wv-tolerance", type=float, default=0.02, help="write-verify tolerance, fraction of g_max"
    )
    p.add_argument("--wv-iterations", type=int, default=10, help="write-verify: maximum programming passes")
    p.add_argument(
        "--wv-read-noise", action="store_true", help="write-verify reads carry the model's read noise"
    )
    p.add_argument(
        "--ir-drop",
        type=float,
        default=None,
        metavar="OHM",
        help="IR drop with this wire resistance per cell",
    )
    p.add_argument("--ir-drop-layers", default="", help="comma-separated tiles for IR drop (default: all)")
    p.add_argument(
        "--deploy",
        choices=("folded", "separate", "digital"),
        default=None,
        help="decorrelated networks: program W R folded, R on its own arrays (separate, as trained) or R in "
        "digital periphery (default: as trained)",
    )
    p.add_argument("--out", default=None, help="output folder (default RUN_DIR/evaluate)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--force", action="store_true",
                   help="evaluate a run that is not finished (diverged, interrupted, still running), with a "
                   "warning; refused otherwise")  # fmt: skip
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from analogdecor.inference.evaluate import EvaluateConfig, evaluate_run, format_table, parse_times
    from analogdecor.inference.irdrop import IRDropConfig
    from analogdecor.inference.writeverify import WriteVerifyConfig

    layers = tuple(s for s in args.ir_drop_layers.split(",") if s)
    cfg = EvaluateConfig(
        model=args.model,
        noise_backend=args.noise_backend,
        times=parse_times(args.times),
        seeds=args.seeds,
        seed=args.seed,
        n_ref=args.n_ref,
        n_test=args.n_test,
        drift_compensation=not args.no_drift_compensation,
        deploy=args.deploy,
        write_verify=WriteVerifyConfig(
            enabled=args.write_verify,
            tolerance=args.wv_tolerance,
            max_iterations=args.wv_iterations,
            verify_read_noise=args.wv_read_noise,
        ),
        ir_drop=IRDropConfig(
            enabled=args.ir_drop is not None,
            r_wire=args.ir_drop if args.ir_drop is not None else 1.0,
            layers=layers,
        ),
    )
    progress = None if args.quiet else print
    result, paths = evaluate_run(args.run_dir, cfg, out_dir=args.out, progress=progress, force=args.force)
    desc = result.model_description
    print(
        f"as trained: {result.baseline_accuracy:.4f}   model: {desc.get('model')}"
        f"   noise backend: {desc.get('noise_backend', 'analogdecor')}"
    )
    arrays = result.deployment.get("arrays")
    if arrays is not None:
        size = "x".join("whole" if v is None else str(v) for v in arrays["array_size"])
        print(f"deploy {result.deployment['deploy']}: {arrays['total']} array(s) of {size}: "
              + ", ".join(f"{k} {v['grid'][0]}x{v['grid'][1]}" for k, v in arrays["matrices"].items()))  # fmt: skip
    print(format_table(result))
    if cfg.write_verify.enabled:
        for name, rep in result.write_verify[0].items():
            print(
                f"write-verify {name} (seed 0): {rep['iterations']} passes, rms error {rep['rms_error_us']:.3f} uS, "
                f"max {rep['max_error_us']:.3f} uS, {100 * rep['fraction_within']:.2f} % within "
                f"{rep['tolerance_us']:.3f} uS"
            )
    for path in paths:
        print(path)
    return 0
