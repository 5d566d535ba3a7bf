"""Build any sequential network from a list of layer specifications, and the paper's named models.

``model.layers`` in a TOML config is a list of tables, one per layer::

    [[model.layers]]
    kind = "conv2d"
    channels = 32
    kernel = 3
    padding = 1

    [[model.layers]]
    kind = "maxpool"
    size = 2

    [[model.layers]]
    kind = "flatten"

    [[model.layers]]
    kind = "dense"
    units = 1000

The output layer (dense, one unit per class, identity activation) is always
appended; a flatten is inserted before it when the last layer leaves an image.
Every dense and conv2d layer but the output uses the model's activation.

Named architectures (N. Ahmad, arXiv 2407.10780 and its code, crgd/models.py):

``paper-convnet``
    conv3x3(32), conv3x3(32), max-pool 2, conv3x3(64), conv3x3(64), max-pool 2,
    flatten, dense 1000, output; stride 1, padding 1, LeakyReLU after every conv
    and the hidden dense layer.
``paper-mlp``
    4 hidden dense layers of 1000 units.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from analogdecor.backends import is_analog, make_tile
from analogdecor.crossbar.config import TileConfig
from analogdecor.decorrelation import DecorrelationConfig, Decorrelator
from analogdecor.errors import ConfigError
from analogdecor.networks.activations import ACTIVATIONS
from analogdecor.networks.conv import AvgPool2d, Conv2dLayer, Flatten, MaxPool2d
from analogdecor.networks.init import init_bias, init_weights
from analogdecor.networks.network import DenseLayer, Network
from analogdecor.networks.spec import LAYER_KINDS, LayerSpec

__all__ = ["ARCHITECTURES", "IMAGE_SHAPES", "LAYER_KINDS", "LayerSpec", "architecture", "build_network", "input_shape"]

def _conv(c: int) -> LayerSpec:
    return LayerSpec("conv2d", channels=c, kernel=3, stride=1, padding=1)


ARCHITECTURES: dict[str, tuple[LayerSpec, ...]] = {
    "paper-convnet": (
        _conv(32), _conv(32), LayerSpec("maxpool", size=2), _conv(64), _conv(64), LayerSpec("maxpool", size=2),
        LayerSpec("flatten"), LayerSpec("dense", units=1000),
    ),
    "paper-mlp": (LayerSpec("flatten"), *(LayerSpec("dense", units=1000) for _ in range(4))),
}


IMAGE_SHAPES: dict[str, tuple[int, int, int]] = {
    "digits": (1, 8, 8),
    "mnist": (1, 28, 28),
    "fashion-mnist": (1, 28, 28),
    "cifar10": (3, 32, 32),
    "cifar100": (3, 32, 32),
    "tiny-imagenet": (3, 64, 64),
}
"""Image shape (C, H, W) of each image data set's flattened rows (CIFAR rows are channel-major)."""


def input_shape(dataset: str, n_features: int, given: tuple[int, ...] | None = None) -> tuple[int, ...]:
    """The (C, H, W) shape a conv net reads the data set's rows as.

    ``given`` (``model.in_shape``) wins; else the data set's own shape; an ``idx`` directory of
    square images is read as 1 x s x s. ConfigError when the sizes disagree or no shape is known.
    """
    shape = tuple(given) if given is not None else IMAGE_SHAPES.get(dataset)
    if shape is None:
        side = round(math.sqrt(n_features))
        if dataset == "idx" and side * side == n_features:
            shape = (1, side, side)
        else:
            raise ConfigError(
                f"data set {dataset!r} has {n_features} features and no known image shape: set model.in_shape"
            )
    if int(np.prod(shape)) != n_features:
        raise ConfigError(
            f"model.in_shape = {list(shape)} holds {int(np.prod(shape))} values but data set {dataset!r} has "
            f"{n_features} features per sample"
        )
    return shape


def architecture(name: str) -> tuple[LayerSpec, ...]:
    """The hidden layers of a named model (see the module notes)."""
    if name not in ARCHITECTURES:
        raise ConfigError(f"architecture {name!r}: must be one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def build_network(
    specs: list[LayerSpec] | tuple[LayerSpec, ...],
    in_shape: tuple[int, ...],
    n_classes: int,
    *,
    activation: str = "leaky_relu",
    slope: float = 0.01,
    backend: str = "float",
    tile_config: TileConfig | None = None,
    decorrelation: DecorrelationConfig | None = None,
    weight_scaling: float | None = None,
    init: str = "he",
    seed: int = 0,
) -> Network:
    """A network of ``specs`` on inputs of ``in_shape`` ((C, H, W) or (d,)) with ``n_classes`` outputs.

    Initial weights and tile seeds derive from ``seed`` as in :meth:`MLP.build`, under the
    ``init`` scheme of :mod:`analogdecor.networks.init` (a conv's fan-in is C_in k^2). An architecture that does
    not fit its input (a kernel larger than its padded input, a pooling that leaves
    nothing, a dense layer on an image) raises ConfigError naming the layer and the sizes.
    """
    if activation not in ACTIVATIONS or activation == "identity":
        raise ConfigError(f"activation = {activation!r}: must be one of relu, leaky_relu, tanh, sigmoid")
    if weight_scaling is not None and not weight_scaling > 0:
        raise ConfigError(f"weight_scaling = {weight_scaling!r}: must be > 0")
    specs = list(specs)
    shape = tuple(int(s) for s in in_shape)
    # shapes first: errors name the layer before any tile is made
    plan: list[tuple[LayerSpec, tuple[int, ...]]] = []
    for i, spec in enumerate([*specs, None]):
        if spec is None:
            if len(shape) != 1:
                plan.append((LayerSpec("flatten"), shape))
                shape = (int(np.prod(shape)),)
            plan.append((LayerSpec("dense", units=int(n_classes)), shape))
            break
        plan.append((spec, shape))
        shape = _out_shape(i, spec, shape)
    ss = np.random.SeedSequence(seed)
    init_rng = np.random.default_rng(ss.spawn(1)[0])
    n_param = sum(1 for s, _ in plan if s.kind in ("conv2d", "dense"))
    tile_seeds = [int(s) for s in ss.generate_state(2 * (n_param + 1), dtype=np.uint32)]
    layers: list[Any] = []
    p = 0
    for i, (spec, shp) in enumerate(plan):
        last = i == len(plan) - 1
        if spec.kind == "flatten":
            layers.append(Flatten(shp))
            continue
        if spec.kind in ("maxpool", "avgpool"):
            cls = MaxPool2d if spec.kind == "maxpool" else AvgPool2d
            layers.append(cls(shp, spec.size, spec.step))
            continue
        if spec.kind == "dense":
            fan_in, fan_out = shp[0], int(spec.units or 0)
        else:
            fan_in, fan_out = shp[0] * spec.kernel**2, int(spec.channels or 0)
        tile, bias, alpha, decor = weight_parts(
            backend, fan_out, fan_in, tile_config, (tile_seeds[2 * p], tile_seeds[2 * p + 1]), init=init,
            init_rng=init_rng, activation=activation, weight_scaling=weight_scaling, decorrelation=decorrelation,
        )  # fmt: skip
        act = "identity" if last else activation
        if spec.kind == "dense":
            layers.append(DenseLayer(tile=tile, bias=bias, activation=act, decor=decor, out_scale=alpha))
        else:
            layers.append(
                Conv2dLayer(
                    tile=tile, bias=bias, activation=act, in_shape=shp, kernel=spec.kernel, stride=spec.step,
                    padding=spec.padding, decor=decor, out_scale=alpha,
                )
            )
        p += 1
    return Network(layers, slope=slope)


def weight_parts(
    backend: str, fan_out: int, fan_in: int, tile_config: TileConfig | None, seeds: tuple[int, int], *,
    init: str, init_rng: np.random.Generator, activation: str, weight_scaling: float | None,
    decorrelation: DecorrelationConfig | None,
) -> tuple[Any, np.ndarray, float, Decorrelator | None]:  # fmt: skip
    """A parameter layer's (tile, bias, digital scale alpha, decorrelator), the same for dense and conv.

    The weights are drawn by the ``init`` scheme before any scaling (so every backend starts from the
    same alpha W); on an analogue tile with ``weight_scaling`` they are stored as W / alpha with
    alpha = max|W| / weight_scaling. R gets its own tile (seed ``seeds[1]``) when decorrelating on tiles.
    """
    W = init_weights((fan_out, fan_in), fan_in, init, init_rng, fan_out=fan_out, activation=activation)
    bias = init_bias(fan_out, fan_in, init, init_rng)
    tile = make_tile(backend, fan_out, fan_in, tile_config, seed=seeds[0])
    alpha = 1.0
    if weight_scaling is not None and is_analog(tile):
        alpha = float(np.abs(W).max()) / weight_scaling
        W = (W / np.float32(alpha)).astype(np.float32)
    tile.set_weights(W)
    decor = None
    if decorrelation is not None and decorrelation.enabled:
        rtile = None
        if decorrelation.on_tile:
            rtile = make_tile(backend, fan_in, fan_in, tile_config, seed=seeds[1])
        decor = Decorrelator(fan_in, decorrelation, tile=rtile)
    return tile, bias, alpha, decor


def _out_shape(i: int, spec: LayerSpec, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Output shape of hidden layer ``i`` or a ConfigError naming it and the sizes."""
    where = f"model.layers[{i}] ({spec.kind})"
    if spec.kind == "flatten":
        return (int(np.prod(shape)),)
    if spec.kind == "dense":
        if len(shape) != 1:
            raise ConfigError(f"{where}: its input is a {'x'.join(map(str, shape))} map; add a flatten layer before it")
        return (int(spec.units or 0),)
    if len(shape) != 3:
        raise ConfigError(f"{where}: needs a C x H x W input, got {shape[0]} features")
    C, H, W = shape
    if spec.kind == "conv2d":
        k, s, pad = spec.kernel, spec.step, spec.padding
        if k > H + 2 * pad or k > W + 2 * pad:
            raise ConfigError(
                f"{where}: kernel {k}x{k} is larger than its {C}x{H}x{W} input with padding {pad}"
            )
        return (int(spec.channels or 0), (H + 2 * pad - k) // s + 1, (W + 2 * pad - k) // s + 1)
    s = spec.step
    if spec.size > H or spec.size > W:
        raise ConfigError(f"{where}: a {spec.size}x{spec.size} pooling leaves nothing of its {C}x{H}x{W} input")
    return (C, (H - spec.size) // s + 1, (W - spec.size) // s + 1)

