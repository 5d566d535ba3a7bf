"""Optimisers for digital parameters (float weights, biases): SGD and Adam.

Pure steps plus thin stateful wrappers. Analogue tiles never go through these:
their weights change only by pulsed updates with SGD semantics
(``tile.update(z, delta / B, lr)``), because a crossbar has no per-device
optimiser state. Adam follows Kingma & Ba (2015) with the reference
experiments' defaults (betas 0.9, 0.9999, eps 1e-8; arXiv 2407.10780).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from analogdecor.errors import ConfigError

__all__ = ["SGD", "Adam", "adam_step", "make_optimizer"]


def adam_step(
    param: np.ndarray, grad: np.ndarray, m: np.ndarray, v: np.ndarray, t: int,
    lr: float, beta1: float, beta2: float, eps: float,
) -> None:  # fmt: skip
    """One Adam step in place on ``param``, ``m``, ``v`` (t counts from 1)."""
    m *= beta1
    m += (1.0 - beta1) * grad
    v *= beta2
    v += (1.0 - beta2) * grad * grad
    m_hat = m / (1.0 - beta1**t)
    v_hat = v / (1.0 - beta2**t)
    param -= (lr * m_hat / (np.sqrt(v_hat) + eps)).astype(param.dtype)


class SGD:
    """param <- param - lr * grad."""

    def __init__(self, lr: float) -> None:
        self.lr = float(lr)

    def step(self, key: str, param: np.ndarray, grad: np.ndarray) -> None:
        param -= (self.lr * grad).astype(param.dtype)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        pass


class Adam:
    """Adam with one (m, v) pair per parameter key; one global step counter per key."""

    def __init__(self, lr: float, beta1: float = 0.9, beta2: float = 0.9999, eps: float = 1e-8) -> None:
        self.lr, self.beta1, self.beta2, self.eps = float(lr), float(beta1), float(beta2), float(eps)
        self.m: dict[str, np.ndarray] = {}
        self.v: dict[str, np.ndarray] = {}
        self.t: dict[str, int] = {}

    def step(self, key: str, param: np.ndarray, grad: np.ndarray) -> None:
        if key not in self.m:
            self.m[key] = np.zeros(param.shape, dtype=np.float64)
            self.v[key] = np.zeros(param.shape, dtype=np.float64)
            self.t[key] = 0
        self.t[key] += 1
        adam_step(
            param, grad, self.m[key], self.v[key], self.t[key], self.lr, self.beta1, self.beta2, self.eps
        )

    def state_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k in self.m:
            out[f"{k}.m"], out[f"{k}.v"], out[f"{k}.t"] = self.m[k], self.v[k], np.int64(self.t[k])
        return out

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        for name in state:
            if name.endswith(".t"):
                k = name[:-2]
                self.m[k] = np.array(state[k + ".m"])
                self.v[k] = np.array(state[k + ".v"])
                self.t[k] = int(state[name])


def make_optimizer(name: str, lr: float, *, beta1: float = 0.9, beta2: float = 0.9999, eps: float = 1e-8):
    """``"sgd"`` or ``"adam"``."""
    if name == "sgd":
        return SGD(lr)
    if name == "adam":
        return Adam(lr, beta1, beta2, eps)
    raise ConfigError(f"optimizer = {name!r}: must be 'sgd' or 'adam'")
