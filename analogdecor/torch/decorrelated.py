"""DecorrelatedLinear and DecorrelatedConv2d: z = R (x - mu) before the weights (arXiv 2407.10780).

The decorrelating stage is analogdecor's :class:`~analogdecor.decorrelation.Decorrelator`: R in
float64 or on its own tile (``DecorrelationConfig.on_tile``), any of its rules (``ahmad``, the
paper's default; ``copi``; ``kappa``; ``zca``). In training mode mu is the batch mean, in
evaluation mode the running mean; the error at the layer's input is R^T e (a transposed read
when R is on a tile), minus its batch mean with ``DecorrelationConfig.mean_gradient`` (the default:
the derivative of the batch mean, as autograd takes it in the paper's code) when the batch was
centred with its own mean (a running mean is a constant). R does not learn by gradient descent:
each training forward pass records the batch, and
:class:`~analogdecor.torch.AnalogSGD`'s step applies one step of R's own rule to it (after the
weight updates, as analogdecor's training loop does). With ``rule = "zca"`` call
:meth:`refit_zca` on a sample of inputs instead (e.g. at the start of every epoch).

A convolution is decorrelated on its flattened input patches (d = in_channels * kh * kw, R of
d x d), every patch position of every image a sample; the rule's subset is a random choice of
positions.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import torch
from torch import nn

from analogdecor.backends import make_tile
from analogdecor.decorrelation import DecorrelationConfig, Decorrelator
from analogdecor.errors import ShapeError
from analogdecor.torch import _state
from analogdecor.torch.modules import (
    AnalogLinear,
    DeviceSpec,
    _conv_args,
    _PatchGeometry,
    _rows,
    resolve_tile_config,
)

__all__ = ["DecorrelatedConv2d", "DecorrelatedLinear"]


class _DecorRead(torch.autograd.Function):
    """z = R (x - mu); backward R^T e (minus its batch mean when mu was this batch's mean)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, layer: _Decorrelated) -> torch.Tensor:
        ctx.layer = layer
        ctx.own_mean = layer.training and layer.fixed_mean is None
        return torch.from_numpy(layer.decorrelate_rows(_rows(x))).to(x.device)

    @staticmethod
    def backward(ctx: Any, e: torch.Tensor) -> tuple[torch.Tensor | None, None]:
        if not ctx.needs_input_grad[0]:
            return None, None
        return torch.from_numpy(ctx.layer.input_error(_rows(e), ctx.own_mean)).to(e.device), None


def _weights_layer(in_features: int, out_features: int, bias: bool, device: DeviceSpec | str, seed: int,
                   weight_scaling: float | None) -> nn.Module:  # fmt: skip
    if device == "float":
        return nn.Linear(in_features, out_features, bias=bias)
    return AnalogLinear(
        in_features, out_features, bias, device=device, seed=seed, weight_scaling=weight_scaling
    )


class _Decorrelated(nn.Module):
    """The decorrelating stage shared by DecorrelatedLinear and DecorrelatedConv2d."""

    linear: nn.Module

    def _init_decor(self, dim: int, decorrelation: DecorrelationConfig | None, device: DeviceSpec | str,
                    r_seed: int) -> None:  # fmt: skip
        cfg = decorrelation if decorrelation is not None else DecorrelationConfig(enabled=True)
        if not cfg.enabled:
            cfg = dataclasses.replace(cfg, enabled=True)
        rtile = None
        if cfg.on_tile:
            backend = "float" if device == "float" else "numba"
            tile_cfg = resolve_tile_config(None if device == "float" else device)  # type: ignore[arg-type]
            rtile = make_tile(backend, dim, dim, tile_cfg, seed=int(r_seed))
        self.decor = Decorrelator(dim, cfg, tile=rtile)
        self.decor_ctx = nn.Parameter(torch.zeros(0))
        """Stands for R among the model's parameters: AnalogSGD finds the layer through it."""
        self.decor_ctx._decor_layer = self  # type: ignore[attr-defined]
        self._rng = np.random.default_rng(np.random.SeedSequence([int(r_seed), 0xDEC]))
        self._last: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.fixed_mean: np.ndarray | None = None
        """If set, training passes centre with this mean instead of the batch mean (node perturbation's
        noisy pass reuses the clean pass's means)."""
        self.recording = True
        """Whether a training pass keeps its batch for R's next step (off for the noisy pass)."""

    @property
    def R(self) -> torch.Tensor:
        """The effective decorrelating matrix (float64; s * tile weights when R is on a tile)."""
        return torch.from_numpy(self.decor.matrix())

    def decorrelate_rows(self, x: np.ndarray) -> np.ndarray:
        """z = R (x - mu) for (N, d) float32 rows; a training pass records (x, z, mu)."""
        xc, mu = self.decor.center(x, train=self.training, mu=self.fixed_mean if self.training else None)
        z = np.asarray(self.decor.apply(xc), dtype=np.float32)
        if self.training and self.recording:
            self._last = (x.copy(), z.copy(), np.asarray(mu, dtype=np.float64).copy())
        return z

    def input_error(self, e: np.ndarray, own_mean: bool) -> np.ndarray:
        """The error at the layer's input: R^T e (a transposed read on a tile), as the native engine
        computes it; its batch mean is subtracted (``mean_gradient``) only when the forward pass
        centred with this batch's own mean (a running or fixed mean is a constant)."""
        decor = self.decor
        cfg = decor.config
        if own_mean or not (cfg.centring and cfg.mean_gradient):
            return np.asarray(decor.backward(e), dtype=np.float32)
        decor.config = dataclasses.replace(cfg, mean_gradient=False)
        try:
            return np.asarray(decor.backward(e), dtype=np.float32)
        finally:
            decor.config = cfg

    def _decorrelate(self, rows: torch.Tensor) -> torch.Tensor:
        self.decor_ctx._decor_layer = self  # type: ignore[attr-defined]  # (again after a deepcopy)
        return _DecorRead.apply(rows, self)

    def _step_rows(self, x: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return x, z

    def decorrelation_step(self, updater: Any = None, key: str = "R") -> bool:
        """One step of R's rule on the last recorded training batch (and the running mean).

        ``updater`` (an :class:`analogdecor.learning.AnalogUpdater`) applies the pulsed update when
        R is on a tile; None: one pulsed outer product per sample. Returns False when no batch was
        recorded since the last step.
        """
        if self._last is None:
            return False
        x, z, mu = self._last
        self._last = None
        self.decor.update_mean(mu)
        x, z = self._step_rows(x, z)
        if self.decor.tile is not None and updater is not None:
            ts = self.decor.tile_step(x, z)  # the rule's pulsed outer products and digital gain
            if ts is not None:
                updater.apply(key, self.decor.tile, ts.x, ts.err, 1.0, ts.lr)
                self.decor.scale *= ts.gain
        else:
            self.decor.step(x, z)
        return True

    def refit_zca(self, x: torch.Tensor) -> None:
        """Closed-form whitening R = (Sigma + eps I)^(-1/2) from the layer inputs ``x`` (rule "zca")."""
        self.decor.refit_zca(self._input_rows(x).astype(np.float64))

    def _input_rows(self, x: torch.Tensor) -> np.ndarray:
        raise NotImplementedError

    # ------------------------------------------------------------------ state
    def get_extra_state(self) -> dict[str, Any]:
        out: dict[str, Any] = {"decor": _state.encode(self.decor.state_dict()),
                               "rng": json.dumps(self._rng.bit_generator.state)}  # fmt: skip
        if self.decor.tile is not None:
            out["R_tile"] = _state.encode(self.decor.tile.state_dict())
        return out

    def set_extra_state(self, state: dict[str, Any]) -> None:
        if ("R_tile" in state) != (self.decor.tile is not None):
            raise ShapeError("saved layer and this one differ in where R lives (on a tile or in float)")
        if self.decor.tile is not None:
            self.decor.tile.load_state_dict(_state.decode(state["R_tile"]))
        self.decor.load_state_dict(_state.decode(state["decor"]))
        self._rng.bit_generator.state = json.loads(state["rng"])
        self._last = None


class DecorrelatedLinear(_Decorrelated):
    """A linear layer with a decorrelated input: a = W R (x - mu) + b.

    Parameters
    ----------
    in_features, out_features : int
    bias : bool
    device : str, TileConfig or None
        Where W lives: a preset name or TileConfig (an emulated tile, as :class:`AnalogLinear`), None
        for an ideal tile, or ``"float"`` for ordinary digital weights (an ``nn.Linear``, stepped by
        SGD): the paper's method on a float model.
    decorrelation : DecorrelationConfig, optional
        R's rule and settings (default: the paper's rule, R in float); ``on_tile=True`` puts R on
        its own tile of the same device.
    seed, r_seed : int
        Seeds of W's tile and of R's tile (default ``seed + 1``).
    weight_scaling : float or None
        As :class:`AnalogLinear`.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 device: DeviceSpec | str = None, decorrelation: DecorrelationConfig | None = None,
                 seed: int = 0, r_seed: int | None = None, weight_scaling: float | None = 0.6) -> None:  # fmt: skip
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.linear = _weights_layer(self.in_features, self.out_features, bias, device, seed, weight_scaling)
        self._init_decor(self.in_features, decorrelation, device, seed + 1 if r_seed is None else r_seed)

    @classmethod
    def from_linear(cls, linear: nn.Linear | AnalogLinear, *, device: DeviceSpec | str = None,
                    decorrelation: DecorrelationConfig | None = None, seed: int = 0, r_seed: int | None = None,
                    weight_scaling: float | None = 0.6) -> DecorrelatedLinear:  # fmt: skip
        """A DecorrelatedLinear whose weights and bias are ``linear``'s (R starts at the identity)."""
        layer = cls(linear.in_features, linear.out_features, linear.bias is not None, device=device,
                    decorrelation=decorrelation, seed=seed, r_seed=r_seed, weight_scaling=weight_scaling)  # fmt: skip
        _copy_weights(layer.linear, linear.weight, linear.bias)
        return layer

    @property
    def weight(self) -> torch.Tensor:
        """The forward weights alpha W (without R)."""
        return _weight_of(self.linear)

    def _input_rows(self, x: torch.Tensor) -> np.ndarray:
        return _rows(x.reshape(-1, self.in_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """W R (x - mu) + b for ``x`` (..., in_features)."""
        if x.shape[-1] != self.in_features:
            raise ShapeError(f"input of shape {tuple(x.shape)}: last dimension must be {self.in_features}")
        z = self._decorrelate(x.reshape(-1, self.in_features))
        return self.linear(z.reshape(*x.shape[:-1], self.in_features))

    def extra_repr(self) -> str:
        c = self.decor.config
        return f"rule={c.rule!r}, lr={c.lr}, R_on_tile={c.on_tile}"


class DecorrelatedConv2d(_Decorrelated):
    """A 2-D convolution with decorrelated input patches: a = W R (p - mu) + b on every patch p.

    Parameters as ``nn.Conv2d`` (groups = 1, zero padding) plus those of :class:`DecorrelatedLinear`.
    The kernel lives in ``self.linear``, an :class:`AnalogLinear` (or ``nn.Linear`` for
    ``device="float"``) of (out_channels, in_channels * kh * kw) applied to the decorrelated patches.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
                 dilation: Any = 1, bias: bool = True, *, device: DeviceSpec | str = None,
                 decorrelation: DecorrelationConfig | None = None, seed: int = 0, r_seed: int | None = None,
                 weight_scaling: float | None = 0.6) -> None:  # fmt: skip
        super().__init__()
        self.geometry = _PatchGeometry(in_channels, kernel_size, stride, padding, dilation)
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        d = self.geometry.patch_size
        self.linear = _weights_layer(d, self.out_channels, bias, device, seed, weight_scaling)
        self._init_decor(d, decorrelation, device, seed + 1 if r_seed is None else r_seed)

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, *, device: DeviceSpec | str = None,
                  decorrelation: DecorrelationConfig | None = None, seed: int = 0, r_seed: int | None = None,
                  weight_scaling: float | None = 0.6) -> DecorrelatedConv2d:  # fmt: skip
        """A DecorrelatedConv2d with ``conv``'s geometry, kernel and bias (R starts at the identity)."""
        layer = cls(conv.in_channels, conv.out_channels, **_conv_args(conv), bias=conv.bias is not None,
                    device=device, decorrelation=decorrelation, seed=seed, r_seed=r_seed,
                    weight_scaling=weight_scaling)  # fmt: skip
        _copy_weights(layer.linear, conv.weight.reshape(conv.out_channels, -1), conv.bias)
        return layer

    @property
    def weight(self) -> torch.Tensor:
        """The effective kernel (out_channels, in_channels, kh, kw), without R."""
        return _weight_of(self.linear).reshape(self.out_channels, self.in_channels, *self.geometry.kernel_size)

    def _input_rows(self, x: torch.Tensor) -> np.ndarray:
        return _rows(self.geometry.patches(x)[0])

    def _step_rows(self, x: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # The rule takes the first floor(f N) + 1 rows: make them a random choice of patch positions.
        order = self._rng.permutation(x.shape[0])
        return x[order], z[order]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """W R (p - mu) + b on every im2col patch p of ``x`` (B, C, H, W)."""
        rows, shape = self.geometry.patches(x)
        return self.geometry.to_map(self.linear(self._decorrelate(rows)), shape)

    def extra_repr(self) -> str:
        g, c = self.geometry, self.decor.config
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={g.kernel_size}, stride={g.stride}, "
                f"padding={g.padding}, rule={c.rule!r}, lr={c.lr}, R_on_tile={c.on_tile}")  # fmt: skip


def _weight_of(layer: nn.Module) -> torch.Tensor:
    """The weights of an AnalogLinear (read from its tile) or an nn.Linear, detached."""
    w = layer.weight
    assert isinstance(w, torch.Tensor)
    return w.detach()


def _copy_weights(target: nn.Module, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
    if isinstance(target, AnalogLinear):
        target.set_weights(weight, bias)
        return
    assert isinstance(target, nn.Linear)
    with torch.no_grad():
        target.weight.copy_(weight.detach().reshape(target.weight.shape))
        if bias is not None and target.bias is not None:
            target.bias.copy_(bias.detach())
