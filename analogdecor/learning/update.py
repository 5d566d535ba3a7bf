"""Apply a rule's (z, delta) pairs to a network: digital optimiser steps or pulsed tile updates."""

from __future__ import annotations

from typing import Any

import numpy as np

from analogdecor.backends import is_analog
from analogdecor.learning.rules import RuleResult
from analogdecor.networks.mlp import MLP

__all__ = ["apply_updates", "decorrelation_step"]


def apply_updates(net: MLP, result: RuleResult, optimizer: Any, analog_lr: float) -> None:
    """W_l -= lr * mean_n (alpha_l delta_l,n) z_l,n^T and b_l -= lr * mean_n delta_l,n for every layer.

    Digital weights (float backend) and all biases go through ``optimizer``
    (SGD or Adam, with the gradient alpha delta^T z / B). Analogue tiles get the
    outer product as pulses: ``tile.update(z, alpha delta / B, analog_lr)``.
    """
    for i, (layer, (z, delta)) in enumerate(zip(net.layers, result.signals, strict=True)):
        B = z.shape[0]
        d = delta if layer.out_scale == 1.0 else delta * np.float32(layer.out_scale)
        if is_analog(layer.tile):
            layer.tile.update(z, (d / np.float32(B)).astype(np.float32), analog_lr)
        else:
            grad = (d.T.astype(np.float64) @ z.astype(np.float64)) / B
            optimizer.step(f"layers.{i}.W", layer.tile.weights, grad)
        optimizer.step(f"layers.{i}.bias", layer.bias, delta.mean(axis=0, dtype=np.float64))


def decorrelation_step(net: MLP, result: RuleResult) -> None:
    """Update every layer's R (and running mean) from the clean pass of ``result``."""
    for layer, cache in zip(net.layers, result.caches, strict=True):
        if layer.decor is None:
            continue
        if cache.mu is not None:
            layer.decor.update_mean(cache.mu)
        layer.decor.step(cache.x, cache.z)
