"""Multi-layer perceptrons: a :class:`~analogdecor.networks.network.Network` of dense layers only.

Layer l computes (N. Ahmad, arXiv 2407.10780, "decorrelated layer")

    z_l = R_l (x_l - mu_l)        (only when decorrelation is on)
    a_l = alpha_l W_l z_l + b_l   (W_l on a tile of the backend, alpha_l a digital output scale)
    h_l = f(a_l)                  (identity for the output layer: logits)

Every run directory, export and sweep written by earlier versions holds MLPs;
their parameter names (``layers.i.W`` ...) and initial weights are unchanged.
"""

from __future__ import annotations

import numpy as np

from analogdecor.crossbar.config import TileConfig
from analogdecor.decorrelation import DecorrelationConfig
from analogdecor.errors import ConfigError, ShapeError
from analogdecor.networks.activations import ACTIVATIONS
from analogdecor.networks.build import weight_parts
from analogdecor.networks.cache import LayerCache
from analogdecor.networks.network import DenseLayer, Network

__all__ = ["MLP", "DenseLayer", "LayerCache"]


class MLP(Network):
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
        if not all(isinstance(layer, DenseLayer) for layer in layers):
            raise ShapeError("an MLP holds dense layers only: use Network for convolutions")
        super().__init__(layers, slope=slope)

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
            tile, bias, alpha, decor = weight_parts(
                backend, fan_out, fan_in, tile_config, (tile_seeds[2 * i], tile_seeds[2 * i + 1]), init=init,
                init_rng=init_rng, activation=activation, weight_scaling=weight_scaling,
                decorrelation=decorrelation,
            )  # fmt: skip
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

    def _with_layers(self, layers: list) -> MLP:
        return MLP(layers, slope=self.slope)
