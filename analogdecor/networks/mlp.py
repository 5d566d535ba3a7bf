"""Multi-layer perceptrons that run unchanged on any backend.

Layer l computes (N. Ahmad, arXiv 2407.10780, "decorrelated layer")

    z_l = R_l (x_l - mu_l)        (only when decorrelation is on)
    a_l = alpha_l W_l z_l + b_l   (W_l on a tile of the backend, alpha_l a digital output scale)
    h_l = f(a_l)                  (identity for the output layer: logits)

Biases, the output scales alpha_l and (by default) R_l are digital
(periphery); W_l lives on whatever :func:`analogdecor.backends.make_tile`
returns. The network is a thin container: learning rules read its
:class:`LayerCache` records and produce (z_l, delta_l) pairs.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from analogdecor.backends import FloatTile, is_analog, make_tile
from analogdecor.crossbar.config import TileConfig
from analogdecor.decorrelation import DecorrelationConfig, Decorrelator, fold_linear
from analogdecor.errors import ConfigError, ShapeError
from analogdecor.networks.activations import ACTIVATIONS, activate, derivative
from analogdecor.networks.init import init_bias, init_weights
from analogdecor.networks.keys import ParamKey

__all__ = ["MLP", "DenseLayer", "LayerCache"]


@dataclass
class DenseLayer:
    """One linear layer: optional decorrelator, weight tile, digital bias and output scale."""

    tile: Any
    bias: np.ndarray
    activation: str
    decor: Decorrelator | None = None
    out_scale: float = 1.0

    @property
    def in_size(self) -> int:
        return int(self.tile.in_size)

    @property
    def out_size(self) -> int:
        return int(self.tile.out_size)

    def effective_weights(self) -> np.ndarray:
        """alpha W as float32 (the digital view of the layer's weights)."""
        return (self.tile.read_weights() * np.float32(self.out_scale)).astype(np.float32)

    def decor_rows(self, cache: LayerCache) -> tuple[np.ndarray, np.ndarray]:
        """(inputs x, signals z) the decorrelator learns from: one row per sample."""
        return cache.x, cache.z


@dataclass
class LayerCache:
    """What one forward pass recorded at a layer (all (B, .) float32 except mu)."""

    x: np.ndarray
    mu: np.ndarray | None
    z: np.ndarray
    a: np.ndarray
    h: np.ndarray


class MLP:
    """A stack of :class:`DenseLayer`; build one with :meth:`MLP.build`.

    Parameters
    ----------
    layers : list of DenseLayer
    slope : float
        Negative slope of leaky_relu.
    """

    def __init__(self, layers: list[DenseLayer], *, slope: float = 0.01) -> None:
        if not layers:
            raise ConfigError("an MLP needs at least one layer")
        for prev, nxt in itertools.pairwise(layers):
            if prev.out_size != nxt.in_size:
                raise ShapeError(
                    f"layer sizes do not chain: {prev.out_size} outputs into {nxt.in_size} inputs"
                )
        self.layers = layers
        self.slope = float(slope)
        self.rule_state: dict[str, Any] = {}
        """Fixed state of the learning rule that trained it (FA/DFA feedback matrices), for reference."""

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(
        cls,
        widths: list[int] | tuple[int, ...],
        *,
        activation: str = "leaky_relu",
        slope: float = 0.01,
        backend: str = "float",
        tile_config: TileConfig | None = None,
        decorrelation: DecorrelationConfig | None = None,
        weight_scaling: float | None = None,
        init: str = "he",
        seed: int = 0,
    ) -> MLP:
        """An MLP with layer sizes ``widths`` = (inputs, hidden..., outputs).

        Parameters
        ----------
        widths : sequence of int
            At least two sizes.
        activation : str
            Hidden activation: relu, leaky_relu, tanh, sigmoid (output: identity).
        backend : {"float", "numba", "aihwkit"}
            Where every weight matrix lives.
        tile_config : TileConfig, optional
            Settings of analogue tiles (ignored by the float backend except for its conductance view).
        decorrelation : DecorrelationConfig, optional
            When enabled, every layer gets its own R (on a tile of ``backend`` if ``on_tile``).
        weight_scaling : float, optional
            Analogue tiles only: initial weights are scaled so that the largest |w|
            of each tile equals this value, and a digital output scale alpha undoes
            it (as aihwkit's weight_scaling_omega). Uses more of the device range.
        init : {"torch", "he"}
            Initial weights and biases (:mod:`analogdecor.networks.init`): ``torch`` as
            torch.nn.Linear (and the paper's code), U(+-1/sqrt(fan_in)) for weights and
            biases; ``he`` He-uniform (Glorot for tanh/sigmoid) with zero biases.
        seed : int
            Initial weights and every tile's seed derive from it.

        Notes
        -----
        Weights are drawn before any weight scaling, so every backend starts from the
        same effective weights alpha W for a given seed and scheme.
        """
        widths = [int(w) for w in widths]
        if len(widths) < 2 or min(widths) < 1:
            raise ConfigError(f"widths = {widths!r}: need at least (inputs, outputs), all >= 1")
        if activation not in ACTIVATIONS or activation == "identity":
            raise ConfigError(f"activation = {activation!r}: must be one of relu, leaky_relu, tanh, sigmoid")
        if weight_scaling is not None and not weight_scaling > 0:
            raise ConfigError(f"weight_scaling = {weight_scaling!r}: must be > 0")
        ss = np.random.SeedSequence(seed)
        init_rng = np.random.default_rng(ss.spawn(1)[0])
        tile_seeds = [int(s) for s in ss.generate_state(2 * len(widths), dtype=np.uint32)]
        layers = []
        n = len(widths) - 1
        for i in range(n):
            fan_in, fan_out = widths[i], widths[i + 1]
            W = init_weights((fan_out, fan_in), fan_in, init, init_rng, fan_out=fan_out, activation=activation)
            bias = init_bias(fan_out, fan_in, init, init_rng)
            tile = make_tile(backend, fan_out, fan_in, tile_config, seed=tile_seeds[2 * i])
            alpha = 1.0
            if weight_scaling is not None and is_analog(tile):
                alpha = float(np.abs(W).max()) / weight_scaling
                W = (W / np.float32(alpha)).astype(np.float32)
            tile.set_weights(W)
            decor = None
            if decorrelation is not None and decorrelation.enabled:
                rtile = None
                if decorrelation.on_tile:
                    rtile = make_tile(backend, fan_in, fan_in, tile_config, seed=tile_seeds[2 * i + 1])
                decor = Decorrelator(fan_in, decorrelation, tile=rtile)
            layers.append(
                DenseLayer(
                    tile=tile,
                    bias=bias,
                    activation=activation if i < n - 1 else "identity",
                    decor=decor,
                    out_scale=alpha,
                )
            )
        return cls(layers, slope=slope)

    # ------------------------------------------------------------------ sizes
    @property
    def widths(self) -> list[int]:
        return [self.layers[0].in_size] + [layer.out_size for layer in self.layers]

    @property
    def decorrelated(self) -> bool:
        return any(layer.decor is not None for layer in self.layers)

    # ------------------------------------------------------------------ forward
    def forward_pass(
        self,
        x: np.ndarray,
        *,
        train: bool = False,
        noise: list[np.ndarray] | None = None,
        means: list[np.ndarray | None] | None = None,
    ) -> list[LayerCache]:
        """Run the batch ``x`` (B, inputs) through all layers and record every layer.

        Parameters
        ----------
        train : bool
            Centre with the batch mean (True) or the running mean (False).
        noise : list of (B, n_l) arrays, optional
            Added to each layer's pre-activation a_l (node perturbation's noisy pass).
        means : list of arrays, optional
            Centring means to use instead of the batch means (node perturbation's
            noisy pass reuses the clean pass's means).
        """
        h = np.asarray(x, dtype=np.float32)
        if h.ndim != 2 or h.shape[1] != self.layers[0].in_size:
            raise ShapeError(f"x has shape {np.shape(x)}: expected (batch, {self.layers[0].in_size})")
        caches = []
        for i, layer in enumerate(self.layers):
            x_l = h
            mu = None
            if layer.decor is not None:
                xc, mu = layer.decor.center(x_l, train=train, mu=None if means is None else means[i])
                z = layer.decor.apply(xc)
            else:
                z = x_l
            a = layer.tile.forward(z)
            if layer.out_scale != 1.0:
                a = a * np.float32(layer.out_scale)
            a = a + layer.bias
            if noise is not None:
                a = a + noise[i]
            a = a.astype(np.float32, copy=False)
            h = activate(a, layer.activation, self.slope)
            caches.append(LayerCache(x=x_l, mu=mu, z=z, a=a, h=h))
        return caches

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Logits (B, outputs) in evaluation mode (running means)."""
        return self.forward_pass(x, train=False)[-1].h

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted class per row of ``x`` (int64)."""
        return np.argmax(self.forward(x), axis=1).astype(np.int64)

    def local_derivative(self, i: int, cache: LayerCache) -> np.ndarray:
        """f'(a_l) of layer ``i``."""
        return derivative(cache.a, cache.h, self.layers[i].activation, self.slope)

    def backward_through(self, i: int, delta: np.ndarray) -> np.ndarray:
        """(alpha W_i R_i)^T delta per row: the error at layer i's input (transposed reads)."""
        layer = self.layers[i]
        e = layer.tile.backward(delta)
        if layer.out_scale != 1.0:
            e = e * np.float32(layer.out_scale)
        if layer.decor is not None:
            e = layer.decor.backward(e)
        return np.asarray(e, dtype=np.float32)

    # ------------------------------------------------------------------ parameters, tiles and state
    def param_layers(self) -> list[tuple[int, DenseLayer]]:
        """(index, layer) of every layer with parameters (all of an MLP's), in order."""
        return list(enumerate(self.layers))

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

    def digital_scale(self, key: ParamKey) -> tuple[Any, str]:
        """(object, attribute) of the digital output scale that follows tile ``key``."""
        if not key.is_tile or key.layer >= len(self.layers):
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

    def fold(self) -> MLP:
        """A plain float MLP (no decorrelation) with the same evaluation outputs.

        Every layer's R and running mean fold into its weights and bias
        (W_eff = alpha W R, b_eff = b - alpha W R mu; :func:`fold_linear`); weights
        are read from the tiles, so for analogue tiles the result equals the
        noise-free read of the trained network.
        """
        folded = []
        for layer in self.layers:
            W = layer.effective_weights()
            b = layer.bias
            if layer.decor is not None:
                W, b = fold_linear(W, b, layer.decor.matrix(), layer.decor.mu)
            tile = FloatTile(layer.out_size, layer.in_size, getattr(layer.tile, "config", None))
            tile.set_weights(W)
            folded.append(
                DenseLayer(
                    tile=tile, bias=np.asarray(b, dtype=np.float32).copy(), activation=layer.activation
                )
            )
        return MLP(folded, slope=self.slope)
