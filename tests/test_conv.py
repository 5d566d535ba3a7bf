"""Convolutional networks: every layer type against a slow loop reference (tests/reference.py).

Float parts are checked exactly: inputs and weights are small integers (or multiples of
1/8), so every float32 sum is exact whatever the order of its terms.
"""

from __future__ import annotations

import numpy as np
import pytest

from analogdecor.decorrelation import DecorrelationConfig
from analogdecor.errors import ConfigError
from analogdecor.learning import SGD, AnalogUpdater, UpdateRouter, compute_signals, init_rule_state
from analogdecor.networks import Conv2dLayer, Network
from analogdecor.networks.build import LayerSpec, architecture, build_network
from analogdecor.networks.conv import col2im, im2col
from tests.reference import ref_conv2d, ref_conv2d_backward, ref_im2col, ref_pool2d

GEOMETRIES = [(3, 1, 0), (3, 1, 1), (3, 2, 1), (2, 2, 0), (1, 1, 0), (5, 3, 2)]


def _ints(rng, shape, lo=-3, hi=4):
    return rng.integers(lo, hi, size=shape).astype(np.float32)


def _plain_conv_net(rng, k, s, p, in_shape=(2, 7, 6), c_out=3, n_classes=4, activation="leaky_relu"):
    """conv -> flatten -> dense, with integer weights (exact float32 sums)."""
    net = build_network([LayerSpec("conv2d", channels=c_out, kernel=k, stride=s, padding=p)], in_shape,
                        n_classes, activation=activation, seed=0)  # fmt: skip
    for _, layer in net.param_layers():
        layer.tile.set_weights(_ints(rng, (layer.out_size, layer.in_size), -2, 3))
        layer.bias = _ints(rng, layer.bias.shape)
    return net


@pytest.mark.parametrize(("k", "s", "p"), GEOMETRIES)
def test_im2col_and_col2im_equal_the_loops(k, s, p):
    rng = np.random.default_rng(k * 10 + s + p)
    x = _ints(rng, (2, 3, 7, 6))
    cols = im2col(x, k, s, p)
    np.testing.assert_array_equal(cols, ref_im2col(x, k, s, p))
    # col2im is im2col's adjoint: <im2col(x), c> = <x, col2im(c)>, exact on integers
    c = _ints(rng, cols.shape)
    back = col2im(c, x.shape, k, s, p)
    assert float(np.sum(cols.astype(np.float64) * c)) == float(np.sum(x.astype(np.float64) * back))
    # and equals scattering every patch row back by hand
    ref = np.zeros(x.shape)
    r = ref_im2col(np.arange(x.size, dtype=np.float32).reshape(x.shape) + 1, k, s, p).astype(np.int64)
    for row, idx in zip(c, r, strict=True):
        for v, flat in zip(row, idx, strict=True):
            if flat > 0:
                ref.flat[flat - 1] += v
    np.testing.assert_array_equal(back, ref)


@pytest.mark.parametrize(("k", "s", "p"), GEOMETRIES)
def test_conv_forward_backward_and_update_equal_the_loops(k, s, p):
    rng = np.random.default_rng(100 + k + s + p)
    net = _plain_conv_net(rng, k, s, p)
    conv = net.layers[0]
    assert isinstance(conv, Conv2dLayer)
    W4 = conv.tile.read_weights().reshape(conv.kernel_shape)
    x = _ints(rng, (3, 2, 7, 6))
    caches = net.forward_pass(x, train=True)
    np.testing.assert_array_equal(caches[0].a, ref_conv2d(x, W4, conv.bias, s, p))
    # backward through the conv: col2im of the transposed read
    g = _ints(rng, caches[0].a.shape)
    dx_ref, dW_ref = ref_conv2d_backward(x, W4, g, s, p)
    np.testing.assert_array_equal(conv.backward_input(g), dx_ref)
    # the update: every patch position a sample, summed, divided by the batch size
    z, d = conv.signal_rows(caches[0], g)
    lr = 0.125
    W0, b0 = conv.tile.read_weights(), conv.bias.copy()
    from analogdecor.learning.rules import RuleResult

    res = RuleResult(signals=[(z, d), (caches[2].z, np.zeros((3, 4), np.float32))], loss=np.zeros(3),
                     logits=np.zeros((3, 4), np.float32), caches=caches)  # fmt: skip
    UpdateRouter(SGD(lr), lr).weights(net, res)
    expect = W0 - lr * (dW_ref / 3).reshape(W0.shape)
    np.testing.assert_allclose(conv.tile.read_weights(), expect, rtol=0, atol=1e-6)
    np.testing.assert_allclose(conv.bias, b0 - lr * g.sum(axis=(0, 2, 3), dtype=np.float64) / 3, rtol=0, atol=1e-6)


def test_conv_matches_torch_when_installed():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    net = _plain_conv_net(rng, 3, 2, 1)
    conv = net.layers[0]
    x = rng.normal(size=(2, 2, 7, 6)).astype(np.float32)
    tw = torch.tensor(conv.tile.read_weights().reshape(conv.kernel_shape))
    y = torch.nn.functional.conv2d(torch.tensor(x), tw, torch.tensor(conv.bias), stride=2, padding=1)
    np.testing.assert_allclose(net.forward_pass(x)[0].a, y.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("kind", "size", "stride"), [("max", 2, 2), ("avg", 2, 2), ("max", 3, 1), ("avg", 3, 2)])
def test_pooling_equals_the_loops(kind, size, stride):
    rng = np.random.default_rng(size * 7 + stride)
    x = _ints(rng, (2, 3, 7, 6), -20, 20) / np.float32(8)
    spec = LayerSpec("maxpool" if kind == "max" else "avgpool", size=size, stride=stride)
    net = build_network([spec, LayerSpec("flatten")], (3, 7, 6), 2, seed=0)
    pool = net.layers[0]
    c = pool.forward(x)
    y_ref, back_ref = ref_pool2d(x, size, stride, kind)
    np.testing.assert_array_equal(c.h, y_ref)
    g = _ints(rng, c.h.shape) * np.float32(size * size)  # g / size^2 exact for average pooling
    np.testing.assert_array_equal(pool.backward(g, c), back_ref(g))


def test_bp_on_a_conv_net_is_the_gradient():
    """BP's signals give the loss gradient: directional finite differences in float64 agree."""
    rng = np.random.default_rng(5)
    specs = [LayerSpec("conv2d", channels=3, kernel=3, padding=1), LayerSpec("maxpool", size=2),
             LayerSpec("conv2d", channels=4, kernel=2, stride=1), LayerSpec("avgpool", size=2),
             LayerSpec("flatten"), LayerSpec("dense", units=5)]  # fmt: skip
    net = build_network(specs, (2, 8, 8), 3, activation="tanh", seed=4)
    x = rng.normal(size=(4, 128)).astype(np.float32)
    y = rng.integers(0, 3, 4)
    res = compute_signals("bp", net, x, y, {})
    from analogdecor.learning import softmax_xent

    def loss():
        return float(np.mean(softmax_xent(net.forward_pass(x, train=True)[-1].h, y)[0], dtype=np.float64))

    for (_, layer), (z, d) in zip(net.param_layers(), res.signals, strict=True):
        G = d.T.astype(np.float64) @ z.astype(np.float64) / 4
        V = rng.normal(size=G.shape).astype(np.float32)
        W0 = layer.tile.read_weights()
        h = 1e-3  # small enough that no max-pool window changes its winner
        layer.tile.set_weights(W0 + h * V)
        lp = loss()
        layer.tile.set_weights(W0 - h * V)
        lm = loss()
        layer.tile.set_weights(W0)
        fd = (lp - lm) / (2 * h)
        assert fd == pytest.approx(float(np.sum(G * V)), rel=1e-3, abs=1e-4)


def test_fa_with_feedback_equal_to_the_weights_is_bp_and_rule_shapes():
    rng = np.random.default_rng(6)
    net = build_network((*architecture("paper-convnet")[:3], LayerSpec("flatten"), LayerSpec("dense", units=7)),
                        (1, 8, 8), 4, seed=1)  # fmt: skip
    x = rng.normal(size=(5, 64)).astype(np.float32)
    y = rng.integers(0, 4, 5)
    state = init_rule_state("fa", net, 0)
    conv = net.layers[0]
    assert state["feedback"][0].shape == (32, 9) == (conv.out_size, conv.in_size)  # the kernel's shape
    state = {"feedback": [layer.effective_weights() for _, layer in net.param_layers()]}
    bp = compute_signals("bp", net, x, y, {})
    fa = compute_signals("fa", net, x, y, state)
    for (zb, db), (zf, df) in zip(bp.signals, fa.signals, strict=True):
        np.testing.assert_array_equal(zb, zf)
        np.testing.assert_allclose(df, db, rtol=1e-5, atol=1e-7)
    dfa = compute_signals("dfa", net, x, y, init_rule_state("dfa", net, 0))
    assert [d.shape for _, d in dfa.signals] == [d.shape for _, d in bp.signals]
    nps = compute_signals("np", net, x, y, {}, sigma=1e-3, rng=np.random.default_rng(0))
    assert [d.shape for _, d in nps.signals] == [d.shape for _, d in bp.signals]


def test_np_perturbs_every_conv_map_element_in_one_noisy_pass():
    rng = np.random.default_rng(7)
    net = build_network([LayerSpec("conv2d", channels=2, kernel=3, padding=1), LayerSpec("flatten")],
                        (1, 4, 4), 3, seed=2)  # fmt: skip
    x = rng.normal(size=(6, 16)).astype(np.float32)
    y = rng.integers(0, 3, 6)
    sigma = 1e-2
    res = compute_signals("np", net, x, y, {}, sigma=sigma, rng=np.random.default_rng(11))
    g = np.random.default_rng(11)
    eps0 = (sigma * g.standard_normal((6, 2, 4, 4))).astype(np.float32)
    eps2 = (sigma * g.standard_normal((6, 3))).astype(np.float32)
    noisy = net.forward_pass(x, train=True, noise=[eps0, None, eps2])
    from analogdecor.learning import softmax_xent

    dl = (softmax_xent(noisy[-1].h, y)[0] - res.loss) / (sigma * sigma)
    np.testing.assert_allclose(res.signals[0][1], net.layers[0].rows(dl.astype(np.float32)[:, None, None, None]
                                                                    * eps0), rtol=1e-5)  # fmt: skip
    np.testing.assert_allclose(res.signals[1][1], dl.astype(np.float32)[:, None] * eps2, rtol=1e-5)


@pytest.mark.parametrize("rule", ["ahmad", "copi", "kappa"])
def test_decorrelated_conv_learns_r_on_patches_and_folds_exactly(rule):
    rng = np.random.default_rng(8)
    dcfg = DecorrelationConfig(enabled=True, rule=rule, lr=1e-2, subset_fraction=0.25)
    net = build_network([LayerSpec("conv2d", channels=3, kernel=3, padding=1, stride=2), LayerSpec("flatten")],
                        (2, 6, 6), 3, decorrelation=dcfg, seed=3)  # fmt: skip
    conv = net.layers[0]
    assert conv.decor.dim == 18
    router = UpdateRouter(SGD(0.05), 0.05)
    for _ in range(5):
        x = (rng.normal(size=(8, 2, 6, 6)) + 0.5).astype(np.float32)
        y = rng.integers(0, 3, 8)
        R0 = conv.decor.matrix()
        res = compute_signals("bp", net, x, y, {})
        router.step(net, res)
    # the last R step equals the dense rule on every patch position of the first floor(f B) + 1 images
    from analogdecor.decorrelation import Decorrelator

    ref = Decorrelator(18, dcfg)
    ref._set_float(R0)
    k = (int(0.25 * 8) + 1) * 9
    patches = im2col(x, 3, 2, 1)
    ref.step(patches, res.caches[0].z, k)
    np.testing.assert_array_equal(conv.decor.matrix(), ref.matrix())
    assert not np.allclose(conv.decor.matrix(), np.eye(18))
    # fold: a plain conv with W R and the bias correction gives the same outputs, borders included
    folded = net.fold()
    assert folded.layers[0].decor is None
    xt = (rng.normal(size=(5, 2, 6, 6)) + 0.5).astype(np.float32)
    out, ref_out = folded.forward(xt), net.forward(xt)
    np.testing.assert_allclose(out, ref_out, rtol=0, atol=1e-5 * np.abs(ref_out).max())


def test_state_dict_round_trip_of_a_conv_net():
    dcfg = DecorrelationConfig(enabled=True, lr=1e-2)
    a = build_network(architecture("paper-convnet"), (1, 12, 12), 5, decorrelation=dcfg, seed=1)
    b = build_network(architecture("paper-convnet"), (1, 12, 12), 5, decorrelation=dcfg, seed=2)
    x = np.random.default_rng(0).normal(size=(4, 144)).astype(np.float32)
    UpdateRouter(SGD(0.1), 0.1).step(a, compute_signals("bp", a, x, np.arange(4), {}))
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a.forward(x), b.forward(x))
    names = [n for n, _ in a.analog_layers()]
    assert names == ["layers.0.W", "layers.1.W", "layers.3.W", "layers.4.W", "layers.7.W", "layers.8.W"]


@pytest.mark.parametrize("mode", ["per_sample", "low_rank", "mixed"])
def test_conv_net_on_the_numba_backend_takes_every_update_mode(mode):
    pytest.importorskip("analogdecor.crossbar.tile")
    from analogdecor.devices.registry import list_presets, load_preset

    rng = np.random.default_rng(9)
    dcfg = DecorrelationConfig(enabled=True, on_tile=True, lr=1e-3)
    net = build_network([LayerSpec("conv2d", channels=4, kernel=3, padding=1), LayerSpec("maxpool", size=2),
                         LayerSpec("flatten")], (1, 6, 6), 3, backend="numba",
                        tile_config=load_preset(list_presets()[0]), decorrelation=dcfg, weight_scaling=0.6,
                        seed=1)  # fmt: skip
    x = rng.random((8, 36), dtype=np.float32)
    y = rng.integers(0, 3, 8)
    W0 = net.layers[0].tile.read_weights()
    upd = AnalogUpdater(mode)
    UpdateRouter(SGD(0.1), 1.0, upd).step(net, compute_signals("bp", net, x, y, {}))
    assert not np.array_equal(net.layers[0].tile.read_weights(), W0)
    assert np.all(np.isfinite(net.forward(x)))
    if mode == "mixed":
        assert {"layers.0.W", "layers.0.R", "layers.3.W", "layers.3.R"} == set(upd.chi)


def test_architectures_that_do_not_fit_name_the_layer_and_sizes():
    with pytest.raises(ConfigError, match=r"model\.layers\[0\] \(conv2d\): kernel 5x5 is larger than its 1x3x3 input"):
        build_network([LayerSpec("conv2d", channels=2, kernel=5)], (1, 3, 3), 2)
    with pytest.raises(ConfigError, match=r"model\.layers\[1\] \(maxpool\): a 2x2 pooling leaves nothing of its 2x1x1"):
        build_network([LayerSpec("conv2d", channels=2, kernel=3), LayerSpec("maxpool")], (1, 3, 3), 2)
    with pytest.raises(ConfigError, match=r"model\.layers\[1\] \(dense\): its input is a 2x3x3 map"):
        build_network([LayerSpec("conv2d", channels=2, kernel=1), LayerSpec("dense", units=4)], (1, 3, 3), 2)
    with pytest.raises(ConfigError, match=r"LayerSpec\.channels"):
        LayerSpec("conv2d")
    with pytest.raises(ConfigError, match="architecture 'resnet'"):
        architecture("resnet")


def test_paper_convnet_shapes():
    net = build_network(architecture("paper-convnet"), (1, 28, 28), 10, seed=0)
    assert [tuple(layer.out_shape) for layer in net.layers] == [
        (32, 28, 28), (32, 28, 28), (32, 14, 14), (64, 14, 14), (64, 14, 14), (64, 7, 7), (3136,), (1000,), (10,)
    ]  # fmt: skip
    assert isinstance(net, Network)


@pytest.mark.aihwkit
def test_conv_net_on_aihwkit_tiles_reads_patches_and_updates():
    pytest.importorskip("aihwkit")
    from analogdecor.devices.registry import load_preset

    net = build_network([LayerSpec("conv2d", channels=4, padding=1), LayerSpec("maxpool"), LayerSpec("flatten")],
                        (1, 8, 8), 3, backend="aihwkit", tile_config=load_preset("ReRamES"), weight_scaling=0.6)  # fmt: skip
    rng = np.random.default_rng(0)
    x = rng.random((8, 64), dtype=np.float32)
    y = rng.integers(0, 3, 8)
    W0 = net.layers[0].tile.read_weights()
    UpdateRouter(SGD(0.1), 0.5, AnalogUpdater("per_sample")).step(net, compute_signals("bp", net, x, y, {}))
    assert not np.array_equal(net.layers[0].tile.read_weights(), W0)
    assert net.forward(x).shape == (8, 3)


def test_conv_bench_runs_and_reports_ratios():
    """Structure only (no timing thresholds): every requested variant is timed and its ratio reported."""
    from analogdecor.networks.bench import ConvBenchConfig, bench_conv, format_conv_report

    with pytest.raises(ConfigError, match="unknown"):
        ConvBenchConfig(variants=("gpu",))
    res = bench_conv(ConvBenchConfig(batch=2, in_shape=(1, 8, 8), steps=1, variants=("float", "float+decor")))
    assert set(res["seconds_per_step"]) == {"float", "float+decor"}
    assert res["ratios"]["decor_over_plain_float"] > 0
    assert res["ratios"]["float_over_torch"] is None
    assert "decor_over_plain_float" in format_conv_report(res)


def test_conv_bench_cli_takes_an_image_shape(capsys):
    import json

    from analogdecor.cli import main

    assert main(["bench", "conv", "--image", "3x8x8", "--batch", "2", "--steps", "1", "--only", "float", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["in_shape"] == [3, 8, 8]
    assert main(["bench", "conv", "--image", "3x8"]) == 2
    assert "expected CxHxW" in capsys.readouterr().err


def test_conv_kernels_give_the_same_bits_on_one_or_two_threads(monkeypatch):
    """im2col, col2im and max pooling: serial and parallel builds agree bit for bit (one image, one
    thread, a fixed order), with ties and NaN resolved as numpy's argmax (first maximum, first NaN)."""
    import numba

    from analogdecor.networks import _conv_kernels
    from analogdecor.networks.conv import pool2d_backward, pool2d_forward

    rng = np.random.default_rng(7)
    x = rng.standard_normal((5, 3, 9, 8)).astype(np.float32)
    x[0, 0, :2, :2] = 1.5  # a tie in a window
    x[1, 2, 2, 3] = np.nan
    x[1, 2, 3, 2] = np.nan  # two NaN in one window: the first one wins
    cols_g = rng.standard_normal(im2col(x, 3, 2, 1).shape).astype(np.float32)
    g = rng.standard_normal((5, 3, 4, 4)).astype(np.float32)

    def run():
        y, arg = pool2d_forward(x, 2, 2, "max")
        return im2col(x, 3, 2, 1), col2im(cols_g, x.shape, 3, 2, 1), y, arg, pool2d_backward(g, x.shape, 2, 2, arg)

    serial = run()
    monkeypatch.setattr(_conv_kernels, "PARALLEL_MIN_ELEMENTS", 0)
    n = numba.get_num_threads()
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    try:
        par = run()
    finally:
        numba.set_num_threads(n)
    for a, b in zip(serial, par, strict=True):
        np.testing.assert_array_equal(a, b)
    _y, arg = serial[2], serial[3]
    win = np.lib.stride_tricks.sliding_window_view(x, (2, 2), axis=(2, 3))[:, :, ::2, ::2].reshape(5, 3, 4, 4, 4)
    np.testing.assert_array_equal(arg, np.argmax(win, axis=-1))
    assert arg[0, 0, 0, 0] == 0
    assert np.isnan(serial[2][1, 2, 1, 1])
    assert arg[1, 2, 1, 1] == 1


def test_conv_evaluation_runs_in_chunks_with_the_same_logits(monkeypatch):
    """Network.forward splits a conv net's evaluation into chunks of images (bounded patch
    matrices); the logits equal one whole-batch pass (integer weights: exact sums)."""
    rng = np.random.default_rng(3)
    net = _plain_conv_net(rng, 3, 1, 1, activation="relu")
    x = _ints(rng, (7, 2, 7, 6))
    whole = net.forward_pass(x, train=False)[-1].h
    calls = []
    real = net.forward_pass
    monkeypatch.setattr(net, "forward_pass", lambda h, **kw: calls.append(len(h)) or real(h, **kw))
    monkeypatch.setattr(type(net), "EVAL_MAX_ELEMENTS", 2 * net.elements_per_sample())
    np.testing.assert_array_equal(net.forward(x), whole)
    assert calls == [2, 2, 2, 1]
