"""MLPs on the float backend against a plain loop reference; state, folding, shapes, backends."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analogdecor.backends import FloatTile, make_tile
from analogdecor.decorrelation import DecorrelationConfig
from analogdecor.errors import ConfigError, ShapeError
from analogdecor.networks import MLP, activate, derivative


def loop_forward(net, x):
    """Evaluation-mode forward pass written as explicit loops over units."""
    out = []
    for row in np.asarray(x, dtype=np.float64):
        h = row
        for layer in net.layers:
            if layer.decor is not None:
                R, mu = layer.decor.matrix(), layer.decor.mu
                xc = [h[j] - mu[j] for j in range(len(h))]
                h = [sum(R[i, j] * xc[j] for j in range(len(h))) for i in range(len(h))]
            W = layer.tile.read_weights().astype(np.float64) * layer.out_scale
            a = [sum(W[i, j] * h[j] for j in range(len(h))) + layer.bias[i] for i in range(W.shape[0])]
            if layer.activation == "leaky_relu":
                h = [v if v > 0 else 0.01 * v for v in a]
            elif layer.activation == "relu":
                h = [max(v, 0.0) for v in a]
            elif layer.activation == "tanh":
                h = [math.tanh(v) for v in a]
            elif layer.activation == "sigmoid":
                h = [1.0 / (1.0 + math.exp(-v)) for v in a]
            else:
                h = a
            h = np.array(h)
        out.append(h)
    return np.array(out)


def trained_decorrelated_net(widths=(5, 7, 6, 3), activation="tanh", seed=0):
    net = MLP.build(
        list(widths),
        activation=activation,
        decorrelation=DecorrelationConfig(enabled=True, lr=0.05),
        seed=seed,
    )
    rng = np.random.default_rng(seed)
    for _ in range(20):
        x = (rng.normal(size=(16, widths[0])) + 1.0).astype(np.float32)
        for layer, c in zip(net.layers, net.forward_pass(x, train=True), strict=True):
            layer.decor.update_mean(c.mu)
            layer.decor.step(c.x, c.z)
        for layer in net.layers:
            layer.bias += rng.normal(size=layer.bias.shape).astype(np.float32) * 0.1
    return net


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "tanh", "sigmoid"])
def test_forward_equals_loop_reference(activation):
    net = trained_decorrelated_net(activation=activation)
    x = (np.random.default_rng(1).normal(size=(4, 5)) + 1.0).astype(np.float32)
    np.testing.assert_allclose(net.forward(x), loop_forward(net, x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_any_depth_and_width(depth):
    widths = [9] + [11 - i for i in range(depth - 1)] + [4]
    net = MLP.build(widths, activation="relu", seed=3)
    assert net.widths == widths
    assert len(net.layers) == depth
    x = np.random.default_rng(2).normal(size=(6, 9)).astype(np.float32)
    assert net.forward(x).shape == (6, 4)
    assert net.predict(x).dtype == np.int64
    np.testing.assert_allclose(net.forward(x), loop_forward(net, x), rtol=1e-4, atol=1e-5)


def test_fold_gives_the_same_outputs_to_float32_rounding():
    net = trained_decorrelated_net()
    folded = net.fold()
    assert not folded.decorrelated
    x = (np.random.default_rng(4).normal(size=(50, 5)) + 1.0).astype(np.float32)
    ref = net.forward(x)
    np.testing.assert_allclose(folded.forward(x), ref, rtol=0, atol=2e-5 * np.abs(ref).max())


def test_state_dict_round_trip_is_exact():
    net = trained_decorrelated_net(seed=5)
    other = MLP.build(net.widths, activation="tanh", decorrelation=DecorrelationConfig(enabled=True), seed=99)
    x = (np.random.default_rng(6).normal(size=(8, 5)) + 1.0).astype(np.float32)
    assert not np.array_equal(other.forward(x), net.forward(x))
    other.load_state_dict(net.state_dict())
    np.testing.assert_array_equal(other.forward(x), net.forward(x))
    with pytest.raises(ShapeError, match="bias"):
        MLP.build(
            [5, 4, 3], activation="tanh", decorrelation=DecorrelationConfig(enabled=True)
        ).load_state_dict(net.state_dict())


def test_same_seed_same_network_and_layer_names():
    dcfg = DecorrelationConfig(enabled=True, on_tile=True)
    a = MLP.build([4, 6, 2], decorrelation=dcfg, seed=7)
    b = MLP.build([4, 6, 2], decorrelation=dcfg, seed=7)
    for (na, ta), (nb, tb) in zip(a.analog_layers(), b.analog_layers(), strict=True):
        assert na == nb
        np.testing.assert_array_equal(ta.read_weights(), tb.read_weights())
    assert [n for n, _ in a.analog_layers()] == ["layers.0.R", "layers.0.W", "layers.1.R", "layers.1.W"]
    assert not np.array_equal(MLP.build([4, 6, 2], seed=8).layers[0].tile.read_weights(),
                              a.layers[0].tile.read_weights())  # fmt: skip


def test_activation_derivatives_match_finite_differences():
    a = np.linspace(-3, 3, 41).astype(np.float64) + 0.013
    for kind in ("relu", "leaky_relu", "tanh", "sigmoid", "identity"):
        num = (activate(a + 1e-6, kind) - activate(a - 1e-6, kind)) / 2e-6
        np.testing.assert_allclose(derivative(a, activate(a, kind), kind), num, rtol=1e-5, atol=1e-6)
        a32 = a.astype(np.float32)
        assert activate(a32, kind).dtype == np.float32
        assert derivative(a32, activate(a32, kind), kind).dtype == np.float32
    with pytest.raises(ConfigError, match="activation"):
        activate(a, "gelu")


def test_bad_networks_get_clear_errors():
    with pytest.raises(ConfigError, match="widths"):
        MLP.build([5])
    with pytest.raises(ConfigError, match="activation"):
        MLP.build([5, 3], activation="softplus")
    with pytest.raises(ShapeError, match=r"expected \(batch, 5\)"):
        MLP.build([5, 3]).forward(np.zeros((2, 4), np.float32))
    with pytest.raises(ConfigError, match="backend"):
        make_tile("cuda", 2, 2)


def test_float_tile_follows_the_tile_contract():
    t = FloatTile(3, 2)
    W = np.array([[1, 2], [3, 4], [5, 6]], np.float32)
    t.set_weights(W)
    np.testing.assert_array_equal(t.forward(np.array([[1, 1]], np.float32)), [[3, 7, 11]])
    np.testing.assert_array_equal(t.backward(np.array([[1, 0, 1]], np.float32)), [[6, 8]])
    t.update(np.array([[1, 0]], np.float32), np.array([[1, 1, 1]], np.float32), 0.5)
    np.testing.assert_array_equal(t.read_weights(), W - 0.5 * np.array([[1, 0], [1, 0], [1, 0]]))
    state = t.state_dict()
    u = FloatTile(3, 2)
    u.load_state_dict(state)
    np.testing.assert_array_equal(u.read_weights(), t.read_weights())
    with pytest.raises(ShapeError, match="x has shape"):
        t.forward(np.zeros((1, 3), np.float32))


def test_numba_backend_runs_the_same_model_definition():
    pytest.importorskip("analogdecor.crossbar.tile")
    from analogdecor.crossbar.config import TileConfig

    dcfg = DecorrelationConfig(enabled=True)
    flt = MLP.build([6, 5, 3], decorrelation=dcfg, seed=1, backend="float")
    num = MLP.build([6, 5, 3], decorrelation=dcfg, seed=1, backend="numba", tile_config=TileConfig.ideal())
    x = np.random.default_rng(0).normal(size=(4, 6)).astype(np.float32)
    np.testing.assert_allclose(num.forward(x), flt.forward(x), rtol=1e-6, atol=1e-6)
    assert [type(t).__name__ for _, t in num.analog_layers()] == ["Tile", "Tile"]


def test_every_device_preset_runs_a_training_step_of_the_same_model():
    pytest.importorskip("analogdecor.crossbar.tile")
    from analogdecor.devices.registry import list_presets, load_preset
    from analogdecor.learning import SGD, AnalogUpdater, apply_updates, compute_signals, decorrelation_step

    rng = np.random.default_rng(0)
    x = rng.random((8, 6), dtype=np.float32)
    y = rng.integers(0, 3, 8)
    names = list_presets()
    assert len(names) >= 9
    for name in names:
        dcfg = DecorrelationConfig(enabled=True, on_tile=True)
        net = MLP.build([6, 5, 3], backend="numba", tile_config=load_preset(name), decorrelation=dcfg,
                        weight_scaling=0.6, seed=1)  # fmt: skip
        before = net.layers[0].tile.read_weights()
        res = compute_signals("bp", net, x, y, {})
        apply_updates(net, res, SGD(0.5), analog_lr=0.5, updater=AnalogUpdater("mixed"))
        decorrelation_step(net, res)
        out = net.forward(x)
        assert out.shape == (8, 3), name
        assert np.all(np.isfinite(out)), name
        assert not np.array_equal(net.layers[0].tile.read_weights(), before), name
