"""IR drop, write-verify and drift compensation as pure functions (no tiles needed)."""

from __future__ import annotations

import numpy as np
import pytest

from analogdecor.errors import ShapeError
from analogdecor.inference import NoNoise, PCMLikeNoise, ReRAMNoise
from analogdecor.inference.compensation import drift_compensation_scale
from analogdecor.inference.irdrop import IRDropConfig, ir_drop_conductances
from analogdecor.inference.writeverify import WriteVerifyConfig, write_verify


# --------------------------------------------------------------------------- references
def first_order_loops(gp, gm, r):
    """The module docstring's equations as plain loops (uS in, uS out)."""
    out, inp = gp.shape
    S = 1e-6
    gpe, gme = np.zeros_like(gp), np.zeros_like(gm)
    for i in range(out):
        for j in range(inp):
            d = 0.0
            for k in range(i + 1):
                for m in range(k, out):
                    d += (gp[m, j] + gm[m, j]) * S
            ep = em = 0.0
            for k in range(j, inp):
                for l in range(k + 1):  # noqa: E741
                    ep += gp[i, l] * S
                    em += gm[i, l] * S
            gpe[i, j] = gp[i, j] * (1 - r * d - r * ep)
            gme[i, j] = gm[i, j] * (1 - r * d - r * em)
    return gpe, gme


def exact_crossbar_read(gp, gm, r, v):
    """Nodal analysis of the full resistive network (same layout as the model); returns I+ - I- (A)."""
    out, inp = gp.shape
    n = out * inp
    Y = np.zeros((3 * n, 3 * n))
    rhs = np.zeros(3 * n)
    gw = 1.0 / r

    def a(i, j):
        return i * inp + j

    def b(s, i, j):
        return (1 + s) * n + i * inp + j

    def stamp(p, q, g):
        Y[p, p] += g
        Y[q, q] += g
        Y[p, q] -= g
        Y[q, p] -= g

    for j in range(inp):
        Y[a(0, j), a(0, j)] += gw  # driver -> first cell
        rhs[a(0, j)] += gw * v[j]
        for i in range(out - 1):
            stamp(a(i, j), a(i + 1, j), gw)
    for s in range(2):
        for i in range(out):
            for j in range(inp - 1):
                stamp(b(s, i, j), b(s, i, j + 1), gw)
            Y[b(s, i, inp - 1), b(s, i, inp - 1)] += gw  # last cell -> virtual ground
    for i in range(out):
        for j in range(inp):
            stamp(a(i, j), b(0, i, j), gp[i, j] * 1e-6)
            stamp(a(i, j), b(1, i, j), gm[i, j] * 1e-6)
    u = np.linalg.solve(Y, rhs)
    return np.array([(u[b(0, i, inp - 1)] - u[b(1, i, inp - 1)]) * gw for i in range(out)])


# --------------------------------------------------------------------------- IR drop
def test_ir_drop_zero_resistance_is_exactly_off():
    rng = np.random.default_rng(0)
    gp, gm = rng.uniform(0, 25, (5, 7)), rng.uniform(0, 25, (5, 7))
    a, b = ir_drop_conductances(gp, gm, 0.0)
    assert np.array_equal(a, gp)
    assert np.array_equal(b, gm)
    assert not IRDropConfig(enabled=False, r_wire=5.0).applies_to("fc1")
    assert not IRDropConfig(enabled=True, r_wire=0.0).applies_to("fc1")


def test_ir_drop_matches_loop_reference():
    rng = np.random.default_rng(1)
    for shape in ((1, 1), (1, 6), (6, 1), (4, 5)):
        gp, gm = rng.uniform(0, 25, shape), rng.uniform(0, 25, shape)
        got = ir_drop_conductances(gp, gm, 3.0)
        want = first_order_loops(gp, gm, 3.0)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-12)
        np.testing.assert_allclose(got[1], want[1], rtol=1e-12)


def test_ir_drop_is_the_small_resistance_limit_of_the_exact_network():
    rng = np.random.default_rng(2)
    gp, gm = rng.uniform(0, 25, (6, 8)), rng.uniform(0, 25, (6, 8))
    v = rng.uniform(-0.2, 0.2, 8)
    ideal = ((gp - gm) * 1e-6) @ v
    residuals = []
    for r in (20.0, 5.0):
        exact = exact_crossbar_read(gp, gm, r, v)
        gpe, gme = ir_drop_conductances(gp, gm, r)
        first = ((gpe - gme) * 1e-6) @ v
        drop = np.abs(exact - ideal).max()
        assert drop > 1e-3 * np.abs(ideal).max()  # the effect is really there
        # the first-order model captures the drop up to O((r G)^2): residual << drop
        residuals.append(np.abs(first - exact).max())
        assert residuals[-1] < 0.05 * drop
    assert 10 < residuals[0] / residuals[1] < 22  # second order: 4x less r, ~16x less residual
    np.testing.assert_allclose(exact_crossbar_read(gp, gm, 1e-9, v), ideal, rtol=1e-6, atol=1e-15)


def test_ir_drop_reduces_far_columns_most():
    out, inp = 16, 32
    gp, gm = np.full((out, inp), 20.0), np.zeros((out, inp))
    gpe, _ = ir_drop_conductances(gp, gm, 2.0)
    v = np.full(inp, 0.1)
    y, y0 = (gpe * 1e-6) @ v, (gp * 1e-6) @ v
    loss = 1 - y / y0
    assert (loss > 0).all()
    assert np.all(np.diff(loss) > 0)  # monotone in distance from the drivers
    # closed form for uniform arrays: D_i = G sum_{k<=i} (out - k) (both devices; here G- = 0)
    G = 20e-6
    d = G * np.array([sum(out - k for k in range(i + 1)) for i in range(out)])
    e_mean = G * np.mean([sum(k + 1 for k in range(j, inp)) for j in range(inp)])
    np.testing.assert_allclose(loss, 2.0 * (d + e_mean), rtol=1e-12)


def test_ir_drop_rejects_bad_input():
    with pytest.raises(ShapeError, match="g_plus"):
        ir_drop_conductances(np.ones((2, 3)), np.ones((3, 2)), 1.0)
    with pytest.raises(ValueError, match="r_wire"):
        ir_drop_conductances(np.ones((2, 3)), np.ones((2, 3)), -1.0)
    with pytest.raises(ValueError, match="only valid for small wire drops"):
        ir_drop_conductances(np.full((64, 64), 25.0), np.zeros((64, 64)), 1000.0)


# --------------------------------------------------------------------------- write-verify
def test_write_verify_open_loop_equals_plain_programming():
    g = np.random.default_rng(0).uniform(0, 25, 2000)
    s1, rep = write_verify(g, PCMLikeNoise(), np.random.default_rng(5))
    s2 = PCMLikeNoise().program(g, np.random.default_rng(5))
    assert np.array_equal(s1.g_prog, s2.g_prog)
    assert rep.iterations == 1
    assert rep.rms_error_us == pytest.approx(np.sqrt(np.mean((s2.g_prog - g) ** 2)))


def test_write_verify_shrinks_the_residual_and_reports_it():
    g = np.random.default_rng(1).uniform(0, 40, 5000)
    model = ReRAMNoise()
    _, open_loop = write_verify(g, model, np.random.default_rng(2))
    cfg = WriteVerifyConfig(enabled=True, tolerance=0.03, max_iterations=100, verify_read_noise=False)
    state, closed = write_verify(g, model, np.random.default_rng(2), cfg)
    assert closed.tolerance_us == pytest.approx(1.2)
    assert closed.fraction_within == 1.0  # exact verify reads: everything accepted is within tolerance
    assert closed.max_error_us <= 1.2 + 1e-12
    assert closed.rms_error_us < 0.4 * open_loop.rms_error_us
    assert 1 < closed.iterations < 100
    assert np.all(np.abs(state.g_prog - g) <= 1.2 + 1e-12)


def test_write_verify_stops_at_max_iterations():
    g = np.full(1000, 20.0)
    cfg = WriteVerifyConfig(enabled=True, tolerance=1e-6, max_iterations=3)
    _, rep = write_verify(g, PCMLikeNoise(), np.random.default_rng(3), cfg)
    assert rep.iterations == 3
    assert rep.fraction_within < 0.01


def test_write_verify_ideal_devices_need_one_pass():
    g = np.linspace(0, 25, 10)
    state, rep = write_verify(g, NoNoise(), np.random.default_rng(0), WriteVerifyConfig(enabled=True))
    assert rep.iterations == 1
    assert rep.max_error_us == 0.0
    assert np.array_equal(state.g_prog, g)


# --------------------------------------------------------------------------- drift compensation
def test_drift_compensation_restores_mean_output_scale():
    rng = np.random.default_rng(4)
    model = PCMLikeNoise(read_scale=0.0, prog_scale=0.0)
    gp, gm = rng.uniform(0, 25, (50, 80)), rng.uniform(0, 25, (50, 80))
    sp, sm = model.program(gp, rng), model.program(gm, rng)
    x_ref = rng.standard_normal((64, 80))
    x_test = rng.standard_normal((256, 80))
    y0 = x_ref @ (sp.g_prog - sm.g_prog).T
    t = 3.15e7
    w_t = model.at_time(sp, t, rng) - model.at_time(sm, t, rng)
    yt = x_ref @ w_t.T
    alpha = drift_compensation_scale(y0, yt)
    assert alpha > 1.2  # a year of PCM drift lowers outputs by a quarter or more
    y_test0 = x_test @ (sp.g_prog - sm.g_prog).T
    y_test_t = x_test @ w_t.T
    before = np.mean(np.abs(y_test_t)) / np.mean(np.abs(y_test0))
    after = np.mean(np.abs(alpha * y_test_t)) / np.mean(np.abs(y_test0))
    assert before < 0.85
    assert after == pytest.approx(1.0, abs=0.02)


def test_drift_compensation_is_exact_for_a_single_exponent():
    y0 = np.random.default_rng(0).standard_normal((10, 3))
    factor = (1e5 / 20.0) ** (-0.06)
    assert drift_compensation_scale(y0, factor * y0) == pytest.approx(1 / factor, rel=1e-12)
    assert drift_compensation_scale(np.zeros(3), np.zeros(3)) == 1.0
    with pytest.raises(ValueError, match="equal shapes"):
        drift_compensation_scale(np.ones(3), np.ones(4))


def test_open_loop_report_counts_devices_within_the_configured_tolerance():
    g = np.full(20_000, 12.5)
    _, rep = write_verify(g, PCMLikeNoise(), np.random.default_rng(0), WriteVerifyConfig(tolerance=0.02))
    sigma = 0.26348 + 1.9650 * 0.5 - 1.1731 * 0.25
    from math import erf, sqrt

    assert rep.tolerance_us == pytest.approx(0.5)
    assert rep.fraction_within == pytest.approx(erf(0.5 / (sigma * sqrt(2))), abs=0.01)
