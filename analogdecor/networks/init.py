"""Initial weights, biases and fixed feedback matrices of a layer, for every layer type.

One function per kind of parameter, each taking the parameter's shape, the layer's
fan-in and a scheme, so dense and convolutional layers draw alike (a conv kernel of
shape (C_out, C_in, k, k) has fan_in = C_in k^2).

Schemes
-------
``torch``
    What ``torch.nn.Linear`` / ``torch.nn.Conv2d`` do by default, and so what the
    paper's reference code trains (N. Ahmad, arXiv 2407.10780; github
    nasiryahm/CorrelationsRuinGD builds every layer on them): weights and biases
    uniform in +-1/sqrt(fan_in) (``kaiming_uniform_(a=sqrt(5))``). Feedback
    alignment's fixed B is drawn there by ``torch.nn.init.kaiming_uniform_(B)``
    with its defaults (a = 0, leaky_relu gain sqrt(2)): uniform in +-sqrt(6/fan_in),
    sqrt(6) = 2.45 times the forward weights' limit.
``he``
    He-uniform, limit sqrt(6 / fan_in), for relu/leaky_relu and Glorot-uniform,
    limit sqrt(6 / (fan_in + fan_out)), for tanh/sigmoid; biases zero.
    analogdecor's initialisation before ``model.init`` existed (same seed, same numbers).

FA's B is U(+-sqrt(6 / fan_in)) under both schemes: that is torch's draw in the
paper's code, and the He limit analogdecor always used for B.

Weights and biases are drawn from one generator in the order weight, bias (the
``he`` scheme draws no bias), layer by layer.
"""

from __future__ import annotations

import math

import numpy as np

from analogdecor.errors import ConfigError

__all__ = ["INIT_SCHEMES", "init_bias", "init_feedback", "init_weights", "weight_limit"]

INIT_SCHEMES: tuple[str, ...] = ("torch", "he")

_RELU_LIKE = ("relu", "leaky_relu", "identity")


def _check(scheme: str, fan_in: int) -> None:
    if scheme not in INIT_SCHEMES:
        raise ConfigError(f"init scheme {scheme!r}: must be one of {', '.join(INIT_SCHEMES)}")
    if int(fan_in) < 1:
        raise ConfigError(f"fan_in = {fan_in!r}: must be >= 1")


def weight_limit(fan_in: int, scheme: str, *, fan_out: int | None = None, activation: str = "leaky_relu") -> float:
    """The half-width of the uniform distribution weights are drawn from.

    ``fan_out`` (C_out k^2 for a conv kernel) only matters for the ``he`` scheme
    with tanh/sigmoid (Glorot); it defaults to ``fan_in``.
    """
    _check(scheme, fan_in)
    if scheme == "torch":
        return 1.0 / math.sqrt(fan_in)
    if activation in _RELU_LIKE:
        return math.sqrt(6.0 / fan_in)
    fo = fan_in if fan_out is None else int(fan_out)
    return math.sqrt(6.0 / (fan_in + fo))


def init_weights(
    shape_out_in: tuple[int, ...], fan_in: int, scheme: str, rng: np.random.Generator, *,
    fan_out: int | None = None, activation: str = "leaky_relu",
) -> np.ndarray:  # fmt: skip
    """Initial weights of one layer, float32, uniform in +-:func:`weight_limit`.

    Parameters
    ----------
    shape_out_in : tuple of int
        (out, in) for a dense layer, (C_out, C_in, k, k) for a conv kernel.
    fan_in : int
        Inputs per output (in, or C_in k^2).
    scheme : {"torch", "he"}
    rng : numpy.random.Generator
    fan_out, activation
        See :func:`weight_limit` (``he`` scheme only).
    """
    limit = weight_limit(fan_in, scheme, fan_out=fan_out, activation=activation)
    return rng.uniform(-limit, limit, size=tuple(int(s) for s in shape_out_in)).astype(np.float32)


def init_bias(n_out: int, fan_in: int, scheme: str, rng: np.random.Generator) -> np.ndarray:
    """Initial bias (float32): U(+-1/sqrt(fan_in)) for ``torch``, zeros (no draw) for ``he``."""
    _check(scheme, fan_in)
    if scheme == "torch":
        limit = 1.0 / math.sqrt(fan_in)
        return rng.uniform(-limit, limit, size=int(n_out)).astype(np.float32)
    return np.zeros(int(n_out), dtype=np.float32)


def init_feedback(
    shape_out_in: tuple[int, ...], fan_in: int, scheme: str, rng: np.random.Generator
) -> np.ndarray:
    """Feedback alignment's fixed matrix B, shaped like the layer's weights (float32).

    U(+-sqrt(6 / fan_in)) under every scheme: ``torch.nn.init.kaiming_uniform_(B)``
    as in the paper's FALinear / FAConv2d (``torch``), and the He limit (``he``,
    whatever the activation, as analogdecor always drew B).
    """
    _check(scheme, fan_in)
    limit = math.sqrt(6.0 / fan_in)
    return rng.uniform(-limit, limit, size=tuple(int(s) for s in shape_out_in)).astype(np.float32)
