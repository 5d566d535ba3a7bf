"""Mixed-precision update kernel (Tile.apply_accumulator) against its loop reference and the pulsed update."""

from __future__ import annotations

import copy
import dataclasses
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from reference import ref_mixed_update
from test_crossbar_update import FAMILIES

from analogdecor.crossbar import MappingConfig, Tile, TileConfig, UpdateConfig
from analogdecor.devices import DeviceConfig
from analogdecor.errors import ShapeError
from analogdecor.learning.update import AnalogUpdater


def _chi(seed, shape, g, spread=4.0):
    """Accumulators from -spread g to +spread g: zero to a few pulses either way, many below one step."""
    return np.random.default_rng(seed).uniform(-spread * g, spread * g, shape)


def _compare(cfg, chi, w_init=None, seed=11):
    """Run the kernel and the reference from the same state; returns (tile, w, w_read, chi_ref)."""
    tile = Tile(chi.shape[0], chi.shape[1], cfg, seed=seed)
    if w_init is not None:
        tile.set_weights(w_init)
    tile._refresh_pairs = lambda: None  # compare the pulses alone
    w, w_read = tile.hidden_weights(), tile.read_weights()
    pair = None
    if cfg.device.one_sided_pair:
        pair = (tile._wp.copy(), tile._wm.copy(), tile._pair.lo_plus, tile._pair.lo_minus)
    gen = copy.deepcopy(tile._rng)
    chi_ref = chi.copy()
    counts = [c.astype(np.int64) for c in tile.pulse_counts()]
    tile.apply_accumulator(chi)
    seed_rows = int(gen.integers(0, np.iinfo(np.uint64).max, size=2, dtype=np.uint64, endpoint=True)[0])
    ref_mixed_update(w, w_read, tile.device_arrays, cfg.device, chi_ref, cfg.device.weight_granularity,
                     cfg.update.desired_bl, tile._level_step, seed_rows, pair, counts)  # fmt: skip
    np.testing.assert_array_equal(chi, chi_ref)
    for got, want in zip(tile.pulse_counts(), counts, strict=True):
        np.testing.assert_array_equal(got.astype(np.int64), want)
    if pair is not None:
        np.testing.assert_array_equal(tile._wp, pair[0])
        np.testing.assert_array_equal(tile._wm, pair[1])
    return tile, w, w_read, chi_ref


@pytest.mark.parametrize("family", list(FAMILIES))
def test_mixed_update_matches_reference_exactly(family):
    cfg = TileConfig(device=FAMILIES[family])
    g = cfg.device.weight_granularity
    w0 = np.random.default_rng(1).uniform(-0.4, 0.4, (5, 6)).astype(np.float32)
    chi = _chi(0, (5, 6), g)
    chi[0, 0], chi[0, 1], chi[1, 0] = g, -g, 0.0  # exactly one step either way; nothing
    before = chi.copy()
    tile, w, w_read, _ = _compare(cfg, chi, w0)
    np.testing.assert_array_equal(tile.hidden_weights(), w)
    np.testing.assert_array_equal(tile.read_weights(), w_read)
    assert not np.array_equal(w, w0)
    assert np.all(np.abs(chi) < g)  # the remainder stays (no count reached desired_bl here)
    n = np.trunc(before / g)
    np.testing.assert_allclose(chi, before - n * g, rtol=0, atol=1e-15)
    assert n[0, 0] == 1
    assert n[0, 1] == -1


def test_mixed_update_with_levels_faults_clipping_and_pulse_cap_matches_reference():
    dev = dataclasses.replace(FAMILIES["linear-mult"], stuck_fraction=0.2, dead_fraction=0.1, write_noise_std=1.0)
    cfg = TileConfig(device=dev, update=UpdateConfig(desired_bl=7), mapping=MappingConfig(levels=33))
    g = dev.weight_granularity
    chi = _chi(3, (7, 8), g, spread=300.0)  # far more than 7 pulses: counts capped, devices driven to bounds
    before = chi.copy()
    tile, w, w_read, _ = _compare(cfg, chi)
    np.testing.assert_array_equal(tile.hidden_weights(), w)
    np.testing.assert_array_equal(tile.read_weights(), w_read)
    arr = tile.device_arrays
    assert np.all((w <= arr.b_max) & (w >= arr.b_min))
    fired = np.minimum(np.trunc(np.abs(before) / g), 7)
    np.testing.assert_allclose(chi, before - np.sign(before) * fired * g, rtol=0, atol=1e-12)
    assert np.any(np.abs(chi) > g)  # the capped excess stays in the accumulator
    w1 = tile.hidden_weights()
    tile.apply_accumulator(chi)  # the excess fires on the next call
    assert not np.array_equal(tile.hidden_weights(), w1)


def test_same_seed_same_bits_and_parallel_equals_serial(monkeypatch):
    from analogdecor.crossbar import _update

    cfg = TileConfig(device=FAMILIES["exp"])
    g = cfg.device.weight_granularity
    out = []
    for threshold in (1 << 60, 1, 1 << 60):  # serial, parallel, serial again
        monkeypatch.setattr(_update, "PARALLEL_MIN_DEVICES", threshold)
        tile = Tile(13, 9, cfg, seed=4)
        chi = _chi(5, (13, 9), g)
        for _ in range(3):
            tile.apply_accumulator(chi)
            chi += _chi(6, (13, 9), g, 1.0)
        out.append((tile.read_weights(), chi))
    for w, chi in out[1:]:
        np.testing.assert_array_equal(w, out[0][0])
        np.testing.assert_array_equal(chi, out[0][1])


SCRIPT = textwrap.dedent(
    """
    import numpy as np
    from analogdecor.crossbar import Tile, _update
    from analogdecor.devices import load_preset
    _update.PARALLEL_MIN_DEVICES = 1  # exercise the parallel kernel
    tile = Tile(70, 40, load_preset("ReRamES"), seed=3)
    g = tile.config.device.weight_granularity
    chi = np.random.default_rng(0).uniform(-5 * g, 5 * g, (70, 40))
    tile.apply_accumulator(chi)
    np.save(OUT, np.concatenate([tile.read_weights().ravel(), chi.ravel()]))
    """
)


def test_mixed_results_do_not_depend_on_thread_count(tmp_path):
    res = []
    for threads in ("1", "2"):
        out = tmp_path / f"t{threads}.npy"
        subprocess.run([sys.executable, "-c", SCRIPT.replace("OUT", repr(str(out)))], check=True, timeout=300,
                       env={**os.environ, "NUMBA_NUM_THREADS": threads})  # fmt: skip
        res.append(np.load(out))
    np.testing.assert_array_equal(res[0], res[1])


def _constant_device(std):
    return DeviceConfig(model="constant", dw_min=0.001, dw_min_dtod=0.0, dw_min_std=std, up_down=0.0,
                        up_down_dtod=0.0, w_min=-1, w_max=1, w_min_dtod=0, w_max_dtod=0)  # fmt: skip


def test_one_pulse_has_the_statistics_of_a_pulse_of_the_pulsed_update():
    """One fired count of the kernel = one coincidence of the pulsed update: same mean and spread of the step.

    The pulsed update in deterministic mode gives each device exactly
    rint(BL p_x p_d) = 1 pulse here (with its cycle noise), so the two
    distributions of one pulse's weight change can be compared directly.
    """
    n_rep = 3000
    for dev in (_constant_device(0.3), FAMILIES["exp-pcm-noise"]):
        g = dev.weight_granularity
        mixed = Tile(1, 2000, TileConfig(device=dev), seed=0)
        pulsed = Tile(1, 2000, TileConfig(device=dev, update=UpdateConfig(pulse_type="deterministic", desired_bl=1)),
                      seed=1)  # fmt: skip
        w0 = np.full((1, 2000), 0.5 * (dev.w_min + dev.w_max), np.float32)
        a, b = [], []
        for _ in range(n_rep // 2000 + 1):
            mixed.set_weights(w0)
            mixed.apply_accumulator(np.full((1, 2000), 1.5 * g))  # one up pulse each
            a.append(mixed.hidden_weights() - w0)
            pulsed.set_weights(w0)
            pulsed.update(np.ones((1, 2000), np.float32), np.ones((1, 1), np.float32), -g)  # BL 1, one up pulse
            b.append(pulsed.hidden_weights() - w0)
        a, b = np.concatenate(a, 1).ravel(), np.concatenate(b, 1).ravel()
        assert np.all(a != 0)
        assert np.all(b != 0)
        se = np.sqrt((a.var() + b.var()) / a.size)
        assert abs(a.mean() - b.mean()) < 4 * se + 1e-9, (a.mean(), b.mean())
        if a.std() > 0:
            assert 0.9 < a.std() / b.std() < 1.1


class _PulsedOnly:
    """A tile seen without apply_accumulator: AnalogUpdater's mixed mode falls back to one-hot pulse trains."""

    def __init__(self, tile):
        self._tile = tile
        self.out_size, self.in_size, self.config = tile.out_size, tile.in_size, tile.config

    def update(self, x, d, lr):
        self._tile.update(x, d, lr)


def test_mixed_kernel_moves_weights_like_the_pulse_train_path_in_expectation():
    """Same accumulated gradient: the exact counts and the former one-hot pulse trains agree in the mean."""
    dev = _constant_device(0.2)
    cfg = TileConfig(device=dev)
    rng = np.random.default_rng(0)
    z = rng.standard_normal((8, 6)).astype(np.float32)
    delta = rng.standard_normal((8, 5)).astype(np.float32)
    n_rep = 400
    moves = {"kernel": [], "trains": []}
    for r in range(n_rep):
        for name in moves:
            tile = Tile(5, 6, cfg, seed=r)
            tile.set_weights(np.zeros((5, 6)))
            up = AnalogUpdater("mixed")
            target = tile if name == "kernel" else _PulsedOnly(tile)
            up.apply("W", target, z, delta, 1.0, 0.02)
            moves[name].append(tile.hidden_weights() + up.chi["W"])  # what was fired plus what is kept
    k, t = np.array(moves["kernel"]), np.array(moves["trains"])
    expect = -0.02 * (delta.T.astype(np.float64) @ z) / 8
    # exact counts: the fired change plus the remainder is the whole update up to the cycle noise
    se_k = k.std(0) / np.sqrt(n_rep) + 1e-12
    assert np.all(np.abs(k.mean(0) - expect) < 5 * se_k + 1e-9)
    se = np.sqrt((k.var(0) + t.var(0)) / n_rep) + 1e-12
    assert np.all(np.abs(k.mean(0) - t.mean(0)) < 5 * se)
    # no binomial spread in the counts (the trains give the largest count of a row exactly, hence the sum)
    assert k.var(0).sum() < 0.5 * t.var(0).sum()


def test_ideal_and_pulse_free_tiles_move_by_the_counts_exactly():
    for cfg in (TileConfig.ideal(), TileConfig(device=_constant_device(0.3), update=UpdateConfig(pulse_type="none"))):
        g = cfg.device.weight_granularity
        tile = Tile(3, 4, cfg, seed=0)
        tile.set_weights(np.zeros((3, 4)))
        chi = _chi(2, (3, 4), g)
        n = np.trunc(chi / g)
        tile.apply_accumulator(chi)
        np.testing.assert_allclose(tile.hidden_weights(), (n * g).astype(np.float32), rtol=0, atol=1e-7)
        assert np.all(np.abs(chi) < g)


def test_apply_accumulator_rejects_bad_arrays():
    tile = Tile(3, 4, TileConfig(device=FAMILIES["constant"]), seed=0)
    with pytest.raises(ShapeError, match="chi has shape"):
        tile.apply_accumulator(np.zeros((4, 3)))
    with pytest.raises(TypeError, match="floating-point"):
        tile.apply_accumulator(np.zeros((3, 4), np.int64))


def test_a_strided_accumulator_is_updated_in_place():
    cfg = TileConfig(device=FAMILIES["constant"])
    g = cfg.device.weight_granularity
    a, b = Tile(3, 4, cfg, seed=0), Tile(3, 4, cfg, seed=0)
    chi = _chi(1, (3, 4), g)
    strided = np.asfortranarray(chi)
    a.apply_accumulator(chi)
    b.apply_accumulator(strided)
    np.testing.assert_array_equal(strided, chi)
    np.testing.assert_array_equal(a.read_weights(), b.read_weights())


def test_array_tile_fires_each_block_as_a_lone_tile():
    """A tile split over physical arrays: each array takes its block of chi, bit for bit like a lone Tile."""
    from analogdecor.crossbar.arrays import ArrayTile

    cfg = TileConfig(device=FAMILIES["exp"], mapping=MappingConfig(array_rows=4, array_cols=5))
    split = ArrayTile(6, 9, cfg, seed=5)
    g = cfg.device.weight_granularity
    chi = _chi(8, (6, 9), g)
    lone = {}
    for p, t in split.arrays():
        other = Tile(p.rows, p.cols, cfg, seed=t.seed)
        other.use_w_scale(split.w_scale)
        other.set_weights(t.hidden_weights())
        lone[p.key] = other
    want = chi.copy()
    split.apply_accumulator(chi)
    for p, t in split.arrays():
        block = np.ascontiguousarray(want[p.row_offset : p.row_offset + p.rows, p.col_offset : p.col_offset + p.cols])
        lone[p.key].apply_accumulator(block)
        want[p.row_offset : p.row_offset + p.rows, p.col_offset : p.col_offset + p.cols] = block
        np.testing.assert_array_equal(t.read_weights(), lone[p.key].read_weights())
    np.testing.assert_array_equal(chi, want)
    assert np.all(np.abs(chi) < g)
