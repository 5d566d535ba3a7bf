"""Initialisation schemes (analogdecor.networks.init): limits against torch's own init, every backend."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analogdecor.config import from_dict
from analogdecor.crossbar.config import TileConfig
from analogdecor.errors import ConfigError
from analogdecor.learning import init_rule_state
from analogdecor.networks import MLP
from analogdecor.networks.init import init_bias, init_feedback, init_weights, weight_limit
from analogdecor.training import TrainConfig


def test_torch_limits_match_torch_default_init():
    """nn.Linear/nn.Conv2d: |W|, |b| <= 1/sqrt(fan_in); FA's kaiming_uniform_ B: sqrt(6/fan_in)."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    lin = torch.nn.Linear(300, 2000)
    conv = torch.nn.Conv2d(3, 400, 5)
    B = torch.empty(2000, 300)
    torch.nn.init.kaiming_uniform_(B)
    for t, lim in ((lin.weight, weight_limit(300, "torch")), (lin.bias, 1 / math.sqrt(300)),
                   (conv.weight, weight_limit(75, "torch")), (B, math.sqrt(6 / 300))):  # fmt: skip
        a = t.detach().abs().max().item()
        assert lim * 0.995 < a <= lim * (1 + 1e-6)
    rng = np.random.default_rng(0)
    W = init_weights((2000, 300), 300, "torch", rng)
    b = init_bias(2000, 300, "torch", rng)
    K = init_weights((400, 3, 5, 5), 75, "torch", rng)
    Bn = init_feedback((2000, 300), 300, "torch", rng)
    assert W.dtype == b.dtype == K.dtype == Bn.dtype == np.float32
    assert K.shape == (400, 3, 5, 5)
    for arr, t in ((W, lin.weight), (b, lin.bias), (K, conv.weight), (Bn, B)):
        ours, theirs = np.abs(arr).max(), t.detach().abs().max().item()
        assert ours == pytest.approx(theirs, rel=0.01)
        # Uniform: the variance is limit^2 / 3 on both sides.
        assert np.var(arr) == pytest.approx(t.detach().var().item(), rel=0.05)


def test_he_scheme_is_the_previous_initialisation():
    """init='he' keeps the numbers analogdecor drew before model.init existed."""
    widths = [7, 9, 4]
    ss = np.random.SeedSequence(5)
    rng = np.random.default_rng(ss.spawn(1)[0])
    net = MLP.build(widths, seed=5, init="he")
    for layer, (fi, fo) in zip(net.layers, [(7, 9), (9, 4)], strict=True):
        lim = math.sqrt(6.0 / fi)
        expect = rng.uniform(-lim, lim, size=(fo, fi)).astype(np.float32)
        np.testing.assert_array_equal(layer.tile.read_weights(), expect)
        assert not layer.bias.any()
    tanh = MLP.build(widths, seed=5, init="he", activation="tanh")
    assert np.abs(tanh.layers[0].tile.read_weights()).max() <= math.sqrt(6.0 / 16)


def test_torch_scheme_weights_and_biases():
    net = MLP.build([50, 40, 10], seed=1, init="torch")
    for layer in net.layers:
        lim = 1 / math.sqrt(layer.in_size)
        W = layer.tile.read_weights()
        assert 0.9 * lim < np.abs(W).max() <= lim
        assert 0 < np.abs(layer.bias).max() <= lim


@pytest.mark.parametrize("backend", ["float", "numba"])
def test_init_on_every_backend_gives_the_same_effective_weights(backend):
    kw = {"tile_config": TileConfig.ideal()} if backend != "float" else {}
    ref = MLP.build([20, 16, 5], seed=3, init="torch")
    net = MLP.build([20, 16, 5], seed=3, init="torch", backend=backend, weight_scaling=0.6, **kw)
    for a, b in zip(ref.layers, net.layers, strict=True):
        np.testing.assert_allclose(b.effective_weights(), a.effective_weights(), atol=2e-3)
        np.testing.assert_array_equal(a.bias, b.bias)


def test_fa_feedback_is_he_limit_under_both_schemes():
    for scheme in ("torch", "he"):
        net = MLP.build([30, 20, 5], seed=0, init=scheme)
        fb = init_rule_state("fa", net, seed=0, init=scheme)["feedback"]
        assert [B.shape for B in fb] == [(20, 30), (5, 20)]
        assert 0.9 * math.sqrt(6 / 30) < np.abs(fb[0]).max() <= math.sqrt(6 / 30)


def test_bad_scheme_is_a_config_error():
    with pytest.raises(ConfigError, match="init scheme 'xavier'"):
        MLP.build([4, 2], init="xavier")
    with pytest.raises(ConfigError, match=r"model\.init"):
        from_dict(TrainConfig, {"model": {"init": "xavier"}})
    with pytest.raises(ConfigError, match="fan_in"):
        init_weights((2, 0), 0, "torch", np.random.default_rng(0))
