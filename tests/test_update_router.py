"""One typed parameter identifier (ParamKey) and one update router (UpdateRouter)."""

from __future__ import annotations

import numpy as np
import pytest

from analogdecor.backends import FloatTile
from analogdecor.decorrelation import DecorrelationConfig, Decorrelator
from analogdecor.errors import ConfigError
from analogdecor.learning import SGD, AnalogUpdater, UpdateRouter, compute_signals
from analogdecor.networks import MLP
from analogdecor.networks.keys import ParamKey


def test_param_key_names_are_the_stored_names_and_parse_back():
    assert str(ParamKey(3, "W")) == "layers.3.W"
    assert ParamKey(0, "R").prefix == "layers.0.R."
    for name in ("layers.0.W", "layers.12.R", "layers.2.bias", "layers.1.out_scale", "layers.4.decor"):
        assert str(ParamKey.parse(name)) == name
    assert ParamKey(1, "W").is_tile
    assert not ParamKey(1, "bias").is_tile
    for bad in ("layers.x.W", "layers.1.Q", "layer.1.W", "layers.1.W.weights", "layers.-1.W"):
        with pytest.raises(ConfigError, match="not a parameter name"):
            ParamKey.parse(bad)
    with pytest.raises(ConfigError, match=r"ParamKey\.part"):
        ParamKey(0, "G")


def test_state_dict_names_are_unchanged():
    """Run directories written before keep loading: the flat names are the old ones."""
    net = MLP.build([5, 4, 3], decorrelation=DecorrelationConfig(enabled=True, on_tile=True), seed=2)
    keys = set(net.state_dict())
    assert {"layers.0.bias", "layers.0.out_scale", "layers.0.W.weights", "layers.0.R.weights",
            "layers.0.decor.mu", "layers.0.decor.scale", "layers.1.bias"} <= keys  # fmt: skip
    assert [n for n, _ in net.analog_layers()] == ["layers.0.R", "layers.0.W", "layers.1.R", "layers.1.W"]


def test_decorrelator_has_no_planted_updater_and_tile_step_changes_nothing():
    dec = Decorrelator(4, DecorrelationConfig(enabled=True, lr=0.05), tile=FloatTile(4, 4))
    assert not hasattr(dec, "updater")
    before, scale = dec.tile.read_weights(), dec.scale
    x = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    ts = dec.tile_step(x, dec.apply(dec.center(x, train=True)[0]))
    assert ts is not None
    assert ts.x.shape == ts.err.shape == (1, 4)
    np.testing.assert_array_equal(dec.tile.read_weights(), before)
    assert dec.scale == scale


def test_router_sends_r_tiles_through_the_analogue_updater():
    """mixed precision reaches R tiles too: the router keys its accumulators by ParamKey."""
    pytest.importorskip("analogdecor.crossbar.tile")
    from analogdecor.devices.registry import list_presets, load_preset

    rng = np.random.default_rng(0)
    x = rng.random((16, 6), dtype=np.float32)
    y = rng.integers(0, 3, 16)
    net = MLP.build([6, 5, 3], backend="numba", tile_config=load_preset(list_presets()[0]),
                    decorrelation=DecorrelationConfig(enabled=True, on_tile=True, lr=1e-2), seed=1)  # fmt: skip
    updater = AnalogUpdater("mixed")
    router = UpdateRouter(SGD(0.1), 0.5, updater)
    scales = [layer.decor.scale for layer in net.layers]
    router.step(net, compute_signals("bp", net, x, y, {}))
    assert set(updater.chi) == {"layers.0.W", "layers.0.R", "layers.1.W", "layers.1.R"}
    assert all(layer.decor.scale != s for layer, s in zip(net.layers, scales, strict=True))


def test_router_on_float_r_tile_equals_the_standalone_step():
    """R on a float tile: the router's exact outer products equal Decorrelator.step's."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20, 6)).astype(np.float32)
    y = rng.integers(0, 3, 20)
    dcfg = DecorrelationConfig(enabled=True, on_tile=True, lr=1e-2, subset_fraction=0.5)
    a = MLP.build([6, 5, 3], decorrelation=dcfg, seed=3)
    b = MLP.build([6, 5, 3], decorrelation=dcfg, seed=3)
    res = compute_signals("bp", a, x, y, {})
    UpdateRouter(SGD(0.0), 0.0).decorrelation(a, res)
    for layer, c in zip(b.layers, res.caches, strict=True):
        layer.decor.update_mean(c.mu)
        layer.decor.step(c.x, c.z)
    for la, lb in zip(a.layers, b.layers, strict=True):
        np.testing.assert_array_equal(la.decor.matrix(), lb.decor.matrix())
        np.testing.assert_array_equal(la.decor.mu, lb.decor.mu)
