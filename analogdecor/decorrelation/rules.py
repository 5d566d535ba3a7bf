"""Decorrelation rules as pure functions: (R, signals, params) -> new R.

Notation (N. Ahmad, "Correlations Are Ruining Your Gradient Descent",
arXiv 2407.10780): a layer's input x (d,) is mapped to z = R (x - mu) before the
forward weights. Over a subset Z (k x d) of a batch, C = Z^T Z / k is the second
moment matrix of z under the current R (diagonal included). Every rule below
changes R from C only, and none ever forms a d x d x d product: R C is computed
as ((R Z^T) Z) / k and C R as (Z^T (Z R)) / k, both O(k d^2) (the paper's cost).

Rules
-----
ahmad (the paper's, default)
    R <- g R (I - eta C)         ("local" ordering: Delta R_ij ~ -(R z)_i z_j)
    R <- g (I - eta C) R         ("global" ordering, the earlier form)
    with the scalar gain g = mean_n ||x_n|| / (||z_n|| + 1e-8) ("norm") or
    rms(x) / (rms(z) + 1e-8) ("rms"), x un-centred. The fixed point has C
    proportional to I: the rule whitens, R -> c Sigma^(-1/2).
copi (Ahmad, Schrader & van Gerven, TMLR 2023)
    R <- R - eta offdiag(C) R  (global) or R - eta R offdiag(C) (local);
    variances are not controlled.
kappa (Dalm, Offergeld, Ahmad & van Gerven, arXiv 2405.02385)
    R <- R - eta [(1 - kappa) offdiag(C) + kappa diag(v)] R, v_i = C_ii - 1
    (global; local multiplies from the right). The variance term scales the
    rows of R, i.e. the variance of each z_i, towards 1.
zca (closed-form baseline)
    R = (Sigma + eps I)^(-1/2) from a data sample.
"""

from __future__ import annotations

import math

import numpy as np

from analogdecor.errors import ShapeError

__all__ = [
    "GAIN_EPS",
    "ahmad_step",
    "ahmad_step_exact",
    "copi_step",
    "gain_factor",
    "kappa_step",
    "moment_product",
    "subset_size",
    "zca_matrix",
]

GAIN_EPS = 1e-8
"""The 1e-8 in the gain's denominator (paper, step 3)."""


def subset_size(batch_size: int, fraction: float) -> int:
    """Number of samples k = floor(fraction * B) + 1 the rule uses (at most B).

    For B = 256 and the default fraction 0.1 this is 26, as in the paper.
    """
    if batch_size < 1:
        raise ShapeError(f"batch_size = {batch_size!r}: need at least one sample")
    return min(batch_size, math.floor(fraction * batch_size) + 1)


def _check_rz(R: np.ndarray, z: np.ndarray) -> None:
    if R.ndim != 2 or R.shape[0] != R.shape[1]:
        raise ShapeError(f"R has shape {R.shape}: expected a square (d, d) matrix")
    if z.ndim != 2 or z.shape[1] != R.shape[1] or z.shape[0] < 1:
        raise ShapeError(f"z has shape {z.shape}: expected (k, {R.shape[1]}) with k >= 1")


def moment_product(R: np.ndarray, z: np.ndarray, ordering: str) -> np.ndarray:
    """R C ("local") or C R ("global") with C = z^T z / k, in O(k d^2).

    Parameters
    ----------
    R : (d, d) array
        Current decorrelating matrix.
    z : (k, d) array
        Decorrelated signals z_n = R (x_n - mu) of the k samples.
    ordering : {"local", "global"}
    """
    _check_rz(R, z)
    k = z.shape[0]
    if ordering == "local":
        return ((R @ z.T) @ z) / k  # (R Z^T) Z: d x k then d x d
    if ordering == "global":
        return (z.T @ (z @ R)) / k
    raise ValueError(f"ordering = {ordering!r}: must be 'local' or 'global'")


def gain_factor(x: np.ndarray, z: np.ndarray, kind: str = "norm") -> float:
    """The paper's scalar gain g that keeps the scale of z equal to that of x.

    ``norm``: g = mean_n ||x_n|| / (||z_n|| + 1e-8) (per-sample ratio);
    ``rms``: g = sqrt(mean(x^2)) / (sqrt(mean(z^2)) + 1e-8) over all entries.
    ``x`` is the un-centred layer input of the same samples as ``z``.
    """
    if x.shape != z.shape:
        raise ShapeError(f"x has shape {x.shape} but z has shape {z.shape}: need the same samples")
    x = np.asarray(x, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    if kind == "norm":
        return float(np.mean(np.linalg.norm(x, axis=1) / (np.linalg.norm(z, axis=1) + GAIN_EPS)))
    if kind == "rms":
        return float(np.sqrt(np.mean(x * x)) / (np.sqrt(np.mean(z * z)) + GAIN_EPS))
    raise ValueError(f"gain = {kind!r}: must be 'norm' or 'rms'")


def ahmad_step(
    R: np.ndarray, x: np.ndarray, z: np.ndarray, lr: float, *, ordering: str = "local", gain: str = "norm"
) -> tuple[np.ndarray, float]:
    """One step of the paper's decorrelation rule on a subset of a batch.

    Parameters
    ----------
    R : (d, d) array
        Current matrix.
    x : (k, d) array
        Un-centred layer inputs of the subset (for the gain only).
    z : (k, d) array
        Their decorrelated signals z = R (x - mu).
    lr : float
        Rate eta.
    ordering : {"local", "global"}
    gain : {"norm", "rms"}

    Returns
    -------
    R_new : (d, d) float64 array
        g (R - eta R C) (local) or g (R - eta C R) (global).
    g : float
        The gain used.

    Notes
    -----
    arXiv 2407.10780, decorrelation rule: R <- g R - eta (g R) C. The -eta C term
    shrinks all second moments of z, the gain re-inflates them; the fixed point
    has C proportional to I.
    """
    R = np.asarray(R, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    g = gain_factor(x, z, gain)
    return g * (R - lr * moment_product(R, z, ordering)), g


def ahmad_step_exact(
    R: np.ndarray, sigma: np.ndarray, lr: float, *, ordering: str = "local", g: float | None = None
) -> np.ndarray:
    """The paper's rule with the exact input covariance (population version, O(d^3)).

    C = R Sigma R^T; the gain defaults to sqrt(tr Sigma / tr C), the population
    value of the ``rms`` gain. With R0 = I both orderings give the same iterates
    (R stays a polynomial in Sigma), converging to c Sigma^(-1/2). For tests and
    theory; training uses :func:`ahmad_step`.
    """
    R = np.asarray(R, dtype=np.float64)
    C = R @ sigma @ R.T
    if g is None:
        g = math.sqrt(np.trace(sigma) / np.trace(C))
    P = R @ C if ordering == "local" else C @ R
    return g * (R - lr * P)


def _offdiag_product(R: np.ndarray, z: np.ndarray, ordering: str) -> np.ndarray:
    """R offdiag(C) (local) or offdiag(C) R (global), O(k d^2)."""
    c_diag = np.mean(z * z, axis=0)
    P = moment_product(R, z, ordering)
    return P - (R * c_diag[None, :] if ordering == "local" else c_diag[:, None] * R)


def copi_step(R: np.ndarray, z: np.ndarray, lr: float, *, ordering: str = "global") -> np.ndarray:
    """COPI decorrelation: R - eta offdiag(C) R (global) or R - eta R offdiag(C) (local).

    Ahmad, Schrader & van Gerven, "Constrained parameter inference as a principle
    for learning", TMLR 2023. Removes correlations only; variances drift freely.
    """
    R = np.asarray(R, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    return R - lr * _offdiag_product(R, z, ordering)


def kappa_step(
    R: np.ndarray, z: np.ndarray, lr: float, kappa: float, *, ordering: str = "global"
) -> np.ndarray:
    """Decorrelated-backprop rule of Dalm et al. (arXiv 2405.02385).

    R <- R - eta [(1 - kappa) offdiag(C) + kappa diag(v)] R with v_i = C_ii - 1
    (global ordering; local multiplies from the right). The kappa term pulls the
    variance of every z_i towards 1.
    """
    R = np.asarray(R, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    v = np.mean(z * z, axis=0) - 1.0
    var_term = R * v[None, :] if ordering == "local" else v[:, None] * R
    return R - lr * ((1.0 - kappa) * _offdiag_product(R, z, ordering) + kappa * var_term)


def zca_matrix(x: np.ndarray, eps: float = 1e-3, *, centring: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form ZCA whitening R = (Sigma + eps I)^(-1/2) from a sample.

    Parameters
    ----------
    x : (n, d) array
        Sample of layer inputs.
    eps : float
        Ridge added to the covariance (keeps R finite for rank-deficient samples).
    centring : bool
        Sigma is the covariance (True) or the un-centred second moment (False).

    Returns
    -------
    R : (d, d) float64 array
    mu : (d,) float64 array
        The sample mean (zeros when ``centring`` is off).
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ShapeError(f"x has shape {x.shape}: expected (n, d) with n >= 2")
    mu = x.mean(axis=0) if centring else np.zeros(x.shape[1])
    xc = x - mu
    sigma = xc.T @ xc / x.shape[0]
    evals, evecs = np.linalg.eigh(sigma)
    inv_sqrt = 1.0 / np.sqrt(np.clip(evals, 0.0, None) + eps)
    return (evecs * inv_sqrt[None, :]) @ evecs.T, mu
