"""Convolution as crossbar reads of image patches, and the layers around it.

A 2-D convolution with C_out kernels of size C_in x k x k is a crossbar read
of every input patch (im2col; Gokmen, Onen & Haensch, Front. Neurosci. 11:538,
2017, "Training deep convolutional neural networks with resistive cross-point
devices"): the patch matrix P (B x positions, C_in k^2) goes through the tile
of W (C_out, C_in k^2) in ONE batched read, so every backend (float, numba,
aihwkit) runs a convolution with no per-patch Python loop. The backward pass
is the transposed read of the error rows, folded back onto the image (col2im);
the update is the tile's outer-product update with every patch position of
every image a sample, divided by the batch size B (so the learning rate means
the same as torch's mean-over-batch loss).

Patch layout: (channel, kernel row, kernel column), the layout of
``torch.nn.Conv2d.weight.reshape(C_out, -1)``; rows are ordered (image, output
row, output column).

A decorrelated convolution centres and decorrelates every flattened patch,
z = R (p - mu) with R of size C_in k^2 (arXiv 2407.10780; in its code R is a
k x k convolution with C_in k^2 output channels). The mean mu is taken in
patch space, padding zeros included, so folding W R into a plain kernel with
b_eff = b - W R mu is exact at the borders too (the reference code centres per
channel before padding, which a fold cannot reproduce at the borders).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from analogdecor.decorrelation import Decorrelator
from analogdecor.errors import ShapeError
from analogdecor.networks import _conv_kernels as _k
from analogdecor.networks.activations import activate
from analogdecor.networks.cache import LayerCache
from analogdecor.networks.tile_layer import TileLayer

__all__ = [
    "AvgPool2d",
    "Conv2dLayer",
    "Flatten",
    "MaxPool2d",
    "col2im",
    "conv_out_size",
    "im2col",
    "pool2d_backward",
    "pool2d_forward",
]


def conv_out_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of a sliding window: floor((size + 2 padding - kernel) / stride) + 1 (may be < 1)."""
    return (size + 2 * padding - kernel) // stride + 1


def im2col(x: np.ndarray, kernel: int, stride: int, padding: int) -> np.ndarray:
    """Patch rows of the images ``x`` (B, C, H, W): (B * Ho * Wo, C * k * k), float32.

    Row (b, i, j) holds the zero-padded window x[b, :, i s - p : i s - p + k, j s - p : j s - p + k]
    flattened in (channel, row, column) order. One numba pass (no padded copy of the images).
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    B, C, H, W = x.shape
    Ho, Wo = conv_out_size(H, kernel, stride, padding), conv_out_size(W, kernel, stride, padding)
    out = np.empty((B * Ho * Wo, C * kernel * kernel), dtype=np.float32)
    _k.im2col_into(x, int(kernel), int(stride), int(padding), out)
    return out


def col2im(
    cols: np.ndarray, shape: tuple[int, int, int, int], kernel: int, stride: int, padding: int
) -> np.ndarray:
    """Adjoint of :func:`im2col`: sum every patch row back onto the image of ``shape`` (B, C, H, W).

    One numba pass over the patch rows (per image, rows and columns in ascending order).
    """
    B, C, H, W = (int(s) for s in shape)
    Ho, Wo = conv_out_size(H, kernel, stride, padding), conv_out_size(W, kernel, stride, padding)
    cols = np.ascontiguousarray(cols, dtype=np.float32)
    if cols.shape != (B * Ho * Wo, C * kernel * kernel):
        raise ShapeError(f"col2im: cols has shape {cols.shape}, expected {(B * Ho * Wo, C * kernel * kernel)}")
    out = np.zeros((B, C, H, W), dtype=np.float32)
    _k.col2im_into(cols, int(kernel), int(stride), int(padding), out)
    return out


def pool2d_forward(x: np.ndarray, size: int, stride: int, kind: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Max or average pooling of (B, C, H, W) without padding: (output, argmax within each window or None)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if kind == "max":
        B, C, H, W = x.shape
        Ho, Wo = conv_out_size(H, size, stride, 0), conv_out_size(W, size, stride, 0)
        out = np.empty((B, C, Ho, Wo), dtype=np.float32)
        arg = np.empty((B, C, Ho, Wo), dtype=np.int64)
        _k.maxpool_into(x, int(size), int(stride), out, arg)
        return out, arg
    win = sliding_window_view(x, (size, size), axis=(2, 3))[:, :, ::stride, ::stride]
    flat = win.reshape(*win.shape[:4], size * size)
    return flat.mean(axis=-1, dtype=np.float32), None


def pool2d_backward(
    g: np.ndarray, shape: tuple[int, ...], size: int, stride: int, arg: np.ndarray | None
) -> np.ndarray:
    """Error at the input of a pooling: max sends g to each window's arg-max, average spreads g / size^2."""
    B, C, H, W = shape
    Ho, Wo = g.shape[2], g.shape[3]
    out = np.zeros((B, C, H, W), dtype=np.float32)
    g = np.ascontiguousarray(g, dtype=np.float32)
    if arg is not None:
        _k.maxpool_backward_into(g, np.ascontiguousarray(arg, dtype=np.int64), int(size), int(stride), out)
        return out
    share = g / np.float32(size * size)
    for i in range(size):
        for j in range(size):
            out[:, :, i : i + stride * Ho : stride, j : j + stride * Wo : stride] += share
    return out


@dataclass
class Conv2dLayer(TileLayer):
    """A convolution on a tile: optional decorrelator on its patches, digital bias and output scale.

    ``tile`` is (C_out, C_in k^2); ``in_shape`` (C_in, H, W); ``out_shape`` (C_out, Ho, Wo).
    """

    tile: Any
    bias: np.ndarray
    activation: str
    in_shape: tuple[int, ...]
    kernel: int
    stride: int = 1
    padding: int = 0
    decor: Decorrelator | None = None
    out_scale: float = 1.0

    def __post_init__(self) -> None:
        self.in_shape = tuple(int(s) for s in self.in_shape)
        if len(self.in_shape) != 3:
            raise ShapeError(f"a conv2d layer needs a C x H x W input, got shape {self.in_shape}")
        C, H, W = self.in_shape
        if self.tile.in_size != C * self.kernel * self.kernel:
            raise ShapeError(
                f"conv tile has {self.tile.in_size} inputs: expected C_in k^2 = {C * self.kernel**2}"
            )
        Ho = conv_out_size(H, self.kernel, self.stride, self.padding)
        Wo = conv_out_size(W, self.kernel, self.stride, self.padding)
        if Ho < 1 or Wo < 1:
            raise ShapeError(
                f"conv2d kernel {self.kernel} (stride {self.stride}, padding {self.padding}) does not fit "
                f"its {C}x{H}x{W} input"
            )
        self.out_shape: tuple[int, ...] = (int(self.tile.out_size), Ho, Wo)

    @property
    def patch_elements(self) -> int:
        """Elements of one image's patch matrix: Ho Wo positions x C_in k^2."""
        return int(self.out_shape[1] * self.out_shape[2] * self.in_size)

    @property
    def kernel_shape(self) -> tuple[int, int, int, int]:
        """(C_out, C_in, k, k): the tile's matrix reshaped as a torch Conv2d weight."""
        return (self.out_size, self.in_shape[0], self.kernel, self.kernel)

    def describe(self) -> str:
        return f"conv2d {self.in_shape[0]}->{self.out_size} k{self.kernel} s{self.stride} p{self.padding}"

    def geometry(self, part: str) -> dict[str, Any]:
        """Export metadata of the W map (C_out, C_in k^2) or the R map (C_in k^2)^2."""
        common = {"layer": "conv2d", "in_shape": list(self.in_shape), "stride": self.stride,
                  "padding": self.padding, "patch_shape": [self.in_shape[0], self.kernel, self.kernel]}  # fmt: skip
        if part == "W":
            return {**common, "kernel_shape": list(self.kernel_shape),
                    "layout": "(C_out, C_in*k*k); columns in (channel, kernel row, kernel column) order"}  # fmt: skip
        return {**common, "layout": "(C_in*k*k, C_in*k*k) acting on flattened patches"}

    def forward(
        self, h: np.ndarray, *, train: bool, slope: float, noise: np.ndarray | None = None,
        mu: np.ndarray | None = None,
    ) -> LayerCache:  # fmt: skip
        B = h.shape[0]
        patches = im2col(h, self.kernel, self.stride, self.padding)
        m, z, rows = self._read_rows(patches, train=train, mu=mu)
        C, Ho, Wo = self.out_shape
        a = np.ascontiguousarray(np.asarray(rows, dtype=np.float32).reshape(B, Ho, Wo, C).transpose(0, 3, 1, 2))
        if noise is not None:
            a = a + noise
        a = a.astype(np.float32, copy=False)
        return LayerCache(x=patches, mu=m, z=z, a=a, h=activate(a, self.activation, slope))

    def rows(self, delta: np.ndarray) -> np.ndarray:
        """(B, C_out, Ho, Wo) -> (B Ho Wo, C_out): one row per patch position."""
        return np.ascontiguousarray(np.asarray(delta, dtype=np.float32).transpose(0, 2, 3, 1)).reshape(
            -1, self.out_size
        )

    def signal_rows(self, cache: LayerCache, delta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(z rows, delta rows) for the outer-product update, a patch position per row."""
        return cache.z, self.rows(delta)

    def decor_rows(self, cache: LayerCache) -> tuple[np.ndarray, np.ndarray]:
        """(patches, decorrelated patches): every patch position of every image is a sample."""
        return cache.x, cache.z

    def decor_subset(self, batch: int) -> int:
        """Rows the decorrelator learns from: all positions of the first floor(f B) + 1 images (as the
        paper's code, whose batches are shuffled)."""
        from analogdecor.decorrelation.rules import subset_size

        assert self.decor is not None
        return subset_size(batch, self.decor.config.subset_fraction) * self.out_shape[1] * self.out_shape[2]

    def backward_input(self, delta: np.ndarray, feedback: np.ndarray | None = None) -> np.ndarray:
        """col2im((alpha W R)^T delta rows) (or B^T in place of alpha W for feedback alignment)."""
        e = self._input_error(self.rows(delta), feedback)
        return col2im(e, (delta.shape[0], *self.in_shape), self.kernel, self.stride, self.padding)

    def fold(self) -> Conv2dLayer:
        """A plain float convolution with the same evaluation outputs (W_eff = alpha W R, b_eff = b - W_eff mu)."""
        tile, b = self._folded_parts()
        return Conv2dLayer(
            tile=tile, bias=b, activation=self.activation,
            in_shape=self.in_shape, kernel=self.kernel, stride=self.stride, padding=self.padding,
        )  # fmt: skip


class _Pool:
    """Pooling without padding over size x size windows (stride defaults to size)."""

    has_params = False
    kind = "max"

    def __init__(self, in_shape: tuple[int, ...], size: int, stride: int | None = None) -> None:
        self.in_shape = tuple(int(s) for s in in_shape)
        self.size = int(size)
        self.stride = int(stride) if stride is not None else self.size
        if len(self.in_shape) != 3:
            raise ShapeError(f"{self.describe()} needs a C x H x W input, got shape {self.in_shape}")
        C, H, W = self.in_shape
        Ho, Wo = conv_out_size(H, self.size, self.stride, 0), conv_out_size(W, self.size, self.stride, 0)
        if self.size < 1 or self.stride < 1 or Ho < 1 or Wo < 1:
            raise ShapeError(
                f"{self.describe()} leaves nothing of its {C}x{H}x{W} input"
            )
        self.out_shape: tuple[int, ...] = (C, Ho, Wo)

    def describe(self) -> str:
        return f"{self.kind}pool {self.size} (stride {self.stride})"

    def forward(self, h: np.ndarray, **_: Any) -> LayerCache:
        out, arg = pool2d_forward(h, self.size, self.stride, self.kind)
        out = np.ascontiguousarray(out)
        return LayerCache(x=h, mu=None, z=arg, a=out, h=out)

    def backward(self, g: np.ndarray, cache: LayerCache) -> np.ndarray:
        return pool2d_backward(g, cache.x.shape, self.size, self.stride, cache.z)

    def fold(self) -> _Pool:
        return type(self)(self.in_shape, self.size, self.stride)


class MaxPool2d(_Pool):
    """Max pooling (digital periphery; its backward routes each error to the window's maximum)."""

    kind = "max"


class AvgPool2d(_Pool):
    """Average pooling (digital periphery)."""

    kind = "avg"


class Flatten:
    """(B, C, H, W) -> (B, C H W) in (channel, row, column) order, as torch's Flatten."""

    has_params = False

    def __init__(self, in_shape: tuple[int, ...]) -> None:
        self.in_shape = tuple(int(s) for s in in_shape)
        self.out_shape: tuple[int, ...] = (int(np.prod(self.in_shape)),)

    def describe(self) -> str:
        return "flatten"

    def forward(self, h: np.ndarray, **_: Any) -> LayerCache:
        out = h.reshape(h.shape[0], -1)
        return LayerCache(x=h, mu=None, z=None, a=out, h=out)

    def backward(self, g: np.ndarray, cache: LayerCache) -> np.ndarray:
        return g.reshape(cache.x.shape)

    def fold(self) -> Flatten:
        return Flatten(self.in_shape)
