"""The training checks of the harness: the same short run on two backends, paired by seed.

A small network learns the ``digits`` data set (sklearn's 8x8 digits, shipped with
scikit-learn, so it needs no download) with backprop for a few epochs, once per
seed and backend, through :func:`analogdecor.training.train`: check ``training`` an
MLP, check ``training-conv`` (:data:`CONV_TRAINING`) a small conv net (``model.layers``:
a 3x3 convolution of 4 channels on the 1x8x8 images, a 2x2 max-pool, the dense
output), whose conv tile is read and updated with one row per image position. The seed fixes the
initial weights and the data order on both backends, so runs are paired by seed;
with a handful of seeds the comparison is a paired t test per statistic (final test
accuracy, final test loss, and the test loss after every epoch), turned into an
equivalent z for the Bonferroni family of the whole run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from analogdecor.errors import ConfigError
from analogdecor.networks.spec import LayerSpec
from analogdecor.validation.checks import Comparison
from analogdecor.validation.stats import paired_t_z

__all__ = ["CONV_TRAINING", "TrainingSpec", "training_checks", "training_comparisons", "training_curves"]


@dataclass(frozen=True)
class TrainingSpec:
    """The short training run of the training check."""

    seeds: int = 6
    """Number of seeds (pairs of runs); at least 2 for the paired t test. With 3 the t test (2 degrees of
    freedom) on accuracies that move in whole test examples raised false alarms (issue 12)."""
    epochs: int = 3
    hidden: tuple[int, ...] = (32,)
    """Hidden widths of the MLP (64 inputs, 10 classes); unused with ``layers``."""
    layers: tuple[LayerSpec, ...] = ()
    """Hidden layers as ``model.layers`` (a conv net on the data set's images); empty: the MLP of ``hidden``."""
    lr: float = 0.05
    batch_size: int = 32
    rule: str = "bp"
    dataset: str = "digits"
    check: str = "training"
    """Name of the check in the table's rows (``training``, ``training-conv``)."""

    def __post_init__(self) -> None:
        for name in ("seeds", "epochs", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"TrainingSpec.{name} = {v!r}: must be an integer >= 1")

    def model(self) -> Any:
        """The :class:`~analogdecor.training.config.ModelConfig` of the run."""
        from analogdecor.training import ModelConfig

        return ModelConfig(layers=self.layers) if self.layers else ModelConfig(hidden=tuple(self.hidden))


CONV_TRAINING = TrainingSpec(
    epochs=2, layers=(LayerSpec("conv2d", channels=4, kernel=3, padding=1), LayerSpec("maxpool", size=2)),
    check="training-conv",
)  # fmt: skip
"""The ``training-conv`` check: a 4-channel 3x3 conv net on the 1x8x8 digits (about a second an epoch)."""


def training_curves(preset: str, backend: str, spec: TrainingSpec) -> list[dict[str, list[float]]]:
    """Per-seed metrics (test_loss, test_accuracy, train_loss per epoch) of ``backend`` on ``preset``."""
    from analogdecor.training import DataConfig, OptimConfig, TrainConfig, train

    out = []
    for seed in range(spec.seeds):
        cfg = TrainConfig(
            rule=cast(Any, spec.rule), backend=cast(Any, backend), device=preset, seed=seed,
            model=spec.model(), data=DataConfig(dataset=spec.dataset),
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
    return training_comparisons(preset, curves[backends[0]], curves[backends[1]], spec), curves


def training_comparisons(
    preset: str, ra: list[dict[str, list[float]]], rb: list[dict[str, list[float]]], spec: TrainingSpec
) -> list[Comparison]:
    """The rows of :func:`training_checks` from two backends' per-seed curves (:func:`training_curves`)."""
    acc_a = np.array([r["test_accuracy"][-1] for r in ra])
    acc_b = np.array([r["test_accuracy"][-1] for r in rb])
    loss_a = np.array([r["test_loss"] for r in ra])  # (seeds, epochs)
    loss_b = np.array([r["test_loss"] for r in rb])
    # accuracy moves in whole test examples: a mean difference within one example is no discrepancy,
    # and the se is at least that of rounding two accuracies to whole examples (variance step**2 / 12
    # each), so identical per-seed differences (zero variance estimate) cannot make a few examples infinite
    step = 1.0 / _n_test(spec.dataset)
    comps = [
        Comparison(f"{spec.check}: final test accuracy", preset, float(acc_a.mean()), float(acc_b.mean()),
                   paired_t_z(acc_a, acc_b, floor=step, se_min=step / np.sqrt(6 * spec.seeds)),
                   detail=f"{spec.seeds} seeds, paired t; floor 1 test example"),
        Comparison(f"{spec.check}: test loss per epoch", preset, float(loss_a[:, -1].mean()), float(loss_b[:, -1].mean()),
                   paired_t_z(loss_a, loss_b), detail=f"{spec.epochs} epochs; a, b: final loss"),
    ]  # fmt: skip
    return comps


def _n_test(dataset: str) -> int:
    """Number of test examples of ``dataset`` (the resolution of its accuracy)."""
    from analogdecor.data import load_dataset

    return len(load_dataset(dataset).y_test)
