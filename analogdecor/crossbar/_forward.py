"""Analogue matrix-vector reads with periphery: noise management, DAC, noise, ADC, bound management.

The pipeline for one input vector x (aihwkit ``IOParameters`` semantics, see
../shared/notes/aihwkit-semantics.md, "Forward / backward periphery"):

1. noise management: alpha = max_j |x_j| (1 without it); v = x / (alpha s), where
   s = 2**k is the bound-management factor of pass k;
2. DAC: v = clip(rint(v / s_in) s_in, -inp_bound, inp_bound) + inp_noise inp_bound xi
   (stored as float32, the noise added to the stored value);
3. y = W v (float32 BLAS), plus weight read noise: additive
   w_noise ||v|| xi, or PCM-like w_noise sqrt(sum_j |w_ij| v_j^2) xi;
4. per output: y += out_noise xi; y = clip(rint(y / s_out) s_out, -out_bound, out_bound);
5. bound management: if some |y_i| reached out_bound, redo the read of that
   vector with s doubled (at most ``max_bm_passes`` reads);
6. y <- y alpha s.

The matrix product runs in NumPy (BLAS, float32; see :func:`matmul`); the element-wise periphery of
steps 1-2 and 4-6 runs in two numba kernels (parallel over rows for large
blocks), one random stream per row, so results do not depend on the thread
count. Only the saturated rows are read again.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from analogdecor._numba import njit, njit_parallel
from analogdecor.crossbar._rng import normal, stream
from analogdecor.crossbar.config import IOConfig


def _dac_rows(x, pass_scale, noise_mgmt, inp_step, inp_bound, inp_noise, seed, v, alpha):
    """Steps 1-2 for each row of ``x`` (B, n) float32 into ``v`` (B, n) float32 and ``alpha`` (B,).

    ``alpha[b]`` receives the factor that multiplies the row's output back
    (max |x| times the bound-management factor); a zero row gets alpha 0 under
    noise management (its output is exactly 0).
    """
    n_rows, n = x.shape
    for b in prange(n_rows):
        a = 1.0
        if noise_mgmt:
            a = 0.0
            for j in range(n):
                t = abs(np.float64(x[b, j]))
                if t > a:
                    a = t
            if a == 0.0:
                for j in range(n):
                    v[b, j] = 0.0
                alpha[b] = 0.0
                continue
        a = a * pass_scale
        inv_a = 1.0 / a
        if inp_step > 0.0:
            inv_step = 1.0 / inp_step
            for j in range(n):  # no random draws here: this loop vectorises
                t = np.rint(np.float64(x[b, j]) * inv_a * inv_step) * inp_step
                v[b, j] = min(max(t, -inp_bound), inp_bound)
        else:
            for j in range(n):
                v[b, j] = min(max(np.float64(x[b, j]) * inv_a, -inp_bound), inp_bound)
        if inp_noise > 0.0:
            st = stream(seed, b)
            for j in range(n):
                z, st = normal(st)
                v[b, j] = np.float64(v[b, j]) + inp_noise * inp_bound * z
        alpha[b] = a


def _adc_rows(y, alpha, wn_var, out_noise, out_step, out_bound, seed, saturated):
    """Steps 4 and 6 in place on ``y`` (B, m) float32; ``saturated[b]`` flags rows that hit the bound.

    ``wn_var`` holds the variance of the weight read noise, shape (B, m), (B, 1)
    or (1, 1) (broadcast); it is added to out_noise**2.
    """
    n_rows, m = y.shape
    row_stride = 1 if wn_var.shape[0] > 1 else 0
    col_stride = 1 if wn_var.shape[1] > 1 else 0
    per_element = col_stride == 1
    inv_out_step = 1.0 / out_step if out_step > 0.0 else 0.0
    for b in prange(n_rows):
        st = stream(seed, b)
        hit = False
        rb = b * row_stride
        sd = np.sqrt(out_noise * out_noise + wn_var[rb, 0])
        for i in range(m):
            t = np.float64(y[b, i])
            if per_element:
                sd = np.sqrt(out_noise * out_noise + wn_var[rb, i * col_stride])
            if sd > 0.0:
                z, st = normal(st)
                t = t + sd * z
            if out_step > 0.0:
                t = np.rint(t * inv_out_step) * out_step
            if t >= out_bound:
                t = out_bound
                hit = True
            elif t <= -out_bound:
                t = -out_bound
                hit = True
            y[b, i] = t * alpha[b]
        saturated[b] = hit


# Each kernel is compiled twice from one body: serial for small blocks, parallel for large ones. The
# element-wise periphery is cheap next to the product, and idle OpenMP threads that spin after a
# parallel region take the cores BLAS needs for the product that follows: parallel only pays for
# very large blocks.
_dac_serial, _dac_parallel = njit(_dac_rows), njit_parallel(_dac_rows)
_adc_serial, _adc_parallel = njit(_adc_rows), njit_parallel(_adc_rows)
PARALLEL_MIN_ELEMENTS = 1 << 20
"""Blocks with fewer elements than this run the serial periphery kernels."""

_NO_WNOISE = np.zeros((1, 1))


def _pick(serial, parallel, n_elements: int):
    if n_elements < PARALLEL_MIN_ELEMENTS:
        return serial
    return parallel if numba.get_num_threads() > 1 else serial


MATMUL_SWAP_MAX_ROWS = 128
"""Largest batch for which :func:`matmul` swaps the operands of a transposed-view matrix."""


def matmul(v: np.ndarray, mat: np.ndarray) -> np.ndarray:
    """``v @ mat`` in float32, C-contiguous.

    A forward read passes ``mat = W.T``, a transposed view. For small batches
    OpenBLAS is faster computing ``(W @ v.T).T`` (plus a copy to C order) than
    ``v @ W.T``: single-threaded, 290 vs 337 us at 64 x 784 x 256 and 69 vs 129 us
    at 8 x 784 x 256, but 1.50 vs 1.42 ms at 256 x 512 x 512; so the operands are
    swapped up to :data:`MATMUL_SWAP_MAX_ROWS` rows.
    """
    if v.shape[0] <= MATMUL_SWAP_MAX_ROWS and mat.flags.f_contiguous and not mat.flags.c_contiguous:
        return np.ascontiguousarray((mat.T @ v.T).T)
    return v @ mat


def _one_pass(mat, x, io: IOConfig, pass_scale: float, seeds: tuple[np.uint64, np.uint64], abs_mat):
    """One read of every row of ``x`` through ``y = v @ mat``; returns (y, saturated)."""
    n_rows = x.shape[0]
    v = np.empty_like(x)
    alpha = np.empty(n_rows)
    dac = _pick(_dac_serial, _dac_parallel, x.size)
    dac(x, pass_scale, io.noise_management == "abs_max", io.inp_step, io.inp_bound, io.inp_noise, seeds[0], v, alpha)
    y = matmul(v, mat)
    if io.w_noise > 0.0:
        if io.w_noise_type == "pcm":
            wn_var = (io.w_noise**2) * matmul(v * v, abs_mat).astype(np.float64)
        else:
            wn_var = (io.w_noise**2) * np.sum(v.astype(np.float64) ** 2, axis=1, keepdims=True)
    else:
        wn_var = _NO_WNOISE
    saturated = np.empty(n_rows, np.bool_)
    adc = _pick(_adc_serial, _adc_parallel, y.size)
    adc(y, alpha, wn_var, io.out_noise, io.out_step, io.out_bound, seeds[1], saturated)
    return y, saturated


def analog_read(mat: np.ndarray, x: np.ndarray, io: IOConfig, rng: np.random.Generator) -> np.ndarray:
    """``x @ mat`` through the periphery ``io`` (one analogue read per row of ``x``).

    Parameters
    ----------
    mat
        (n, m) float32: ``W.T`` for a forward read, ``W`` for a backward read.
    x
        (B, n) float32, C-contiguous, finite (the caller validates).
    io
        Periphery of this read direction.
    rng
        Cycle-noise generator; each pass draws two 64-bit kernel seeds from it.

    Returns
    -------
    (B, m) float32.
    """
    if io.is_perfect:
        return x @ mat
    abs_mat = np.abs(mat) if (io.w_noise > 0.0 and io.w_noise_type == "pcm") else None
    seeds = draw_seeds(rng)
    y, saturated = _one_pass(mat, x, io, 1.0, seeds, abs_mat)
    if io.bound_management == "iterative" and io.max_bm_passes > 1 and saturated.any():
        rows = np.flatnonzero(saturated)
        for k in range(1, io.max_bm_passes):
            seeds = draw_seeds(rng)
            y_sub, sat_sub = _one_pass(mat, np.ascontiguousarray(x[rows]), io, 2.0**k, seeds, abs_mat)
            y[rows] = y_sub
            rows = rows[sat_sub]
            if rows.size == 0:
                break
    return y


def draw_seeds(rng: np.random.Generator) -> tuple[np.uint64, np.uint64]:
    """Two 64-bit kernel seeds from ``rng``.

    The same values as ``rng.integers(0, 2**64 - 1, size=2, dtype=np.uint64,
    endpoint=True)`` (a full-range draw takes the generator's raw 64-bit words;
    tests/reference.py draws them that way), at a tenth of the call overhead.
    """
    s = rng.bit_generator.random_raw(2)
    return np.uint64(s[0]), np.uint64(s[1])
