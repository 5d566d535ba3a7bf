"""`analogdecor train`: train a network from a TOML config plus typed command-line overrides.

Example (the README's demo)::

    analogdecor train --rule np --decorrelation on --backend numba --device ReRamES \\
        --dataset digits --epochs 5 --seed 0 --out runs/demo

Order of precedence: defaults < config file < named options < ``--set``/``--tile``.
``analogdecor train --resume RUN_DIR`` continues an interrupted run (see
:func:`analogdecor.training.resume`).
Every value is type-checked by the config dataclasses; unknown keys are errors.
"""

from __future__ import annotations

import argparse
from typing import Any

from analogdecor.errors import ConfigError

_ON = {
    "on": True,
    "true": True,
    "yes": True,
    "1": True,
    "off": False,
    "false": False,
    "no": False,
    "0": False,
}


def _onoff(text: str) -> bool:
    try:
        return _ON[text.lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected on or off") from None


def _int_list(text: str) -> list[int]:
    try:
        return [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected comma-separated integers, e.g. 64,100,10"
        ) from None


def _count_or_fraction(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a count (5000) or a fraction (0.1)") from None


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a network (float, numba crossbar or aihwkit backend) and write a run directory",
        description="Train an MLP with BP, FA, DFA or node perturbation, optionally decorrelated, on any "
        "backend. Writes config.toml, run.json, metrics.csv/json, model.npz, conductances.npz and "
        "learning_curves.png into --out.",
    )
    p.add_argument("config", nargs="?", help="TOML file with TrainConfig tables (optional)")
    g = p.add_argument_group("run")
    g.add_argument("--rule", choices=("bp", "fa", "dfa", "np", "anp"), help="learning rule")
    g.add_argument("--backend", choices=("float", "numba", "aihwkit"), help="where the weights live")
    g.add_argument("--device", help="device preset name (analogdecor devices list)")
    g.add_argument("--seed", type=int, help="seed of weights, devices, data order and noise")
    g.add_argument("--out", help="run directory to write (default: runs/<rule>-<backend>-seed<seed>)")
    g.add_argument("--overwrite", action="store_true",
                   help="replace --out if it already holds files (its old contents, exports and evaluations "
                   "included, are removed first); without it a non-empty --out is refused")  # fmt: skip
    g.add_argument("--resume", metavar="RUN_DIR",
                   help="continue an interrupted run from its last epoch checkpoint, exactly as if it had "
                   "never stopped (its config.toml is used; no other config options may be given)")  # fmt: skip
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument("--print-config", action="store_true", help="print the resolved config as TOML and exit")
    d = p.add_argument_group("decorrelation")
    d.add_argument("--decorrelation", type=_onoff, metavar="on|off", help="decorrelate every layer's input")
    d.add_argument("--decor-rule", choices=("ahmad", "copi", "kappa", "zca"), help="decorrelation rule")
    d.add_argument("--decor-lr", type=float, help="decorrelation rate eta")
    d.add_argument("--decor-on-tile", type=_onoff, metavar="on|off", help="store R on its own tile")
    m = p.add_argument_group("data and model")
    m.add_argument("--dataset", choices=("digits", "mnist", "fashion-mnist", "idx", "cifar10", "cifar100",
                                         "tiny-imagenet", "synthetic"))  # fmt: skip
    m.add_argument("--data-dir", help="directory of the data files (IDX directory: implies --dataset idx)")
    m.add_argument("--n-train", type=int, help="random subset of training samples")
    m.add_argument("--n-test", type=int, help="random subset of test samples")
    m.add_argument("--validation", type=_count_or_fraction, metavar="N|F",
                   help="hold out a validation split of the training samples: a count (5000) or a fraction "
                   "(0.1); its loss and accuracy are recorded per epoch")  # fmt: skip
    m.add_argument("--normalize", type=_onoff, metavar="on|off",
                   help="image data: normalise each channel with the training split's mean and std")  # fmt: skip
    m.add_argument("--augment", type=_onoff, metavar="on|off",
                   help="image data: random crops (4-pixel padding) and horizontal flips of training batches")  # fmt: skip
    m.add_argument("--widths", type=_int_list, help="all layer sizes, inputs to classes, e.g. 64,100,10")
    m.add_argument("--hidden", type=_int_list, help="hidden layer sizes only, e.g. 256,128")
    m.add_argument("--activation", choices=("relu", "leaky_relu", "tanh", "sigmoid"))
    m.add_argument("--init", choices=("torch", "he"),
                   help="initial weights: torch (as nn.Linear and the paper's code) or he")  # fmt: skip
    m.add_argument("--arch", choices=("mlp", "paper-mlp", "paper-convnet"),
                   help="named model: paper-convnet (conv nets: image data), paper-mlp (4x1000); "
                        "mlp uses --hidden; any sequential net: model.layers in the TOML")  # fmt: skip
    o = p.add_argument_group("optimisation")
    o.add_argument("--epochs", type=int)
    o.add_argument("--batch-size", type=int)
    o.add_argument(
        "--lr", type=float, help="learning rate (digital parameters; tiles too unless --analog-lr)"
    )
    o.add_argument("--analog-lr", type=float, help="learning rate of pulsed tile updates")
    o.add_argument("--optimizer", choices=("sgd", "adam"), help="optimiser of digital parameters")
    o.add_argument("--np-sigma", type=float, help="node perturbation noise std")
    x = p.add_argument_group("any setting")
    x.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="dotted TrainConfig override, e.g. optim.lr=0.1 or tile.device.dw_min_std=0.5")  # fmt: skip
    x.add_argument("--tile", action="append", default=[], metavar="KEY=VALUE",
                   help="dotted override of the preset's TileConfig, e.g. forward.out_bits=6")  # fmt: skip
    p.set_defaults(func=run)


def _pairs(items: list[str], flag: str) -> dict[str, Any]:
    from analogdecor.config import parse_scalar

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} {item!r}: expected KEY=VALUE")
        out[key.strip()] = parse_scalar(value.strip())
    return out


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The dotted overrides the named options stand for (then --set, then --tile)."""
    named = {
        "rule": args.rule, "backend": args.backend, "device": args.device, "seed": args.seed,
        "decorrelation.enabled": args.decorrelation, "decorrelation.rule": args.decor_rule,
        "decorrelation.lr": args.decor_lr, "decorrelation.on_tile": args.decor_on_tile,
        "data.dataset": args.dataset, "data.data_dir": args.data_dir,
        "data.n_train": args.n_train, "data.n_test": args.n_test, "data.validation": args.validation,
        "data.normalize": args.normalize, "data.augment": args.augment,
        "model.activation": args.activation, "model.init": args.init, "model.arch": args.arch,
        "optim.epochs": args.epochs,
        "optim.batch_size": args.batch_size, "optim.lr": args.lr, "optim.analog_lr": args.analog_lr,
        "optim.optimizer": args.optimizer, "optim.np_sigma": args.np_sigma,
    }  # fmt: skip
    out = {k: v for k, v in named.items() if v is not None}
    if args.data_dir is not None and args.dataset is None:
        out["data.dataset"] = "idx"
    if args.widths is not None and args.hidden is not None:
        raise ConfigError("give --widths (all sizes) or --hidden (hidden sizes), not both")
    if args.widths is not None:
        if len(args.widths) < 2:
            raise ConfigError(f"--widths {args.widths}: need at least inputs and classes, e.g. 64,100,10")
        out["model.in_features"] = args.widths[0]
        out["model.hidden"] = args.widths[1:-1]
        out["model.out_features"] = args.widths[-1]
    if args.hidden is not None:
        out["model.hidden"] = args.hidden
    out.update(_pairs(args.set, "--set"))
    out.update({f"tile.{k}": v for k, v in _pairs(args.tile, "--tile").items()})
    return out


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from analogdecor.config import from_dict, to_dict
    from analogdecor.training import TrainConfig, apply_overrides, resolve_tile_config, resume, train
    from analogdecor.training.tomlio import dumps_toml

    if args.resume is not None:
        given = overrides_from_args(args)
        if args.config or args.out or args.print_config or args.overwrite or given:
            raise ConfigError(
                "--resume RUN_DIR continues the run with the config in RUN_DIR/config.toml: give no config "
                "file, --out, --overwrite, --print-config or settings with it"
            )
        return _report(resume(args.resume, progress=not args.no_progress), Path(args.resume))
    base = TrainConfig()
    if args.config:
        from analogdecor.training import load_train_config

        base = load_train_config(args.config)
    cfg = apply_overrides(base, overrides_from_args(args))
    cfg = from_dict(TrainConfig, to_dict(cfg))  # re-validate cross-field rules after all overrides
    if args.print_config:
        data = to_dict(cfg)
        data["resolved_tile"] = to_dict(resolve_tile_config(cfg))
        print(dumps_toml(data), end="")
        return 0
    out = Path(args.out) if args.out else Path("runs") / f"{cfg.rule}-{cfg.backend}-seed{cfg.seed}"
    return _report(train(cfg, out, progress=not args.no_progress, overwrite=args.overwrite), out)


def _report(result: Any, out: Any) -> int:
    """Print the outcome of a run; exit code 0 when it finished, 1 when it diverged."""
    m = result.metrics
    print(
        f"{result.status}: test accuracy {m['test_accuracy'][-1]:.4f}, test loss {m['test_loss'][-1]:.4f} "
        f"after {len(m['epoch'])} epochs ({result.info['wall_time_s']:.2f} s of training); run directory {out}"
    )
    return 0 if result.status == "finished" else 1
