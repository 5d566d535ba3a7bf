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

The centring mean mu of a decorrelated layer is treated as a constant (no
gradient flows through the batch mean), as in the paper.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from analogdecor.errors import ConfigError
from analogdecor.learning.losses import softmax_xent
from analogdecor.networks.mlp import MLP, LayerCache

__all__ = [
    "RULES",
    "RuleResult",
    "bp_deltas",
    "compute_signals",
    "dfa_deltas",
    "fa_deltas",
    "init_rule_state",
    "np_deltas",
]

RULES: tuple[str, ...] = ("bp", "fa", "dfa", "np")


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
    """The clean pass's records (decorrelation learns from these)."""


def init_rule_state(rule: str, net: MLP, seed: int = 0) -> dict[str, Any]:
    """Fixed random feedback matrices: ``fa`` B_l shaped like W_l, ``dfa`` B_l of (n_l, n_out).

    FA draws B_l uniformly with the same limit as the He/Glorot initial weights
    of that layer's shape; DFA draws uniformly in +-1/sqrt(n_out). Other rules have no state.
    """
    if rule not in RULES:
        raise ConfigError(f"rule = {rule!r}: must be one of {', '.join(RULES)}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xFA]))
    feedback: list[np.ndarray] = []
    if rule == "fa":
        for layer in net.layers:
            limit = math.sqrt(6.0 / layer.in_size)
            feedback.append(
                rng.uniform(-limit, limit, size=(layer.out_size, layer.in_size)).astype(np.float32)
            )
    elif rule == "dfa":
        n_out = net.layers[-1].out_size
        for layer in net.layers[:-1]:
            lim = 1.0 / math.sqrt(n_out)
            feedback.append(rng.uniform(-lim, lim, size=(layer.out_size, n_out)).astype(np.float32))
    return {"feedback": feedback}


def bp_deltas(net: MLP, caches: list[LayerCache], e: np.ndarray) -> list[np.ndarray]:
    """Backpropagation through the transposed reads of every tile."""
    deltas = [e]
    for i in range(len(net.layers) - 2, -1, -1):
        back = net.backward_through(i + 1, deltas[0])
        deltas.insert(0, net.local_derivative(i, caches[i]) * back)
    return deltas


def fa_deltas(
    net: MLP, caches: list[LayerCache], e: np.ndarray, feedback: list[np.ndarray]
) -> list[np.ndarray]:
    """Feedback alignment: B_{l+1} in place of alpha W_{l+1}; R_{l+1}^T is still applied."""
    deltas = [e]
    for i in range(len(net.layers) - 2, -1, -1):
        back = deltas[0] @ feedback[i + 1]
        decor = net.layers[i + 1].decor
        if decor is not None:
            back = decor.backward(back)
        deltas.insert(0, net.local_derivative(i, caches[i]) * back)
    return deltas


def dfa_deltas(
    net: MLP, caches: list[LayerCache], e: np.ndarray, feedback: list[np.ndarray]
) -> list[np.ndarray]:
    """Direct feedback alignment: delta_l = f'(a_l) * (B_l e), output layer delta = e."""
    deltas = [net.local_derivative(i, caches[i]) * (e @ feedback[i].T) for i in range(len(net.layers) - 1)]
    return [*deltas, e]


def np_deltas(
    net: MLP, x: np.ndarray, y: np.ndarray, caches: list[LayerCache], clean_loss: np.ndarray,
    sigma: float, rng: np.random.Generator,
) -> list[np.ndarray]:  # fmt: skip
    """Node perturbation: delta_l = ((L_noisy - L_clean) / sigma^2) eps_l, all layers perturbed at once.

    The noisy pass centres every decorrelated layer with the clean pass's batch
    means, so the two passes differ by the perturbation (and any hardware noise) only.
    """
    B = x.shape[0]
    eps = [(sigma * rng.standard_normal((B, layer.out_size))).astype(np.float32) for layer in net.layers]
    noisy = net.forward_pass(x, train=True, noise=eps, means=[c.mu for c in caches])
    noisy_loss, _ = softmax_xent(noisy[-1].h, y)
    scale = ((noisy_loss - clean_loss) / (sigma * sigma)).astype(np.float32)[:, None]
    return [scale * ep for ep in eps]


def compute_signals(
    rule: str, net: MLP, x: np.ndarray, y: np.ndarray, state: dict[str, Any], *,
    sigma: float = 1e-2, rng: np.random.Generator | None = None,
) -> RuleResult:  # fmt: skip
    """Evaluate ``rule`` on the batch (x, y) and return every layer's (z, delta).

    Parameters
    ----------
    rule : {"bp", "fa", "dfa", "np"}
    net : MLP
    x : (B, inputs) float array
    y : (B,) int array
    state : dict
        From :func:`init_rule_state` (feedback matrices).
    sigma : float
        Node perturbation's noise std.
    rng : numpy.random.Generator
        Node perturbation's noise source (required for ``np``).
    """
    caches = net.forward_pass(x, train=True)
    loss, e = softmax_xent(caches[-1].h, y)
    if rule == "bp":
        deltas = bp_deltas(net, caches, e)
    elif rule == "fa":
        deltas = fa_deltas(net, caches, e, state["feedback"])
    elif rule == "dfa":
        deltas = dfa_deltas(net, caches, e, state["feedback"])
    elif rule == "np":
        if rng is None:
            raise ConfigError("rule 'np' needs a random generator (rng) for its perturbations")
        if not sigma > 0:
            raise ConfigError(f"np sigma = {sigma!r}: must be > 0")
        deltas = np_deltas(net, x, y, caches, loss, sigma, rng)
    else:
        raise ConfigError(f"rule = {rule!r}: must be one of {', '.join(RULES)}")
    signals = [(c.z, np.asarray(d, dtype=np.float32)) for c, d in zip(caches, deltas, strict=True)]
    return RuleResult(signals=signals, loss=loss, logits=caches[-1].h, caches=caches)
