"""Tile: state, mapping, programming, seeds, and clear errors for bad input."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from analogdecor.config import with_overrides
from analogdecor.crossbar import (
    IOConfig,
    MappingConfig,
    Tile,
    TileConfig,
    UpdateConfig,
    conductances_to_weights,
    weights_to_conductances,
)
from analogdecor.crossbar.mapping import quantise_conductances
from analogdecor.devices import DeviceConfig, load_preset
from analogdecor.errors import ConfigError, ShapeError


def _ops(tile, rng):
    x = rng.standard_normal((6, tile.in_size)).astype(np.float32)
    d = 0.2 * rng.standard_normal((6, tile.out_size)).astype(np.float32)
    out = [tile.forward(x), tile.backward(d)]
    tile.update(x, d, 0.05)
    tile.program(tile.read_weights() * 0.5)
    out += [tile.forward(x), tile.read_weights(), *tile.conductances()]
    return out


@pytest.mark.parametrize("preset", ["ReRamES", "PCM"])  # PCM: one-sided pairs with refresh
def test_state_dict_round_trip_is_bit_exact(preset):
    cfg = load_preset(preset)
    a = Tile(7, 5, cfg, seed=3)
    a.set_weights(np.random.default_rng(0).uniform(-0.5, 0.5, (7, 5)))
    _ops(a, np.random.default_rng(1))
    state = a.state_dict()
    for key, value in state.items():
        assert isinstance(value, np.ndarray | np.generic), key
    b = Tile.from_state_dict(state)
    c = Tile(7, 5, cfg, seed=99)
    c.load_state_dict(state)
    ra, rb, rc = (_ops(t, np.random.default_rng(2)) for t in (a, b, c))
    for u, v, w in zip(ra, rb, rc, strict=True):
        np.testing.assert_array_equal(u, v)
        np.testing.assert_array_equal(u, w)


def test_load_state_dict_rejects_wrong_shape():
    state = Tile(3, 4, seed=0).state_dict()
    with pytest.raises(ShapeError, match="state\\['w'\\]"):
        Tile(4, 3, seed=0).load_state_dict(state)


def test_same_seed_same_tile_and_device_seed_keeps_the_chip():
    cfg = load_preset("GokmenVlasov")
    rng = np.random.default_rng(0)
    a, b = Tile(5, 6, cfg, seed=1), Tile(5, 6, cfg, seed=1)
    for u, v in zip(_ops(a, rng), _ops(b, np.random.default_rng(0)), strict=True):
        np.testing.assert_array_equal(u, v)
    c, e = Tile(5, 6, cfg, seed=1, device_seed=7), Tile(5, 6, cfg, seed=2, device_seed=7)
    for name, arr in c.device_arrays.as_dict().items():
        np.testing.assert_array_equal(arr, e.device_arrays.as_dict()[name], err_msg=name)
    assert not np.array_equal(c.device_arrays.scale_up, a.device_arrays.scale_up)
    x = np.ones((2, 6), np.float32)
    assert not np.array_equal(c.forward(x), e.forward(x))  # same chip, different noise


def test_mapping_round_trip_and_levels():
    rng = np.random.default_rng(0)
    w = rng.uniform(-0.8, 0.8, (4, 5))
    gp, gm = weights_to_conductances(w, 1.0, 25.0, 0.8)
    assert np.all((gp >= 1.0) & (gp <= 25.0) & (gm >= 1.0) & (gm <= 25.0))
    assert np.all((gp == 1.0) | (gm == 1.0))  # one device of each pair at g_min
    np.testing.assert_allclose(conductances_to_weights(gp, gm, 1.0, 25.0, 0.8), w, rtol=1e-12, atol=1e-14)
    gp5, gm5 = weights_to_conductances(w, 1.0, 25.0, 0.8, levels=5)
    assert set(np.unique(np.concatenate([gp5, gm5]))) <= {1.0, 7.0, 13.0, 19.0, 25.0}
    np.testing.assert_allclose(quantise_conductances([0.0, 3.9, 4.1, 30.0], 1.0, 25.0, 5), [1, 1, 7, 25])
    with pytest.raises(ConfigError, match="w_scale"):
        weights_to_conductances(np.array([1.0]), 0.0, 25.0, 0.8)
    with pytest.raises(ConfigError, match="g_min"):
        weights_to_conductances(w, 25.0, 1.0, 0.8)
    with pytest.raises(ConfigError, match="NaN"):
        weights_to_conductances(np.array([np.nan]), 0.0, 25.0, 0.8)
    with pytest.raises(ShapeError, match="g_minus"):
        conductances_to_weights(gp, gm[:2], 1.0, 25.0, 0.8)


def test_tile_conductances_invert_to_read_weights():
    cfg = TileConfig(device=load_preset("EcRam").device, mapping=MappingConfig(g_min=0.5, g_max=40.0))
    tile = Tile(6, 7, cfg, seed=0)
    tile.program(np.random.default_rng(1).uniform(-1, 1, (6, 7)))
    gp, gm = tile.conductances()
    assert gp.min() >= 0.5
    assert gp.max() <= 40.0
    assert gm.max() <= 40.0
    np.testing.assert_allclose(tile.weights_from_conductances(gp, gm), tile.read_weights(), atol=1e-6)


def test_levels_apply_on_set_and_program():
    dev = DeviceConfig(model="constant", w_min=-1, w_max=1, w_min_dtod=0, w_max_dtod=0)
    tile = Tile(3, 3, TileConfig(device=dev, mapping=MappingConfig(levels=5)))  # w_scale 1 -> step 0.25
    tile.set_weights(np.array([[0.1, 0.13, -0.9], [0.5, 0.62, 0.88], [-0.2, 0.0, 1.0]]))
    np.testing.assert_allclose(tile.read_weights(), [[0, 0.25, -1], [0.5, 0.5, 1], [-0.25, 0, 1]])


def test_program_noise_and_write_noise_statistics():
    dev = DeviceConfig(model="softbounds", dw_min=0.01, w_min=-1, w_max=1, w_min_dtod=0, w_max_dtod=0,
                       prog_noise_std=0.05, write_noise_std=3.0)  # fmt: skip
    tile = Tile(100, 100, TileConfig(device=dev), seed=0)
    target = np.full((100, 100), 0.2, np.float32)
    tile.program(target)
    err = tile.hidden_weights() - target
    assert err.std() == pytest.approx(0.05, rel=0.05)
    assert abs(err.mean()) < 0.004
    read_err = tile.read_weights() - tile.hidden_weights()
    assert read_err.std() == pytest.approx(3.0 * 0.01, rel=0.05)
    # set_weights is exact: no programming noise, no write noise
    tile.set_weights(target)
    np.testing.assert_array_equal(tile.read_weights(), target)
    np.testing.assert_array_equal(tile.hidden_weights(), target)


def test_set_weights_clips_to_each_device_bounds():
    tile = Tile(4, 4, TileConfig(device=load_preset("GokmenVlasov").device), seed=0)
    tile.set_weights(np.full((4, 4), 5.0))
    np.testing.assert_array_equal(tile.read_weights(), tile.device_arrays.b_max)
    tile.set_weights(np.full((4, 4), -5.0))
    np.testing.assert_array_equal(tile.read_weights(), tile.device_arrays.b_min)


# ---------------------------------------------------------------------------------- bad input
def test_bad_shapes_name_the_argument():
    tile = Tile(3, 4, seed=0)
    with pytest.raises(ShapeError, match=r"x has shape \(2, 3\).*in_size"):
        tile.forward(np.ones((2, 3)))
    with pytest.raises(ShapeError, match="d has shape"):
        tile.backward(np.ones((2, 4)))
    with pytest.raises(ShapeError, match="x has 2 rows but d has 3"):
        tile.update(np.ones((2, 4)), np.ones((3, 3)), 0.1)
    with pytest.raises(ShapeError, match="weights has shape"):
        tile.set_weights(np.ones((4, 3)))
    with pytest.raises(ShapeError, match="x has shape"):
        tile.forward(np.ones(4))


@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e39])  # 1e39 overflows float32
def test_non_finite_inputs_are_rejected_and_nothing_is_written(bad):
    tile = Tile(3, 4, load_preset("ReRamSB"), seed=0)
    before = tile.state_dict()
    x = np.ones((2, 4))
    x[1, 2] = bad
    with pytest.raises(ValueError, match="x contains 1 non-finite"):
        tile.forward(x)
    with pytest.raises(ValueError, match="x contains"):
        tile.update(x, np.ones((2, 3)), 0.1)
    w = np.zeros((3, 4))
    w[0, 0] = bad
    with pytest.raises(ValueError, match="weights contains NaN or inf"):
        tile.set_weights(w)
    with pytest.raises(ValueError, match="weights contains NaN or inf"):
        tile.program(w)
    with pytest.raises(ValueError, match="lr"):
        tile.update(np.ones((2, 4)), np.ones((2, 3)), float("nan"))
    after = tile.state_dict()
    for k in before:
        np.testing.assert_array_equal(before[k], after[k])


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: DeviceConfig(w_min=1.0, w_max=-1.0), "w_min"),
        (lambda: DeviceConfig(dw_min=-0.001), "dw_min"),
        (lambda: DeviceConfig(dw_min=float("nan")), "dw_min"),
        (lambda: DeviceConfig(dw_min_std=-1.0), "dw_min_std"),
        (lambda: DeviceConfig(model="linear", w_min=0.0, w_max=1.0), "w_min"),
        (lambda: DeviceConfig(stuck_fraction=0.7, dead_fraction=0.5), "stuck_fraction"),
        (lambda: DeviceConfig(model="magic"), "model"),
        (lambda: IOConfig(inp_bits=0), "inp_bits"),
        (lambda: IOConfig(out_bits=1), "out_bits"),
        (lambda: IOConfig(out_bound=float("nan")), "out_bound"),
        (lambda: IOConfig(out_noise=-0.1), "out_noise"),
        (lambda: UpdateConfig(desired_bl=0), "desired_bl"),
        (lambda: MappingConfig(levels=1), "levels"),
        (lambda: MappingConfig(g_min=5.0, g_max=1.0), "g_max"),
        (lambda: Tile(0, 3), "out_size"),
        (lambda: Tile(3, 2.5), "in_size"),
        (lambda: Tile(3, 3, seed=-1), "seed"),
        (lambda: Tile(3, 3, config={"device": {}}), "TileConfig"),
        (lambda: with_overrides(TileConfig(), {"device.dw_minn": 0.1}), "dw_minn"),
        (lambda: with_overrides(TileConfig(), {"device.dw_min": "big"}), "device.dw_min"),
    ],
)
def test_invalid_parameters_raise_config_error_naming_the_field(make, field):
    with pytest.raises(ConfigError, match=field):
        make()


def test_overrides_reach_the_tile():
    cfg = with_overrides(load_preset("Idealized"), {"device.dw_min": 0.01, "forward.out_noise": 0.0})
    assert cfg.device.dw_min == 0.01
    tile = Tile(2, 2, cfg)
    assert tile.config.forward.out_noise == 0.0
    assert dataclasses.asdict(tile.config) == dataclasses.asdict(cfg)


def test_overflowing_updates_are_errors_and_write_nothing():
    for name in ("ReRamES", "Ideal"):
        tile = Tile(3, 4, load_preset(name))
        before = tile.read_weights()
        with pytest.raises(ValueError, match="reduce lr or the inputs"):
            tile.update(np.full((2, 4), 1e30), np.full((2, 3), 3e38), 1e300)
        np.testing.assert_array_equal(tile.read_weights(), before)


def test_empty_batch_is_fine():
    tile = Tile(3, 4, load_preset("ReRamES"))
    assert tile.forward(np.zeros((0, 4))).shape == (0, 3)
    assert tile.backward(np.zeros((0, 3))).shape == (0, 4)
    tile.update(np.zeros((0, 4)), np.zeros((0, 3)), 0.1)
