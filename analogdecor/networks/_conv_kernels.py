"""Numba kernels of the convolution's digital periphery: im2col, col2im, max pooling.

Each kernel takes arrays and scalars only and writes into a preallocated output;
the public wrappers in :mod:`analogdecor.networks.conv` check shapes and
allocate. Every kernel loops over images in the outer loop, and one image is
handled by one thread in a fixed order, so results are the same bits whatever
the thread count. Their slow twins are ``ref_im2col``, ``ref_pool2d`` and the
hand scatter of ``tests/test_conv.py``.

Why kernels and not NumPy views: ``sliding_window_view(...).transpose(...)``
followed by a contiguous copy, and col2im's k^2 strided adds over the whole
batch, cost about as much as the convolution's GEMMs on the paper's conv net
(measured with ``analogdecor bench conv``, 1 thread: col2im 36 ms per call at
64 x 32 x 28 x 28, the copies another 25 ms per step).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from analogdecor._numba import njit, njit_parallel

PARALLEL_MIN_ELEMENTS = 1 << 21
"""Patch matrices with fewer elements than this are built and folded back serially."""


def _im2col_body(x, k, stride, pad, out):
    """out[(b Ho + i) Wo + j, (c k + ki) k + kj] = x[b, c, i s + ki - p, j s + kj - p] (0 outside)."""
    B, C, H, W = x.shape
    Ho = (H + 2 * pad - k) // stride + 1
    Wo = (W + 2 * pad - k) // stride + 1
    for b in prange(B):
        for i in range(Ho):
            for j in range(Wo):
                r = (b * Ho + i) * Wo + j
                for c in range(C):
                    for ki in range(k):
                        h = i * stride + ki - pad
                        base = (c * k + ki) * k
                        if h < 0 or h >= H:
                            for kj in range(k):
                                out[r, base + kj] = 0.0
                            continue
                        for kj in range(k):
                            w = j * stride + kj - pad
                            out[r, base + kj] = x[b, c, h, w] if 0 <= w < W else 0.0


def _col2im_body(cols, k, stride, pad, out):
    """Add every patch row of ``cols`` back onto the zeroed images ``out`` (B, C, H, W); padding dropped.

    Per image, rows in ascending order and within a row columns in ascending order: a fixed
    summation order for every output element.
    """
    B, C, H, W = out.shape
    Ho = (H + 2 * pad - k) // stride + 1
    Wo = (W + 2 * pad - k) // stride + 1
    for b in prange(B):
        for i in range(Ho):
            for j in range(Wo):
                r = (b * Ho + i) * Wo + j
                for c in range(C):
                    for ki in range(k):
                        h = i * stride + ki - pad
                        if h < 0 or h >= H:
                            continue
                        base = (c * k + ki) * k
                        for kj in range(k):
                            w = j * stride + kj - pad
                            if 0 <= w < W:
                                out[b, c, h, w] += cols[r, base + kj]


def _maxpool_body(x, size, stride, out, arg):
    """Max over each size x size window (no padding); ``arg`` the first maximum's index ki size + kj."""
    B, C, _H, _W = x.shape
    Ho, Wo = out.shape[2], out.shape[3]
    for b in prange(B):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    best = x[b, c, i * stride, j * stride]
                    where = 0
                    for ki in range(size):
                        for kj in range(size):
                            v = x[b, c, i * stride + ki, j * stride + kj]
                            if v > best or (np.isnan(v) and not np.isnan(best)):
                                best = v
                                where = ki * size + kj
                    out[b, c, i, j] = best
                    arg[b, c, i, j] = where


def _maxpool_backward_body(g, arg, size, stride, out):
    """Add each window's error to the input at its arg-max (``out`` zeroed, (B, C, H, W))."""
    B, C, Ho, Wo = g.shape
    for b in prange(B):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    a = arg[b, c, i, j]
                    out[b, c, i * stride + a // size, j * stride + a % size] += g[b, c, i, j]


_im2col_serial, _im2col_parallel = njit(_im2col_body), njit_parallel(_im2col_body)
_col2im_serial, _col2im_parallel = njit(_col2im_body), njit_parallel(_col2im_body)
_maxpool_serial, _maxpool_parallel = njit(_maxpool_body), njit_parallel(_maxpool_body)
_maxpool_bwd_serial, _maxpool_bwd_parallel = njit(_maxpool_backward_body), njit_parallel(_maxpool_backward_body)


def parallel(elements: int) -> bool:
    """Whether a kernel over ``elements`` array elements runs on numba's threads."""
    return elements >= PARALLEL_MIN_ELEMENTS and numba.get_num_threads() > 1


def im2col_into(x: np.ndarray, k: int, stride: int, pad: int, out: np.ndarray) -> None:
    """Fill ``out`` (B Ho Wo, C k k) float32 with the patch rows of ``x`` (B, C, H, W) float32."""
    (_im2col_parallel if parallel(out.size) else _im2col_serial)(x, k, stride, pad, out)


def col2im_into(cols: np.ndarray, k: int, stride: int, pad: int, out: np.ndarray) -> None:
    """Add the patch rows ``cols`` onto ``out`` (B, C, H, W) float32 (zeroed by the caller)."""
    (_col2im_parallel if parallel(cols.size) else _col2im_serial)(cols, k, stride, pad, out)


def maxpool_into(x: np.ndarray, size: int, stride: int, out: np.ndarray, arg: np.ndarray) -> None:
    """Max pooling of ``x`` into ``out`` with the window index of each maximum in ``arg`` (int64)."""
    (_maxpool_parallel if parallel(x.size) else _maxpool_serial)(x, size, stride, out, arg)


def maxpool_backward_into(g: np.ndarray, arg: np.ndarray, size: int, stride: int, out: np.ndarray) -> None:
    """Route the errors ``g`` to each window's maximum in ``out`` (zeroed, the input's shape)."""
    (_maxpool_bwd_parallel if parallel(out.size) else _maxpool_bwd_serial)(g, arg, size, stride, out)
