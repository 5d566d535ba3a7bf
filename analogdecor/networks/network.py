"""Networks as a sequence of layers that run unchanged on any backend.

A parameter layer l (dense or conv2d) computes (N. Ahmad, arXiv 2407.10780, "decorrelated layer")

    z_l = R_l (x_l - mu_l)        (only when decorrelation is on; patches for a conv)
    a_l = alpha_l W_l z_l + b_l   (W_l on a tile of the backend, alpha_l a digital output scale)
    h_l = f(a_l)                  (identity for the output layer: logits)

Pooling and flatten layers sit between them (digital periphery). Biases, the
output scales alpha_l and (by default) R_l are digital; W_l lives on whatever
:func:`analogdecor.backends.make_tile` returns. The network is a thin
container: learning rules read its :class:`LayerCache` records and produce
(z_l, delta_l) row pairs for every parameter layer; one
:class:`analogdecor.learning.UpdateRouter` applies them. Every parameter is
named by a :class:`~analogdecor.networks.keys.ParamKey` (layer index, part).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from analogdecor.decorrelation import Decorrelator
from analogdecor.errors import ConfigError, ShapeError
from analogdecor.networks.activations import activate, derivative
from analogdecor.networks.cache import LayerCache
from analogdecor.networks.keys import ParamKey
from analogdecor.networks.tile_layer import TileLayer

__all__ = ["DenseLayer", "LayerCache", "Network"]


@dataclass
class DenseLayer(TileLayer):
    """One linear layer: optional decorrelator, weight tile, digital bias and output scale."""

    tile: Any
    bias: np.ndarray
    activation: str
    decor: Decorrelator | None = None
    out_scale: float = 1.0

    @property
    def in_shape(self) -> tuple[int, ...]:
        return (self.in_size,)

    @property
    def out_shape(self) -> tuple[int, ...]:
        return (self.out_size,)

    def describe(self) -> str:
        return f"dense {self.in_size}->{self.out_size}"

    def forward(
        self, h: np.ndarray, *, train: bool, slope: float, noise: np.ndarray | None = None,
        mu: np.ndarray | None = None,
    ) -> LayerCache:  # fmt: skip
        m, z, a = self._read_rows(h, train=train, mu=mu)
        if noise is not None:
            a = a + noise
        a = a.astype(np.float32, copy=False)
        return LayerCache(x=h, mu=m, z=z, a=a, h=activate(a, self.activation, slope))

    def signal_rows(self, cache: LayerCache, delta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(z, delta): one row per sample."""
        return cache.z, delta

    def decor_rows(self, cache: LayerCache) -> tuple[np.ndarray, np.ndarray]:
        """(inputs x, signals z) the decorrelator learns from: one row per sample."""
        return cache.x, cache.z

    def decor_subset(self, batch: int) -> int | None:
        """Rows R learns from (None: the decorrelator's own floor(f B) + 1)."""
        return None

    def backward_input(self, delta: np.ndarray, feedback: np.ndarray | None = None) -> np.ndarray:
        """(alpha W R)^T delta per row (transposed reads), or R^T B^T delta with a feedback matrix B."""
        return self._input_error(delta, feedback)

    def fold(self) -> DenseLayer:
        """A plain float layer with the same evaluation outputs (W_eff = alpha W R, b_eff = b - W_eff mu)."""
        tile, b = self._folded_parts()
        return DenseLayer(tile=tile, bias=b, activation=self.activation)


class Network:
    """A sequence of layers (dense, conv2d, pooling, flatten) ending in a parameter layer (the logits).

    Parameters
    ----------
    layers : list
        Each with ``in_shape``/``out_shape``; consecutive shapes must chain.
    slope : float
        Negative slope of leaky_relu.
    """

    def __init__(self, layers: list[Any], *, slope: float = 0.01) -> None:
        if not layers:
            raise ConfigError("a network needs at least one layer")
        for i, (prev, nxt) in enumerate(itertools.pairwise(layers)):
            if tuple(prev.out_shape) != tuple(nxt.in_shape):
                if len(prev.out_shape) == 1 and len(nxt.in_shape) == 1:
                    raise ShapeError(
                        f"layer sizes do not chain: {prev.out_shape[0]} outputs into {nxt.in_shape[0]} inputs"
                    )
                raise ShapeError(
                    f"layer {i + 1} ({nxt.describe()}) expects input {_shape(nxt.in_shape)} but layer {i} "
                    f"({prev.describe()}) gives {_shape(prev.out_shape)}"
                )
        if not layers[-1].has_params:
            raise ConfigError(f"the last layer ({layers[-1].describe()}) must be dense or conv2d (the logits)")
        self.layers = layers
        self.slope = float(slope)
        self.rule_state: dict[str, Any] = {}
        """Fixed state of the learning rule that trained it (FA/DFA feedback matrices), for reference."""

    # ------------------------------------------------------------------ sizes
    @property
    def in_shape(self) -> tuple[int, ...]:
        return tuple(self.layers[0].in_shape)

    @property
    def widths(self) -> list[int]:
        """Inputs, then the outputs of every parameter layer (an MLP's layer sizes)."""
        return [int(np.prod(self.in_shape))] + [int(np.prod(layer.out_shape)) for _, layer in self.param_layers()]

    @property
    def n_outputs(self) -> int:
        return int(np.prod(self.layers[-1].out_shape))

    @property
    def decorrelated(self) -> bool:
        return any(layer.decor is not None for _, layer in self.param_layers())

    def describe(self) -> list[str]:
        """One line per layer: its kind, sizes and output shape."""
        return [f"{i}: {layer.describe()} -> {_shape(layer.out_shape)}" for i, layer in enumerate(self.layers)]

    # ------------------------------------------------------------------ forward
    def _as_input(self, x: np.ndarray) -> np.ndarray:
        h = np.asarray(x, dtype=np.float32)
        shape = self.in_shape
        if h.ndim == 1 + len(shape) and h.shape[1:] == shape:
            return h
        if h.ndim == 2 and h.shape[1] == int(np.prod(shape)):
            return h.reshape(h.shape[0], *shape)
        raise ShapeError(
            f"x has shape {np.shape(x)}: expected (batch, {', '.join(map(str, shape))})"
            + ("" if len(shape) == 1 else f" or (batch, {int(np.prod(shape))})")
        )

    def forward_pass(
        self,
        x: np.ndarray,
        *,
        train: bool = False,
        noise: list[np.ndarray | None] | None = None,
        means: list[np.ndarray | None] | None = None,
    ) -> list[LayerCache]:
        """Run the batch ``x`` through all layers and record every layer.

        Parameters
        ----------
        x : (B, *in_shape) or (B, prod(in_shape)) array
        train : bool
            Centre with the batch mean (True) or the running mean (False).
        noise : list (one entry per layer, None for layers without parameters), optional
            Added to each parameter layer's pre-activation a_l (node perturbation's noisy pass).
        means : list, optional
            Centring means to use instead of the batch means (node perturbation's
            noisy pass reuses the clean pass's means).
        """
        h = self._as_input(x)
        caches = []
        for i, layer in enumerate(self.layers):
            if layer.has_params:
                c = layer.forward(
                    h, train=train, slope=self.slope, noise=None if noise is None else noise[i],
                    mu=None if means is None else means[i],
                )  # fmt: skip
            else:
                c = layer.forward(h)
            caches.append(c)
            h = c.h
        return caches

    EVAL_MAX_ELEMENTS = 1 << 23
    """Evaluation of a conv net runs in chunks whose largest patch matrix has at most this many
    elements (32 MiB of float32), so evaluating 1000 images never builds gigabyte patch matrices."""

    def elements_per_sample(self) -> int:
        """Largest array one sample makes a layer hold: its input, or its patch matrix (a conv)."""
        return max(max(int(np.prod(layer.in_shape)), getattr(layer, "patch_elements", 0)) for layer in self.layers)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Logits (B, outputs) in evaluation mode (running means).

        A network with convolutions runs in chunks of images (see ``EVAL_MAX_ELEMENTS``);
        a dense network in one pass.
        """
        h = self._as_input(x)
        if not any(hasattr(layer, "patch_elements") for layer in self.layers):
            return self.forward_pass(h, train=False)[-1].h.reshape(len(h), -1)
        step = max(1, self.EVAL_MAX_ELEMENTS // self.elements_per_sample())
        parts = [self.forward_pass(h[s : s + step], train=False)[-1].h for s in range(0, len(h), step)]
        return np.concatenate(parts, axis=0).reshape(len(h), -1) if parts else np.zeros((0, self.n_outputs), np.float32)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted class per row of ``x`` (int64)."""
        return np.argmax(self.forward(x), axis=1).astype(np.int64)

    def local_derivative(self, i: int, cache: LayerCache) -> np.ndarray:
        """f'(a_l) of layer ``i``."""
        return derivative(cache.a, cache.h, self.layers[i].activation, self.slope)

    def backward_through(self, i: int, delta: np.ndarray) -> np.ndarray:
        """The error at parameter layer i's input: (alpha W_i R_i)^T delta (col2im for a conv)."""
        return self.layers[i].backward_input(delta)

    # ------------------------------------------------------------------ parameters, tiles and state
    def param_layers(self) -> list[tuple[int, Any]]:
        """(index, layer) of every layer with parameters (dense, conv2d), in order."""
        return [(i, layer) for i, layer in enumerate(self.layers) if layer.has_params]

    def param_caches(self, caches: list[LayerCache]) -> list[LayerCache]:
        """The records of :meth:`param_layers` among a forward pass's ``caches``."""
        return [caches[i] for i, _ in self.param_layers()]

    def tiles(self) -> list[tuple[ParamKey, Any]]:
        """(key, tile) of every weight tile (part W) and R tile (part R), in order."""
        out: list[tuple[ParamKey, Any]] = []
        for i, layer in self.param_layers():
            if layer.decor is not None and layer.decor.tile is not None:
                out.append((ParamKey(i, "R"), layer.decor.tile))
            out.append((ParamKey(i, "W"), layer.tile))
        return out

    def analog_layers(self) -> list[tuple[str, Any]]:
        """(name, tile) of every tile, named ``str(ParamKey)`` ("layers.i.W", "layers.i.R"), in order."""
        return [(str(key), tile) for key, tile in self.tiles()]

    def tile_geometry(self, name: str) -> dict[str, Any]:
        """How tile ``name``'s (out, in) map sits in its layer (export metadata); {} for dense layers."""
        key = ParamKey.parse(name)
        layer = self.layers[key.layer]
        geometry = getattr(layer, "geometry", None)
        return geometry(key.part) if geometry is not None else {}

    def digital_scale(self, key: ParamKey) -> tuple[Any, str]:
        """(object, attribute) of the digital output scale that follows tile ``key``."""
        if not key.is_tile or key.layer >= len(self.layers) or not self.layers[key.layer].has_params:
            raise ConfigError(f"no tile {str(key)!r} in this network")
        layer = self.layers[key.layer]
        if key.part == "W":
            return layer, "out_scale"
        if layer.decor is None or layer.decor.tile is None:
            raise ConfigError(f"no tile {str(key)!r} in this network (layer {key.layer} has no R tile)")
        return layer.decor, "scale"

    def tile_inputs(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """The rows each tile reads for the batch ``x`` in evaluation mode, by tile name."""
        caches = self.forward_pass(x, train=False)
        out: dict[str, np.ndarray] = {}
        for (i, layer), cache in zip(self.param_layers(), self.param_caches(caches), strict=True):
            x_rows, z_rows = layer.decor_rows(cache)
            out[str(ParamKey(i, "W"))] = z_rows
            if layer.decor is not None and layer.decor.tile is not None:
                xc, _ = layer.decor.center(x_rows, train=False)
                out[str(ParamKey(i, "R"))] = xc
        return out

    def state_dict(self) -> dict[str, Any]:
        """Flat dict "layers.i.<part>[.<key>]" (``ParamKey`` names) -> numpy array or scalar."""
        out: dict[str, Any] = {}
        for i, layer in self.param_layers():
            out[str(ParamKey(i, "bias"))] = layer.bias.copy()
            out[str(ParamKey(i, "out_scale"))] = np.float64(layer.out_scale)
            for k, v in layer.tile.state_dict().items():
                out[ParamKey(i, "W").prefix + k] = v
            if layer.decor is not None:
                for k, v in layer.decor.state_dict().items():
                    out[ParamKey(i, "decor").prefix + k] = v
                if layer.decor.tile is not None:
                    for k, v in layer.decor.tile.state_dict().items():
                        out[ParamKey(i, "R").prefix + k] = v
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output exactly (the architecture must match)."""

        def sub(prefix: str) -> dict[str, Any]:
            return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}

        for i, layer in self.param_layers():
            bkey = str(ParamKey(i, "bias"))
            if bkey not in state:
                raise ShapeError(f"state has no entry {bkey!r}: it was saved from another architecture")
            bias = np.asarray(state[bkey], dtype=np.float32)
            if bias.shape != layer.bias.shape:
                raise ShapeError(f"{bkey} has shape {bias.shape}: expected {layer.bias.shape}")
            layer.bias = bias.copy()
            layer.out_scale = float(state[str(ParamKey(i, "out_scale"))])
            layer.tile.load_state_dict(sub(ParamKey(i, "W").prefix))
            if layer.decor is not None:
                layer.decor.load_state_dict(sub(ParamKey(i, "decor").prefix))
                if layer.decor.tile is not None:
                    layer.decor.tile.load_state_dict(sub(ParamKey(i, "R").prefix))

    def fold(self) -> Network:
        """A plain float network (no decorrelation) with the same evaluation outputs.

        Every parameter layer's R and running mean fold into its weights and bias
        (W_eff = alpha W R, b_eff = b - alpha W R mu; :func:`fold_linear`, in patch space for
        a convolution); weights are read from the tiles, so for analogue tiles the result
        equals the noise-free read of the trained network.
        """
        return self._with_layers([layer.fold() for layer in self.layers])

    def _with_layers(self, layers: list[Any]) -> Network:
        return Network(layers, slope=self.slope)


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(s) for s in shape)
