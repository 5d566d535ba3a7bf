"""Reproduce the qualitative claims of Ahmad (arXiv 2407.10780) on MNIST with an MLP.

Trains BP, FA and NP, each plain and decorrelated, over several seeds, in float
and on an emulated crossbar preset, and writes into --out:

    runs/<name>/            one run directory per run (as `analogdecor train` writes it)
    results.csv             one row per run (final and best metrics, status, wall time)
    table.md                mean +- std over seeds per (backend, rule, lr, decorrelation)
    curves.png              training loss per epoch, plain vs decorrelated

Claims checked (spec section 5): BP: decorrelation lowers the training loss at
equal epochs; FA: decorrelation adds accuracy and removes the instability at a
high learning rate; NP: plain NP diverges or crawls at a learning rate where
decorrelated NP trains stably. Re-running skips runs whose run directory is
complete (resumable). Example (the README's table):

    .venv/bin/python scripts/reproduce_paper.py --n-train 5000 --analog-n-train 2000 --n-test 2000 \\
        --epochs 5 --analog-epochs 3 --seeds 0,1,2 --out runs/reproduce
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

import numpy as np

from analogdecor.training import TrainConfig, apply_overrides, train

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MNIST = REPO.parent / "shared" / "data" / "mnist"

# (rule, learning rate): a moderate and a high rate for FA and NP (the instability claims).
FLOAT_GRID = [("bp", 0.05), ("fa", 0.05), ("fa", 0.3), ("np", 0.01), ("np", 0.05)]
ANALOG_GRID = [("bp", 0.05), ("fa", 0.3), ("np", 0.05)]


def run_name(backend: str, rule: str, lr: float, decor: bool, seed: int) -> str:
    return f"{backend}-{rule}-lr{lr:g}-{'decor' if decor else 'plain'}-seed{seed}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    p.add_argument("--hidden", default="256", help="hidden widths, comma-separated")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--backends", default="float,numba")
    p.add_argument("--device", default="ReRamES", help="crossbar preset of the numba runs")
    p.add_argument("--decor-lr", type=float, default=1e-3)
    p.add_argument("--np-sigma", type=float, default=0.3)
    p.add_argument("--out", default="runs/reproduce")
    args = p.parse_args(argv)

    out = Path(args.out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",") if s]
    hidden = [int(h) for h in args.hidden.split(",") if h]
    rows = []
    jobs = []
    for backend in [b for b in args.backends.split(",") if b]:
        grid = FLOAT_GRID if backend == "float" else ANALOG_GRID
        for rule, lr in grid:
            for decor in (False, True):
                for seed in seeds:
                    jobs.append((backend, rule, lr, decor, seed))
    t_all = time.perf_counter()
    for i, (backend, rule, lr, decor, seed) in enumerate(jobs, start=1):
        name = run_name(backend, rule, lr, decor, seed)
        run_dir = out / "runs" / name
        analog = backend != "float"
        n_train = args.analog_n_train if (analog and args.analog_n_train) else args.n_train
        epochs = args.analog_epochs if (analog and args.analog_epochs) else args.epochs
        cfg = apply_overrides(TrainConfig(), {
            "rule": rule, "backend": backend, "device": args.device, "seed": seed,
            "decorrelation.enabled": decor, "decorrelation.lr": args.decor_lr,
            "data.dataset": args.dataset, "data.data_dir": args.data_dir,
            "data.n_train": n_train, "data.n_test": args.n_test,
            "model.hidden": hidden, "optim.lr": lr, "optim.epochs": epochs,
            "optim.batch_size": args.batch_size, "optim.np_sigma": args.np_sigma,
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
            "backend": backend, "device": args.device if backend != "float" else "", "rule": rule, "lr": lr,
            "decorrelation": decor, "seed": seed, "status": status,
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
        groups.setdefault((r["backend"], r["rule"], r["lr"], r["decorrelation"]), []).append(r)
    lines = [
        f"{args.dataset}, MLP hidden {args.hidden}, batch {args.batch_size}, plain SGD, seeds {args.seeds}; "
        f"float: {args.n_train} training samples, {args.epochs} epochs; crossbar ({args.device}): "
        f"{args.analog_n_train or args.n_train} training samples, {args.analog_epochs or args.epochs} epochs; "
        f"{args.n_test} test samples; decorrelation eta {args.decor_lr}; NP sigma {args.np_sigma}; "
        "mean ± std over seeds.",
        "",
        "| backend | rule | lr | decorrelation | final train loss | final test accuracy |",
        "|---|---|---|---|---|---|",
    ]
    for (backend, rule, lr, decor), rs in groups.items():
        lines.append(
            f"| {backend} | {rule.upper()} | {lr:g} | {'on' if decor else 'off'} | "
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
    cols = min(5, len(panels))
    nrows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 2.8 * nrows), squeeze=False)
    for ax, (b, rule, lr) in zip(axes.ravel(), panels, strict=False):
        for decor, color in ((False, "tab:red"), (True, "tab:blue")):
            for k, r in enumerate(groups.get((b, rule, lr, decor), [])):
                curve = np.asarray(r["train_loss_curve"], dtype=float)
                ax.plot(np.arange(1, len(curve) + 1), curve, color=color, alpha=0.7,
                        label=("decorrelated" if decor else "plain") if k == 0 else None)  # fmt: skip
        off = [("decorrelated" if d else "plain") for d in (False, True)
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
