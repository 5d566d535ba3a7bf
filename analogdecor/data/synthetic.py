"""Synthetic correlated Gaussian data with a linear-teacher classification task.

Correlated inputs are the situation that decorrelation addresses (N. Ahmad,
"Correlations Are Ruining Your Gradient Descent", arXiv 2407.10780, Sec. 2):
the condition number of the input covariance slows gradient descent and
misdirects approximate rules such as node perturbation. This generator makes
the correlation strength a knob, so experiments can show the effect directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from analogdecor.config import check_choice, check_int, check_nonneg, check_range
from analogdecor.data.dataset import Dataset

__all__ = ["SyntheticSpec", "covariance", "make_synthetic"]


@dataclass(frozen=True)
class SyntheticSpec:
    """Parameters of the synthetic correlated-Gaussian task."""

    n_features: int = 32
    """Input dimension d."""
    n_classes: int = 4
    """Number of classes (rows of the linear teacher)."""
    correlation: float = 0.9
    """Correlation strength rho in [0, 1); 0 gives white inputs."""
    structure: Literal["ar1", "equicorrelated"] = "ar1"
    """ar1: Sigma_ij = rho^|i-j| (neighbouring features correlated, like pixels);
    equicorrelated: Sigma_ij = rho for i != j, 1 on the diagonal (one dominant direction)."""
    label_noise: float = 0.0
    """Std of Gaussian noise added to the teacher's logits before the argmax (0: noiseless labels)."""
    n_train: int = 2000
    """Training samples (``load_dataset(..., n_train=)`` overrides it)."""
    n_test: int = 500
    """Test samples (``load_dataset(..., n_test=)`` overrides it)."""

    def __post_init__(self) -> None:
        check_int(self, "n_features", minimum=1)
        check_int(self, "n_classes", minimum=2)
        check_range(self, "correlation", 0.0, 0.999999)
        check_choice(self, "structure", ("ar1", "equicorrelated"))
        check_nonneg(self, "label_noise")
        check_int(self, "n_train", minimum=1)
        check_int(self, "n_test", minimum=1)


def covariance(spec: SyntheticSpec) -> np.ndarray:
    """The input covariance Sigma (unit variances) of ``spec``, float64 (d, d)."""
    d, rho = spec.n_features, spec.correlation
    if spec.structure == "ar1":
        lag = np.abs(np.subtract.outer(np.arange(d), np.arange(d)))
        return rho ** lag.astype(np.float64)
    return np.full((d, d), rho) + (1.0 - rho) * np.eye(d)


def make_synthetic(spec: SyntheticSpec, *, seed: int = 0, name: str = "synthetic") -> Dataset:
    """Draw a correlated-Gaussian classification data set.

    Inputs are x = L z with z ~ N(0, I) and L L^T = Sigma (:func:`covariance`).
    A teacher W* with i.i.d. N(0, 1/d) entries labels each sample as
    ``argmax(W* x + label_noise * xi)``. Train and test sets are independent
    draws from the same distribution and teacher.

    Parameters
    ----------
    spec : SyntheticSpec
        Sizes, correlation strength and structure, label noise.
    seed : int
        Seed of everything (teacher, inputs, label noise).
    name : str
        Name recorded in the returned :class:`Dataset`.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED]))
    chol = np.linalg.cholesky(covariance(spec))
    teacher = rng.standard_normal((spec.n_classes, spec.n_features)) / np.sqrt(spec.n_features)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.standard_normal((n, spec.n_features)) @ chol.T
        logits = x @ teacher.T
        if spec.label_noise > 0:
            logits = logits + spec.label_noise * rng.standard_normal(logits.shape)
        return x.astype(np.float32), np.argmax(logits, axis=1).astype(np.int64)

    x_train, y_train = draw(spec.n_train)
    x_test, y_test = draw(spec.n_test)
    return Dataset(x_train, y_train, x_test, y_test, n_classes=spec.n_classes, name=name)
