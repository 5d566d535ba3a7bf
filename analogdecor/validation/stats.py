"""Two-sample statistics with standard errors, and the Bonferroni critical value.

Every comparison in the cross-validation harness is a z statistic
``z = (a - b) / se`` whose standard error comes from sampling theory, never
from hand-tuned slack:

- means of i.i.d. per-trial values (paired when both backends saw the same
  inputs): se = sd(a_t - b_t) / sqrt(n);
- variances: the asymptotic variance of the sample variance,
  Var(s^2) ~ (m4 - s^4) / n (m4: fourth central moment);
- covariances: Var(c_xy) ~ Var((x - mx)(y - my)) / n;
- distributions of counts: Pearson's chi-square test of homogeneity, turned
  into an equivalent two-sided z via the normal quantile of its p-value;
- statistics replicated over independent tiles (:func:`cluster_diff`): the
  per-tile values' spread gives the standard error and a t test over tiles
  (converted to the equivalent z), because draws within one aihwkit tile are
  correlated (its Gaussians come from a fixed table per tile).

With M elementary tests in a run and a family-wise error rate alpha, each test
uses the Bonferroni critical value ``z* = Phi^-1(1 - alpha / (2 M))``, so a run
of a correct emulator fails with probability at most alpha.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

__all__ = [
    "FLOAT32_FLOOR",
    "chi2_homogeneity_z",
    "cluster_diff",
    "cov_se",
    "float32_floor",
    "mean_se",
    "paired_mean_diff",
    "paired_t_z",
    "t_to_z",
    "var_se",
    "z_critical",
    "z_scores",
]

FLOAT32_FLOOR = 64 * float(np.finfo(np.float32).eps)
"""Relative numerical floor for statistics that are deterministic given the inputs (e.g. a DAC
alone): two float32 implementations summing the same terms in another order differ by a few
ulps per term. Only used where the standard error is (nearly) zero."""


def z_critical(alpha: float, n_tests: int) -> float:
    """Bonferroni two-sided critical value: Phi^-1(1 - alpha / (2 n_tests))."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha = {alpha!r}: must lie in (0, 1)")
    return float(stats.norm.isf(alpha / (2 * max(int(n_tests), 1))))


def mean_se(samples: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and its standard error sd / sqrt(n) along ``axis``."""
    a = np.asarray(samples, dtype=np.float64)
    n = a.shape[axis]
    return a.mean(axis=axis), a.std(axis=axis, ddof=1) / np.sqrt(n)


def paired_mean_diff(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Mean of the paired differences a_t - b_t and its standard error (trials independent)."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    m, se = mean_se(d)
    return float(m), float(se)


def var_se(samples: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Sample variance and its asymptotic standard error sqrt((m4 - s^4) / n)."""
    a = np.asarray(samples, dtype=np.float64)
    n = a.shape[axis]
    c = a - a.mean(axis=axis, keepdims=True)
    s2 = (c**2).sum(axis=axis) / (n - 1)
    m4 = (c**4).mean(axis=axis)
    return s2, np.sqrt(np.maximum(m4 - s2**2, 0.0) / n)


def cov_se(x: np.ndarray, y: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Sample covariance of x and y and its standard error sqrt(Var((x-mx)(y-my)) / n)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = x.shape[axis]
    p = (x - x.mean(axis=axis, keepdims=True)) * (y - y.mean(axis=axis, keepdims=True))
    return p.sum(axis=axis) / (n - 1), p.std(axis=axis, ddof=1) / np.sqrt(n)


def z_scores(diff: np.ndarray, se: np.ndarray, floor: np.ndarray | float = 0.0) -> np.ndarray:
    """max(|diff| - floor, 0) / se elementwise; where se is 0 (deterministic): 0 if |diff| <= floor, else inf.

    ``floor`` is the float32 rounding allowance of a statistic that is deterministic given the
    inputs (see :data:`FLOAT32_FLOOR`); 0 for purely random statistics.
    """
    diff = np.abs(np.asarray(diff, dtype=np.float64))
    se = np.asarray(se, dtype=np.float64)
    excess = np.maximum(diff - np.asarray(floor, dtype=np.float64), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, excess / np.where(se > 0, se, 1.0), np.where(excess > 0, np.inf, 0.0))
    return z


def float32_floor(a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    """:data:`FLOAT32_FLOOR` relative to the magnitude of the two statistics compared."""
    return FLOAT32_FLOOR * (np.abs(np.asarray(a, dtype=np.float64)) + np.abs(np.asarray(b, dtype=np.float64)))


def chi2_homogeneity_z(counts_a: np.ndarray, counts_b: np.ndarray, min_expected: float = 5.0) -> float:
    """Pearson chi-square test that two samples of integer counts come from one distribution.

    Bins with a pooled expected frequency below ``min_expected`` are merged into their
    neighbour (standard practice for the chi-square approximation). Returns the two-sided
    normal quantile of the p-value (0 when both samples are constant and equal).
    """
    a = np.asarray(counts_a, dtype=np.int64).ravel()
    b = np.asarray(counts_b, dtype=np.int64).ravel()
    lo = int(min(a.min(), b.min()))
    hi = int(max(a.max(), b.max()))
    ha = np.bincount(a - lo, minlength=hi - lo + 1).astype(np.float64)
    hb = np.bincount(b - lo, minlength=hi - lo + 1).astype(np.float64)
    # merge sparse bins left to right
    merged_a, merged_b, acc_a, acc_b = [], [], 0.0, 0.0
    na, nb = ha.sum(), hb.sum()
    for ca, cb in zip(ha, hb, strict=True):
        acc_a += ca
        acc_b += cb
        pooled = (acc_a + acc_b) / (na + nb)
        if pooled * min(na, nb) >= min_expected:
            merged_a.append(acc_a)
            merged_b.append(acc_b)
            acc_a = acc_b = 0.0
    if acc_a + acc_b > 0:
        if merged_a:
            merged_a[-1] += acc_a
            merged_b[-1] += acc_b
        else:
            merged_a.append(acc_a)
            merged_b.append(acc_b)
    if len(merged_a) < 2:
        return 0.0
    table = np.array([merged_a, merged_b])
    _, p, _, _ = stats.chi2_contingency(table, correction=False)
    return float(stats.norm.isf(max(p, 1e-300) / 2))


def t_to_z(t: np.ndarray, df: np.ndarray | float) -> np.ndarray:
    """The |z| with the same two-sided tail probability as |t| with ``df`` degrees of freedom."""
    t = np.abs(np.asarray(t, dtype=np.float64))
    p = 2 * stats.t.sf(t, df=np.asarray(df, dtype=np.float64))
    return np.asarray(stats.norm.isf(np.maximum(p, 1e-300) / 2), dtype=np.float64)


def cluster_diff(
    a: np.ndarray, b: np.ndarray, floor: np.ndarray | float = 0.0, *, paired: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Compare per-cluster statistics of two backends over the first axis (one row per tile).

    Values within one tile are not independent on aihwkit (its CPU simulator draws Gaussians from
    a fixed table per tile), so each statistic is computed per tile and only the spread *between*
    tiles sets the standard error. ``paired``: a_r and b_r saw the same inputs (paired t over
    tiles); else Welch's t. Returns (diff, se, df, z) elementwise over the remaining axes, z the
    normal quantile of the t test's two-sided p-value on max(|diff| - floor, 0).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if paired:
        d = a - b
        n = d.shape[0]
        if n < 2:
            raise ValueError("cluster_diff needs at least 2 clusters")
        diff = d.mean(axis=0)
        se = d.std(axis=0, ddof=1) / np.sqrt(n)
        df = np.full(np.shape(diff), n - 1.0)
    else:
        na, nb = a.shape[0], b.shape[0]
        if min(na, nb) < 2:
            raise ValueError("cluster_diff needs at least 2 clusters per backend")
        diff = a.mean(axis=0) - b.mean(axis=0)
        qa, qb = a.var(axis=0, ddof=1) / na, b.var(axis=0, ddof=1) / nb
        se = np.sqrt(qa + qb)
        with np.errstate(divide="ignore", invalid="ignore"):
            df = np.where(se > 0, (qa + qb) ** 2 / (qa**2 / (na - 1) + qb**2 / (nb - 1)), na + nb - 2.0)
        df = np.nan_to_num(df, nan=na + nb - 2.0)
    excess = np.maximum(np.abs(diff) - np.asarray(floor, dtype=np.float64), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(se > 0, excess / np.where(se > 0, se, 1.0), np.where(excess > 0, np.inf, 0.0))
    return diff, se, df, t_to_z(t, df)


def paired_t_z(a: np.ndarray, b: np.ndarray, floor: float = 0.0, se_min: float = 0.0) -> np.ndarray:
    """Paired t test of a - b over the first axis (few samples, e.g. seeds), as an equivalent |z|.

    The t statistic with n - 1 degrees of freedom is converted to the normal quantile of its
    two-sided p-value, so it can share the Bonferroni critical value with the z tests.
    ``floor`` is subtracted from |mean difference| (resolution of a discrete statistic) and
    ``se_min`` bounds the standard error from below (a lattice-valued statistic can show identical
    differences, whose zero variance says nothing). Columns whose differences are all equal and
    within the floor get 0.
    """
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    n = d.shape[0]
    if n < 2:
        raise ValueError("paired_t_z needs at least 2 paired samples")
    m = np.maximum(np.abs(d.mean(axis=0)) - floor, 0.0)
    se = np.maximum(d.std(axis=0, ddof=1) / np.sqrt(n), se_min)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(se > 0, m / np.where(se > 0, se, 1.0), np.where(m > 0, np.inf, 0.0))
    p = 2 * stats.t.sf(t, df=n - 1)
    return np.asarray(stats.norm.isf(np.maximum(p, 1e-300) / 2), dtype=np.float64)
