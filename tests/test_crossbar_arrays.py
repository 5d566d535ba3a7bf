"""Physical arrays: a tile split over a grid of arrays against the monolithic tile."""

from __future__ import annotations

import numpy as np
import pytest

from analogdecor.backends import make_tile
from analogdecor.crossbar import IOConfig, MappingConfig, Tile, TileConfig, UpdateConfig
from analogdecor.crossbar.arrays import ArrayTile, array_edges, grid_shape
from analogdecor.errors import ConfigError, ShapeError


def _with_arrays(cfg: TileConfig, rows, cols) -> TileConfig:
    return cfg.replace(mapping=MappingConfig(array_rows=rows, array_cols=cols))


def _dyadic(rng, shape, scale=8):
    """Values k / scale with small integers k: every float32 sum of them is exact in any order."""
    return (rng.integers(-6, 7, size=shape) / scale).astype(np.float32)


def test_grid_edges_and_default_is_one_array():
    assert array_edges(10, 4) == [0, 4, 8, 10]
    assert array_edges(10, None) == [0, 10]
    assert array_edges(10, 10) == [0, 10]
    cfg = _with_arrays(TileConfig(), 256, 256)
    assert grid_shape(3072, 1000, cfg) == (12, 4)
    assert grid_shape(100, 784, cfg) == (1, 4)
    assert type(make_tile("numba", 100, 200, TileConfig(), seed=1)) is Tile  # default: unchanged
    assert type(make_tile("numba", 100, 200, _with_arrays(TileConfig(), 256, 256), seed=1)) is Tile  # fits
    t = make_tile("numba", 300, 200, _with_arrays(TileConfig(), 256, 128), seed=1)
    assert isinstance(t, ArrayTile)
    assert t.grid == (2, 2)
    assert [(p.row_offset, p.col_offset, p.rows, p.cols) for p in t.places] == [
        (0, 0, 256, 128), (0, 128, 256, 72), (256, 0, 44, 128), (256, 128, 44, 72)]  # fmt: skip


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "256"])
def test_bad_array_sizes_name_the_field(bad):
    for name in ("array_rows", "array_cols"):
        with pytest.raises(ConfigError, match=f"MappingConfig.{name}"):
            MappingConfig(**{name: bad})


def test_split_equals_monolithic_exactly_with_ideal_periphery():
    rng = np.random.default_rng(0)
    cfg = TileConfig.ideal()
    mono = Tile(7, 10, cfg, seed=3)
    split = ArrayTile(7, 10, _with_arrays(cfg, 3, 4), seed=3)
    assert split.grid == (3, 3)
    w = _dyadic(rng, (7, 10))
    mono.set_weights(w)
    split.set_weights(w)
    for _ in range(3):
        x = _dyadic(rng, (5, 10), 4)
        d = _dyadic(rng, (5, 7), 4)
        np.testing.assert_array_equal(split.forward(x), mono.forward(x))
        np.testing.assert_array_equal(split.backward(d), mono.backward(d))
        mono.update(x, d, 0.25)
        split.update(x, d, 0.25)
        np.testing.assert_array_equal(split.read_weights(), mono.read_weights())
    assert not np.array_equal(mono.read_weights(), w)
    gp, gm = split.conductances()
    np.testing.assert_array_equal(
        split.weights_from_conductances(gp, gm), mono.weights_from_conductances(*mono.conductances())
    )


def test_every_array_has_its_own_periphery_statistically():
    """Output noise is added per array (after each array's own abs-max scaling): var y_i = sum_c (s alpha_c)^2."""
    io = IOConfig(inp_bits=None, out_bits=None, out_noise=0.05, bound_management="none")
    cfg = TileConfig.ideal().replace(forward=io)
    split = ArrayTile(4, 12, _with_arrays(cfg, None, 5), seed=0)  # arrays of 5, 5, 2 columns
    mono = Tile(4, 12, cfg, seed=0)
    w = np.random.default_rng(1).uniform(-0.5, 0.5, (4, 12)).astype(np.float32)
    split.set_weights(w)
    mono.set_weights(w)
    x = np.array([[1.0, 0.2, -0.1, 0.3, 0.0, 4.0, -2.0, 1.0, 0.5, 0.1, 0.25, -0.5]], np.float32)
    n = 4000
    xs = np.repeat(x, n, axis=0)
    ys, ym = split.forward(xs), mono.forward(xs)
    exact = (x @ w.T)[0]
    alphas = [1.0, 4.0, 0.5]  # abs-max of each array's input slice
    var_split = sum((0.05 * a) ** 2 for a in alphas)
    var_mono = (0.05 * 4.0) ** 2
    se = np.sqrt(var_split / n)
    assert np.all(np.abs(ys.mean(0) - exact) < 5 * se)  # unbiased
    np.testing.assert_allclose(ys.var(0), var_split, rtol=0.15)  # 4000 samples: rel. s.e. of a variance ~2%
    np.testing.assert_allclose(ym.var(0), var_mono, rtol=0.15)


def test_each_array_updates_as_a_tile_of_its_own():
    """Per-array update management: array (r, c) equals a lone Tile taking the slices, bit for bit."""
    cfg = _with_arrays(TileConfig(update=UpdateConfig(desired_bl=15)), 4, 5)
    split = ArrayTile(6, 9, cfg, seed=5)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 9)).astype(np.float32)
    d = (0.3 * rng.standard_normal((3, 6))).astype(np.float32)
    lone = {}
    for p, t in split.arrays():
        other = Tile(p.rows, p.cols, cfg, seed=t.seed)
        other.use_w_scale(split.w_scale)
        other.set_weights(t.hidden_weights())
        lone[p.key] = other
    split.update(x, d, 0.1)
    for p, t in split.arrays():
        lone[p.key].update(
            x[:, p.col_offset : p.col_offset + p.cols], d[:, p.row_offset : p.row_offset + p.rows], 0.1
        )
        np.testing.assert_array_equal(t.read_weights(), lone[p.key].read_weights())
        np.testing.assert_array_equal(t.pulse_counts()[0], lone[p.key].pulse_counts()[0])
    up, down = split.pulse_counts()
    assert up.sum() + down.sum() > 0
    assert up.shape == (6, 9)
    assert up.dtype == np.uint64


def test_state_dict_round_trip_and_shared_w_scale():
    cfg = _with_arrays(TileConfig(), 3, 3)
    a = ArrayTile(5, 7, cfg, seed=4)
    assert len({t.w_scale for t in a.tiles}) == 1
    rng = np.random.default_rng(0)
    a.update(
        rng.standard_normal((4, 7)).astype(np.float32), rng.standard_normal((4, 5)).astype(np.float32), 0.1
    )
    b = ArrayTile(5, 7, cfg, seed=99)
    b.load_state_dict(a.state_dict())
    x = rng.standard_normal((3, 7)).astype(np.float32)
    np.testing.assert_array_equal(a.forward(x), b.forward(x))
    np.testing.assert_array_equal(a.pulse_counts()[1], b.pulse_counts()[1])
    other = ArrayTile(5, 7, _with_arrays(TileConfig(), 2, 3), seed=4)
    with pytest.raises(ShapeError, match=r"grid\.row_edges"):
        other.load_state_dict(a.state_dict())
    with pytest.raises(ShapeError, match="weights has shape"):
        a.set_weights(np.zeros((7, 5), np.float32))


def test_aihwkit_backend_refuses_arrays_clearly():
    from analogdecor.backends.aihwkit.translate import check_translatable

    with pytest.raises(
        ConfigError, match=r"MappingConfig\.array_rows = 256: physical arrays are not available"
    ):
        check_translatable(_with_arrays(TileConfig(), 256, None))


def test_ir_drop_ends_at_every_array_border():
    from analogdecor.inference.irdrop import ir_drop_arrays, ir_drop_conductances

    rng = np.random.default_rng(3)
    gp, gm = rng.uniform(0, 25, (2, 20, 30))
    p, m = ir_drop_arrays(gp, gm, 2.0, [0, 8, 16, 20], [0, 15, 30])
    bp, bm = ir_drop_conductances(gp[8:16, 15:30], gm[8:16, 15:30], 2.0)
    np.testing.assert_array_equal(p[8:16, 15:30], bp)  # each array on its own
    np.testing.assert_array_equal(m[8:16, 15:30], bm)
    whole = ir_drop_conductances(gp, gm, 2.0)[0]
    assert np.all(np.abs(gp - p) <= np.abs(gp - whole) + 1e-12)  # shorter wires, smaller drops
    assert (np.abs(gp - p) < np.abs(gp - whole)).mean() > 0.5


def test_split_update_is_unbiased_statistically():
    """Every array's pulsed update has the expected step -lr d x^T (per-array management keeps it unbiased)."""
    from analogdecor.devices import DeviceConfig

    dev = DeviceConfig(model="constant", dw_min=0.001, w_min=-1.0, w_max=1.0, dw_min_dtod=0.0, up_down_dtod=0.0,
                       w_min_dtod=0.0, w_max_dtod=0.0, dw_min_std=0.0)  # fmt: skip
    cfg = _with_arrays(TileConfig(device=dev, update=UpdateConfig(desired_bl=31)), 4, 5)
    tile = ArrayTile(6, 9, cfg, seed=7)
    tile.set_weights(np.zeros((6, 9), np.float32))
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (1, 9)).astype(np.float32)
    d = rng.uniform(-1, 1, (1, 6)).astype(np.float32)
    n, lr = 400, 0.002
    for _ in range(n):
        tile.update(x, d, lr)
    expected = -n * lr * (d.T @ x)
    sigma = np.sqrt(np.abs(expected) / 0.001) * 0.001 + 1e-3  # binomial pulse counts: var <= mean
    assert np.all(np.abs(tile.hidden_weights() - expected) < 5 * sigma)
    up, down = tile.pulse_counts()
    # noise-free constant steps: the weight is (up - down) dw_min (float32 sums of 0.001)
    np.testing.assert_allclose(
        (up.astype(np.int64) - down.astype(np.int64)) * 0.001, tile.hidden_weights(), atol=1e-5
    )
