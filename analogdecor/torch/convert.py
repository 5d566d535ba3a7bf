"""convert_to_analog: put a torch model's linear and convolution layers on emulated tiles."""

from __future__ import annotations

import copy

import numpy as np
from torch import nn

from analogdecor.decorrelation import DecorrelationConfig
from analogdecor.torch.decorrelated import DecorrelatedConv2d, DecorrelatedLinear
from analogdecor.torch.modules import AnalogConv2d, AnalogLinear, DeviceSpec

__all__ = ["convert_to_analog"]


def convert_to_analog(
    model: nn.Module,
    preset: DeviceSpec | str,
    decorrelate: bool = False,
    *,
    decorrelation: DecorrelationConfig | None = None,
    seed: int = 0,
    weight_scaling: float | None = 0.6,
    inplace: bool = False,
) -> nn.Module:
    """Replace every ``nn.Linear`` and ``nn.Conv2d`` of ``model`` by a layer on emulated tiles.

    Parameters
    ----------
    model : nn.Module
        Any torch model; its other modules (activations, pooling, normalisation) stay as they are.
    preset : str, TileConfig, None or "float"
        Device preset name (``analogdecor devices list``) or TileConfig of the tiles; None for ideal
        tiles; ``"float"`` keeps the weights digital (useful with ``decorrelate=True``: the paper's
        method on a float model).
    decorrelate : bool
        Give every converted layer a decorrelated input (:class:`DecorrelatedLinear`,
        :class:`DecorrelatedConv2d`) with ``decorrelation``'s rule (default: the paper's, R in float).
    seed : int
        Every tile's seed derives from it, layer by layer in the order of ``model.modules()`` (as
        :meth:`analogdecor.networks.MLP.build` derives its tiles' seeds): the same seed gives the same chip.
    weight_scaling : float or None
        See :class:`AnalogLinear`.
    inplace : bool
        Change ``model`` itself instead of a deep copy.

    Returns
    -------
    nn.Module
        The converted model; the trained weights and biases are kept (written onto the tiles).
        Train it with :class:`AnalogSGD`.
    """
    model = model if inplace else copy.deepcopy(model)
    targets = [m for m in model.modules() if type(m) in (nn.Linear, nn.Conv2d)]
    seeds = np.random.SeedSequence(seed).generate_state(2 * max(len(targets), 1), dtype=np.uint32)
    order = {id(m): i for i, m in enumerate(targets)}
    if isinstance(model, nn.Linear | nn.Conv2d) and type(model) in (nn.Linear, nn.Conv2d):
        return _convert(model, preset, decorrelate, decorrelation, seeds, 0, weight_scaling)
    _replace(model, preset, decorrelate, decorrelation, seeds, order, weight_scaling)
    return model


def _replace(module: nn.Module, preset, decorrelate, decorrelation, seeds, order, weight_scaling) -> None:  # type: ignore[no-untyped-def]
    for name, child in module.named_children():
        if type(child) in (nn.Linear, nn.Conv2d):
            new = _convert(child, preset, decorrelate, decorrelation, seeds, order[id(child)], weight_scaling)
            setattr(module, name, new)
        else:
            _replace(child, preset, decorrelate, decorrelation, seeds, order, weight_scaling)


def _convert(layer: nn.Module, preset, decorrelate, decorrelation, seeds, i, weight_scaling) -> nn.Module:  # type: ignore[no-untyped-def]
    w_seed, r_seed = int(seeds[2 * i]), int(seeds[2 * i + 1])
    if isinstance(layer, nn.Linear):
        if decorrelate:
            return DecorrelatedLinear.from_linear(layer, device=preset, decorrelation=decorrelation, seed=w_seed,
                                                  r_seed=r_seed, weight_scaling=weight_scaling)  # fmt: skip
        if preset == "float":
            return layer
        return AnalogLinear.from_linear(layer, device=preset, seed=w_seed, weight_scaling=weight_scaling)
    assert isinstance(layer, nn.Conv2d)
    if decorrelate:
        return DecorrelatedConv2d.from_conv(layer, device=preset, decorrelation=decorrelation, seed=w_seed,
                                            r_seed=r_seed, weight_scaling=weight_scaling)  # fmt: skip
    if preset == "float":
        return layer
    return AnalogConv2d.from_conv(layer, device=preset, seed=w_seed, weight_scaling=weight_scaling)
