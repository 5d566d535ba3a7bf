"""Softmax cross-entropy, per sample (the loss of every experiment here)."""

from __future__ import annotations

import numpy as np

from analogdecor.errors import ShapeError

__all__ = ["softmax", "softmax_xent"]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (max-shifted for stability)."""
    s = np.asarray(logits, dtype=np.float64)
    s = s - s.max(axis=1, keepdims=True)
    e = np.exp(s)
    return e / e.sum(axis=1, keepdims=True)


def softmax_xent(logits: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample loss L_n = -log softmax(logits_n)[y_n] and its gradient p_n - onehot(y_n).

    Returns
    -------
    loss : (B,) float64
    error : (B, classes) float32
        dL_n / dlogits_n (the output error e of the learning rules).
    """
    logits = np.asarray(logits)
    y = np.asarray(y)
    if logits.ndim != 2 or y.shape != (logits.shape[0],):
        raise ShapeError(f"logits {logits.shape} and labels {y.shape}: expected (B, C) and (B,)")
    if y.size and (y.min() < 0 or y.max() >= logits.shape[1]):
        raise ShapeError(f"labels must lie in [0, {logits.shape[1]}); got {y.min()}..{y.max()}")
    s = logits.astype(np.float64)
    s = s - s.max(axis=1, keepdims=True)
    logsum = np.log(np.exp(s).sum(axis=1))
    rows = np.arange(len(y))
    loss = logsum - s[rows, y]
    err = np.exp(s - logsum[:, None])
    err[rows, y] -= 1.0
    return loss, err.astype(np.float32)
