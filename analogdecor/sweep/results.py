"""Sweep results on disk: one atomic JSON record per run, and the tidy table rebuilt from them.

Layout of a sweep directory::

    SWEEP_DIR/
      plan.json               # the spec, the base config and every planned run (id, swept values)
      results.csv             # one row per planned run, rebuilt from runs/*/result.json
      summary.csv             # mean and std of the metrics over seeds, per point
      plots/                  # metric vs each swept setting; heat maps
      runs/<run_id>/          # the run's own directory, as `analogdecor train` writes it
      runs/<run_id>/result.json   # its row: status, swept values, final/best metrics, wall time, error

Every file is written to a temporary name and moved into place with
:func:`os.replace`, which is atomic on POSIX and Windows: a crash leaves the
old file or the new one, never half a row.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "RESULT_FILE",
    "atomic_write_text",
    "best_is_min",
    "build_table",
    "read_result",
    "summarise_metrics",
    "write_csv",
    "write_result",
]

RESULT_FILE = "result.json"


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, creating the folder (training's temp file + os.replace)."""
    from analogdecor.training.rundir import atomic_write_text as _atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic(path, text)


def write_result(run_dir: Path, record: Mapping[str, Any]) -> None:
    """Atomically write a run's record to ``run_dir/result.json``."""
    from analogdecor.training.rundir import json_dumps

    atomic_write_text(run_dir / RESULT_FILE, json_dumps(record, indent=1, sort_keys=True, default=_jsonable))


def read_result(run_dir: Path) -> dict[str, Any] | None:
    """A run's record, or None when it has none (never ran, or a crash before the record)."""
    path = run_dir / RESULT_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None  # not written by us (os.replace never leaves half a file): treat as not run


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def best_is_min(metric: str) -> bool:
    """Whether lower is better for a metric, judged by its name (loss, error, mse, nll)."""
    name = metric.lower()
    return any(word in name for word in ("loss", "error", "mse", "nll"))


def summarise_metrics(metrics: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """``final_<name>`` (last epoch) and ``best_<name>`` (max, or min for losses/errors) of each metric.

    Book-keeping series (``epoch``, ``*_time_s``) are left out; non-finite
    values (a diverged run) never count as best.
    """
    out: dict[str, float] = {}
    for name, values in metrics.items():
        if name == "epoch" or name.endswith("_time_s") or not values:
            continue
        vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
        last = float(values[-1]) if values[-1] is not None else math.nan
        out[f"final_{name}"] = last
        out[f"best_{name}"] = (min(vals) if best_is_min(name) else max(vals)) if vals else math.nan
    return out


def build_table(
    planned: Iterable[tuple[str, Mapping[str, Any]]], runs_dir: Path, axis_names: Sequence[str]
) -> tuple[list[str], list[dict[str, Any]]]:
    """Rows of the results table, one per planned run, read from the runs' records.

    Parameters
    ----------
    planned : iterable of (run_id, overrides)
        The planned runs in order.
    runs_dir : Path
        ``SWEEP_DIR/runs``.
    axis_names : sequence of str
        Swept settings (columns after ``status``); ``seed`` always follows them.

    Returns
    -------
    (columns, rows)
        Runs without a record have status ``pending``.
    """
    rows = []
    metric_cols: list[str] = []
    for rid, overrides in planned:
        record = read_result(runs_dir / rid) or {}
        row: dict[str, Any] = {"run_id": rid, "status": record.get("status", "pending")}
        for name in axis_names:
            row[name] = overrides.get(name, "")
        row["seed"] = record.get("seed", overrides.get("seed", ""))
        for key, value in record.get("summary", {}).items():
            row[key] = value
            if key not in metric_cols:
                metric_cols.append(key)
        row["epochs"] = record.get("epochs", "")
        row["wall_time_s"] = record.get("wall_time_s", "")
        row["error"] = record.get("error", "")
        row["run_dir"] = f"runs/{rid}"
        rows.append(row)
    metric_cols.sort(key=lambda c: (not c.startswith("final_"), c))
    columns = ["run_id", "status", *axis_names, "seed", *metric_cols, "epochs", "wall_time_s", "error", "run_dir"]
    return columns, rows


def write_csv(path: Path, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """Atomically write a CSV table (values that are lists or tuples are written as JSON)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: json.dumps(list(v)) if isinstance(v, list | tuple) else v for k, v in row.items()})
    atomic_write_text(path, buf.getvalue())
