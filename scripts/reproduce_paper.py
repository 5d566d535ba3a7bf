"""Reproduce the qualitative claims of Ahmad (arXiv 2407.10780) on MNIST with an MLP.

Two setups (``--setup``):

``paper`` (default)
    The paper's code (github nasiryahm/CorrelationsRuinGD, run.py and conf/config.yaml):
    Adam (betas 0.9, 0.9999, eps 1e-8), batch 256, torch's default initialisation
    (model.init "torch"), leaky ReLU, cross-entropy, NP with sigma 1e-6 and the stacked
    clean/noisy batch, errors through the centring mean; a decorrelation-rate sweep over
    0 (no decorrelation layers), 1e-4, 1e-5 and 1e-6; float backend (a crossbar keeps no
    Adam state). Its MLP is 4 x 1000 hidden units (``--hidden`` to shrink it).
``budget``
    The earlier short-budget recipe: plain SGD, batch 64, He initialisation, one
    hidden layer of 256, decorrelation rate 1e-3, NP sigma 0.3, float and an emulated
    crossbar preset, a moderate and a high learning rate for FA and NP.

Writes into --out:

    runs/<name>/            one run directory per run (as `analogdecor train` writes it)
    results.csv             one row per run (setup, final and best metrics, status, wall time)
    table.md                mean +- std over seeds per (setup, backend, rule, lr, decorrelation rate)
    curves.png              training loss per epoch, plain vs decorrelated

Claims checked (spec section 5): BP: decorrelation lowers the training loss at
equal epochs; FA: decorrelation adds accuracy and removes the instability at a
high learning rate; NP: plain NP diverges or crawls at a learning rate where
decorrelated NP trains stably. Re-running skips runs whose run directory is
complete (resumable). Examples (docs/results/reproduction.md):

    python scripts/reproduce_paper.py --setup paper --hidden 256,256,256 --n-train 10000 \
        --n-test 2000 --epochs 5 --seeds 0 --out runs/reproduce-paper
    python scripts/reproduce_paper.py --setup budget --n-train 5000 --analog-n-train 2000 \
        --n-test 2000 --epochs 5 --analog-epochs 3 --seeds 0,1,2 --out runs/reproduce
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from analogdecor.training import TrainConfig, apply_overrides, train

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MNIST = REPO.parent / "shared" / "data" / "mnist"

# (rule, learning rate): a moderate and a high rate for FA and NP (the instability claims).
FLOAT_GRID = [("bp", 0.05), ("fa", 0.05), ("fa", 0.3), ("np", 0.01), ("np", 0.05)]
ANALOG_GRID = [("bp", 0.05), ("fa", 0.3), ("np", 0.05)]

SETUPS: dict[str, dict[str, Any]] = {
    "paper": {
        "float_grid": [("bp", 1e-4), ("fa", 1e-4), ("np", 1e-4)],  # conf/config.yaml fwd_lr
        "analog_grid": [],
        "backends": "float",
        "hidden": "1000,1000,1000,1000",
        "batch_size": 256,
        "decor_lrs": "0,1e-4,1e-5,1e-6",
        "np_sigma": 1e-6,
        "overrides": {"optim.optimizer": "adam", "optim.beta1": 0.9, "optim.beta2": 0.9999, "optim.eps": 1e-8,
                      "model.init": "torch", "optim.np_passes": "stacked",
                      "decorrelation.mean_gradient": True},
    },
    "budget": {
        "float_grid": FLOAT_GRID,
        "analog_grid": ANALOG_GRID,
        "backends": "float,numba",
        "hidden": "256",
        "batch_size": 64,
        "decor_lrs": "0,1e-3",
        "np_sigma": 0.3,
        "overrides": {"optim.optimizer": "sgd", "model.init": "he"},
    },
}


def _grid(text: str | None, default: list[tuple[str, float]]) -> list[tuple[str, float]]:
    if not text:
        return default
    out = []
    for item in text.split(","):
        rule, lr = item.split(":")
        out.append((rule.strip(), float(lr)))
    return out


def run_name(setup: str, backend: str, rule: str, lr: float, decor_lr: float, seed: int) -> str:
    tag = f"decor{decor_lr:g}" if decor_lr > 0 else "plain"
    return f"{setup}-{backend}-{rule}-lr{lr:g}-{tag}-seed{seed}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--setup", choices=tuple(SETUPS), default="paper",
                   help="paper: the paper's code's settings; budget: the earlier SGD recipe")  # fmt: skip
    p.add_argument("--dataset", default="mnist", help="data set name (load_dataset)")
    p.add_argument("--data-dir", default=str(DEFAULT_MNIST), help="directory of the data files")
    p.add_argument("--n-train", type=int, default=5000)
    p.add_argument("--n-test", type=int, default=2000)
    p.add_argument(
        "--analog-n-train",
        type=int,
        default=None,
        help="training subset for crossbar runs (default --n-train)",
    )
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument(
        "--analog-epochs", type=int, default=None, help="epochs of crossbar runs (default --epochs)"
    )
    p.add_argument("--hidden", default=None, help="hidden widths, comma-separated (default: the setup's)")
    p.add_argument("--batch-size", type=int, default=None, help="default: the setup's (paper 256, budget 64)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--backends", default=None, help="default: the setup's (paper float, budget float,numba)")
    p.add_argument("--device", default="ReRamES", help="crossbar preset of the numba runs")
    p.add_argument("--decor-lrs", default=None,
                   help="decorrelation rates, comma-separated; 0 = no decorrelation (default: the setup's)")  # fmt: skip
    p.add_argument("--grid", default=None, help="float runs' rule:lr pairs, e.g. bp:1e-3,np:1e-4")
    p.add_argument("--np-sigma", type=float, default=None, help="default: the setup's (paper 1e-6, budget 0.3)")
    p.add_argument("--out", default="runs/reproduce")
    args = p.parse_args(argv)
    setup = SETUPS[args.setup]
    for name in ("hidden", "batch_size", "backends", "decor_lrs", "np_sigma"):
        if getattr(args, name) is None:
            setattr(args, name, setup[name])

    out = Path(args.out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",") if s]
    hidden = [int(h) for h in str(args.hidden).split(",") if h]
    decor_lrs = [float(v) for v in str(args.decor_lrs).split(",") if v]
    rows = []
    jobs = []
    for backend in [b for b in args.backends.split(",") if b]:
        grid = _grid(args.grid, setup["float_grid"]) if backend == "float" else setup["analog_grid"]
        for rule, lr in grid:
            for decor_lr in decor_lrs:
                for seed in seeds:
                    jobs.append((backend, rule, lr, decor_lr, seed))
    t_all = time.perf_counter()
    for i, (backend, rule, lr, decor_lr, seed) in enumerate(jobs, start=1):
        name = run_name(args.setup, backend, rule, lr, decor_lr, seed)
        run_dir = out / "runs" / name
        analog = backend != "float"
        n_train = args.analog_n_train if (analog and args.analog_n_train) else args.n_train
        epochs = args.analog_epochs if (analog and args.analog_epochs) else args.epochs
        cfg = apply_overrides(TrainConfig(), {
            "rule": rule, "backend": backend, "device": args.device, "seed": seed,
            "decorrelation.enabled": decor_lr > 0, "decorrelation.lr": decor_lr,
            "data.dataset": args.dataset, "data.data_dir": args.data_dir,
            "data.n_train": n_train, "data.n_test": args.n_test,
            "model.hidden": hidden, "optim.lr": lr, "optim.epochs": epochs,
            "optim.batch_size": args.batch_size, "optim.np_sigma": args.np_sigma,
            **setup["overrides"],
        })  # fmt: skip
        done = run_dir / "run.json"
        if done.is_file() and json.loads(done.read_text()).get("status") in ("finished", "diverged"):
            metrics = json.loads((run_dir / "metrics.json").read_text())
            status = json.loads(done.read_text())["status"]
            wall = json.loads(done.read_text())["wall_time_s"]
        else:
            t0 = time.perf_counter()
            res = train(cfg, run_dir, progress=False)
            metrics, status, wall = res.metrics, res.status, time.perf_counter() - t0
        row = {
            "setup": args.setup, "backend": backend, "device": args.device if backend != "float" else "",
            "rule": rule, "lr": lr, "decorrelation": decor_lr > 0, "decor_lr": decor_lr, "seed": seed,
            "status": status,
            "final_train_loss": metrics["train_loss"][-1], "final_test_accuracy": metrics["test_accuracy"][-1],
            "best_test_accuracy": float(np.nanmax(metrics["test_accuracy"])) if not all(
                math.isnan(v) for v in metrics["test_accuracy"]) else float("nan"),
            "wall_time_s": wall, "train_loss_curve": metrics["train_loss"],
        }  # fmt: skip
        rows.append(row)
        print(f"[{i}/{len(jobs)}] {name}: {status}, train loss {row['final_train_loss']:.4f}, "
              f"test acc {row['final_test_accuracy']:.4f} ({wall:.1f} s)", flush=True)  # fmt: skip
    write_results(out, rows, args)
    print(f"done in {time.perf_counter() - t_all:.0f} s; table in {out / 'table.md'}")
    return 0


def _mean_std(values: list[float]) -> str:
    v = np.asarray(values, dtype=float)
    if np.all(np.isnan(v)):
        return "diverged"
    n_bad = int(np.isnan(v).sum())
    v = v[~np.isnan(v)]
    s = f"{v.mean():.3f} ± {v.std():.3f}" if len(v) > 1 else f"{v.mean():.3f}"
    return s + (f" ({n_bad} diverged)" if n_bad else "")


def write_results(out: Path, rows: list[dict], args: argparse.Namespace) -> None:
    buf = io.StringIO()
    keys = [k for k in rows[0] if k != "train_loss_curve"]
    w = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    (out / "results.csv").write_text(buf.getvalue())

    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["backend"], r["rule"], r["lr"], r["decor_lr"]), []).append(r)
    settings = ", ".join(f"{k} = {v}" for k, v in SETUPS[args.setup]["overrides"].items())
    lines = [
        f"setup {args.setup} ({settings}); {args.dataset}, MLP hidden {args.hidden}, batch {args.batch_size}, "
        f"seeds {args.seeds}; float: {args.n_train} training samples, {args.epochs} epochs; "
        f"crossbar ({args.device}): {args.analog_n_train or args.n_train} training samples, "
        f"{args.analog_epochs or args.epochs} epochs; {args.n_test} test samples; decorrelation rates "
        f"{args.decor_lrs} (0: no decorrelation); NP sigma {args.np_sigma}; mean ± std over seeds.",
        "",
        "| setup | backend | rule | lr | decorrelation rate | final train loss | final test accuracy |",
        "|---|---|---|---|---|---|---|",
    ]
    for (backend, rule, lr, decor_lr), rs in groups.items():
        lines.append(
            f"| {args.setup} | {backend} | {rule.upper()} | {lr:g} | {decor_lr:g} | "
            f"{_mean_std([r['final_train_loss'] for r in rs])} | {_mean_std([r['final_test_accuracy'] for r in rs])} |"
        )
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(out / "curves.png", groups)


def plot(path: Path, groups: dict[tuple, list[dict]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    panels = sorted({(b, rule, lr) for (b, rule, lr, _) in groups})
    rates = sorted({d for (_, _, _, d) in groups})
    palette = ["tab:red", "tab:blue", "tab:green", "tab:purple", "tab:orange"]
    colors = dict(zip(rates, palette, strict=False))
    cols = min(5, len(panels))
    nrows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 2.8 * nrows), squeeze=False)
    for ax, (b, rule, lr) in zip(axes.ravel(), panels, strict=False):
        for d in rates:
            label = f"decorrelated {d:g}" if d > 0 else "plain"
            for k, r in enumerate(groups.get((b, rule, lr, d), [])):
                curve = np.asarray(r["train_loss_curve"], dtype=float)
                ax.plot(np.arange(1, len(curve) + 1), curve, color=colors.get(d, "tab:gray"), alpha=0.7,
                        label=label if k == 0 else None)  # fmt: skip
        off = [(f"{d:g}" if d > 0 else "plain") for d in rates
               if any(np.nanmax(r["train_loss_curve"]) > 2.5 for r in groups.get((b, rule, lr, d), []))]  # fmt: skip
        note = f"\n({', '.join(off)} off scale: loss > 2.5)" if off else ""
        ax.set_title(f"{rule.upper()} lr {lr:g} ({b}){note}", fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("train loss")
        ax.set_ylim(0, 2.5)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes.ravel()[len(panels) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
