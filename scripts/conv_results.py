"""Table and learning curves of a rule x decorrelation x backend sweep (the paper's conv net).

    analogdecor sweep scripts/sweeps/paper_convnet_mnist.toml --workers 2
    analogdecor sweep scripts/sweeps/paper_convnet_mnist_np.toml --workers 2
    python scripts/conv_results.py runs/sweeps/paper_convnet_mnist runs/sweeps/paper_convnet_mnist_np \
        --png docs/img/paper_convnet_curves.png

Reads every finished or diverged run of the sweep directories (each run's run.json, config.toml
and metrics.csv) and prints a Markdown table: final test accuracy, mean ± std over the seeds, per
rule, learning rate, backend and decorrelation on/off, with the mean wall time of a run. ``--png``
also draws the test accuracy per epoch, one line per seed, one panel per rule, rate and backend.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tomllib
from pathlib import Path

import numpy as np


def load_runs(sweep_dir: Path) -> list[dict]:
    """One dict per finished run: rule, backend, decorrelation, seed, test accuracy per epoch, wall time."""
    runs = []
    for run_json in sorted((sweep_dir / "runs").glob("*/run.json")):
        info = json.loads(run_json.read_text())
        if info.get("status") not in ("finished", "diverged"):
            continue
        with open(run_json.parent / "metrics.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        cfg = tomllib.loads((run_json.parent / "config.toml").read_text())
        runs.append({
            "lr": float(cfg["optim"]["lr"]), "rule": info["rule"], "backend": info["backend"], "decor": bool(info["decorrelation"]),
            "seed": int(info["seed"]), "device": info.get("device"), "wall_s": float(info["wall_time_s"]),
            "acc": [float(r["test_accuracy"]) for r in rows], "diverged": info["status"] == "diverged",
        })  # fmt: skip
    return runs


def table(runs: list[dict]) -> str:
    """Markdown: one row per (rule, backend), plain and decorrelated side by side."""
    cells: dict[tuple[str, float, str, bool], list[dict]] = {}
    for r in runs:
        cells.setdefault((r["rule"], r["lr"], r["backend"], r["decor"]), []).append(r)

    def stat(rs: list[dict]) -> str:
        if not rs:
            return "not run"
        ok = [r for r in rs if not r["diverged"]]
        if not ok:
            return f"diverged ({len(rs)} of {len(rs)})"
        v = np.array([r["acc"][-1] for r in ok])
        bad = len(rs) - len(ok)
        return f"{v.mean():.3f} ± {v.std():.3f} (n={len(v)}" + (f"; {bad} diverged)" if bad else ")")

    def wall(rs: list[dict]) -> str:
        return f"{np.mean([r['wall_s'] for r in rs]):.0f}" if rs else "-"

    lines = ["| rule | lr | weights | plain | decorrelated | s / run (plain, decorrelated) |",
             "|---|---|---|---|---|---|"]
    for rule in ("bp", "fa", "dfa", "np"):
        for lr in sorted({r["lr"] for r in runs if r["rule"] == rule}, reverse=True):
            for backend in ("float", "numba", "aihwkit"):
                plain, decor = cells.get((rule, lr, backend, False), []), cells.get((rule, lr, backend, True), [])
                if not plain and not decor:
                    continue
                device = (plain or decor)[0]["device"]
                where = "float" if backend == "float" else f"{device} crossbar ({backend})"
                lines.append(f"| {rule.upper()} | {lr:g} | {where} | {stat(plain)} | {stat(decor)} | "
                             f"{wall(plain)}, {wall(decor)} |")
    return "\n".join(lines)


def plot(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    backends = sorted({r["backend"] for r in runs})
    order = ("bp", "fa", "dfa", "np")
    rules = sorted({(r["rule"], r["lr"]) for r in runs}, key=lambda c: (order.index(c[0]), -c[1]))
    fig, axes = plt.subplots(len(backends), len(rules), figsize=(3.2 * len(rules), 2.7 * len(backends)),
                             squeeze=False, sharey=True)  # fmt: skip
    for r in runs:
        if r["diverged"]:
            continue
        ax = axes[backends.index(r["backend"]), rules.index((r["rule"], r["lr"]))]
        color = "tab:blue" if r["decor"] else "tab:red"
        label = ("decorrelated" if r["decor"] else "plain") if r["seed"] == 0 else None
        ax.plot(np.arange(1, len(r["acc"]) + 1), r["acc"], color=color, alpha=0.75, marker="o", ms=3, label=label)
    for i, backend in enumerate(backends):
        for j, (rule, lr) in enumerate(rules):
            ax = axes[i, j]
            device = next((r["device"] for r in runs if r["backend"] == backend), "")
            where = "float" if backend == "float" else device + " crossbar"
            ax.set_title(f"{rule.upper()} lr {lr:g}, {where}", fontsize=9)
            ax.set_xlim(0.8, max(len(r["acc"]) for r in runs) + 0.2)
            ax.set_xlabel("epoch")
            ax.set_ylim(0, 1)
            ax.grid(alpha=0.3)
            if j == 0:
                ax.set_ylabel("test accuracy")
            gone = sorted({"decorrelated" if r["decor"] else "plain" for r in runs
                           if r["diverged"] and (r["rule"], r["lr"], r["backend"]) == (rule, lr, backend)})  # fmt: skip
            if gone:
                ax.text(0.03, 0.95, "diverged: " + ", ".join(gone), transform=ax.transAxes, fontsize=7, va="top")
            handles, labels = ax.get_legend_handles_labels()
            if handles:
                order = sorted(range(len(labels)), key=lambda n: labels[n] != "plain")
                ax.legend([handles[n] for n in order], [labels[n] for n in order], fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("sweep_dirs", type=Path, nargs="+", help="sweep directories (with runs/<id>/run.json)")
    p.add_argument("--png", type=Path, help="write the learning curves here")
    args = p.parse_args(argv)
    runs = [r for d in args.sweep_dirs for r in load_runs(d)]
    if not runs:
        print(f"no finished runs under {', '.join(str(d / 'runs') for d in args.sweep_dirs)}", file=sys.stderr)
        return 1
    print(table(runs))
    if args.png:
        plot(runs, args.png)
        print(f"learning curves: {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
