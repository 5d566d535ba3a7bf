"""Decorrelation rules and the decorrelated layer, against hand-written loops and theory.

Specification: ../shared/notes/decorrelation-and-learning-rules.md, sections 1-3
(N. Ahmad, arXiv 2407.10780).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from analogdecor.backends import FloatTile
from analogdecor.decorrelation import (
    DecorrelationConfig,
    Decorrelator,
    ahmad_step,
    ahmad_step_exact,
    copi_step,
    fold_linear,
    kappa_step,
    moment_product,
    subset_size,
    zca_matrix,
)
from analogdecor.errors import ConfigError, ShapeError


# ----------------------------------------------------------------------------- slow references
def loop_second_moment(z):
    k, d = z.shape
    C = np.zeros((d, d))
    for n in range(k):
        for i in range(d):
            for j in range(d):
                C[i, j] += z[n, i] * z[n, j] / k
    return C


def loop_matmul(A, B):
    out = np.zeros((A.shape[0], B.shape[1]))
    for i in range(A.shape[0]):
        for j in range(B.shape[1]):
            s = 0.0
            for m in range(A.shape[1]):
                s += A[i, m] * B[m, j]
            out[i, j] = s
    return out


def loop_norm_gain(x, z):
    total = 0.0
    for n in range(x.shape[0]):
        nx = math.sqrt(sum(v * v for v in x[n]))
        nz = math.sqrt(sum(v * v for v in z[n]))
        total += nx / (nz + 1e-8)
    return total / x.shape[0]


def loop_rms_gain(x, z):
    sx = sum(v * v for v in x.ravel()) / x.size
    sz = sum(v * v for v in z.ravel()) / z.size
    return math.sqrt(sx) / (math.sqrt(sz) + 1e-8)


def correlated_source(rng, d, mean=0.5):
    """A sampler of x = L xi + mean with one fixed random mixing matrix L (strong correlations)."""
    L = 0.3 * np.eye(d) + rng.normal(size=(d, d)) / math.sqrt(d)

    def sample(n):
        return (rng.normal(size=(n, d)) @ L.T + mean).astype(np.float32)

    return sample


# ----------------------------------------------------------------------------- one step by hand
@pytest.mark.parametrize("ordering", ["local", "global"])
@pytest.mark.parametrize("gain", ["norm", "rms"])
def test_one_ahmad_step_equals_hand_computed(ordering, gain):
    rng = np.random.default_rng(1)
    d, k, eta = 5, 4, 0.03
    R = np.eye(d) + 0.1 * rng.normal(size=(d, d))
    x = rng.normal(size=(k, d)) + 1.0
    mu = rng.normal(size=d)
    z = loop_matmul(x - mu, R.T)
    C = loop_second_moment(z)
    g = loop_norm_gain(x, z) if gain == "norm" else loop_rms_gain(x, z)
    gR = g * R
    # R <- g R - eta (g R) C (local) or g R - eta C (g R) (global), element by element
    expected = gR - eta * (loop_matmul(gR, C) if ordering == "local" else loop_matmul(C, gR))
    got, g_got = ahmad_step(R, x, z, eta, ordering=ordering, gain=gain)
    assert g_got == pytest.approx(g, rel=1e-12)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


def test_layer_step_equals_hand_computed_on_the_first_k_samples():
    rng = np.random.default_rng(2)
    d, B, eta = 6, 20, 0.01
    cfg = DecorrelationConfig(enabled=True, lr=eta, subset_fraction=0.1)
    dec = Decorrelator(d, cfg)
    x = rng.normal(size=(B, d)).astype(np.float32) + 0.3
    xc, _ = dec.center(x, train=True)
    z = dec.apply(xc)
    dec.step(x, z)
    k = math.floor(0.1 * B) + 1
    assert k == 3
    zs = z[:k].astype(np.float64)
    g = loop_norm_gain(x[:k].astype(np.float64), zs)
    expected = g * (np.eye(d) - eta * loop_second_moment(zs))
    np.testing.assert_allclose(dec.R, expected, rtol=1e-10, atol=1e-12)


def test_copi_and_kappa_steps_equal_hand_computed():
    rng = np.random.default_rng(3)
    d, k, eta, kappa = 4, 6, 0.05, 0.2
    R = np.eye(d) + 0.1 * rng.normal(size=(d, d))
    z = rng.normal(size=(k, d)) * 1.5
    C = loop_second_moment(z)
    off = C - np.diag(np.diag(C))
    V = np.diag(np.diag(C) - 1.0)
    np.testing.assert_allclose(
        copi_step(R, z, eta, ordering="global"), R - eta * loop_matmul(off, R), rtol=1e-12
    )
    np.testing.assert_allclose(
        copi_step(R, z, eta, ordering="local"), R - eta * loop_matmul(R, off), rtol=1e-12
    )
    exp_g = R - eta * loop_matmul((1 - kappa) * off + kappa * V, R)
    exp_l = R - eta * loop_matmul(R, (1 - kappa) * off + kappa * V)
    np.testing.assert_allclose(kappa_step(R, z, eta, kappa, ordering="global"), exp_g, rtol=1e-12)
    np.testing.assert_allclose(kappa_step(R, z, eta, kappa, ordering="local"), exp_l, rtol=1e-12)


def test_moment_product_is_the_explicit_product():
    rng = np.random.default_rng(4)
    R, z = rng.normal(size=(7, 7)), rng.normal(size=(3, 7))
    C = loop_second_moment(z)
    np.testing.assert_allclose(moment_product(R, z, "local"), loop_matmul(R, C), rtol=1e-12)
    np.testing.assert_allclose(moment_product(R, z, "global"), loop_matmul(C, R), rtol=1e-12)
    with pytest.raises(ShapeError, match="z has shape"):
        moment_product(R, z[:, :5], "local")


def test_subset_size_matches_the_paper():
    assert subset_size(256, 0.1) == 26
    assert subset_size(32, 0.1) == 4
    assert subset_size(5, 1.0) == 5


# ----------------------------------------------------------------------------- whitening
@pytest.mark.parametrize("ordering", ["local", "global"])
def test_rule_whitens_correlated_gaussian_data(ordering):
    rng = np.random.default_rng(0)
    d = 50
    source = correlated_source(rng, d)
    dec = Decorrelator(d, DecorrelationConfig(enabled=True, lr=3e-3, ordering=ordering, subset_fraction=1.0))
    for _ in range(1500):
        x = source(64)
        xc, mu = dec.center(x, train=True)
        z = dec.apply(xc)
        dec.update_mean(mu)
        dec.step(x, z)
    x = source(5000)
    z = dec.apply(dec.center(x, train=False)[0])

    def offdiag(a):
        c = np.corrcoef(a.T)
        return np.abs(c[~np.eye(d, dtype=bool)]).mean()

    assert offdiag(x) / offdiag(z) > 5.0  # spec: falls about 8x
    v = z.var(axis=0)
    assert v.max() / v.min() < 1.3  # spec: about 1.1
    assert v.max() / v.min() < 0.5 * (x.var(axis=0).max() / x.var(axis=0).min())
    ratio = np.linalg.norm(z, axis=1).mean() / np.linalg.norm(x, axis=1).mean()
    assert abs(ratio - 1.0) < 0.05  # norm kept


def test_both_orderings_agree_with_exact_covariance_and_converge_to_inverse_sqrt():
    rng = np.random.default_rng(5)
    d = 8
    A = rng.normal(size=(d, d))
    sigma = A @ A.T / d + 0.2 * np.eye(d)
    R_loc = R_glob = np.eye(d)
    for _ in range(3000):
        R_loc = ahmad_step_exact(R_loc, sigma, 0.05, ordering="local")
        R_glob = ahmad_step_exact(R_glob, sigma, 0.05, ordering="global")
        np.testing.assert_allclose(R_loc, R_glob, rtol=1e-9, atol=1e-12)
    evals, evecs = np.linalg.eigh(sigma)
    inv_sqrt = (evecs / np.sqrt(evals)) @ evecs.T
    c = np.trace(R_loc) / np.trace(inv_sqrt)
    np.testing.assert_allclose(R_loc, c * inv_sqrt, rtol=1e-6, atol=1e-9)
    C = R_loc @ sigma @ R_loc.T
    np.testing.assert_allclose(C / C[0, 0], np.eye(d), atol=1e-6)


def test_zca_whitens_a_sample():
    rng = np.random.default_rng(6)
    x = correlated_source(rng, 10)(4000)
    R, mu = zca_matrix(x, eps=1e-6)
    z = (x - mu) @ R.T
    np.testing.assert_allclose(np.cov(z.T, bias=True), np.eye(10), atol=1e-3)
    np.testing.assert_allclose(R, R.T, atol=1e-10)  # ZCA: the symmetric whitening matrix


def test_copi_decorrelates_and_kappa_also_normalises_variances():
    rng = np.random.default_rng(7)
    d = 10
    source = correlated_source(rng, d, mean=0.0)
    R_c = R_k = np.eye(d)
    for _ in range(800):
        x = source(64)
        R_c = copi_step(R_c, x @ R_c.T, 0.05)
        R_k = kappa_step(R_k, x @ R_k.T, 0.05, 0.3)
    x = source(5000)
    for R in (R_c, R_k):
        c = np.corrcoef((x @ R.T).T)
        assert np.abs(c[~np.eye(d, dtype=bool)]).mean() < 0.05
    np.testing.assert_allclose((x @ R_k.T).var(axis=0), 1.0, atol=0.15)


# ----------------------------------------------------------------------------- identity, fold, tile
def test_identity_start_without_centring_is_the_plain_layer():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(9, 5)).astype(np.float32)
    dec = Decorrelator(5, DecorrelationConfig(enabled=True, centring=False))
    xc, _ = dec.center(x, train=True)
    np.testing.assert_array_equal(dec.apply(xc), x)


def test_fold_is_exact_to_float32_rounding():
    rng = np.random.default_rng(9)
    d, out = 12, 7
    dec = Decorrelator(d, DecorrelationConfig(enabled=True, lr=0.01))
    for _ in range(50):
        x = (rng.normal(size=(32, d)) + 1.0).astype(np.float32)
        xc, mu = dec.center(x, train=True)
        dec.update_mean(mu)
        dec.step(x, dec.apply(xc))
    W = rng.normal(size=(out, d)).astype(np.float32)
    b = rng.normal(size=out).astype(np.float32)
    x = (rng.normal(size=(100, d)) + 1.0).astype(np.float32)
    unfolded = dec.apply(dec.center(x, train=False)[0]) @ W.T + b
    W_eff, b_eff = fold_linear(W, b, dec.matrix(), dec.mu)
    folded = x @ W_eff.T + b_eff
    assert W_eff.dtype == np.float32
    scale = np.abs(unfolded).max()
    np.testing.assert_allclose(folded, unfolded, rtol=0, atol=1e-5 * scale)


@pytest.mark.parametrize("ordering", ["local", "global"])
def test_rule_on_an_ideal_tile_equals_the_float_rule(ordering):
    """On a tile the gain goes into a digital scale and the C term is a pulsed outer product."""
    rng = np.random.default_rng(10)
    d = 6
    cfg = DecorrelationConfig(enabled=True, lr=0.02, ordering=ordering, subset_fraction=0.5)
    flt = Decorrelator(d, cfg)
    til = Decorrelator(d, cfg, tile=FloatTile(d, d))
    assert til.scale == 1.0 / cfg.tile_init_scale
    np.testing.assert_array_equal(
        til.tile.read_weights(), np.float32(cfg.tile_init_scale) * np.eye(d, dtype=np.float32)
    )
    for _ in range(30):
        x = (rng.normal(size=(16, d)) + 0.5).astype(np.float32)
        for dec in (flt, til):
            xc, mu = dec.center(x, train=True)
            dec.update_mean(mu)
            dec.step(x, dec.apply(xc))
    np.testing.assert_allclose(til.matrix(), flt.matrix(), rtol=1e-4, atol=1e-5)


def test_bad_settings_name_the_field():
    with pytest.raises(ConfigError, match=r"DecorrelationConfig\.lr"):
        DecorrelationConfig(lr=-1.0)
    with pytest.raises(ConfigError, match=r"DecorrelationConfig\.rule"):
        DecorrelationConfig(rule="pca")
    with pytest.raises(ConfigError, match="subset_fraction"):
        DecorrelationConfig(subset_fraction=0.0)
    with pytest.raises(ConfigError, match="on_tile"):
        Decorrelator(3, DecorrelationConfig(rule="copi"), tile=FloatTile(3, 3))
