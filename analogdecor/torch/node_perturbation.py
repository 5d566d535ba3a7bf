"""Node perturbation for torch models of analogdecor's modules (and plain linear/conv layers).

Node perturbation needs forward passes only (no backward path, no weight transport), which is
what makes it suit hardware (analogdecor.learning.rules.np_deltas; Dalm, van Gerven & Ahmad,
arXiv 2310.00965). :func:`node_perturbation` runs the batch twice, clean and noisy: in the noisy
pass every weight layer adds eps_l ~ N(0, sigma^2) to its output (its pre-activation; all layers
at once, so the noise propagates downstream), and decorrelated layers centre with the clean pass's
means. With dL_n = L_noisy,n - L_clean,n, the error of layer l is delta_l,n = (dL_n / sigma^2) eps_l,n,
and the estimate of the gradient of the mean loss, (1/B) sum_n delta_l,n z_l,n^T, is written where
:class:`~analogdecor.torch.AnalogSGD` applies it: as recorded rows of every analogue layer (its
pulsed update), into ``.grad`` of digital weights and of every bias. Decorrelated layers record
the clean pass for R's step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from analogdecor.errors import ConfigError
from analogdecor.learning.losses import softmax_xent
from analogdecor.torch.decorrelated import _Decorrelated
from analogdecor.torch.modules import AnalogConv2d, AnalogLinear, _conv_args, _rows, _TileLayer

__all__ = ["node_perturbation"]

_WEIGHT_LAYERS = (AnalogLinear, AnalogConv2d, nn.Linear, nn.Conv2d)


def _per_sample_xent(outputs: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
    """Per-sample softmax cross-entropy in float64 (analogdecor's own, as its training loop computes it)."""
    return softmax_xent(outputs.detach().cpu().numpy(), targets.detach().cpu().numpy())[0]


def _input_rows(layer: nn.Module, x: torch.Tensor) -> np.ndarray:
    """The rows a layer's weights see: inputs (N, in) of a linear layer, im2col patches of a convolution."""
    if isinstance(layer, AnalogConv2d):
        return _rows(layer.geometry.patches(x)[0])
    if isinstance(layer, nn.Conv2d):
        geometry = _conv_args(layer)  # groups = 1 and zero padding, or a ConfigError
        cols = F.unfold(x, geometry["kernel_size"], dilation=geometry["dilation"], padding=geometry["padding"],
                        stride=geometry["stride"])  # fmt: skip
        return _rows(cols.transpose(1, 2).reshape(-1, cols.shape[1]))
    return _rows(x.reshape(-1, x.shape[-1]))


def _output_rows(layer: nn.Module, delta: np.ndarray) -> np.ndarray:
    """(N, out) rows of a layer's output-shaped array ((B, C, H, W) maps for convolutions)."""
    if isinstance(layer, AnalogConv2d | nn.Conv2d):
        return np.ascontiguousarray(delta.transpose(0, 2, 3, 1).reshape(-1, delta.shape[1]))
    return delta.reshape(-1, delta.shape[-1])


@torch.no_grad()
def node_perturbation(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    sigma: float,
    rng: np.random.Generator | int,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], Any] | None = None,
) -> float:
    """Write the node-perturbation estimate of the batch (x, y) where ``AnalogSGD.step()`` applies it.

    Parameters
    ----------
    model : nn.Module
        In training mode; its weight layers (AnalogLinear, AnalogConv2d, nn.Linear, nn.Conv2d,
        decorrelated or not) are perturbed.
    x, y : Tensor
        Inputs and targets of the batch (B samples).
    sigma : float
        Standard deviation of the perturbation.
    rng : numpy.random.Generator or int
        Source of the perturbations (drawn layer by layer in execution order).
    loss_fn : callable, optional
        ``loss_fn(outputs, y)`` -> per-sample losses (B,), a tensor or array. Default: softmax
        cross-entropy (analogdecor's, in float64).

    Returns
    -------
    float
        The clean pass's mean loss.
    """
    if not sigma > 0:
        raise ConfigError(f"sigma = {sigma!r}: must be > 0")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    loss_fn = loss_fn or _per_sample_xent
    layers = [m for m in model.modules() if isinstance(m, _WEIGHT_LAYERS)]
    if not layers:
        raise ConfigError("node_perturbation: the model has no linear or convolution layer to perturb")
    decorrelated = [m for m in model.modules() if isinstance(m, _Decorrelated)]
    B = x.shape[0]

    inputs: dict[int, np.ndarray] = {}

    def record_input(module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> None:
        inputs[id(module)] = _input_rows(module, args[0])

    eps: dict[int, np.ndarray] = {}

    def perturb(module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
        e = (sigma * rng.standard_normal(tuple(output.shape))).astype(np.float32)
        eps[id(module)] = e
        return output + torch.from_numpy(e).to(output.device)

    handles = [m.register_forward_hook(record_input) for m in layers]
    try:
        clean = np.asarray(loss_fn(model(x), y), dtype=np.float64).reshape(B)
    finally:
        for h in handles:
            h.remove()
    saved = []
    for m in decorrelated:
        last = m._last
        saved.append((m.fixed_mean, m.recording))
        m.fixed_mean = None if last is None else last[2]
        m.recording = False
    handles = [m.register_forward_hook(perturb) for m in layers]
    try:
        noisy = np.asarray(loss_fn(model(x), y), dtype=np.float64).reshape(B)
    finally:
        for h in handles:
            h.remove()
        for m, (mean, rec) in zip(decorrelated, saved, strict=True):
            m.fixed_mean, m.recording = mean, rec
    scale = ((noisy - clean) / (sigma * sigma)).astype(np.float32)
    for layer in layers:
        if id(layer) not in eps:
            continue  # not reached by this model's forward pass
        e = eps[id(layer)]
        # rows of sample n: the output's leading dimension is B, or B * L for a kernel applied to
        # the L patches of each image (sample-major, as DecorrelatedConv2d's inner layer sees them)
        per_row = scale if e.shape[0] == B else np.repeat(scale, e.shape[0] // B)
        delta = per_row.reshape((e.shape[0],) + (1,) * (e.ndim - 1)) * e
        g = (_output_rows(layer, delta) / np.float32(B)).astype(np.float32)
        z = inputs[id(layer)]
        if isinstance(layer, _TileLayer):
            layer.record(z, g)
        else:
            gw = torch.from_numpy((g.T.astype(np.float64) @ z.astype(np.float64)).astype(np.float32))
            _accumulate(layer.weight, gw.reshape(layer.weight.shape))
        if layer.bias is not None:
            _accumulate(layer.bias, torch.from_numpy(g.sum(axis=0, dtype=np.float64).astype(np.float32)))
    return float(clean.mean())


def _accumulate(param: torch.Tensor, grad: torch.Tensor) -> None:
    grad = grad.to(param.device, param.dtype)
    if param.grad is None:
        param.grad = grad.clone()
    else:
        param.grad.add_(grad)
