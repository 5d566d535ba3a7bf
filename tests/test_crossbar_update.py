"""Pulsed update and device draws against the loop references; statistics against the notes' formulas."""

from __future__ import annotations

import copy
import dataclasses
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from reference import ref_device_arrays, ref_management, ref_pulsed_update, ref_refresh

from analogdecor.crossbar import MappingConfig, Tile, TileConfig, UpdateConfig
from analogdecor.crossbar._update import pulse_management
from analogdecor.devices import DeviceConfig
from analogdecor.devices.arrays import draw_device_arrays

FAMILIES = {
    "constant": DeviceConfig(model="constant", dw_min=0.02, w_min=-1, w_max=1, up_down=0.1),
    "linear-mult": DeviceConfig(model="linear", dw_min=0.02, w_min=-0.8, w_max=1.2, gamma_up=0.3,
                                gamma_down=0.6, up_down=-0.1),
    "linear-add": DeviceConfig(model="linear", dw_min=0.02, w_min=-1, w_max=1, gamma_up=0.2, gamma_down=0.2,
                               mult_noise=False, mean_bound_reference=False),
    "softbounds": DeviceConfig(model="softbounds", dw_min=0.02, w_min=-0.75, w_max=1.25, write_noise_std=2.0),
    "exp": DeviceConfig(model="exp", dw_min=0.02, w_min=-1, w_max=1, a=-0.5, b=-0.5, gamma_up=5, gamma_down=5,
                        A_up=-1.18445, A_down=-0.081404, up_down=0.26, write_noise_std=3.0),
    "exp-pcm-noise": DeviceConfig(model="exp", dw_min=0.02, w_min=0, w_max=2, a=-1, b=0, gamma_up=2.5,
                                  gamma_down=2.5, A_up=-27.235, A_down=-2.235, dw_min_std=0.6,
                                  dw_min_std_add=0.042, dw_min_std_slope=0.108),
    "pow": DeviceConfig(model="pow", dw_min=0.02, w_min=-1, w_max=1, pow_gamma=1.5, pow_up_down=0.2,
                        pow_up_down_dtod=0.05),
    "piecewise": DeviceConfig(model="piecewise", dw_min=0.02, w_min=-1, w_max=1, up_down=0.1, write_noise_std=1.0,
                              piecewise_up=(1.6, 1.2, 1.0, 0.5, 0.1), piecewise_down=(0.0, 0.4, 0.9, 1.1, 1.5)),
    "pcm-pair": DeviceConfig(model="exp", dw_min=0.02, w_min=0, w_max=2, a=-1, b=0, gamma_up=2.5,
                             gamma_down=2.5, A_up=-27.235, A_down=-2.235, dw_min_std=0.6, w_min_dtod=0.1,
                             dw_min_std_add=0.042, dw_min_std_slope=0.108, one_sided_pair=True),
    "softbounds-pair": DeviceConfig(model="softbounds", dw_min=0.02, w_min=0, w_max=1, one_sided_pair=True,
                                    write_noise_std=1.0),
    "piecewise-pair": DeviceConfig(model="piecewise", dw_min=0.02, w_min=0, w_max=1, one_sided_pair=True,
                                   piecewise_up=(2.0, 1.0, 0.2), piecewise_down=(0.3, 0.3, 0.3)),
}  # fmt: skip


def _data(seed, batch, n_in, n_out, zero_rows=True):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, n_in)).astype(np.float32)
    d = (0.5 * rng.standard_normal((batch, n_out))).astype(np.float32)
    x[0, 1] = 0.0
    if zero_rows and batch > 2:
        d[2] = 0.0  # a sample with no error: no pulses
    return x, d


def _compare(cfg, x, d, lr, w_init=None, seed=11, refresh=False):
    tile = Tile(d.shape[1], x.shape[1], cfg, seed=seed)
    if w_init is not None:
        tile.set_weights(w_init)
    w, w_read = tile.hidden_weights(), tile.read_weights()
    pair = None
    if cfg.device.one_sided_pair:
        pair = (tile._wp.copy(), tile._wm.copy(), tile._pair.lo_plus, tile._pair.lo_minus)
    gen = copy.deepcopy(tile._rng)
    if not refresh:
        tile._refresh_pairs = lambda: None  # compare the pulses alone
    counts_before = tile.pulse_counts()
    tile.update(x, d, lr)
    s = gen.integers(0, np.iinfo(np.uint64).max, size=2, dtype=np.uint64, endpoint=True)
    counts = [c.astype(np.int64) for c in counts_before]
    ref_pulsed_update(w, w_read, tile.device_arrays, cfg.device, cfg.update, tile._level_step, x, d, lr,
                      int(s[0]), int(s[1]), pair, counts)  # fmt: skip
    up, down = tile.pulse_counts()  # the kernel counts every pulse the reference fires, per direction
    np.testing.assert_array_equal(up, counts[0])
    np.testing.assert_array_equal(down, counts[1])
    if pair is not None:
        np.testing.assert_array_equal(tile._wp, pair[0])
        np.testing.assert_array_equal(tile._wm, pair[1])
    return tile, w, w_read


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("pulse_type", ["deterministic", "stochastic"])
def test_pulsed_update_matches_reference_exactly(family, pulse_type):
    cfg = TileConfig(device=FAMILIES[family], update=UpdateConfig(pulse_type=pulse_type, desired_bl=9))
    x, d = _data(0, 4, 6, 5)
    w0 = np.random.default_rng(1).uniform(-0.4, 0.4, (5, 6)).astype(np.float32)
    for lr in (0.05, -0.02):  # also a negative lr (pulses flip)
        tile, w, w_read = _compare(cfg, x, d, lr, w0)
        np.testing.assert_array_equal(tile.hidden_weights(), w)
        np.testing.assert_array_equal(tile.read_weights(), w_read)
        assert not np.array_equal(w, w0)


def test_update_with_levels_faults_and_clipping_matches_reference():
    dev = dataclasses.replace(FAMILIES["linear-mult"], stuck_fraction=0.2, dead_fraction=0.1, write_noise_std=1.0)
    cfg = TileConfig(device=dev, update=UpdateConfig(desired_bl=31), mapping=MappingConfig(levels=33))
    x, d = _data(3, 5, 8, 7)
    tile, w, w_read = _compare(cfg, x, 40 * d, 0.5)  # huge update: BL clipped, devices hit their bounds
    np.testing.assert_array_equal(tile.hidden_weights(), w)
    np.testing.assert_array_equal(tile.read_weights(), w_read)
    arr = tile.device_arrays
    assert np.all(w <= arr.b_max)
    assert np.all(w >= arr.b_min)
    step = tile._level_step
    alive = arr.fault == 0
    k = w[alive] / step
    np.testing.assert_allclose(k, np.rint(k), atol=1e-4)  # on the conductance grid
    top = (w > arr.b_max - step) | (w < arr.b_min + step)
    assert np.any(top & alive)  # some devices were driven to their outermost level


@pytest.mark.parametrize("family", ["constant", "exp-pcm-noise", "softbounds-pair", "piecewise-pair"])
def test_trains_longer_than_64_slots_match_reference(family):
    """BL > 64 needs several 64-bit words per line mask (here 2 and 3 words)."""
    for bl in (100, 130):
        cfg = TileConfig(device=FAMILIES[family],
                         update=UpdateConfig(desired_bl=bl, update_bl_management=False))  # fmt: skip
        x, d = _data(9, 3, 7, 4)
        dev = cfg.device
        w_mid = np.full((4, 7), 0.5 * (dev.w_min + dev.w_max), np.float32)  # room to move both ways
        tile, w, w_read = _compare(cfg, x, d, 0.05, w_mid)
        np.testing.assert_array_equal(tile.hidden_weights(), w)
        np.testing.assert_array_equal(tile.read_weights(), w_read)
        assert np.count_nonzero(np.abs(w - w_mid) > 1e-6) > 10


def test_popcount_counts_set_bits():
    from analogdecor.crossbar._update import popcount

    rng = np.random.default_rng(0)
    values = [0, 1, 2**63, 2**64 - 1, *rng.integers(0, 2**64 - 1, 200, dtype=np.uint64, endpoint=True)]
    for v in values:
        assert popcount(np.uint64(v)) == bin(int(v)).count("1")


def test_management_matches_reference_and_clips():
    x, d = _data(5, 6, 4, 3)
    d[4] *= 1e3  # k >> BL: clipped update
    for um, blm in [(True, True), (False, True), (True, False), (False, False)]:
        bl, sx, sd = pulse_management(x, d, 0.01, 0.001, 31, um, blm)
        ref = ref_management(x, d, 0.01, 0.001, 31, um, blm)
        np.testing.assert_array_equal(bl, [r[0] for r in ref])
        np.testing.assert_array_equal(sx, [r[1] for r in ref])
        np.testing.assert_array_equal(sd, [r[2] for r in ref])
    bl, sx, sd = pulse_management(x, d, 0.01, 0.001, 31, True, True)
    assert bl[2] == 0
    assert bl[4] == 31
    # with update management the largest x and d lines get the same clipped probability when k <= BL
    n = 0
    px, pd_ = sx[n] * np.abs(x[n]).max(), sd[n] * np.abs(d[n]).max()
    assert px == pytest.approx(pd_)


@pytest.mark.parametrize("model", ["constant", "linear", "softbounds", "exp", "pow", "ideal", "piecewise"])
def test_device_draws_match_reference(model):
    cfg = dataclasses.replace(FAMILIES["pow"] if model == "pow" else DeviceConfig(), model=model,
                              up_down=0.2, stuck_fraction=0.1, dead_fraction=0.1)  # fmt: skip
    arrays, w0 = draw_device_arrays(cfg, (6, 9), np.random.default_rng(4))
    ref, w0_ref = ref_device_arrays(cfg, (6, 9), np.random.default_rng(4))
    for name, value in arrays.as_dict().items():
        np.testing.assert_allclose(value, ref[name], rtol=1e-6, atol=1e-7, err_msg=name)
    np.testing.assert_allclose(w0, w0_ref, rtol=1e-6, atol=1e-7)
    assert np.all(arrays.b_min <= 0)
    assert np.all(arrays.b_max >= 0)


def test_constant_step_mean_and_variance_follow_the_notes():
    """E[dW] = -lr x d and Var = g lr |x d| (1 + dw_min_std^2 - q), q = p_x p_d (notes, ConstantStep)."""
    g, std, lr = 0.001, 0.3, 0.01
    dev = DeviceConfig(model="constant", dw_min=g, dw_min_dtod=0.0, dw_min_std=std, up_down_dtod=0.0,
                       w_min=-1, w_max=1, w_min_dtod=0, w_max_dtod=0)  # fmt: skip
    cfg = TileConfig(device=dev, update=UpdateConfig(desired_bl=31))
    n_rep = 4000
    x = np.array([[0.9, -0.5, 0.2]], np.float32)
    d = np.array([[0.6], [-0.3]], np.float32).T  # one sample, two rows
    tile = Tile(2, 3, cfg, seed=0)
    deltas = np.empty((n_rep, 2, 3))
    for r in range(n_rep):
        tile.set_weights(np.zeros((2, 3)))  # far from the bounds every time
        tile.update(x, d, lr)
        deltas[r] = tile.hidden_weights()
    expect = -lr * d.T.astype(np.float64) @ x.astype(np.float64)
    _bl, sx, sd = pulse_management(x, d, lr, g, 31, True, True)
    q = (sx[0] * np.abs(x[0]))[None, :] * (sd[0] * np.abs(d[0]))[:, None]
    var = g * lr * np.abs(expect / lr) * (1 + std**2 - q)
    mean = deltas.mean(0)
    se = np.sqrt(var / n_rep)
    assert np.all(np.abs(mean - expect) < 4 * se), (mean, expect)
    np.testing.assert_allclose(deltas.var(0), var, rtol=0.12)
    # devices on one row share that row's d-line bits: positive covariance along a row
    c = np.corrcoef(np.abs(deltas[:, 0, 0]), np.abs(deltas[:, 0, 1]))[0, 1]
    assert c > 0.05


def test_deterministic_mode_is_exact_without_cycle_noise():
    g = 0.001
    dev = DeviceConfig(model="constant", dw_min=g, dw_min_dtod=0.0, dw_min_std=0.0, up_down_dtod=0.0,
                       w_min=-1, w_max=1, w_min_dtod=0, w_max_dtod=0)  # fmt: skip
    cfg = TileConfig(device=dev, update=UpdateConfig(pulse_type="deterministic", desired_bl=31))
    x = np.array([[1.0, 0.5, -0.25, 0.0]], np.float32)
    d = np.array([[0.8, -0.4]], np.float32)
    tile = Tile(2, 4, cfg)
    tile.update(x, d, 0.01)
    # k = 0.01 * 1 * 0.8 / 0.001 = 8 -> BL 8; n_ij = rint(lr |x d| / g)
    expect = -np.sign(d.T * x) * np.rint(0.01 * np.abs(d.T * x) / g) * g
    np.testing.assert_allclose(tile.hidden_weights(), expect, atol=1e-7)


def test_devices_at_bounds_stay_within_bounds_and_faults_never_move():
    dev = dataclasses.replace(FAMILIES["constant"], stuck_fraction=0.25, dead_fraction=0.25)
    tile = Tile(8, 8, TileConfig(device=dev), seed=5)
    arr = tile.device_arrays
    tile.set_weights(np.where(np.arange(8)[None, :] % 2 == 0, 10.0, -10.0) * np.ones((8, 8)))
    w0 = tile.hidden_weights()
    alive = arr.fault == 0
    assert np.all((w0 == arr.b_max) | (w0 == arr.b_min) | ~alive)
    x, d = _data(1, 16, 8, 8, zero_rows=False)
    for _ in range(5):
        tile.update(x, d, 0.5)
        tile.update(x, d, -0.5)
    w = tile.hidden_weights()
    assert np.all(w <= arr.b_max)
    assert np.all(w >= arr.b_min)
    np.testing.assert_array_equal(w[~alive], w0[~alive])
    assert np.all(w[arr.fault == 2] == 0.0)
    g_plus, g_minus = tile.conductances()
    assert np.all(g_plus[arr.fault == 2] == tile.config.mapping.g_min)
    assert np.all(g_minus[arr.fault == 2] == tile.config.mapping.g_min)


def test_zero_inputs_and_zero_lr_do_nothing():
    tile = Tile(3, 4, TileConfig(device=FAMILIES["exp"]), seed=1)
    before = tile.state_dict()
    tile.update(np.zeros((2, 4)), np.ones((2, 3)), 0.1)
    tile.update(np.ones((2, 4)), np.zeros((2, 3)), 0.1)
    tile.update(np.ones((2, 4)), np.ones((2, 3)), 0.0)
    after = tile.state_dict()
    for k in before:
        np.testing.assert_array_equal(after[k], before[k], err_msg=k)


def test_ideal_update_is_float32_sgd():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((5, 7)).astype(np.float32)
    x = rng.standard_normal((3, 7)).astype(np.float32)
    d = rng.standard_normal((3, 5)).astype(np.float32)
    tile = Tile(5, 7, TileConfig.ideal())
    tile.set_weights(w)
    tile.update(x, d, 0.1)
    np.testing.assert_array_equal(tile.read_weights(), w - np.float32(0.1) * (d.T @ x))
    ref = w.astype(np.float64) - 0.1 * sum(np.outer(d[n], x[n]) for n in range(3))
    np.testing.assert_allclose(tile.read_weights(), ref, rtol=1e-5, atol=1e-5)


def test_float_update_of_a_bounded_device_clips():
    dev = dataclasses.replace(FAMILIES["constant"], w_min_dtod=0.0, w_max_dtod=0.0)
    tile = Tile(2, 2, TileConfig(device=dev, update=UpdateConfig(pulse_type="none")))
    tile.update(np.ones((1, 2)), np.array([[1.0, -1.0]]), 5.0)
    np.testing.assert_array_equal(tile.hidden_weights(), [[-1, -1], [1, 1]])


SCRIPT = textwrap.dedent(
    """
    import numpy as np
    from analogdecor.crossbar import Tile, TileConfig, UpdateConfig, _forward, _update
    from analogdecor.devices import load_preset
    _forward.PARALLEL_MIN_ELEMENTS = _update.PARALLEL_MIN_WORK = 1  # exercise the parallel kernels
    cfg = load_preset("ReRamES")
    tile = Tile(70, 40, cfg, seed=3)
    rng = np.random.default_rng(0)
    tile.set_weights(rng.uniform(-0.3, 0.3, (70, 40)))
    x = rng.standard_normal((300, 40)).astype(np.float32)
    d = rng.standard_normal((8, 70)).astype(np.float32) * 0.1
    y = tile.forward(x)
    tile.update(x[:8], d, 0.05)
    np.save(OUT, np.concatenate([y.ravel(), tile.read_weights().ravel(), tile.backward(d).ravel()]))
    """
)


def _run(tmp_path, name, env):
    out = tmp_path / f"{name}.npy"
    code = SCRIPT.replace("OUT", repr(str(out)))
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, **env}, timeout=300)
    return np.load(out)


def test_results_do_not_depend_on_thread_count(tmp_path):
    a = _run(tmp_path, "one", {"NUMBA_NUM_THREADS": "1"})
    b = _run(tmp_path, "two", {"NUMBA_NUM_THREADS": "2"})
    np.testing.assert_array_equal(a, b)


def test_kernels_run_without_jit(tmp_path):
    """NUMBA_DISABLE_JIT=1 runs the kernels as Python (coverage, debuggers) with the same results."""
    a = _run(tmp_path, "jit", {})
    b = _run(tmp_path, "nojit", {"NUMBA_DISABLE_JIT": "1"})
    np.testing.assert_allclose(a, b, rtol=0, atol=0)


def test_one_sided_pair_refresh_follows_the_criterion():
    cfg = TileConfig(device=dataclasses.replace(FAMILIES["pcm-pair"], refresh_write="exact"))
    tile = Tile(6, 5, cfg, seed=2)
    rng = np.random.default_rng(0)
    p = tile._pair
    hi_p, hi_m = tile.device_arrays.b_max, -tile.device_arrays.b_min
    tile._wp = rng.uniform(p.lo_plus, hi_p).astype(np.float32)  # many pairs beyond the thresholds
    tile._wm = rng.uniform(p.lo_minus, hi_m).astype(np.float32)
    tile._w = tile._wp - tile._wm
    ref_p, ref_m, n = ref_refresh(tile._wp, tile._wm, p.lo_plus, p.lo_minus, hi_p, hi_m, 2.0, 0.75, 0.25)
    assert n > 0
    before = tile.hidden_weights()
    tile._refresh_pairs()
    assert tile.refresh_count == n
    np.testing.assert_allclose(tile._wp, ref_p, atol=1e-6)
    np.testing.assert_allclose(tile._wm, ref_m, atol=1e-6)
    # refresh keeps the weight (it lies well inside the pair's range here)
    np.testing.assert_allclose(tile.hidden_weights(), before, atol=1e-6)


def test_one_sided_pair_trains_signed_weights_and_maps_to_two_devices():
    cfg = TileConfig(device=FAMILIES["pcm-pair"], update=UpdateConfig(desired_bl=31))
    tile = Tile(4, 3, cfg, seed=0)
    tile.set_weights(np.array([[0.5, -0.5, 0.0]] * 4))
    assert np.all(tile._wm[:, 0] == tile._pair.lo_minus[:, 0])  # positive weight on G+ only
    np.testing.assert_allclose(tile.hidden_weights()[:, 1], -0.5, atol=1e-7)  # lower bounds are 0: exact
    gp, gm = tile.conductances()
    np.testing.assert_allclose(tile.weights_from_conductances(gp, gm), tile.hidden_weights(), atol=1e-6)
    x = np.ones((1, 3), np.float32)
    for _ in range(20):  # push all weights down: G- devices take the pulses
        tile.update(x, np.ones((1, 4), np.float32), 0.05)
    assert np.all(tile.hidden_weights()[:, 2] < -0.05)
    assert np.all(tile._wp[:, 2] == tile._pair.lo_plus[:, 2])


def test_weight_granularity_follows_aihwkit():
    from analogdecor.devices import load_preset

    assert load_preset("GokmenVlasov").device.weight_granularity == 0.0016
    assert load_preset("PCM").device.weight_granularity == pytest.approx(0.01 * (1 + 2.235))
    es = load_preset("ReRamES").device  # down step at w = 0: (1 - up_down) dw_min (1 + 0.081404 e^2.5)
    assert es.weight_granularity == pytest.approx((1 - 0.259359) * 0.00135 * (1 + 0.081404 * np.exp(2.5)))
    assert FAMILIES["pow"].weight_granularity == pytest.approx(0.02 * 0.5**1.5)
    assert FAMILIES["piecewise"].weight_granularity == pytest.approx(0.02 * 1.0)  # middle node (aihwkit)
    assert DeviceConfig(model="piecewise", piecewise_up=(1.0, 0.0, 1.0), piecewise_down=(1.0, 1.0, 1.0),
                        dw_min=0.01).weight_granularity == 0.01  # zero middle node: dw_min, not 0


def test_piecewise_step_interpolates_the_table_between_the_device_bounds():
    """One deterministic pulse from each node and from between nodes steps by scale * interpolated value."""
    from reference import ref_piecewise

    up, down = (1.6, 1.2, 1.0, 0.5, 0.1), (0.0, 0.4, 0.9, 1.1, 1.5)
    dev = DeviceConfig(model="piecewise", dw_min=0.01, dw_min_dtod=0.0, dw_min_std=0.0, up_down_dtod=0.0,
                       w_min=-1, w_max=1, w_min_dtod=0.0, w_max_dtod=0.0, piecewise_up=up, piecewise_down=down)
    cfg = TileConfig(device=dev, update=UpdateConfig(pulse_type="deterministic", desired_bl=1))
    starts = np.array([-1.0, -0.5, -0.25, 0.0, 0.3, 0.5, 0.99], np.float32)
    for sign, table in ((-1.0, up), (1.0, down)):
        tile = Tile(len(starts), 1, cfg, seed=0)
        tile.set_weights(starts[:, None])
        tile.update(np.ones((1, 1), np.float32), np.full((1, len(starts)), sign, np.float32), 0.01)
        got = tile.hidden_weights()[:, 0].astype(np.float64) - starts
        want = [-sign * 0.01 * ref_piecewise(table, float(w), -1.0, 1.0) for w in starts]
        want = np.clip(starts + np.array(want), -1, 1) - starts
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    assert ref_piecewise(up, -0.25, -1.0, 1.0) == pytest.approx(1.1)  # halfway between nodes 1 and 2
    assert ref_piecewise(up, 1.0, -1.0, 1.0) == pytest.approx(0.1)  # last node at b_max
    assert ref_piecewise(up, -3.0, -1.0, 1.0) == pytest.approx(1.6)  # below b_min: first node


def test_piecewise_tables_are_validated():
    from analogdecor.errors import ConfigError

    with pytest.raises(ConfigError, match="same number of nodes"):
        DeviceConfig(model="piecewise", piecewise_up=(1.0, 2.0), piecewise_down=(1.0,))
    with pytest.raises(ConfigError, match=r"piecewise_down\[1\] = -0.5"):
        DeviceConfig(model="piecewise", piecewise_up=(1.0, 2.0), piecewise_down=(1.0, -0.5))
    with pytest.raises(ConfigError, match="non-empty"):
        DeviceConfig(model="piecewise", piecewise_up=(), piecewise_down=())
    assert DeviceConfig(model="piecewise", piecewise_up=[1, 2], piecewise_down=[2, 1]).piecewise_up == (1, 2)


def test_parallel_and_serial_update_kernels_agree(monkeypatch):
    from analogdecor.crossbar import _update

    cfg = TileConfig(device=FAMILIES["softbounds"], update=UpdateConfig(desired_bl=15))
    x, d = _data(7, 6, 9, 11)
    out = []
    for threshold in (1 << 60, 1):  # serial, then parallel
        monkeypatch.setattr(_update, "PARALLEL_MIN_WORK", threshold)
        tile = Tile(11, 9, cfg, seed=4)
        tile.update(x, d, 0.05)
        out.append(tile.read_weights())
    np.testing.assert_array_equal(out[0], out[1])


def test_serial_and_parallel_builds_of_one_body_are_cached_apart(tmp_path):
    """numba keys its disk cache by name and bytecode, not by ``parallel``: njit_parallel must rename its copy.

    Otherwise the serial driver of a kernel may load the parallel build from the
    cache (or the reverse), silently changing how many threads it uses.
    """
    (tmp_path / "kern.py").write_text(textwrap.dedent(
        """
        import numpy as np
        from analogdecor._numba import njit, njit_parallel
        from numba import prange

        def body(a):
            s = 0.0
            for i in prange(a.shape[0]):
                s += a[i]
            return s

        serial, parallel = njit(body), njit_parallel(body)
        assert serial(np.ones(5)) == parallel(np.ones(5)) == 5.0
        """
    ))  # fmt: skip
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(tmp_path)}
    subprocess.run([sys.executable, "-c", "import kern"], check=True, env=env, timeout=300, cwd=tmp_path)
    index = sorted(p.name.split("-")[0] for p in (tmp_path / "cache").rglob("*.nbi"))
    assert index == ["kern.body", "kern.body__parallel"]


def test_pulse_counters_do_not_wrap_past_uint32():
    """Counters start at 2**32 - 1 (a saved long run) and keep counting: no wrap, no saturation."""
    cfg = TileConfig(device=FAMILIES["constant"], update=UpdateConfig(desired_bl=31))
    x, d = _data(4, 6, 5, 4)
    fresh = Tile(4, 5, cfg, seed=3)
    fresh.update(x, d, 0.5)
    state = Tile(4, 5, cfg, seed=3).state_dict()
    start = np.uint64(2**32 - 1)
    state["pulses_up"] = np.full((4, 5), start, np.uint64)
    state["pulses_down"] = np.full((4, 5), start, np.uint64)
    long_run = Tile(4, 5, cfg, seed=3)
    long_run.load_state_dict(state)
    long_run.update(x, d, 0.5)
    for got, new in zip(long_run.pulse_counts(), fresh.pulse_counts(), strict=True):
        assert got.dtype == np.uint64
        np.testing.assert_array_equal(got, new.astype(np.uint64) + start)
    assert (fresh.pulse_counts()[0] > 0).any()
    assert (fresh.pulse_counts()[1] > 0).any()
    again = Tile.from_state_dict(long_run.state_dict())
    np.testing.assert_array_equal(again.pulse_counts()[0], long_run.pulse_counts()[0])
