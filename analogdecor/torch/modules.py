"""AnalogLinear and AnalogConv2d: torch layers whose weight matrix lives on an emulated tile.

A layer computes a = alpha W z + b, as a layer of :class:`analogdecor.networks.MLP` does: W on a
numba crossbar tile (:class:`analogdecor.crossbar.Tile`), alpha a digital output scale (weight
scaling: the initial weights use ``weight_scaling`` of the device range, alpha undoes it), b a
digital bias (an ordinary torch parameter). Forward is the tile's forward read
(``tile.forward``, with its DAC, noise, ADC and bound management), and autograd's backward is
its transposed read (``tile.backward``, with the backward periphery), so the gradients torch
computes are those the hardware would. The weight gradient is not formed: the backward pass
records the (input, output-gradient) rows of the batch, and :class:`~analogdecor.torch.AnalogSGD`
turns them into pulsed updates with the chosen update mode (the outer-product form
``delta^T z`` a crossbar applies in parallel).

A convolution is read on every im2col patch (``torch.nn.functional.unfold``): the tile holds
the (out_channels, in_channels * kh * kw) matrix, each patch is one row of the batch, and the
pulsed update sees every patch position of every image as a sample.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from analogdecor.crossbar import Tile, TileConfig
from analogdecor.devices import load_preset
from analogdecor.errors import ConfigError, ShapeError
from analogdecor.torch import _state

__all__ = ["AnalogConv2d", "AnalogLinear", "resolve_tile_config"]

DeviceSpec = str | TileConfig | None


def resolve_tile_config(device: DeviceSpec) -> TileConfig:
    """A preset name (``"ReRamES"``), a :class:`TileConfig`, or None for ``TileConfig.ideal()``."""
    if device is None:
        return TileConfig.ideal()
    if isinstance(device, TileConfig):
        return device
    if isinstance(device, str):
        return load_preset(device)
    raise ConfigError(f"device = {device!r}: give a preset name, a TileConfig, or None (ideal tile)")


def _rows(t: torch.Tensor) -> np.ndarray:
    """A (N, n) tensor as a C-contiguous float32 NumPy array (what the tiles read)."""
    return np.ascontiguousarray(t.detach().to("cpu", torch.float32).numpy())


class _TileRead(torch.autograd.Function):
    """y = alpha * tile.forward(x); backward: alpha * tile.backward(g), and the rows recorded."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, analog_ctx: torch.Tensor, layer: _TileLayer) -> torch.Tensor:
        xn = _rows(x)
        ctx.layer = layer
        ctx.x_rows = xn
        return torch.from_numpy(layer.read_forward(xn)).to(x.device)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        layer = ctx.layer
        g = _rows(grad)
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.from_numpy(layer.read_backward(g)).to(grad.device)
        if ctx.needs_input_grad[1] and layer.training:
            layer.record(ctx.x_rows, g)
        return grad_x, None, None


class _TileLayer(nn.Module):
    """What AnalogLinear and AnalogConv2d share: the tile, alpha, the analogue context."""

    tile: Tile
    out_scale: float

    def _init_tile(self, out_size: int, in_size: int, device: DeviceSpec, seed: int,
                   weight_scaling: float | None) -> None:  # fmt: skip
        if weight_scaling is not None and not weight_scaling > 0:
            raise ConfigError(f"weight_scaling = {weight_scaling!r}: must be > 0 (or None)")
        self.tile = Tile(out_size, in_size, resolve_tile_config(device), seed=int(seed))
        self.weight_scaling = weight_scaling
        self.out_scale = 1.0
        self.analog_ctx = nn.Parameter(torch.zeros(0))
        """Stands for the tile among the model's parameters: AnalogSGD finds the layer through it."""
        self.analog_ctx._analog_layer = self  # type: ignore[attr-defined]
        self._records: list[tuple[np.ndarray, np.ndarray]] = []

    # ------------------------------------------------------------------ reads
    def read_forward(self, x: np.ndarray) -> np.ndarray:
        """alpha * tile.forward(x) for (N, in) float32 rows (as :class:`analogdecor.networks.MLP`)."""
        y = self.tile.forward(x)
        if self.out_scale != 1.0:
            y = y * np.float32(self.out_scale)
        return np.asarray(y, dtype=np.float32)

    def read_backward(self, g: np.ndarray) -> np.ndarray:
        """alpha * tile.backward(g): the transposed read, the error at the layer's input."""
        e = self.tile.backward(g)
        if self.out_scale != 1.0:
            e = e * np.float32(self.out_scale)
        return np.asarray(e, dtype=np.float32)

    def _tile_rows(self, rows: torch.Tensor) -> torch.Tensor:
        self.analog_ctx._analog_layer = self  # type: ignore[attr-defined]  # (again after a deepcopy)
        if rows.shape[0] == 0:
            return rows.new_zeros((0, self.tile.out_size))
        return _TileRead.apply(rows, self.analog_ctx, self)

    # ------------------------------------------------------------------ what the optimiser applies
    def record(self, z: np.ndarray, grad: np.ndarray) -> None:
        """Keep one backward pass's (input rows, d loss / d output rows) for the next pulsed update."""
        self._records.append((np.array(z, dtype=np.float32), np.array(grad, dtype=np.float32)))

    def take_records(self) -> tuple[np.ndarray, np.ndarray] | None:
        """All rows recorded since the last update (and forget them), or None."""
        if not self._records:
            return None
        z = np.concatenate([r[0] for r in self._records])
        g = np.concatenate([r[1] for r in self._records])
        self._records.clear()
        return z, g

    def clear_records(self) -> None:
        self._records.clear()

    # ------------------------------------------------------------------ weights
    def _set_matrix(self, W: np.ndarray) -> None:
        W = np.asarray(W, dtype=np.float32)
        if W.shape != (self.tile.out_size, self.tile.in_size):
            raise ShapeError(
                f"weights of shape {W.shape}: expected {(self.tile.out_size, self.tile.in_size)}"
            )
        alpha = 1.0
        if self.weight_scaling is not None and float(np.abs(W).max()) > 0:
            alpha = float(np.abs(W).max()) / self.weight_scaling
            W = (W / np.float32(alpha)).astype(np.float32)
        self.out_scale = alpha
        self.tile.set_weights(W)

    def _matrix(self) -> np.ndarray:
        return (self.tile.read_weights() * np.float32(self.out_scale)).astype(np.float32)

    # ------------------------------------------------------------------ state (tile included)
    def get_extra_state(self) -> dict[str, Any]:
        return {"tile": _state.encode(self.tile.state_dict()), "out_scale": float(self.out_scale)}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        tile = Tile.from_state_dict(_state.decode(state["tile"]))
        if (tile.out_size, tile.in_size) != (self.tile.out_size, self.tile.in_size):
            raise ShapeError(
                f"saved tile is {tile.out_size} x {tile.in_size}; this layer's is "
                f"{self.tile.out_size} x {self.tile.in_size}"
            )
        self.tile = tile
        self.out_scale = float(state["out_scale"])
        self._records.clear()

    def _tile_repr(self) -> str:
        return f"device={self.tile.config.device.model!r}, seed={self.tile.seed}"


class AnalogLinear(_TileLayer):
    """``nn.Linear`` with its weight matrix on an emulated crossbar tile.

    Parameters
    ----------
    in_features, out_features : int
    bias : bool
        A digital bias (an ordinary torch parameter).
    device : str, TileConfig or None
        Device preset name (``analogdecor devices list``), a full :class:`TileConfig`, or None for
        an ideal tile (exact float32 algebra).
    seed : int
        Seed of the tile's device draws and noise (same seed, same results, bit for bit).
    weight_scaling : float or None
        The initial (or set) weights are scaled so that max |w| on the tile equals this value and
        a digital output scale alpha undoes it (as ``model.weight_scaling`` in training); None
        writes the weights as they are (clipped to the devices' bounds).

    Notes
    -----
    Initial weights as ``nn.Linear`` draws them (from torch's generator). ``weight`` returns the
    effective weights alpha W as read from the tile; :meth:`set_weights` writes new ones.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, device: DeviceSpec = None,
                 seed: int = 0, weight_scaling: float | None = 0.6) -> None:  # fmt: skip
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        self._init_tile(self.out_features, self.in_features, device, seed, weight_scaling)
        w = torch.empty(self.out_features, self.in_features)
        nn.init.kaiming_uniform_(w, a=math.sqrt(5))
        self.bias: nn.Parameter | None
        if bias:
            bound = 1.0 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
            self.bias = nn.Parameter(torch.empty(self.out_features).uniform_(-bound, bound))
        else:
            self.register_parameter("bias", None)
        self._set_matrix(w.numpy())

    @classmethod
    def from_linear(cls, linear: nn.Linear, *, device: DeviceSpec = None, seed: int = 0,
                    weight_scaling: float | None = 0.6) -> AnalogLinear:  # fmt: skip
        """An AnalogLinear holding ``linear``'s weights and bias."""
        layer = cls(linear.in_features, linear.out_features, linear.bias is not None, device=device,
                    seed=seed, weight_scaling=weight_scaling)  # fmt: skip
        layer.set_weights(linear.weight, linear.bias)
        return layer

    @property
    def weight(self) -> torch.Tensor:
        """The effective weights alpha W (out_features, in_features), read from the tile (no noise)."""
        return torch.from_numpy(self._matrix())

    def set_weights(self, weight: Any, bias: Any = None) -> None:
        """Write ``weight`` (out, in) onto the tile (weight scaling applied) and, if given, the bias."""
        W = weight.detach().cpu().numpy() if isinstance(weight, torch.Tensor) else np.asarray(weight)
        self._set_matrix(W)
        if bias is not None and self.bias is not None:
            with torch.no_grad():
                self.bias.copy_(torch.as_tensor(bias, dtype=self.bias.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """alpha * (forward read of ``x`` (..., in_features)) + bias."""
        if x.shape[-1] != self.in_features:
            raise ShapeError(f"input of shape {tuple(x.shape)}: last dimension must be {self.in_features}")
        lead = x.shape[:-1]
        y = self._tile_rows(x.reshape(-1, self.in_features)).reshape(*lead, self.out_features)
        return y + self.bias if self.bias is not None else y

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, {self._tile_repr()}")  # fmt: skip


def _pair(v: Any, name: str) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    if isinstance(v, tuple | list) and len(v) == 2 and all(isinstance(i, int) for i in v):
        return (int(v[0]), int(v[1]))
    raise ConfigError(f"{name} = {v!r}: give an int or a pair of ints")


class _PatchGeometry:
    """im2col geometry of a 2-D convolution (zero padding, groups = 1)."""

    def __init__(self, in_channels: int, kernel_size: Any, stride: Any, padding: Any, dilation: Any) -> None:
        self.in_channels = int(in_channels)
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = _pair(stride, "stride")
        self.padding = _pair(padding, "padding")
        self.dilation = _pair(dilation, "dilation")
        self.patch_size = self.in_channels * self.kernel_size[0] * self.kernel_size[1]

    def out_hw(self, h: int, w: int) -> tuple[int, int]:
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel_size, self.stride, self.padding, self.dilation
        return (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1

    def patches(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int]]:
        """(B*L, C*kh*kw) rows of every patch, and (B, H_out, W_out)."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ShapeError(f"input of shape {tuple(x.shape)}: expected (batch, {self.in_channels}, H, W)")
        B = x.shape[0]
        ho, wo = self.out_hw(x.shape[2], x.shape[3])
        if ho < 1 or wo < 1:
            raise ShapeError(f"input of shape {tuple(x.shape)} is smaller than the kernel")
        cols = F.unfold(x, self.kernel_size, dilation=self.dilation, padding=self.padding, stride=self.stride)
        return cols.transpose(1, 2).reshape(B * ho * wo, self.patch_size), (B, ho, wo)

    @staticmethod
    def to_map(rows: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
        """(B*L, C_out) rows back to (B, C_out, H_out, W_out)."""
        B, ho, wo = shape
        return rows.reshape(B, ho * wo, -1).transpose(1, 2).reshape(B, -1, ho, wo)


def _conv_args(conv: nn.Conv2d) -> dict[str, Any]:
    """The geometry of an ``nn.Conv2d`` in AnalogConv2d's terms (refusing what is not emulated)."""
    if conv.groups != 1:
        raise ConfigError(f"{conv}: groups = {conv.groups}; analog convolutions need groups = 1")
    if conv.padding_mode != "zeros":
        raise ConfigError(f"{conv}: padding_mode = {conv.padding_mode!r}; only 'zeros' is emulated")
    padding = conv.padding
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0, 0)
        else:  # "same", stride 1 (torch's rule); odd kernels pad symmetrically
            k, d = conv.kernel_size, conv.dilation
            total = [d[i] * (k[i] - 1) for i in range(2)]
            if any(t % 2 for t in total):
                raise ConfigError(
                    f"{conv}: padding='same' with an even kernel pads asymmetrically; not emulated"
                )
            padding = (total[0] // 2, total[1] // 2)
    return {
        "kernel_size": conv.kernel_size,
        "stride": conv.stride,
        "padding": padding,
        "dilation": conv.dilation,
    }


class AnalogConv2d(_TileLayer):
    """``nn.Conv2d`` (groups = 1, zero padding) with its kernel on an emulated crossbar tile.

    The tile holds the kernel as an (out_channels, in_channels * kh * kw) matrix and is read on
    every im2col patch; parameters as :class:`AnalogLinear`, geometry as ``nn.Conv2d``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, bias: bool = True, *, device: DeviceSpec = None,
                 seed: int = 0, weight_scaling: float | None = 0.6) -> None:  # fmt: skip
        super().__init__()
        self.geometry = _PatchGeometry(in_channels, kernel_size, stride, padding, dilation)
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self._init_tile(self.out_channels, self.geometry.patch_size, device, seed, weight_scaling)
        w = torch.empty(self.out_channels, self.in_channels, *self.geometry.kernel_size)
        nn.init.kaiming_uniform_(w, a=math.sqrt(5))
        self.bias: nn.Parameter | None
        if bias:
            bound = 1.0 / math.sqrt(self.geometry.patch_size)
            self.bias = nn.Parameter(torch.empty(self.out_channels).uniform_(-bound, bound))
        else:
            self.register_parameter("bias", None)
        self._set_matrix(w.reshape(self.out_channels, -1).numpy())

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, *, device: DeviceSpec = None, seed: int = 0,
                  weight_scaling: float | None = 0.6) -> AnalogConv2d:  # fmt: skip
        """An AnalogConv2d with ``conv``'s geometry, kernel and bias."""
        layer = cls(conv.in_channels, conv.out_channels, **_conv_args(conv), bias=conv.bias is not None,
                    device=device, seed=seed, weight_scaling=weight_scaling)  # fmt: skip
        layer.set_weights(conv.weight, conv.bias)
        return layer

    @property
    def weight(self) -> torch.Tensor:
        """The effective kernel alpha W, (out_channels, in_channels, kh, kw), read from the tile."""
        return torch.from_numpy(self._matrix()).reshape(self.out_channels, self.in_channels,
                                                        *self.geometry.kernel_size)  # fmt: skip

    def set_weights(self, weight: Any, bias: Any = None) -> None:
        """Write a kernel (out, in, kh, kw) onto the tile and, if given, the bias."""
        W = weight.detach().cpu().numpy() if isinstance(weight, torch.Tensor) else np.asarray(weight)
        self._set_matrix(W.reshape(self.out_channels, -1))
        if bias is not None and self.bias is not None:
            with torch.no_grad():
                self.bias.copy_(torch.as_tensor(bias, dtype=self.bias.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The convolution of ``x`` (B, C, H, W): a forward read of every im2col patch, plus bias."""
        rows, shape = self.geometry.patches(x)
        y = self.geometry.to_map(self._tile_rows(rows), shape)
        return y + self.bias.view(1, -1, 1, 1) if self.bias is not None else y

    def extra_repr(self) -> str:
        g = self.geometry
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={g.kernel_size}, stride={g.stride}, "
                f"padding={g.padding}, dilation={g.dilation}, bias={self.bias is not None}, {self._tile_repr()}")  # fmt: skip
