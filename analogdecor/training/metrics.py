"""The per-epoch metrics of a training run (metrics.json / metrics.csv) and top-k accuracy."""

from __future__ import annotations

import csv
import io

import numpy as np

__all__ = ["METRIC_KEYS", "OPTIONAL_METRIC_KEYS", "metric_keys", "metrics_csv", "top_k_correct"]

#: Metrics every run records, in the column order of metrics.csv.
METRIC_KEYS = ("epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "epoch_time_s")
#: Metrics recorded only by some runs: top-5 accuracies for data sets of more than 10 classes,
#: val_* with a validation split (``data.validation``).
OPTIONAL_METRIC_KEYS = ("test_top5_accuracy", "val_loss", "val_accuracy", "val_top5_accuracy")
#: Data sets with more classes than this get top-5 accuracies.
TOP5_ABOVE = 10


def metric_keys(n_classes: int, validation: bool) -> tuple[str, ...]:
    """The metrics a run records, in column order (``epoch_time_s`` last).

    Without a validation split and with at most 10 classes these are :data:`METRIC_KEYS`,
    exactly as before the optional metrics existed.
    """
    top5 = n_classes > TOP5_ABOVE
    extra = ["test_top5_accuracy"] if top5 else []
    if validation:
        extra += ["val_loss", "val_accuracy", *(["val_top5_accuracy"] if top5 else [])]
    return (*METRIC_KEYS[:-1], *extra, METRIC_KEYS[-1])


def top_k_correct(logits: np.ndarray, y: np.ndarray, k: int) -> int:
    """How many rows have their true class among the ``k`` largest logits.

    A row counts when fewer than ``k`` classes have a logit strictly greater than
    the true class's (ties are resolved in the true class's favour, so the count
    does not depend on the order of the classes) and that logit is finite.
    """
    logits = np.asarray(logits)
    true = logits[np.arange(len(y)), y]
    above = np.sum(logits > true[:, None], axis=1)
    return int(np.sum((above < k) & np.isfinite(true)))


def metrics_csv(metrics: dict[str, list[float]]) -> str:
    """metrics.csv: a header of the metric names (in the dict's order), then one row per epoch."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    keys = list(metrics)
    w.writerow(keys)
    for row in zip(*(metrics[k] for k in keys), strict=True):
        w.writerow([repr(v) if isinstance(v, float) else v for v in row])
    return buf.getvalue()
