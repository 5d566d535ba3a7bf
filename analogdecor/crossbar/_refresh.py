"""Refresh of one-sided device pairs as aihwkit's ``OneSidedUnitCell`` does it (pure functions).

aihwkit 1.2.0 (src/rpucuda/rpu_onesided_device.cpp, ``refreshWeights``) checks
every pair after each update: for each column j it reads the G+ and the G-
devices through the refresh periphery with the unit input e_j, flags the pairs
whose larger read exceeds ``refresh_upper_thres * w_max`` while the smaller
exceeds ``refresh_lower_thres * w_max``, resets both devices of each flagged
pair (``PulsedRPUDevice::resetAtIndices``: w = reset_bias + reset_std xi,
clipped to the device's bounds, reset_bias = reset + reset_dtod xi drawn once
per device), and rewrites the read difference onto the device that held the
larger value with an open-loop pulsed update (x = e_j, d = the differences,
lr = -1). :class:`analogdecor.crossbar.Tile` runs the rewrite through its own
pulse kernels; this module holds the read, the criterion and the reset.

Random draws (``rng``, a NumPy Generator) in a fixed order, so that the slow
twin in tests/reference.py reproduces them bit for bit: :func:`unit_read` one
``standard_normal(shape)`` per read pass; :func:`reset_devices` one
``standard_normal(shape)`` when ``reset_std > 0``.
"""

from __future__ import annotations

import numpy as np

from analogdecor.crossbar._forward import analog_read
from analogdecor.crossbar.config import IOConfig

__all__ = ["refresh_criterion", "reset_devices", "rewrite_samples", "unit_read"]


def unit_read(w: np.ndarray, io: IOConfig, rng: np.random.Generator) -> np.ndarray:
    """Each weight read alone: what a read of column j with the unit input e_j returns for w_ij.

    Parameters
    ----------
    w
        (out, in) float32 weights of one device array.
    io
        The periphery of the read (aihwkit's ``refresh_forward``).
    rng
        Cycle-noise generator.

    Returns
    -------
    (out, in) float32, the same values ``analog_read(w.T, eye(in), io, rng).T`` gives
    in distribution (bit for bit without noise), computed element-wise in O(out * in).

    Notes
    -----
    With a unit input the periphery acts on each element alone: noise management
    scales by max|x| = 1; the DAC turns 1 / s into v (s = 2**k on the k-th
    bound-management pass); y = w v plus weight read noise (additive: w_noise |v| xi;
    pcm: w_noise sqrt(|w|) |v| xi) and output noise, quantised by the ADC and clipped
    to out_bound; a column in which some element reached the bound is read again with
    s doubled (at most ``max_bm_passes`` reads). Input noise couples the
    elements of a column (every input line carries noise), so with ``inp_noise`` > 0
    the columns are read through :func:`analog_read` with the identity as input.
    """
    w = np.asarray(w, np.float32)
    if io.is_perfect:
        return w.copy()
    if io.inp_noise > 0.0:
        eye = np.eye(w.shape[1], dtype=np.float32)
        return np.ascontiguousarray(analog_read(np.ascontiguousarray(w.T), eye, io, rng).T)
    out = np.empty(w.shape, np.float32)
    todo = np.ones(w.shape[1], bool)  # columns still to read
    passes = io.max_bm_passes if io.bound_management == "iterative" else 1
    w64 = w.astype(np.float64)
    for k in range(passes):
        s = 2.0**k
        inv_a = 1.0 / s  # as the DAC kernel: alpha = max|x| s = s
        if io.inp_step > 0.0:
            v = float(np.rint(1.0 * inv_a * (1.0 / io.inp_step)) * io.inp_step)
        else:
            v = 1.0 * inv_a
        v = float(np.float32(min(max(v, -io.inp_bound), io.inp_bound)))
        y = (w * np.float32(v)).astype(np.float64)  # float32 product, as the matmul computes it
        var = np.full(w.shape, io.out_noise**2)
        if io.w_noise > 0.0:
            var = (
                var
                + (io.w_noise**2) * (np.abs(w64) if io.w_noise_type == "pcm" else 1.0) * np.float32(v) ** 2
            )
        z = rng.standard_normal(w.shape)
        sd = np.sqrt(var)
        y = np.where(sd > 0.0, y + sd * z, y)
        if io.out_step > 0.0:
            y = np.rint(y * (1.0 / io.out_step)) * io.out_step
        hit = (np.abs(y) >= io.out_bound).any(axis=0)  # a column is read again when any output saturated
        y = np.clip(y, -io.out_bound, io.out_bound)
        out[:, todo] = (y * s)[:, todo].astype(np.float32)
        todo &= hit
        if not todo.any():
            break
    return out


def refresh_criterion(wp: np.ndarray, wm: np.ndarray, w_max: float, upper: float, lower: float) -> np.ndarray:
    """aihwkit's ``refreshCriterion`` on read values: the larger device above ``upper * w_max`` and the
    smaller above ``lower * w_max`` (w_max: the devices' mean upper bound, the same for G+ and G-)."""
    wp = np.asarray(wp, np.float32)
    wm = np.asarray(wm, np.float32)
    ref = np.float32(w_max)
    up_p, up_m = wp / ref > np.float32(upper), wm / ref > np.float32(upper)
    lo_p, lo_m = wp / ref > np.float32(lower), wm / ref > np.float32(lower)
    return np.where(wp > wm, up_p & lo_m, lo_p & up_m)


def reset_devices(w: np.ndarray, hit: np.ndarray, bias: np.ndarray, reset_std: float, lo: np.ndarray,
                  hi: np.ndarray, rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """``w`` with the ``hit`` devices reset to ``bias + reset_std xi``, clipped to [lo, hi] (float32).

    aihwkit ``PulsedRPUDevice::resetAtIndices``; ``bias`` is each device's reset value
    (reset + reset_dtod xi, drawn once).
    """
    target = np.asarray(bias, np.float64)
    if reset_std > 0.0:
        target = target + reset_std * rng.standard_normal(w.shape)
    target = np.maximum(np.minimum(target, hi), lo).astype(np.float32)
    return np.where(hit, target, w).astype(np.float32)


def rewrite_samples(diff: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The refresh write as update samples: for each column j with refreshed pairs (ascending), a sample
    x = e_j, d = the positive differences of the column (G+ rewrites), then one with d = the negative
    differences (G- rewrites), each only if non-empty. With lr = -1 a positive d raises G+, a negative
    d raises G- (aihwkit's two ``updateVectorWithDevice`` calls per column, each managed on its own).
    """
    n_out, n_in = diff.shape
    xs, ds = [], []
    for j in np.flatnonzero((diff != 0).any(axis=0)):
        col = diff[:, j]
        for part in (np.where(col > 0, col, 0), np.where(col < 0, col, 0)):
            if part.any():
                x = np.zeros(n_in, np.float32)
                x[j] = 1.0
                xs.append(x)
                ds.append(part.astype(np.float32))
    if not xs:
        return np.zeros((0, n_in), np.float32), np.zeros((0, n_out), np.float32)
    return np.stack(xs), np.stack(ds)
