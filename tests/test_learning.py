"""Learning rules: BP against torch autograd, FA/DFA structure, NP's gradient estimate, optimisers."""

from __future__ import annotations

import numpy as np
import pytest

from analogdecor.decorrelation import DecorrelationConfig
from analogdecor.errors import ConfigError
from analogdecor.learning import (
    SGD,
    Adam,
    apply_updates,
    compute_signals,
    init_rule_state,
    softmax_xent,
)
from analogdecor.learning.rules import bp_deltas, fa_deltas
from analogdecor.networks import MLP

torch = pytest.importorskip("torch")


def make_net(widths=(6, 8, 7, 4), activation="leaky_relu", decor=True, seed=0, steps=5, mean_gradient=True):
    """A small float MLP whose R matrices have moved away from the identity."""
    dcfg = DecorrelationConfig(enabled=True, lr=0.05, mean_gradient=mean_gradient) if decor else None
    net = MLP.build(list(widths), activation=activation, decorrelation=dcfg, seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        x = (rng.normal(size=(16, widths[0])) + 0.5).astype(np.float32)
        caches = net.forward_pass(x, train=True)
        for layer, c in zip(net.layers, caches, strict=True):
            if layer.decor is not None:
                layer.decor.update_mean(c.mu)
                layer.decor.step(c.x, c.z)
    return net


def torch_grads(net, x, y, mean_gradient=True):
    """Gradients of the mean cross-entropy w.r.t. every W and b by autograd (through the batch
    mean, or with mu held constant)."""
    h = torch.tensor(x, dtype=torch.float64)
    Ws, bs = [], []
    for layer in net.layers:
        W = torch.tensor(layer.tile.read_weights(), dtype=torch.float64, requires_grad=True)
        b = torch.tensor(layer.bias, dtype=torch.float64, requires_grad=True)
        Ws.append(W)
        bs.append(b)
        if layer.decor is not None:
            mu = h.mean(dim=0) if mean_gradient else h.mean(dim=0).detach()
            h = (h - mu) @ torch.tensor(layer.decor.matrix(), dtype=torch.float64).T
        a = h @ W.T + b
        if layer.activation == "leaky_relu":
            h = torch.nn.functional.leaky_relu(a, 0.01)
        elif layer.activation == "relu":
            h = torch.relu(a)
        elif layer.activation == "tanh":
            h = torch.tanh(a)
        elif layer.activation == "sigmoid":
            h = torch.sigmoid(a)
        else:
            h = a
    loss = torch.nn.functional.cross_entropy(h, torch.tensor(y))
    loss.backward()
    return [W.grad.numpy() for W in Ws], [b.grad.numpy() for b in bs], float(loss.detach())


@pytest.mark.parametrize("activation", ["leaky_relu", "relu", "tanh", "sigmoid"])
@pytest.mark.parametrize(("decor", "mean_gradient"), [(False, True), (True, True), (True, False)])
def test_bp_gradients_equal_autograd(activation, decor, mean_gradient):
    net = make_net(activation=activation, decor=decor, mean_gradient=mean_gradient)
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(10, 6)) + 0.5).astype(np.float32)
    y = rng.integers(0, 4, size=10)
    res = compute_signals("bp", net, x, y, init_rule_state("bp", net))
    gW, gb, loss = torch_grads(net, x, y, mean_gradient)
    if decor:  # the two settings give different gradients, so the comparison can tell them apart
        other, _, _ = torch_grads(net, x, y, not mean_gradient)
        assert not np.allclose(other[0], gW[0], rtol=1e-3, atol=1e-5)
    assert res.loss.mean() == pytest.approx(loss, rel=1e-5)
    for (z, delta), tW, tb in zip(res.signals, gW, gb, strict=True):
        np.testing.assert_allclose(delta.T.astype(np.float64) @ z / len(x), tW, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(delta.mean(axis=0), tb, rtol=1e-4, atol=1e-6)


def test_softmax_xent_equals_torch():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(5, 3)).astype(np.float32) * 4
    y = np.array([0, 2, 1, 1, 0])
    loss, err = softmax_xent(logits, y)
    t = torch.tensor(logits.astype(np.float64), requires_grad=True)
    tl = torch.nn.functional.cross_entropy(t, torch.tensor(y), reduction="sum")
    tl.backward()
    tl = tl.detach()
    assert loss.sum() == pytest.approx(float(tl), rel=1e-9)
    np.testing.assert_allclose(err, t.grad.numpy(), rtol=1e-6, atol=1e-7)


def test_fa_with_feedback_equal_to_the_weights_is_bp_and_otherwise_differs():
    net = make_net()
    rng = np.random.default_rng(3)
    x = (rng.normal(size=(8, 6)) + 0.5).astype(np.float32)
    y = rng.integers(0, 4, size=8)
    caches = net.forward_pass(x, train=True)
    _, e = softmax_xent(caches[-1].h, y)
    bp = bp_deltas(net, caches, e)
    same = fa_deltas(net, caches, e, [layer.tile.read_weights() for layer in net.layers])
    for a, b in zip(bp, same, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    state = init_rule_state("fa", net, seed=0)
    assert [B.shape for B in state["feedback"]] == [(layer.out_size, layer.in_size) for layer in net.layers]
    fa = fa_deltas(net, caches, e, state["feedback"])
    assert not np.allclose(fa[0], bp[0])
    np.testing.assert_array_equal(fa[-1], bp[-1])  # the output error is the same


def test_dfa_projects_the_output_error_directly():
    net = make_net(decor=False)
    state = init_rule_state("dfa", net, seed=4)
    assert [B.shape for B in state["feedback"]] == [(8, 4), (7, 4)]
    rng = np.random.default_rng(4)
    x = rng.normal(size=(5, 6)).astype(np.float32)
    y = rng.integers(0, 4, size=5)
    res = compute_signals("dfa", net, x, y, state)
    _, e = softmax_xent(res.logits, y)
    for i in range(2):
        fprime = np.where(res.caches[i].a > 0, 1.0, 0.01)
        np.testing.assert_allclose(res.signals[i][1], fprime * (e @ state["feedback"][i].T), rtol=1e-6)
    np.testing.assert_allclose(res.signals[-1][1], e, rtol=1e-7)


def _np_gradient(net, x, y, sigma, repeats, rng):
    """NP estimate of dL/dW (first layer) averaged over ``repeats`` independent perturbations."""
    total = 0.0
    for _ in range(repeats):
        res = compute_signals("np", net, x, y, {}, sigma=sigma, rng=rng)
        z, delta = res.signals[0]
        total = total + delta.T.astype(np.float64) @ z / len(x)
    return total / repeats


def test_np_estimate_aligns_with_the_true_gradient_and_improves_with_samples():
    # Separate NP passes centre the noisy pass with the clean means, so NP estimates the
    # gradient with mu held constant: compare with BP without the mean's derivative.
    net = make_net(widths=(6, 10, 4), decor=True, mean_gradient=False)
    rng = np.random.default_rng(5)
    x = (rng.normal(size=(32, 6)) + 0.5).astype(np.float32)
    y = rng.integers(0, 4, size=32)
    true = compute_signals("bp", net, x, y, {})
    z, delta = true.signals[0]
    g_true = (delta.T.astype(np.float64) @ z / len(x)).ravel()

    def cosine(repeats, seed):
        g = _np_gradient(net, x, y, 1e-2, repeats, np.random.default_rng(seed)).ravel()
        return g @ g_true / (np.linalg.norm(g) * np.linalg.norm(g_true))

    few = np.mean([cosine(2, s) for s in range(5)])
    many = np.mean([cosine(200, s) for s in range(5)])
    assert few > 0.1
    assert many > 0.9
    assert many > few + 0.2


def test_np_needs_a_generator_and_a_positive_sigma():
    net = make_net(decor=False)
    x = np.zeros((2, 6), np.float32)
    y = np.array([0, 1])
    with pytest.raises(ConfigError, match="rng"):
        compute_signals("np", net, x, y, {})
    with pytest.raises(ConfigError, match="sigma"):
        compute_signals("np", net, x, y, {}, sigma=0.0, rng=np.random.default_rng(0))
    with pytest.raises(ConfigError, match="rule"):
        compute_signals("hebb", net, x, y, {})


def test_apply_updates_sgd_is_the_outer_product_step():
    net = make_net(decor=False)
    before = [layer.tile.read_weights().astype(np.float64) for layer in net.layers]
    biases = [layer.bias.astype(np.float64) for layer in net.layers]
    rng = np.random.default_rng(6)
    x = rng.normal(size=(7, 6)).astype(np.float32)
    y = rng.integers(0, 4, size=7)
    res = compute_signals("bp", net, x, y, {})
    apply_updates(net, res, SGD(0.1), analog_lr=0.1)
    for layer, W0, b0, (z, delta) in zip(net.layers, before, biases, res.signals, strict=True):
        expected = W0.copy()
        for n in range(len(x)):  # loop over samples: W -= lr/B * delta_n z_n^T
            expected -= 0.1 / len(x) * np.outer(delta[n], z[n])
        np.testing.assert_allclose(layer.tile.read_weights(), expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(layer.bias, b0 - 0.1 * delta.mean(axis=0), rtol=1e-5, atol=1e-7)


def test_adam_matches_the_formula():
    p = np.array([1.0, -2.0], dtype=np.float32)
    opt = Adam(0.01, 0.9, 0.999, 1e-8)
    m = v = np.zeros(2)
    ref = p.astype(np.float64).copy()
    for t, g in enumerate([np.array([0.5, -1.0]), np.array([0.1, 0.3]), np.array([-0.2, 0.2])], start=1):
        opt.step("p", p, g)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        ref -= 0.01 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    np.testing.assert_allclose(p, ref, rtol=1e-6)


# ----------------------------------------------------------------------------- analogue update modes
def test_low_rank_factors_reconstruct_the_batch_update():
    from analogdecor.learning.update import low_rank_factors

    rng = np.random.default_rng(7)
    z, delta = rng.normal(size=(9, 5)), rng.normal(size=(9, 4))
    G = sum(np.outer(delta[n], z[n]) for n in range(9)) / 9
    x, d = low_rank_factors(z, delta, 4)  # full rank (min(4, 5))
    np.testing.assert_allclose(d.T @ x, G, rtol=1e-5, atol=1e-6)
    x1, d1 = low_rank_factors(z, delta, 1)
    s = np.linalg.svd(G, compute_uv=False)
    assert np.linalg.norm(G - d1.T @ x1) == pytest.approx(np.sqrt(np.sum(s[1:] ** 2)), rel=1e-4)


@pytest.mark.parametrize("mode", ["per_sample", "low_rank", "mixed"])
def test_analog_update_modes_move_the_effective_weights_by_lr_times_the_gradient(mode):
    """On an exact (ideal) tile, every mode applies alpha W -= lr G; mixed keeps |residual| < dw_min."""
    from analogdecor.backends import FloatTile
    from analogdecor.crossbar.config import TileConfig
    from analogdecor.learning import AnalogUpdater

    rng = np.random.default_rng(8)
    cfg = TileConfig.ideal()
    step = cfg.device.dw_min
    tile = FloatTile(3, 4, cfg)
    W0 = rng.normal(size=(3, 4)).astype(np.float32)
    tile.set_weights(W0)
    upd = AnalogUpdater(mode, rank=3)
    alpha, lr, total = 0.5, 0.1, np.zeros((3, 4))
    for _ in range(20):
        z, delta = rng.normal(size=(6, 4)), rng.normal(size=(6, 3))
        upd.apply("w", tile, z.astype(np.float32), delta.astype(np.float32), alpha, lr)
        total += delta.T @ z / 6
    expected = W0 - lr * total / alpha
    tol = 2 * step if mode == "mixed" else 1e-4
    np.testing.assert_allclose(tile.read_weights(), expected, atol=tol)
    if mode == "mixed":
        chi = upd.state_dict()["w"]
        assert np.all(np.abs(chi) < step)
        np.testing.assert_allclose(tile.read_weights() + chi, expected, atol=1e-4)
    with pytest.raises(ConfigError, match="analog update mode"):
        AnalogUpdater("adam")


def test_anp_on_a_single_layer_is_np_rescaled_per_sample():
    """One linear layer: the activity difference is the injected noise itself, so
    delta_anp,n = dL_n sqrt(N) / ||eps_n||^2 eps_n = delta_np,n * sqrt(N) sigma^2 / ||eps_n||^2."""
    net = MLP.build([6, 4], seed=2)
    rng = np.random.default_rng(8)
    x = rng.normal(size=(9, 6)).astype(np.float32)
    y = rng.integers(0, 4, size=9)
    sigma = 0.05
    npr = compute_signals("np", net, x, y, {}, sigma=sigma, rng=np.random.default_rng(3))
    anp = compute_signals("anp", net, x, y, {}, sigma=sigma, rng=np.random.default_rng(3))
    eps = sigma * np.random.default_rng(3).standard_normal((9, 4)).astype(np.float32)
    factor = 2.0 * sigma**2 / np.sum(eps.astype(np.float64) ** 2, axis=1)  # sqrt(N) = 2
    np.testing.assert_allclose(anp.signals[0][1], npr.signals[0][1] * factor[:, None], rtol=2e-3, atol=1e-6)


def test_anp_uses_the_propagated_activity_difference():
    net = make_net(decor=True)
    rng = np.random.default_rng(9)
    x = (rng.normal(size=(12, 6)) + 0.5).astype(np.float32)
    y = rng.integers(0, 4, size=12)
    sigma = 0.02
    res = compute_signals("anp", net, x, y, {}, sigma=sigma, rng=np.random.default_rng(4))
    noise_rng = np.random.default_rng(4)
    eps = [(sigma * noise_rng.standard_normal((12, n))).astype(np.float32) for n in net.widths[1:]]
    clean = net.forward_pass(x, train=True)
    noisy = net.forward_pass(x, train=True, noise=eps, means=[c.mu for c in clean])
    da = [(n.a - c.a).astype(np.float64) for n, c in zip(noisy, clean, strict=True)]
    dL = softmax_xent(noisy[-1].h, y)[0] - softmax_xent(clean[-1].h, y)[0]
    sq = sum(np.sum(d * d, axis=1) for d in da)
    scale = dL * np.sqrt(sum(net.widths[1:])) / sq
    for (z, delta), d, c in zip(res.signals, da, clean, strict=True):
        np.testing.assert_allclose(delta, scale[:, None] * d, rtol=1e-4, atol=1e-7)
        np.testing.assert_array_equal(z, c.z)
    # Downstream layers see more than their own noise: the difference is not eps.
    assert not np.allclose(da[1], eps[1], atol=1e-4)


def test_anp_estimate_aligns_with_the_gradient():
    net = make_net(widths=(6, 10, 4), decor=True, mean_gradient=False)
    rng = np.random.default_rng(5)
    x = (rng.normal(size=(32, 6)) + 0.5).astype(np.float32)
    y = rng.integers(0, 4, size=32)
    true = compute_signals("bp", net, x, y, {})
    g_true = (true.signals[0][1].T.astype(np.float64) @ true.signals[0][0]).ravel()
    noise = np.random.default_rng(0)
    g = sum(
        (lambda r: r.signals[0][1].T.astype(np.float64) @ r.signals[0][0])(
            compute_signals("anp", net, x, y, {}, sigma=1e-2, rng=noise)
        )
        for _ in range(200)
    ).ravel()
    assert g @ g_true / (np.linalg.norm(g) * np.linalg.norm(g_true)) > 0.9


@pytest.mark.parametrize("rule", ["np", "anp"])
def test_stacked_passes_equal_separate_passes_without_centring(rule):
    """Without decorrelation nothing couples the two halves of the stacked batch."""
    net = make_net(decor=False)
    rng = np.random.default_rng(6)
    x = rng.normal(size=(10, 6)).astype(np.float32)
    y = rng.integers(0, 4, size=10)
    a = compute_signals(rule, net, x, y, {}, sigma=0.05, rng=np.random.default_rng(1), passes="separate")
    b = compute_signals(rule, net, x, y, {}, sigma=0.05, rng=np.random.default_rng(1), passes="stacked")
    for (za, da), (zb, db) in zip(a.signals, b.signals, strict=True):
        np.testing.assert_allclose(zb, za, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(db, da, rtol=1e-3, atol=1e-6)
    assert [c.x.shape[0] for c in b.caches] == [20] * len(net.layers)  # decorrelation sees 2B rows
    with pytest.raises(ConfigError, match="passes"):
        compute_signals(rule, net, x, y, {}, sigma=0.05, rng=np.random.default_rng(1), passes="joint")
