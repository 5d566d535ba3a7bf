"""Networks that run on any backend: :class:`MLP` of any depth and width."""

from __future__ import annotations

from analogdecor.networks.activations import ACTIVATIONS, activate, derivative
from analogdecor.networks.mlp import MLP, DenseLayer, LayerCache

__all__ = ["ACTIVATIONS", "MLP", "DenseLayer", "LayerCache", "activate", "derivative"]
