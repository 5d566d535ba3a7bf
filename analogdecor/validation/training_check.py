"""The training check of the harness: the same short run on two backends, paired by seed.

A small MLP learns the ``digits`` data set (sklearn's 8x8 digits, shipped with
scikit-learn, so it needs no download) with backprop for a few epochs, once per
seed and backend, through :func:`analogdecor.training.train`. The seed fixes the
initial weights and the data order on both backends, so runs are paired by seed;
with a handful of seeds the comparison is a paired t test per statistic (final test
accuracy, final test loss, and the test loss after every epoch), turned into an
equivalent z for the Bonferroni family of the whole run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from analogdecor.validation.checks import Comparison
from analogdecor.validation.stats import paired_t_z

__all__ = ["TrainingSpec", "training_checks", "training_curves"]


@dataclass(frozen=True)
class TrainingSpec:
    """The short training run of the training check."""

    seeds: int = 6
    """Number of seeds (pairs of runs); at least 2 for the paired t test. With 3 the t test (2 degrees of
    freedom) on accuracies that move in whole test examples raised false alarms (issue 12)."""
    epochs: int = 3
    hidden: tuple[int, ...] = (32,)
    """Hidden widths of the MLP (64 inputs, 10 classes)."""
    lr: float = 0.05
    batch_size: int = 32
    rule: str = "bp"
    dataset: str = "digits"


def training_curves(preset: str, backend: str, spec: TrainingSpec) -> list[dict[str, list[float]]]:
    """Per-seed metrics (test_loss, test_accuracy, train_loss per epoch) of ``backend`` on ``preset``."""
    from analogdecor.training import DataConfig, ModelConfig, OptimConfig, TrainConfig, train

    out = []
    for seed in range(spec.seeds):
        cfg = TrainConfig(
            rule=cast(Any, spec.rule), backend=cast(Any, backend), device=preset, seed=seed,
            model=ModelConfig(hidden=tuple(spec.hidden)), data=DataConfig(dataset=spec.dataset),
            optim=OptimConfig(optimizer="sgd", lr=spec.lr, batch_size=spec.batch_size, epochs=spec.epochs),
        )  # fmt: skip
        res = train(cfg, None, progress=False)
        out.append(
            {k: [float(v) for v in res.metrics[k]] for k in ("test_loss", "test_accuracy", "train_loss")}
        )
    return out


def training_checks(
    preset: str, backends: tuple[str, str], spec: TrainingSpec
) -> tuple[list[Comparison], dict]:
    """Compare final accuracy, final loss and the test-loss curve of two backends (paired t over seeds).

    Returns the comparisons and the raw curves ``{backend: [per-seed metrics]}``.
    """
    if spec.seeds < 2:
        raise ValueError(f"TrainingSpec.seeds = {spec.seeds}: the paired t test needs at least 2 seeds")
    curves = {b: training_curves(preset, b, spec) for b in backends}
    ra, rb = curves[backends[0]], curves[backends[1]]
    acc_a = np.array([r["test_accuracy"][-1] for r in ra])
    acc_b = np.array([r["test_accuracy"][-1] for r in rb])
    loss_a = np.array([r["test_loss"] for r in ra])  # (seeds, epochs)
    loss_b = np.array([r["test_loss"] for r in rb])
    # accuracy moves in whole test examples: a mean difference within one example is no discrepancy,
    # and the se is at least that of rounding two accuracies to whole examples (variance step**2 / 12
    # each), so identical per-seed differences (zero variance estimate) cannot make a few examples infinite
    step = 1.0 / _n_test(spec.dataset)
    comps = [
        Comparison("training: final test accuracy", preset, float(acc_a.mean()), float(acc_b.mean()),
                   paired_t_z(acc_a, acc_b, floor=step, se_min=step / np.sqrt(6 * spec.seeds)),
                   detail=f"{spec.seeds} seeds, paired t; floor 1 test example"),
        Comparison("training: test loss per epoch", preset, float(loss_a[:, -1].mean()), float(loss_b[:, -1].mean()),
                   paired_t_z(loss_a, loss_b), detail=f"{spec.epochs} epochs; a, b: final loss"),
    ]  # fmt: skip
    return comps, curves


def _n_test(dataset: str) -> int:
    """Number of test examples of ``dataset`` (the resolution of its accuracy)."""
    from analogdecor.data import load_dataset

    return len(load_dataset(dataset).y_test)
