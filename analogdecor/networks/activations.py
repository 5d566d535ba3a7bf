"""Element-wise activations and their derivatives (the dtype of the input is kept)."""

from __future__ import annotations

import numpy as np

from analogdecor.errors import ConfigError

__all__ = ["ACTIVATIONS", "activate", "derivative"]

ACTIVATIONS: tuple[str, ...] = ("relu", "leaky_relu", "tanh", "sigmoid", "identity")


def activate(a: np.ndarray, kind: str, slope: float = 0.01) -> np.ndarray:
    """f(a) for ``kind`` in relu, leaky_relu (negative slope ``slope``), tanh, sigmoid, identity."""
    a = np.asarray(a)
    if kind == "relu":
        return np.maximum(a, a.dtype.type(0.0))
    if kind == "leaky_relu":
        s = a.dtype.type(slope)
        if 0.0 <= slope <= 1.0:  # max(a, s a) is a for a > 0 and s a otherwise: the same bits, one pass less
            return np.maximum(a, s * a)
        return np.where(a > 0, a, s * a)
    if kind == "tanh":
        return np.tanh(a)
    if kind == "sigmoid":
        one = a.dtype.type(1.0)
        return one / (one + np.exp(-a))
    if kind == "identity":
        return a
    raise ConfigError(f"activation = {kind!r}: must be one of {', '.join(ACTIVATIONS)}")


def derivative(a: np.ndarray, h: np.ndarray, kind: str, slope: float = 0.01) -> np.ndarray:
    """f'(a), given the pre-activation ``a`` and the output ``h = f(a)`` (dtype of ``a``)."""
    a = np.asarray(a)
    t = a.dtype.type
    if kind == "relu":
        return (a > 0).astype(a.dtype)
    if kind == "leaky_relu":
        return np.where(a > 0, t(1.0), t(slope)).astype(a.dtype, copy=False)
    if kind == "tanh":
        return (t(1.0) - h * h).astype(a.dtype)
    if kind == "sigmoid":
        return (h * (t(1.0) - h)).astype(a.dtype)
    if kind == "identity":
        return np.ones_like(a)
    raise ConfigError(f"activation = {kind!r}: must be one of {', '.join(ACTIVATIONS)}")
