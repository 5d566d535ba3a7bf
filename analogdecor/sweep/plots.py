"""End-of-sweep summaries: mean and spread over seeds, metric-vs-setting plots, heat maps.

For each swept setting (``seed`` aside) one figure shows the chosen metric's
final value against the setting, mean over seeds with a +-1 std band, one line
per combination of the other settings (or their average when there are more
than :data:`MAX_LINES` combinations). For each pair of settings a heat map of
the mean over seeds is drawn, one panel per combination of the remaining
settings (e.g. decorrelation off / on). Random-mode sweeps get scatter plots.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from analogdecor.sweep.results import read_result, write_csv
from analogdecor.sweep.spec import PlannedRun, SweepSpec

__all__ = ["MAX_LINES", "MAX_PANELS", "aggregate", "plot_sweep"]

MAX_LINES = 8
MAX_PANELS = 6


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _label(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).lower() if isinstance(value, bool) else str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def aggregate(
    points: Sequence[tuple[dict[str, Any], float]], axes: Sequence[str]
) -> list[tuple[dict[str, Any], float, float, int]]:
    """Group ``(settings, value)`` pairs by the settings in ``axes``: (settings, mean, std, n).

    Non-finite values are left out; groups keep first-appearance order.
    """
    groups: dict[str, tuple[dict[str, Any], list[float]]] = {}
    for setting, value in points:
        sub = {a: setting.get(a) for a in axes}
        entry = groups.setdefault(_key([sub[a] for a in axes]), (sub, []))
        if value is not None and math.isfinite(value):
            entry[1].append(float(value))
    out = []
    for sub, vals in groups.values():
        arr = np.asarray(vals, dtype=np.float64)
        mean = float(arr.mean()) if arr.size else math.nan
        std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0 if arr.size else math.nan
        out.append((sub, mean, std, int(arr.size)))
    return out


def _values_in_order(points: Sequence[tuple[dict[str, Any], float]], axis: str) -> list[Any]:
    seen: dict[str, Any] = {}
    for setting, _ in points:
        seen.setdefault(_key(setting.get(axis)), setting.get(axis))
    values = list(seen.values())
    if all(_is_number(v) for v in values):
        values.sort()
    return values


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


def _combos(points, others):
    combos: dict[str, dict[str, Any]] = {}
    for setting, _ in points:
        sub = {a: setting.get(a) for a in others}
        combos.setdefault(_key([sub[a] for a in others]), sub)
    return list(combos.values())


def _combo_label(combo: dict[str, Any]) -> str:
    return ", ".join(f"{a}={_label(v)}" for a, v in combo.items()) or "all"


def _line_plot(plt, points, axis, others, metric, title, path, scatter):
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    values = _values_in_order(points, axis)
    numeric = all(_is_number(v) for v in values)
    pos = {_key(v): i for i, v in enumerate(values)}
    if scatter:
        xs = [p[0].get(axis) for p in points]
        ys = [p[1] for p in points]
        ax.scatter(xs if numeric else [_label(x) for x in xs], ys, s=14)
    else:
        combos = _combos(points, others)
        if len(combos) > MAX_LINES:
            combos, lines_over = [{}], []
        else:
            lines_over = others
        for combo in combos:
            sel = [p for p in points if all(_key(p[0].get(a)) == _key(v) for a, v in combo.items())]
            stats = {_key(s[axis]): (m, sd) for s, m, sd, _ in aggregate(sel, [axis])}
            xv = [v for v in values if _key(v) in stats]
            xs = np.asarray(xv if numeric else [pos[_key(v)] for v in xv], dtype=np.float64)
            mean = np.array([stats[_key(v)][0] for v in xv])
            std = np.array([stats[_key(v)][1] for v in xv])
            label = _combo_label(combo) if lines_over else ("mean over other settings" if others else None)
            (line,) = ax.plot(xs, mean, marker="o", label=label)
            ax.fill_between(xs, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
        if not numeric:
            ax.set_xticks(range(len(values)), [_label(v) for v in values])
        if any(line.get_label() and not line.get_label().startswith("_") for line in ax.lines):
            ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    if numeric and all(v > 0 for v in values) and max(values) / min(values) >= 50:
        ax.set_xscale("log")
    ax.set_xlabel(axis)
    ax.set_ylabel(f"final {metric}")
    ax.set_title(title, fontsize="medium")
    ax.grid(alpha=0.3)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def _heatmaps(plt, points, a, b, others, metric, title, path):
    combos = _combos(points, others)
    if len(combos) > MAX_PANELS:
        combos = [{}]
    va, vb = _values_in_order(points, a), _values_in_order(points, b)
    col = {_key(v): j for j, v in enumerate(va)}
    row = {_key(v): i for i, v in enumerate(vb)}
    grids = []
    for combo in combos:
        sel = [p for p in points if all(_key(p[0].get(k)) == _key(v) for k, v in combo.items())]
        grid = np.full((len(vb), len(va)), np.nan)
        for sub, mean, _, _ in aggregate(sel, [a, b]):
            grid[row[_key(sub[b])], col[_key(sub[a])]] = mean
        grids.append((combo, grid))
    finite = np.concatenate([g[np.isfinite(g)] for _, g in grids]) if grids else np.array([])
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    fig, axes = plt.subplots(1, len(grids), figsize=(1.6 + 4.2 * len(grids), 3.8), squeeze=False,
                             sharey=True, constrained_layout=True)
    im = None
    for i, (ax, (combo, grid)) in enumerate(zip(axes[0], grids, strict=True)):
        im = ax.imshow(grid, origin="lower", aspect="auto", vmin=vmin, vmax=vmax, cmap="viridis")
        ax.set_xticks(range(len(va)), [_label(v) for v in va])
        ax.set_yticks(range(len(vb)), [_label(v) for v in vb])
        ax.set_xlabel(a)
        if i == 0:
            ax.set_ylabel(b)
        ax.set_title(_combo_label(combo) if combo else "mean over other settings", fontsize="medium")
        mid = (vmin + vmax) / 2
        for i in range(grid.shape[0]):
            for j in range(grid.shape[1]):
                if np.isfinite(grid[i, j]):
                    ax.text(j, i, f"{grid[i, j]:.3g}", ha="center", va="center", fontsize="small",
                            color="white" if grid[i, j] < mid else "black")
    fig.colorbar(im, ax=axes[0].tolist(), label=f"final {metric} (mean over seeds)")
    fig.suptitle(title, fontsize="medium")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_sweep(sweep_dir: str | Path, spec: SweepSpec, planned: Sequence[PlannedRun]) -> list[Path]:
    """Write ``summary.csv`` and the plots of a sweep's finished runs; return the files written.

    The plotted value is ``final_<metric>`` of each run record (``metric`` from
    the spec's ``[sweep]`` table). Nothing is drawn when no run finished.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweep_dir = Path(sweep_dir)
    metric = spec.settings.metric
    axes = spec.axis_names
    points: list[tuple[dict[str, Any], float]] = []
    finals: dict[str, list[tuple[dict[str, Any], float]]] = defaultdict(list)
    for run in planned:
        record = read_result(sweep_dir / "runs" / run.run_id)
        if record is None or record.get("status") != "ok":
            continue
        setting = {a: run.overrides.get(a) for a in axes}
        for key, value in record.get("summary", {}).items():
            if key.startswith("final_"):
                finals[key].append((setting, value))
        if f"final_{metric}" in record.get("summary", {}):
            points.append((setting, record["summary"][f"final_{metric}"]))
    written: list[Path] = []
    if finals:
        written.append(_write_summary(sweep_dir / "summary.csv", finals, axes))
    if not points:
        return written
    plot_dir = sweep_dir / "plots"
    plot_dir.mkdir(exist_ok=True)
    title = f"{spec.settings.name}: final {metric}"
    scatter = spec.settings.mode == "random"
    for axis in axes:
        path = plot_dir / f"{_slug(metric)}_vs_{_slug(axis)}.png"
        _line_plot(plt, points, axis, [o for o in axes if o != axis], metric, title, path, scatter)
        written.append(path)
    if not scatter:
        for a, b in combinations(axes, 2):
            if len(_values_in_order(points, a)) < 2 or len(_values_in_order(points, b)) < 2:
                continue
            path = plot_dir / f"heatmap_{_slug(metric)}_{_slug(a)}_x_{_slug(b)}.png"
            _heatmaps(plt, points, a, b, [o for o in axes if o not in (a, b)], metric, title, path)
            written.append(path)
    return written


def _write_summary(path: Path, finals: dict[str, list[tuple[dict[str, Any], float]]], axes: Sequence[str]) -> Path:
    rows: dict[str, dict[str, Any]] = {}
    columns = [*axes, "n_seeds"]
    for key, pts in finals.items():
        name = key.removeprefix("final_")
        columns += [f"mean_{name}", f"std_{name}"]
        for sub, mean, std, n in aggregate(pts, axes):
            row = rows.setdefault(_key([sub[a] for a in axes]), dict(sub))
            row["n_seeds"] = max(row.get("n_seeds", 0), n)
            row[f"mean_{name}"] = mean
            row[f"std_{name}"] = std
    write_csv(path, columns, rows.values())
    return path
