"""analogdecor.torch: torch modules on emulated tiles equal the native engine, train, save and load."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from analogdecor.crossbar import Tile, TileConfig  # noqa: E402
from analogdecor.data import load_dataset  # noqa: E402
from analogdecor.decorrelation import DecorrelationConfig  # noqa: E402
from analogdecor.devices import load_preset  # noqa: E402
from analogdecor.errors import BackendUnavailableError, ConfigError  # noqa: E402
from analogdecor.learning import SGD, AnalogUpdater, apply_updates, compute_signals, decorrelation_step  # noqa: E402
from analogdecor.learning.losses import softmax_xent  # noqa: E402
from analogdecor.networks import MLP  # noqa: E402
from analogdecor.torch import (  # noqa: E402
    AnalogConv2d,
    AnalogLinear,
    AnalogSGD,
    DecorrelatedConv2d,
    DecorrelatedLinear,
    convert_to_analog,
    node_perturbation,
)

B = 32  # a power of two: the mean loss's gradient e / B scales the reads exactly


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """These layers are tiny: on a shared 2-core machine torch's thread pool costs 10x the work."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _batches(ds, n, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        idx = rng.choice(len(ds.x_train), B, replace=False)
        yield ds.x_train[idx].astype(np.float32), ds.y_train[idx]


def _torch_twin(net: MLP, decorrelated: bool = False) -> nn.Sequential:
    """The torch modules of ``net``: same tile states (seeds, devices, noise streams), alpha, biases, R."""
    mods: list[nn.Module] = []
    for i, layer in enumerate(net.layers):
        if decorrelated:
            m = DecorrelatedLinear(
                layer.in_size, layer.out_size, device=layer.tile.config, decorrelation=layer.decor.config
            )
            lin = m.linear
            m.decor.load_state_dict(layer.decor.state_dict())
        else:
            m = lin = AnalogLinear(layer.in_size, layer.out_size, device=layer.tile.config)
        lin.tile = Tile.from_state_dict(layer.tile.state_dict())
        lin.out_scale = layer.out_scale
        with torch.no_grad():
            lin.bias.copy_(torch.from_numpy(layer.bias))
        mods.append(m)
        if i < len(net.layers) - 1:
            mods.append(nn.ReLU())  # exact in both (a leaky slope rounds differently in float32 and float64)
    return nn.Sequential(*mods)


def _weight_layers(model):
    return [m for m in model.modules() if isinstance(m, AnalogLinear)]


def _same_biases(net: MLP, model: nn.Module) -> None:
    """Biases agree to float32 rounding (torch sums g_n / B in float32, the native engine averages
    in float64); copy the native ones so the next batch starts from identical states."""
    for layer, twin in zip(net.layers, _weight_layers(model), strict=True):
        np.testing.assert_allclose(twin.bias.detach().numpy(), layer.bias, rtol=0, atol=1e-6)
        with torch.no_grad():
            twin.bias.copy_(torch.from_numpy(layer.bias))


@pytest.mark.parametrize("mode", ["mixed", "per_sample", "low_rank"])
def test_backprop_through_tiles_equals_the_native_engine(digits, mode):
    net = MLP.build(
        [64, 32, 10],
        activation="relu",
        backend="numba",
        tile_config=load_preset("GokmenVlasov"),
        weight_scaling=0.6,
        seed=3,
    )
    model = _torch_twin(net)
    opt = AnalogSGD(model.parameters(), lr=0.05, analog_update=mode)
    updater = AnalogUpdater(mode)
    for x, y in _batches(digits, 3):
        res = compute_signals("bp", net, x, y, {})
        apply_updates(net, res, SGD(0.05), analog_lr=0.05, updater=updater)

        opt.zero_grad()
        logits = model(torch.from_numpy(x))
        np.testing.assert_array_equal(logits.detach().numpy(), res.logits)  # same noisy reads
        _, e = softmax_xent(logits.detach().numpy(), y)
        logits.backward(torch.from_numpy(e / np.float32(B)))  # d mean-loss / d logits
        opt.step()
        for layer, twin in zip(net.layers, _weight_layers(model), strict=True):
            np.testing.assert_array_equal(twin.tile.read_weights(), layer.tile.read_weights())
        _same_biases(net, model)


def test_decorrelated_layers_equal_the_native_engine(digits):
    decor = DecorrelationConfig(enabled=True, lr=1e-2, subset_fraction=0.5)
    net = MLP.build([64, 24, 10], activation="relu", backend="numba", tile_config=load_preset("ReRamES"), decorrelation=decor,
                    weight_scaling=0.6, seed=1)  # fmt: skip
    model = _torch_twin(net, decorrelated=True)
    opt = AnalogSGD(model.parameters(), lr=0.05)
    updater = AnalogUpdater("mixed")
    for x, y in _batches(digits, 3, seed=1):
        res = compute_signals("bp", net, x, y, {})
        apply_updates(net, res, SGD(0.05), analog_lr=0.05, updater=updater)
        decorrelation_step(net, res)

        opt.zero_grad()
        logits = model(torch.from_numpy(x))
        np.testing.assert_array_equal(logits.detach().numpy(), res.logits)
        logits.backward(torch.from_numpy(softmax_xent(logits.detach().numpy(), y)[1] / np.float32(B)))
        opt.step()
        twins = [m for m in model if isinstance(m, DecorrelatedLinear)]
        for layer, twin in zip(net.layers, twins, strict=True):
            np.testing.assert_array_equal(twin.linear.tile.read_weights(), layer.tile.read_weights())
            np.testing.assert_array_equal(twin.decor.matrix(), layer.decor.matrix())
            np.testing.assert_array_equal(twin.decor.mu, layer.decor.mu)
        _same_biases(net, model)
    assert not np.allclose(twins[0].decor.matrix(), np.eye(64))  # R learned


@pytest.mark.parametrize("decorrelated", [False, True])
def test_node_perturbation_equals_the_native_engine(digits, decorrelated):
    decor = DecorrelationConfig(enabled=decorrelated, lr=1e-2)
    net = MLP.build([64, 20, 10], activation="relu", backend="numba", tile_config=load_preset("GokmenVlasov"), decorrelation=decor,
                    weight_scaling=0.6, seed=2)  # fmt: skip
    model = _torch_twin(net, decorrelated=decorrelated)
    opt = AnalogSGD(model.parameters(), lr=0.05, analog_update="per_sample")
    updater = AnalogUpdater("per_sample")
    rng_native, rng_torch = np.random.default_rng(7), np.random.default_rng(7)
    for x, y in _batches(digits, 2, seed=2):
        res = compute_signals("np", net, x, y, {}, sigma=0.1, rng=rng_native)
        apply_updates(net, res, SGD(0.05), analog_lr=0.05, updater=updater)
        decorrelation_step(net, res)

        opt.zero_grad()
        loss = node_perturbation(model, torch.from_numpy(x), torch.from_numpy(y), sigma=0.1, rng=rng_torch)
        assert loss == pytest.approx(res.loss.mean(), rel=1e-12)
        opt.step()
        for layer, twin in zip(net.layers, _weight_layers(model), strict=True):
            np.testing.assert_array_equal(twin.tile.read_weights(), layer.tile.read_weights())
        _same_biases(net, model)


def _digits_images(ds):
    def t(a, dtype=torch.float32):
        return torch.tensor(a, dtype=dtype)

    return (t(ds.x_train).reshape(-1, 1, 8, 8), t(ds.y_train, torch.long),
            t(ds.x_test).reshape(-1, 1, 8, 8), t(ds.y_test, torch.long))  # fmt: skip


def _cnn():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(128, 10)
    )


def _train(model, opt, x, y, epochs, rule="bp", seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for i in range(0, len(x), B):
            idx = torch.from_numpy(order[i : i + B])
            opt.zero_grad()
            if rule == "np":
                node_perturbation(model, x[idx], y[idx], sigma=0.05, rng=rng)
            else:
                nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()


def _accuracy(model, x, y):
    model.eval()
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    model.train()
    return acc


@pytest.mark.parametrize("decorrelate", [False, True])
def test_a_torch_cnn_trains_on_an_emulated_device(digits, decorrelate):
    x, y, xt, yt = _digits_images(digits)
    model = convert_to_analog(_cnn(), "GokmenVlasov", decorrelate=decorrelate,
                              decorrelation=DecorrelationConfig(enabled=True, lr=1e-3))  # fmt: skip
    assert _accuracy(model, xt, yt) < 0.3
    _train(model, AnalogSGD(model.parameters(), lr=0.05), x, y, epochs=3)
    assert _accuracy(model, xt, yt) > 0.6  # chance 0.1; seen about 0.9


def test_node_perturbation_trains_a_decorrelated_cnn(digits):
    x, y, xt, yt = _digits_images(digits)
    model = convert_to_analog(_cnn(), "GokmenVlasov", decorrelate=True)
    before = _accuracy(model, xt, yt)
    _train(model, AnalogSGD(model.parameters(), lr=0.02), x, y, epochs=3, rule="np")
    assert _accuracy(model, xt, yt) > before + 0.2


def test_ideal_analog_layers_compute_what_torch_computes():
    torch.manual_seed(0)
    ref = nn.Sequential(
        nn.Conv2d(3, 4, 3, stride=2, padding=1, dilation=1), nn.Tanh(), nn.Flatten(), nn.Linear(64, 5)
    )
    model = convert_to_analog(ref, None)  # ideal tiles: exact float32 reads and float updates
    assert isinstance(model[0], AnalogConv2d)
    assert isinstance(model[3], AnalogLinear)
    torch.testing.assert_close(model[0].weight, ref[0].weight, rtol=1e-6, atol=1e-7)
    x = torch.randn(6, 3, 8, 8, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    out, out_ref = model(x), ref(x2)
    torch.testing.assert_close(out, out_ref, rtol=1e-5, atol=1e-6)
    out.square().sum().backward()
    out_ref.square().sum().backward()
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-5, atol=1e-6)  # transposed reads = autograd
    AnalogSGD(model.parameters(), lr=0.1, analog_update="per_sample").step()
    torch.optim.SGD(ref.parameters(), lr=0.1).step()
    torch.testing.assert_close(model[0].weight, ref[0].weight, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model[3].weight, ref[3].weight, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model[3].bias, ref[3].bias)


def test_inference_under_no_grad_and_eval_records_nothing(digits):
    x, _, xt, _ = _digits_images(digits)
    model = convert_to_analog(_cnn(), "ReRamES", decorrelate=True)
    with torch.no_grad():
        out = model(x[:16])
    assert out.shape == (16, 10)
    assert not out.requires_grad
    layers = [m for m in model.modules() if isinstance(m, AnalogLinear)]
    assert all(not m._records for m in layers)  # no backward pass, nothing queued
    decor = [m for m in model.modules() if isinstance(m, DecorrelatedConv2d | DecorrelatedLinear)]
    assert all(m._last is not None for m in decor)  # a training pass (even without grad) feeds R's rule
    for m in decor:
        m._last = None
    model.eval()
    out = model(xt[:16])
    out.sum().backward()  # gradients w.r.t. inputs may flow in eval mode ...
    assert all(not m._records for m in layers)  # ... but nothing is queued for a device update
    assert all(m._last is None for m in decor)  # and R does not learn from evaluation batches
    weights = [m.tile.read_weights().copy() for m in layers]
    AnalogSGD(model.parameters(), lr=0.1).step()
    for m, w in zip(layers, weights, strict=True):
        np.testing.assert_array_equal(m.tile.read_weights(), w)


@pytest.mark.parametrize("on_tile", [False, True])
def test_state_dict_and_torch_save_round_trip(digits, tmp_path, on_tile):
    x, y, _, _ = _digits_images(digits)
    decor = DecorrelationConfig(enabled=True, lr=1e-3, on_tile=on_tile)
    model = convert_to_analog(_cnn(), "ReRamES", decorrelate=True, decorrelation=decor, seed=5)
    opt = AnalogSGD(model.parameters(), lr=0.05)
    _train(model, opt, x[:128], y[:128], epochs=1)
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, tmp_path / "ckpt.pt")

    other = convert_to_analog(_cnn(), "ReRamES", decorrelate=True, decorrelation=decor, seed=99)
    other_opt = AnalogSGD(other.parameters(), lr=0.05)
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    other.load_state_dict(ckpt["model"])
    other_opt.load_state_dict(ckpt["opt"])
    for a, b in zip(_weight_layers(model), _weight_layers(other), strict=True):
        for k, v in a.tile.state_dict().items():
            np.testing.assert_array_equal(b.tile.state_dict()[k], v, err_msg=k)
    # the same state continues identically: noisy reads, pulses, R steps, accumulators
    _train(model, opt, x[128:256], y[128:256], epochs=1, seed=1)
    _train(other, other_opt, x[128:256], y[128:256], epochs=1, seed=1)
    for a, b in zip(_weight_layers(model), _weight_layers(other), strict=True):
        np.testing.assert_array_equal(a.tile.read_weights(), b.tile.read_weights())
    for a, b in zip(model.modules(), other.modules(), strict=True):
        if isinstance(a, DecorrelatedConv2d | DecorrelatedLinear):
            np.testing.assert_array_equal(a.decor.matrix(), b.decor.matrix())


def test_whole_model_pickles_with_torch_save(tmp_path):
    model = convert_to_analog(_cnn(), "GokmenVlasov")
    x = torch.rand(4, 1, 8, 8)
    torch.save(model, tmp_path / "model.pt")
    loaded = torch.load(tmp_path / "model.pt", weights_only=False)
    model.eval()
    loaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_r_on_its_own_tile_learns_through_the_update_mode(digits):
    x = torch.tensor(digits.x_train[:256], dtype=torch.float32)
    layer = DecorrelatedLinear(64, 10, device="GokmenVlasov",
                               decorrelation=DecorrelationConfig(enabled=True, lr=1e-2, on_tile=True))  # fmt: skip
    before = layer.decor.tile.read_weights().copy()
    opt = AnalogSGD(layer.parameters(), lr=0.01)
    for i in range(0, 256, B):
        opt.zero_grad()
        layer(x[i : i + B]).sum().backward()
        opt.step()
    assert not np.array_equal(layer.decor.tile.read_weights(), before)
    assert "chi" in opt.state[layer.decor_ctx]  # R's mixed-precision accumulator is optimiser state


def test_float_weights_keep_the_paper_method_on_a_digital_model(digits):
    x, y, xt, yt = _digits_images(digits)
    model = convert_to_analog(_cnn(), "float", decorrelate=True)
    assert isinstance(model[0].linear, nn.Linear)
    _train(model, AnalogSGD(model.parameters(), lr=0.05), x, y, epochs=2)
    assert _accuracy(model, xt, yt) > 0.8


def test_settings_that_are_not_emulated_are_refused():
    with pytest.raises(ConfigError, match="groups"):
        convert_to_analog(nn.Conv2d(4, 4, 3, groups=2), "GokmenVlasov")
    with pytest.raises(ConfigError, match="padding_mode"):
        convert_to_analog(nn.Conv2d(4, 4, 3, padding_mode="reflect"), "GokmenVlasov")
    with pytest.raises(ConfigError, match="analog_update"):
        AnalogSGD(AnalogLinear(3, 2).parameters(), lr=0.1, analog_update="adam")
    with pytest.raises(ConfigError, match="device"):
        AnalogLinear(3, 2, device=3.0)
    with pytest.raises(ConfigError, match="sigma"):
        node_perturbation(
            AnalogLinear(3, 2), torch.zeros(1, 3), torch.zeros(1, dtype=torch.long), sigma=0.0, rng=0
        )


def test_without_torch_the_package_says_how_to_install_it():
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'torch': raise ImportError('blocked')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from analogdecor.errors import BackendUnavailableError\n"
        "try:\n"
        "    import analogdecor.torch\n"
        "except BackendUnavailableError as exc:\n"
        "    print('refused:', exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "refused:" in out.stdout
    assert "analogdecor[torch]" in out.stdout
    assert issubclass(BackendUnavailableError, ImportError)


def test_ideal_tile_default_and_weights_property():
    layer = AnalogLinear(5, 3)
    assert layer.tile.config == TileConfig.ideal()
    w = torch.randn(3, 5)
    layer.set_weights(w)
    torch.testing.assert_close(layer.weight, w, rtol=1e-6, atol=1e-7)
    assert "in_features=5" in repr(layer)


@pytest.mark.parametrize("rule", ["ahmad", "copi", "kappa", "zca"])
def test_every_decorrelation_rule_runs_in_the_torch_layers(digits, rule):
    xs = digits.x_train[:256].astype(np.float32)
    x = torch.from_numpy(xs)
    cfg = DecorrelationConfig(enabled=True, rule=rule, lr=1e-2)
    layer = DecorrelatedLinear(64, 10, device="float", decorrelation=cfg)
    if rule == "zca":
        layer.refit_zca(x)  # closed form, refitted on a sample instead of stepped
    opt = AnalogSGD(layer.parameters(), lr=0.01)
    for i in range(0, 256, B):
        opt.zero_grad()
        layer(x[i : i + B]).sum().backward()
        opt.step()
    R = layer.R.numpy()
    assert np.isfinite(R).all()
    assert not np.allclose(R, np.eye(64))  # R took its rule's steps
    live = xs.std(axis=0) > 0

    def mean_abs_offdiag(v):
        c = np.corrcoef(v[:, live], rowvar=False)
        return np.abs(c[~np.eye(len(c), dtype=bool)]).mean()

    z = (xs - layer.decor.mu.astype(np.float32)) @ R.T.astype(np.float32)
    if rule == "zca":
        assert mean_abs_offdiag(z) < 0.5 * mean_abs_offdiag(xs)


def test_tile_state_encoding_is_exact():
    from analogdecor.torch import _state

    tile = Tile(4, 3, load_preset("PCM"), seed=2)
    tile.update(np.ones((2, 3), np.float32), np.ones((2, 4), np.float32), lr=0.1)
    state = tile.state_dict()
    back = _state.decode(_state.encode(state))
    assert back.keys() == state.keys()
    for k, v in state.items():
        assert np.asarray(back[k]).dtype == np.asarray(v).dtype, k
        np.testing.assert_array_equal(back[k], v, err_msg=k)


@pytest.mark.parametrize("train", [True, False])
def test_decorrelated_input_gradient_is_the_exact_derivative(train):
    torch.manual_seed(0)
    layer = DecorrelatedLinear(6, 3, device="float")
    R = np.eye(6) + 0.1 * np.random.default_rng(0).standard_normal((6, 6))
    layer.decor._set_float(R)
    layer.decor.mu = np.linspace(-1, 1, 6)
    layer.train(train)
    x = torch.randn(8, 6, requires_grad=True)
    (layer(x) ** 2).sum().backward()
    x2 = x.detach().clone().requires_grad_(True)
    mu = x2.mean(0) if train else torch.tensor(layer.decor.mu, dtype=torch.float32)
    z = (x2 - mu) @ torch.tensor(R, dtype=torch.float32).T
    (layer.linear(z) ** 2).sum().backward()  # autograd through the mean in training, a constant in eval
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-5, atol=1e-6)
