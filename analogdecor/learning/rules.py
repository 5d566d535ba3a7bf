"""Learning rules as pure functions: (network, batch, rule state, params) -> per-layer (z_l, delta_l).

Every rule yields, for each layer l, its input z_l (after decorrelation) and an
error delta_l per sample, so that the weight change is the outer product

    Delta W_l = -lr * (1/B) sum_n delta_l,n z_l,n^T,   Delta b_l = -lr * mean_n delta_l,n

(specification section 4; arXiv 2407.10780). That is exactly the form a
crossbar's parallel pulsed update applies, so the same rule trains float
weights (SGD/Adam on the gradient) and analogue tiles (``tile.update``).

Rules (e = dL/dlogits, the softmax cross-entropy error; f' the activation's slope):

- ``bp``  delta_l = f'(a_l) * (alpha W_{l+1} R_{l+1})^T delta_{l+1} (transposed tile reads).
- ``fa``  as bp with W_{l+1}^T replaced by a fixed random B_{l+1} of W's shape
  (Lillicrap et al. 2016); the error still passes R_{l+1}^T.
- ``dfa`` delta_l = f'(a_l) * (B_l e) with fixed random B_l (n_l x n_out) (Nøkland 2016).
- ``np``  node perturbation: a clean and a noisy forward pass, the noisy one with
  eps_l ~ N(0, sigma^2 I) added to every pre-activation at once; with
  dL_n = L_noisy,n - L_clean,n, delta_l,n = (dL_n / sigma^2) eps_l,n
  (Dalm, van Gerven & Ahmad, arXiv 2310.00965). Forward passes only.
- ``anp`` activity-based node perturbation (same paper; artcogsys/decorbp's
  NodePerturbation): the same two passes, but the error uses the activity
  difference da_l = a_l,noisy - a_l,clean (the injected noise plus what earlier
  layers' noise did to a_l) instead of eps_l, scaled globally:
  delta_l,n = dL_n sqrt(N) / ||da_n||^2 da_l,n, with N the number of perturbed
  units per sample and ||da_n||^2 summed over all layers of sample n.

NP and ANP run their two passes separately (``passes="separate"``: the noisy pass
centres every decorrelated layer with the clean pass's batch means) or, as the
paper's code does, as one stacked batch [x; x] (``passes="stacked"``: both halves
are centred with their joint mean, and the decorrelation rule and the running mean
see the stacked batch, so its subset holds floor(f 2B) + 1 clean samples).

Networks with convolutions and pooling run the same rules: deltas are kept per
parameter layer in the shape of its pre-activation ((B, C, Ho, Wo) for a conv),
errors pass pooling and flatten layers by their own backward, FA's B for a conv
has the kernel's (C_out, C_in k^2) shape, DFA's B_l maps the output error onto
the whole pre-activation map, and NP/ANP perturb every element of every parameter
layer's pre-activation in one noisy pass. The (z, delta) signals of a conv are
its patch rows (one row per patch position).

The centring mean mu of a decorrelated layer is part of the training-mode
forward pass; whether errors pass through its derivative is
``DecorrelationConfig.mean_gradient`` (applied in
:meth:`analogdecor.decorrelation.Decorrelator.backward`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from analogdecor.errors import ConfigError
from analogdecor.learning.losses import softmax_xent
from analogdecor.networks.cache import LayerCache
from analogdecor.networks.init import init_feedback
from analogdecor.networks.network import Network

__all__ = [
    "NP_PASSES",
    "RULES",
    "RuleResult",
    "anp_deltas",
    "bp_deltas",
    "compute_signals",
    "dfa_deltas",
    "fa_deltas",
    "init_rule_state",
    "np_deltas",
]

RULES: tuple[str, ...] = ("bp", "fa", "dfa", "np", "anp")
NP_PASSES: tuple[str, ...] = ("separate", "stacked")


@dataclass
class RuleResult:
    """Output of one rule evaluation on a batch."""

    signals: list[tuple[np.ndarray, np.ndarray]]
    """Per layer (z_l (B, in_l), delta_l (B, out_l)); not yet divided by B."""
    loss: np.ndarray
    """(B,) clean per-sample loss."""
    logits: np.ndarray
    """(B, C) clean logits."""
    caches: list[LayerCache]
    """The records decorrelation learns from: the clean pass's, or for NP/ANP with stacked
    passes the stacked batch's (2B rows, clean half first; mu its joint mean)."""


def init_rule_state(rule: str, net: Network, seed: int = 0, init: str = "he") -> dict[str, Any]:
    """Fixed random feedback matrices: ``fa`` B_l shaped like W_l, ``dfa`` B_l of (n_l, n_out).

    FA draws B_l by :func:`analogdecor.networks.init.init_feedback` under the
    network's ``init`` scheme (U(+-sqrt(6 / fan_in)), as the paper's code draws it);
    DFA draws uniformly in +-1/sqrt(n_out). Other rules have no state.
    """
    if rule not in RULES:
        raise ConfigError(f"rule = {rule!r}: must be one of {', '.join(RULES)}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xFA]))
    feedback: list[np.ndarray] = []
    layers = [layer for _, layer in net.param_layers()]
    if rule == "fa":  # one per parameter layer; a conv's B has the kernel's (C_out, C_in k^2) shape
        for layer in layers:
            feedback.append(init_feedback((layer.out_size, layer.in_size), layer.in_size, init, rng))
    elif rule == "dfa":  # B_l maps the output error onto every element of the layer's pre-activation
        n_out = net.n_outputs
        for layer in layers[:-1]:
            lim = 1.0 / math.sqrt(n_out)
            n_l = int(np.prod(layer.out_shape))
            feedback.append(rng.uniform(-lim, lim, size=(n_l, n_out)).astype(np.float32))
    return {"feedback": feedback}


def _backprop(
    net: Network, caches: list[LayerCache], e: np.ndarray, feedback: list[np.ndarray] | None
) -> list[np.ndarray]:
    """Deltas at every parameter layer's pre-activation, the error passing every layer backwards.

    ``feedback`` None: through the tiles' transposed reads (BP); else parameter layer j's
    error passes B_j in place of alpha W_j (FA; R_j^T still applies).
    """
    params = net.param_layers()
    first = params[0][0]
    j = len(params) - 1
    deltas: list[np.ndarray] = []
    g = e.reshape(caches[-1].a.shape)
    for i in range(len(net.layers) - 1, first - 1, -1):
        layer, c = net.layers[i], caches[i]
        if not layer.has_params:
            g = layer.backward(g, c)
            continue
        d = g if layer.activation == "identity" else net.local_derivative(i, c) * g
        deltas.insert(0, d)
        if i > first:
            g = layer.backward_input(d, None if feedback is None else feedback[j])
        j -= 1
    return deltas


def bp_deltas(net: Network, caches: list[LayerCache], e: np.ndarray) -> list[np.ndarray]:
    """Backpropagation through the transposed reads of every tile (col2im for convolutions)."""
    return _backprop(net, caches, e, None)


def fa_deltas(
    net: Network, caches: list[LayerCache], e: np.ndarray, feedback: list[np.ndarray]
) -> list[np.ndarray]:
    """Feedback alignment: B_{l+1} in place of alpha W_{l+1}; R_{l+1}^T is still applied."""
    return _backprop(net, caches, e, feedback)


def dfa_deltas(
    net: Network, caches: list[LayerCache], e: np.ndarray, feedback: list[np.ndarray]
) -> list[np.ndarray]:
    """Direct feedback alignment: delta_l = f'(a_l) * (B_l e), output layer delta = e."""
    out = []
    for j, (i, _) in enumerate(net.param_layers()[:-1]):
        c = caches[i]
        out.append(net.local_derivative(i, c) * (e @ feedback[j].T).reshape(c.a.shape))
    return [*out, e.reshape(caches[-1].a.shape)]


def _draw_noise(net: Network, batch: int, sigma: float, rng: np.random.Generator) -> list[np.ndarray | None]:
    """eps_l = sigma * N(0, 1) of shape (B, *out_shape) for every parameter layer in turn (float32);
    None for layers without parameters (pooling, flatten)."""
    return [
        (sigma * rng.standard_normal((batch, *layer.out_shape))).astype(np.float32) if layer.has_params else None
        for layer in net.layers
    ]


def np_deltas(eps: list[np.ndarray | None], dloss: np.ndarray, sigma: float) -> list[np.ndarray]:
    """Node perturbation: delta_l,n = (dL_n / sigma^2) eps_l,n, all layers perturbed at once.

    ``dloss`` is L_noisy - L_clean per sample (B,); ``eps`` the injected noise per layer.
    """
    scale = (np.asarray(dloss, dtype=np.float64) / (sigma * sigma)).astype(np.float32)
    return [scale.reshape(-1, *([1] * (ep.ndim - 1))) * ep for ep in eps if ep is not None]


def anp_deltas(da: list[np.ndarray], dloss: np.ndarray) -> list[np.ndarray]:
    """Activity-based node perturbation: delta_l,n = dL_n sqrt(N) / ||da_n||^2 da_l,n.

    ``da`` holds every parameter layer's pre-activation difference a_noisy - a_clean
    ((B, n_l), or (B, C, Ho, Wo) for a conv); N = sum_l n_l (every element of every map) and
    ||da_n||^2 = sum_l ||da_l,n||^2 (a global, per-sample scalar).
    Dalm, van Gerven & Ahmad, arXiv 2310.00965; as artcogsys/decorbp's np_update.
    """
    d64 = [np.asarray(d, dtype=np.float64) for d in da]
    sq = sum(np.sum((d * d).reshape(d.shape[0], -1), axis=1) for d in d64)
    n_units = sum(int(np.prod(d.shape[1:])) for d in d64)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(sq > 0, np.asarray(dloss, dtype=np.float64) * math.sqrt(n_units) / sq, 0.0)
    return [(scale.reshape(-1, *([1] * (d.ndim - 1))) * d).astype(np.float32) for d in d64]


def _rows(c: LayerCache, lo: int, hi: int, n: int) -> LayerCache:
    """Samples lo:hi of a record of n samples (a conv's patch rows: P rows per sample)."""

    def cut(arr: Any) -> Any:
        if arr is None:
            return None
        per = arr.shape[0] // n
        return arr[lo * per : hi * per]

    return LayerCache(x=cut(c.x), mu=c.mu, z=cut(c.z), a=cut(c.a), h=cut(c.h))


def compute_signals(
    rule: str, net: Network, x: np.ndarray, y: np.ndarray, state: dict[str, Any], *,
    sigma: float = 1e-2, rng: np.random.Generator | None = None, passes: str = "separate",
) -> RuleResult:  # fmt: skip
    """Evaluate ``rule`` on the batch (x, y) and return every layer's (z, delta).

    Parameters
    ----------
    rule : {"bp", "fa", "dfa", "np", "anp"}
    net : Network (an MLP or any sequence of layers)
    x : (B, inputs) float array
    y : (B,) int array
    state : dict
        From :func:`init_rule_state` (feedback matrices).
    sigma : float
        Node perturbation's noise std.
    rng : numpy.random.Generator
        Node perturbation's noise source (required for ``np`` and ``anp``).
    passes : {"separate", "stacked"}
        ``np``/``anp`` only: a clean and a noisy pass (separate) or one pass of the
        stacked batch [x; x] with noise on the second half (stacked, the paper's code).
    """
    if rule not in RULES:
        raise ConfigError(f"rule = {rule!r}: must be one of {', '.join(RULES)}")
    perturb = rule in ("np", "anp")
    if perturb:
        if rng is None:
            raise ConfigError(f"rule {rule!r} needs a random generator (rng) for its perturbations")
        if not sigma > 0:
            raise ConfigError(f"{rule} sigma = {sigma!r}: must be > 0")
        if passes not in NP_PASSES:
            raise ConfigError(f"passes = {passes!r}: must be one of {', '.join(NP_PASSES)}")
    B = x.shape[0]
    if perturb and passes == "stacked":
        assert rng is not None  # checked above
        eps = _draw_noise(net, B, sigma, rng)
        xx = np.concatenate([np.asarray(x, dtype=np.float32)] * 2)
        noise = [None if ep is None else np.concatenate([np.zeros_like(ep), ep]) for ep in eps]
        both = net.forward_pass(xx, train=True, noise=noise)
        caches = [_rows(c, 0, B, 2 * B) for c in both]
        noisy = [_rows(c, B, 2 * B, 2 * B) for c in both]
        stats = both
    else:
        caches = stats = net.forward_pass(x, train=True)
    logits = caches[-1].h.reshape(B, -1)
    loss, e = softmax_xent(logits, y)
    if rule == "bp":
        deltas = bp_deltas(net, caches, e)
    elif rule == "fa":
        deltas = fa_deltas(net, caches, e, state["feedback"])
    elif rule == "dfa":
        deltas = dfa_deltas(net, caches, e, state["feedback"])
    else:
        if passes == "separate":
            assert rng is not None  # checked above
            eps = _draw_noise(net, B, sigma, rng)
            noisy = net.forward_pass(x, train=True, noise=eps, means=[c.mu for c in caches])
        noisy_loss, _ = softmax_xent(noisy[-1].h.reshape(B, -1), y)
        dloss = noisy_loss - loss
        if rule == "np":
            deltas = np_deltas(eps, dloss, sigma)
        else:
            da = [noisy[i].a - caches[i].a for i, _ in net.param_layers()]
            deltas = anp_deltas(da, dloss)
    signals = [
        layer.signal_rows(caches[i], np.asarray(d, dtype=np.float32))
        for (i, layer), d in zip(net.param_layers(), deltas, strict=True)
    ]
    return RuleResult(signals=signals, loss=loss, logits=logits, caches=stats)
