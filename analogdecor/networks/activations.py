"""Element-wise activations and their derivatives (float32 in, float32 out)."""

from __future__ import annotations

import numpy as np

from analogdecor.errors import ConfigError

__all__ = ["ACTIVATIONS", "activate", "derivative"]

ACTIVATIONS: tuple[str, ...] = ("relu", "leaky_relu", "tanh", "sigmoid", "identity")


def activate(a: np.ndarray, kind: str, slope: float = 0.01) -> np.ndarray:
    """f(a) for ``kind`` in relu, leaky_relu (negative slope ``slope``), tanh, sigmoid, identity."""
    if kind == "relu":
        return np.maximum(a, np.float32(0.0))
    if kind == "leaky_relu":
        return np.where(a > 0, a, np.float32(slope) * a).astype(np.float32)
    if kind == "tanh":
        return np.tanh(a)
    if kind == "sigmoid":
        return (np.float32(1.0) / (np.float32(1.0) + np.exp(-a))).astype(np.float32)
    if kind == "identity":
        return a
    raise ConfigError(f"activation = {kind!r}: must be one of {', '.join(ACTIVATIONS)}")


def derivative(a: np.ndarray, h: np.ndarray, kind: str, slope: float = 0.01) -> np.ndarray:
    """f'(a), given the pre-activation ``a`` and the output ``h = f(a)``."""
    if kind == "relu":
        return (a > 0).astype(np.float32)
    if kind == "leaky_relu":
        return np.where(a > 0, np.float32(1.0), np.float32(slope)).astype(np.float32)
    if kind == "tanh":
        return (np.float32(1.0) - h * h).astype(np.float32)
    if kind == "sigmoid":
        return (h * (np.float32(1.0) - h)).astype(np.float32)
    if kind == "identity":
        return np.ones_like(a, dtype=np.float32)
    raise ConfigError(f"activation = {kind!r}: must be one of {', '.join(ACTIVATIONS)}")
