"""Forward/backward reads with periphery against the loop reference (tests/reference.py)."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
from reference import ref_read

from analogdecor.crossbar import IOConfig, Tile, TileConfig
from analogdecor.crossbar._forward import analog_read
from analogdecor.devices import DeviceConfig

QUIET = IOConfig(out_noise=0.0)  # quantisation and management on, no noise
NOISY = IOConfig(inp_noise=0.02, out_noise=0.1, w_noise=0.01)
PCM_NOISE = IOConfig(out_noise=0.05, w_noise=0.02, w_noise_type="pcm")
NO_MGMT = IOConfig(noise_management="none", bound_management="none", out_noise=0.06)


def _mat(rng, n, m, scale=0.5):
    return rng.uniform(-scale, scale, (n, m)).astype(np.float32)


@pytest.mark.parametrize("io", [QUIET, NOISY, PCM_NOISE, NO_MGMT, IOConfig(inp_bits=None, out_bits=None)],
                         ids=["quiet", "noisy", "pcm-wnoise", "no-management", "no-quantisation"])  # fmt: skip
def test_read_matches_reference_exactly(io):
    rng = np.random.default_rng(1)
    mat = _mat(rng, 7, 5)
    x = rng.standard_normal((6, 7)).astype(np.float32)
    x[2] = 0.0  # zero input row
    gen = np.random.default_rng(42)
    ref = ref_read(mat, x, io, copy.deepcopy(gen))
    got = analog_read(mat, x, io, gen)
    np.testing.assert_array_equal(got, ref)


def test_zero_input_gives_zero_output_under_noise_management():
    rng = np.random.default_rng(0)
    y = analog_read(_mat(rng, 4, 3), np.zeros((2, 4), np.float32), NOISY, rng)
    assert np.array_equal(y, np.zeros((2, 3), np.float32))


def test_adc_saturation_and_bound_management():
    # 64 inputs at full scale on weights of 0.9: W v = 57.6 > out_bound 12 -> re-read with halved input
    mat = np.full((64, 2), 0.9, np.float32)
    x = np.ones((3, 64), np.float32)
    x[1] *= 0.01  # same after noise management
    io = IOConfig(out_noise=0.0)
    y = analog_read(mat, x, io, np.random.default_rng(0))
    ref = ref_read(mat, x, io, np.random.default_rng(0))
    np.testing.assert_array_equal(y, ref)
    # three halvings (57.6 / 8 = 7.2 < 12) bring it into range; the DAC then sees 1/8 -> 8/63
    expected = 64 * 0.9 * (8 / 63) * 8
    np.testing.assert_allclose(y[0], expected, atol=io.out_step * 8 / 2 + 1e-5)
    np.testing.assert_allclose(y[1], expected * 0.01, atol=(io.out_step * 8 / 2 + 1e-5) * 0.01)
    # without bound management the output is clipped at out_bound
    flat = analog_read(mat, x, dataclasses.replace(io, bound_management="none"), np.random.default_rng(0))
    np.testing.assert_array_equal(flat[0], [12.0, 12.0])
    # with a single pass allowed the saturated value stays clipped too
    one = analog_read(mat, x, dataclasses.replace(io, max_bm_passes=1), np.random.default_rng(0))
    np.testing.assert_array_equal(one, flat)


def test_bound_management_gives_up_after_max_passes():
    mat = np.full((64, 1), 1.0, np.float32)  # 64 >> 12 * 2**(passes-1) with 2 passes
    x = np.ones((1, 64), np.float32)
    io = IOConfig(out_noise=0.0, max_bm_passes=2)
    y = analog_read(mat, x, io, np.random.default_rng(0))
    assert y[0, 0] == pytest.approx(24.0)  # clipped at 12 on the second (halved) pass, scaled back by 2
    np.testing.assert_array_equal(y, ref_read(mat, x, io, np.random.default_rng(0)))


@pytest.mark.parametrize(("n", "m"), [(1, 5), (5, 1), (1, 1)])
def test_single_row_or_column(n, m):
    rng = np.random.default_rng(3)
    mat = _mat(rng, n, m)
    x = rng.standard_normal((4, n)).astype(np.float32)
    gen = np.random.default_rng(5)
    np.testing.assert_array_equal(analog_read(mat, x, NOISY, copy.deepcopy(gen)), ref_read(mat, x, NOISY, gen))


def test_large_block_parallel_kernel_matches_reference(monkeypatch):
    # above PARALLEL_MIN_ELEMENTS the parallel kernels run; they must give the serial result
    from analogdecor.crossbar import _forward

    monkeypatch.setattr(_forward, "PARALLEL_MIN_ELEMENTS", 1)
    rng = np.random.default_rng(4)
    mat = _mat(rng, 300, 8, scale=0.05)
    x = rng.standard_normal((256, 300)).astype(np.float32)
    io = NOISY
    gen = np.random.default_rng(9)
    got = analog_read(mat, x, io, copy.deepcopy(gen))
    rows = [0, 17, 255]  # the reference is slow: check some rows of the same read
    ref = ref_read(mat, x, dataclasses.replace(io, bound_management="none"), gen)
    np.testing.assert_array_equal(got[rows], ref[rows])


def test_ideal_tile_is_float32_matmul_exactly():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((33, 17)).astype(np.float32)
    x = rng.standard_normal((9, 17)).astype(np.float32)
    d = rng.standard_normal((9, 33)).astype(np.float32)
    tile = Tile(33, 17, TileConfig.ideal())
    tile.set_weights(w)
    np.testing.assert_array_equal(tile.read_weights(), w)
    np.testing.assert_array_equal(tile.forward(x), x @ w.T)
    np.testing.assert_array_equal(tile.backward(d), d @ w)
    ref = ref_read(w.T, x, IOConfig.perfect(), None)
    np.testing.assert_allclose(tile.forward(x), ref, rtol=1e-5, atol=1e-5)
    # float64 input is cast to float32 first
    np.testing.assert_array_equal(tile.forward(x.astype(np.float64)), x @ w.T)


def test_tile_forward_backward_use_their_own_periphery():
    rng = np.random.default_rng(2)
    cfg = TileConfig(device=DeviceConfig(model="constant", w_min=-1, w_max=1),
                     forward=NOISY, backward=IOConfig(out_noise=0.0, out_bits=None, inp_bits=None))  # fmt: skip
    tile = Tile(6, 4, cfg, seed=3)
    w = rng.uniform(-0.3, 0.3, (6, 4)).astype(np.float32)
    tile.set_weights(w)
    w = tile.read_weights()
    x = rng.standard_normal((5, 4)).astype(np.float32)
    d = rng.standard_normal((5, 6)).astype(np.float32)
    gen = copy.deepcopy(tile._rng)
    np.testing.assert_array_equal(tile.forward(x), ref_read(w.T, x, cfg.forward, gen))
    np.testing.assert_array_equal(tile.backward(d), ref_read(w, d, cfg.backward, gen))
    # backward without noise or quantisation: W^T d up to float32 rounding
    np.testing.assert_allclose(tile.backward(d), d @ w, rtol=1e-5, atol=1e-5)


def test_same_seed_same_reads_and_noise_statistics():
    rng = np.random.default_rng(0)
    w = rng.uniform(-0.5, 0.5, (20, 30)).astype(np.float32)
    x = rng.standard_normal((200, 30)).astype(np.float32)
    cfg = TileConfig(device=DeviceConfig(model="constant", w_min=-1, w_max=1, w_min_dtod=0, w_max_dtod=0),
                     forward=IOConfig(out_noise=0.1, inp_bits=None, out_bits=None, noise_management="none",
                                      bound_management="none", inp_bound=100.0, out_bound=1e4))  # fmt: skip
    a, b = Tile(20, 30, cfg, seed=7), Tile(20, 30, cfg, seed=7)
    a.set_weights(w)
    b.set_weights(w)
    ya, yb = a.forward(x), b.forward(x)
    np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(ya, a.forward(x))  # fresh noise at every read
    err = (ya - x @ w.T).ravel()
    assert abs(err.mean()) < 0.1 * 4 / np.sqrt(err.size)
    assert err.std() == pytest.approx(0.1, rel=0.05)
