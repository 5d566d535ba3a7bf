"""``analogdecor validate``: cross-validate the numba emulator against IBM aihwkit.

Prints the table of :func:`analogdecor.validation.run_validation` (or, with
``--json``, its rows as a JSON list), writes the rows to a JSON file
(``runs/validate.json`` unless ``--out`` says otherwise), and exits 1 when any
row fails (2 on a configuration error).
"""

from __future__ import annotations

import argparse

ALL_CHECKS = ("forward", "update", "pulses", "response", "conv-read", "training", "training-conv", "inference",
              "random")  # fmt: skip


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "validate",
        help="cross-validate the numba emulator against aihwkit (statistical table)",
        description=(
            "Compare the numba crossbar emulator with IBM aihwkit on device presets: forward-read errors "
            "(DAC, ADC, output noise alone and together), pulsed-update statistics (per-device mean, "
            "variance, same-row covariance), pulse-count distributions, device response curves and a short "
            "training run of an MLP and of a small conv net (training-conv); a convolution read on numba tiles against "
            "aihwkit's AnalogConv2d (conv-read); randomised device configurations of every family (--random per family); and analogdecor's inference noise models (programmed conductances, drift exponents, "
            "drifted conductances at --inference-time, read noise) against aihwkit's. Tolerances are Bonferroni-corrected standard errors at family-wise error --alpha. "
            "Exit status 1 when any row fails."
        ),
    )
    p.add_argument("--preset", action="append", metavar="NAME",
                   help="preset to validate (repeatable); default: all presets in device_models/, plus a "
                        "'family:<model>' configuration for each device family without a preset")  # fmt: skip
    p.add_argument("--check", action="append", choices=ALL_CHECKS,
                   help="run only these checks (repeatable); default: all. 'inference' runs once, not per preset")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the rows as a JSON list instead of the table")
    p.add_argument("--out", metavar="PATH", default="runs/validate.json",
                   help="also write the rows as JSON to PATH (default runs/validate.json; '-' for none)")  # fmt: skip
    p.add_argument(
        "--alpha", type=float, default=1e-3, help="family-wise error rate of the run (default 1e-3)"
    )
    p.add_argument("--size", type=int, default=8, help="tile rows and columns of the tile checks (default 8)")
    p.add_argument("--trials", type=int, default=400,
                   help="trials per forward condition and per update check (default 400)")  # fmt: skip
    p.add_argument("--replicas", type=int, default=64, help="devices per response curve (default 64)")
    p.add_argument("--seeds", type=int, default=6, help="seeds of the training check (default 6)")
    p.add_argument("--epochs", type=int, default=3, help="epochs of the training check (default 3)")
    p.add_argument("--conv-epochs", type=int, default=2,
                   help="epochs of the training-conv check (default 2; it uses --seeds too)")  # fmt: skip
    p.add_argument("--inference-devices", type=int, default=20000,
                   help="devices per conductance band and implementation in the inference check (default 20000)")  # fmt: skip
    p.add_argument("--inference-time", default="1d",
                   help="time after programming of the inference check's drifted conductances (default 1d)")  # fmt: skip
    p.add_argument("--tiles", type=int, default=32,
                   help="independent tiles per backend that each check's trials and replicas are spread over; "
                        "standard errors come from the spread between tiles (default 32)")  # fmt: skip
    p.add_argument("--random", type=int, default=2, metavar="N",
                   help="random device configurations per family in the 'random' check (default 2)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of inputs, device draws and random configurations "
                   "(default 0)")  # fmt: skip
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import dataclasses
    from pathlib import Path

    from analogdecor.backends.aihwkit import require_aihwkit
    from analogdecor.errors import ConfigError
    from analogdecor.inference.evaluate import parse_times
    from analogdecor.validation import (
        CONV_TRAINING,
        InferenceSpec,
        Sizes,
        TrainingSpec,
        format_table,
        rows_to_json,
        run_validation,
    )

    require_aihwkit()
    for name in ("size", "trials", "replicas"):
        if getattr(args, name) < 2:
            raise ConfigError(f"--{name} = {getattr(args, name)}: must be >= 2")
    if args.seeds < 2:
        raise ConfigError(f"--seeds = {args.seeds}: the paired t test of the training check needs >= 2")
    extra: dict = {}
    if args.preset:
        presets = list(args.preset)
    else:
        from analogdecor.devices.registry import list_presets
        from analogdecor.validation import family_configs

        presets = list(list_presets())
        extra = family_configs(presets)  # device families without a preset of their own
    if args.trials < 4:
        raise ConfigError(f"--trials = {args.trials}: must be >= 4 (the update check spreads them over tiles)")
    if args.tiles < 2:
        raise ConfigError(f"--tiles = {args.tiles}: the t test over tiles needs >= 2")
    if args.random < 0:
        raise ConfigError(f"--random = {args.random}: must be >= 0")
    sizes = Sizes(out_size=args.size, in_size=args.size, forward_trials=args.trials, update_trials=args.trials,
                  replicas=args.replicas, tiles=args.tiles)  # fmt: skip
    training = TrainingSpec(seeds=args.seeds, epochs=args.epochs)
    if args.conv_epochs < 1:
        raise ConfigError(f"--conv-epochs = {args.conv_epochs}: must be >= 1")
    conv_training = dataclasses.replace(CONV_TRAINING, seeds=args.seeds, epochs=args.conv_epochs)
    checks = tuple(args.check) if args.check else ALL_CHECKS
    if args.inference_devices < 2:
        raise ConfigError(f"--inference-devices = {args.inference_devices}: must be >= 2")
    t_inf = parse_times(args.inference_time)
    if len(t_inf) != 1:
        raise ConfigError(f"--inference-time = {args.inference_time!r}: give one time, e.g. 1d")
    inference = InferenceSpec(devices=args.inference_devices, time=t_inf[0])
    if set(checks) == {"inference"} and not args.preset:
        presets, extra = [], {}  # the inference check does not depend on the presets
    result = run_validation(
        presets, checks=checks, sizes=sizes, training=training, alpha=args.alpha, seed=args.seed, extra=extra,
        inference=inference, random=args.random, conv_training=conv_training,
    )  # fmt: skip
    text = rows_to_json(result.rows)
    if args.out and args.out != "-":
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    print(text if args.json else format_table(result.rows, result.names, result.z_critical))
    return 0 if result.passed else 1
