"""Networks that run on any backend: sequences of dense, conv2d, pooling and flatten layers (:class:`Network`); :class:`MLP` the dense-only case."""

from __future__ import annotations

from analogdecor.networks.activations import ACTIVATIONS, activate, derivative
from analogdecor.networks.cache import LayerCache
from analogdecor.networks.conv import AvgPool2d, Conv2dLayer, Flatten, MaxPool2d
from analogdecor.networks.keys import ParamKey
from analogdecor.networks.mlp import MLP
from analogdecor.networks.network import DenseLayer, Network

__all__ = [
    "ACTIVATIONS",
    "MLP",
    "AvgPool2d",
    "Conv2dLayer",
    "DenseLayer",
    "Flatten",
    "LayerCache",
    "MaxPool2d",
    "Network",
    "ParamKey",
    "activate",
    "derivative",
]
