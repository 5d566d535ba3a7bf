"""Parallel pulsed update: gradient outer products turned into device pulses.

For each sample n of a batch (applied in order, as hardware does) and learning
rate lr, with g the device's weight granularity (``DeviceConfig.weight_granularity``:
dw_min for most families; see ../shared/notes/aihwkit-semantics.md, "Gradient
to pulses"):

    xmax = max|x|, dmax = max|d|      (no update if either is 0)
    k  = |lr| xmax dmax / g,  BL = min(ceil(k), BL_max)  (BL_max without BL management)
    if k > BL: dmax <- dmax BL / k                       (clips the update)
    A = B = sqrt(|lr| / (g BL)); with update management A *= sqrt(xmax/dmax), B *= sqrt(dmax/xmax)
    p_x_j = min(B |x_j|, 1),  p_d_i = min(A |d_i|, 1)

Stochastic mode: in each of BL slots, line j fires with probability p_x_j and
line i with p_d_i; device (i, j) gets one pulse per coincidence, so
n_ij ~ Binomial(BL, p_x_j p_d_i) and E[n_ij] g = |lr x_j d_i| (unclipped).
Deterministic mode: n_ij = rint(BL p_x_j p_d_i), no stream noise. The pulse
direction is DOWN when sign(x_j) sign(d_i) sign(lr) > 0 (SGD: W <- W - lr d x^T).

Each pulse changes the weight by the family's step at the current weight with
fresh cycle noise, then clips it to the device's own bounds. After a device's
pulses of one sample, its weight is snapped to the conductance levels (if any)
and its apparent (read) weight gets fresh write noise (if any).

Bit streams are bit masks: slot t of a line is bit t of its mask (words of 64
slots, as many as the longest train needs), so the coincidences of device
(i, j) are ``popcount(mask_x_j & mask_d_i)`` and only the x lines that fired at
least once are visited (aihwkit's compressed stochastic pulses work the same way).

Kernels: ``management_kernel`` computes BL and the probability scales of every
sample; ``draw_x_lines`` draws the x-line masks (shared by all rows; one stream
per sample, columns in ascending order, a column's slots in order) and lists the
columns that fired; ``pulse_rows`` runs the rows (in parallel for large updates;
one stream per row: the d-line bits of row i and its devices' cycle noise),
samples in order within a row, devices in ascending column order. Results do
not depend on the thread count.

Mixed precision (``mixed_rows``; Nandakumar et al., Front. Neurosci. 14:406,
2020): a digital accumulator chi holds each device's desired weight change;
device (i, j) gets exactly min(|trunc(chi_ij / g)|, max_pulses) pulses of the
sign of chi_ij, one after the other with the same per-pulse step, cycle noise,
bounds, levels and write noise as above (the same per-device block as the row
kernel, written out in both: a shared inlined helper measured 25 % slower), and
chi keeps the rest. One pass over the devices, only those with
|chi_ij| >= g doing any work; one stream per row, devices in column order.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange

from analogdecor._numba import njit, njit_parallel
from analogdecor.crossbar._rng import normal, stream, uniform

CONSTANT, LINEAR, EXP, POW, PIECEWISE = 1, 2, 3, 4, 5

_ZERO, _ONE = np.uint64(0), np.uint64(1)
_S1, _S2, _S4, _S56 = np.uint64(1), np.uint64(2), np.uint64(4), np.uint64(56)
_M55 = np.uint64(0x5555555555555555)
_M33 = np.uint64(0x3333333333333333)
_M0F = np.uint64(0x0F0F0F0F0F0F0F0F)
_M01 = np.uint64(0x0101010101010101)


@njit(inline="always")
def popcount(v):
    """Number of set bits of the uint64 ``v`` (SWAR; LLVM turns it into one instruction where it can)."""
    v = v - ((v >> _S1) & _M55)
    v = (v & _M33) + ((v >> _S2) & _M33)
    v = (v + (v >> _S4)) & _M0F
    return np.int64((v * _M01) >> _S56)


@njit
def management_kernel(xmax, dmax, alr, dw_min, desired_bl, update_management, bl_management, bl, scale_x, scale_d):
    """Fill ``bl``, ``scale_x``, ``scale_d`` (B,) from each sample's max|x| and max|d| (see :func:`pulse_management`).

    Returns -1, or the first sample whose k = alr max|x| max|d| / dw_min is not
    finite (nothing is defined for it; the caller raises).
    """
    for n in range(xmax.shape[0]):
        bl[n] = 0
        scale_x[n] = 0.0
        scale_d[n] = 0.0
        xm = np.float64(xmax[n])
        dm = np.float64(dmax[n])
        if xm == 0.0 or dm == 0.0 or alr == 0.0:
            continue
        k = alr * xm * dm / dw_min
        if not math.isfinite(k):
            return n
        length = desired_bl
        if bl_management and k < desired_bl:
            length = max(np.int64(math.ceil(k)), 1)
        if k > length:
            dm = dm * length / k
        a = math.sqrt(alr / (dw_min * length))
        b = a
        if update_management:
            a *= math.sqrt(xm / dm)
            b *= math.sqrt(dm / xm)
        bl[n] = length
        scale_x[n] = b
        scale_d[n] = a
    return -1


def pulse_management(x, d, lr, dw_min, desired_bl, update_management, bl_management):
    """Per-sample pulse-train length and line probabilities' scale factors.

    Parameters
    ----------
    x, d : (B, in), (B, out) float32 arrays (finite).
    lr : float (may be negative).
    dw_min : float, the weight granularity g (``DeviceConfig.weight_granularity``).

    Returns
    -------
    bl : (B,) int64 pulse-train length (0 where nothing happens),
    scale_x, scale_d : (B,) float64, so that p_x = min(scale_x |x|, 1), p_d = min(scale_d |d|, 1).

    Raises
    ------
    ValueError
        If lr max|x| max|d| / dw_min overflows for some sample.
    """
    n_samples = x.shape[0]
    xmax = np.abs(x).max(axis=1) if x.shape[1] else np.zeros(n_samples, x.dtype)
    dmax = np.abs(d).max(axis=1) if d.shape[1] else np.zeros(n_samples, d.dtype)
    bl = np.empty(n_samples, np.int64)
    scale_x = np.empty(n_samples)
    scale_d = np.empty(n_samples)
    alr = abs(float(lr))
    bad = management_kernel(xmax, dmax, alr, float(dw_min), int(desired_bl), bool(update_management),
                            bool(bl_management), bl, scale_x, scale_d)  # fmt: skip
    if bad >= 0:
        raise ValueError(
            f"sample {bad}: lr * max|x| * max|d| / dw_min overflows ({alr!r} * {float(xmax[bad])!r} * "
            f"{float(dmax[bad])!r} / {dw_min!r}); reduce lr or the inputs"
        )
    return bl, scale_x, scale_d


def n_mask_words(max_bl: int) -> int:
    """64-bit words per line mask for pulse trains of up to ``max_bl`` slots."""
    return max(1, (int(max_bl) + 63) // 64)


class MaskBuffers:
    """Scratch arrays of :func:`draw_x_lines`, kept by a tile between updates (no page faults per update).

    ``get(n_samples, n_in, n_words)`` returns C-contiguous (fcol, fmask, nfired)
    with at least ``n_samples`` rows, reallocated only when the sizes grow or the
    word count changes.
    """

    def __init__(self) -> None:
        self._arrays: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def get(self, n_samples: int, n_in: int, n_words: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        a = self._arrays
        if a is None or a[0].shape[0] < n_samples or a[0].shape[1] != n_in or a[1].shape[2] != n_words:
            a = (np.empty((n_samples, n_in), np.int32), np.empty((n_samples, n_in, n_words), np.uint64),
                 np.empty(n_samples, np.int32))  # fmt: skip
            self._arrays = a
        return a[0][:n_samples], a[1][:n_samples], a[2][:n_samples]


def _x_lines_body(x, bl, scale_x, seed, fcol, fmask, nfired):
    """Bit masks of the x lines of each sample: the k-th column that fired in sample n is
    ``fcol[n, k]`` (ascending), its slots the bits of ``fmask[n, k, :]``; ``nfired[n]`` columns fired.

    Stream n draws one uniform per slot of each column with p_x > 0, columns
    in ascending order, the slots of a column in order. The loops are written
    without data-dependent branches (which inputs are zero and which lines fire
    is random; mispredicted branches cost more than the draws): ``fcol[n]``
    first lists the columns with p_x > 0, then is overwritten in place by those
    that fired.
    """
    n_samples, n_in = x.shape
    for n in prange(n_samples):
        n_slots = bl[n]
        c = 0
        if n_slots > 0:
            sx = scale_x[n]
            n_lit = 0
            for j in range(n_in):
                fcol[n, n_lit] = j
                n_lit += sx * abs(np.float64(x[n, j])) > 0.0
            st = stream(seed, n)
            for k in range(n_lit):
                j = fcol[n, k]
                p = min(sx * abs(np.float64(x[n, j])), 1.0)
                fired, st = _draw_line(p, n_slots, fmask[n, c], st)
                fcol[n, c] = j  # c <= k: overwrites only columns already read
                c += fired != _ZERO
        nfired[n] = c


@njit(inline="always")
def _draw_line(p, n_slots, out, st):
    """One line's bit stream: slot t fires with probability ``p``, stored as bit t % 64 of
    ``out[t // 64]``; one uniform per slot, slots in order. Returns (union of the words, stream state).
    """
    fired = _ZERO
    for wd in range(out.shape[0]):
        m = _ZERO
        for t in range(min(n_slots - wd * 64, 64)):
            u, st = uniform(st)
            m |= np.uint64(u < p) << np.uint64(t)
        out[wd] = m
        fired |= m
    return fired, st


@njit(inline="always")
def piecewise_factor(table, w, bmin, bmax):
    """PiecewiseStep's relative step at weight ``w``: ``table`` (n nodes, spaced evenly from ``bmin`` to
    ``bmax``) interpolated linearly (aihwkit ``PiecewiseStepRPUDevice``: the node below is
    min(floor(u (n - 1)), n - 2) for u = max((w - bmin) / (bmax - bmin), 0), the fraction capped at 1)."""
    n_sections = table.shape[0] - 1
    if n_sections <= 0 or bmax <= bmin:
        return table[0]
    u = max((w - bmin) / (bmax - bmin) * n_sections, 0.0)
    k = min(np.int64(math.floor(u)), n_sections - 1)
    t = min(u - k, 1.0)
    return (1.0 - t) * table[k] + t * table[k + 1]


@njit(inline="always")
def _apply_pulses(w, count, up, model, su, sd, slope_up, slope_down, bmin, bmax, std, mult_noise,
                  es_a, es_b, es_gamma_up, es_gamma_down, es_A_up, es_A_down, std_add, std_slope, pw_up, pw_down,
                  st):  # fmt: skip
    """``count`` pulses in one direction on one device from weight ``w``; returns (new weight, stream state).

    ``pw_up``/``pw_down`` (float64 arrays) are PiecewiseStep's node tables (ignored by other families)."""
    scale = su if up else sd
    for _ in range(count):
        if model == CONSTANT:
            dw = scale
        elif model == LINEAR:
            dw = scale * (1.0 + (slope_up if up else slope_down) * w)
        elif model == EXP:
            z = 2.0 * es_a * w / (bmax - bmin) + es_b if bmax > bmin else es_b
            if up:
                y = 1.0 - es_A_up * math.exp(es_gamma_up * z)
            else:
                y = 1.0 - es_A_down * math.exp(-es_gamma_down * z)
            dw = max(y, 0.0) * scale
        elif model == PIECEWISE:
            dw = scale * piecewise_factor(pw_up if up else pw_down, w, bmin, bmax)
        else:  # POW
            rng_w = bmax - bmin
            if rng_w > 0.0:
                omega = (bmax - w) / rng_w
                base = omega if up else 1.0 - omega
                base = min(max(base, 0.0), 1.0)
                dw = scale * base ** (slope_up if up else slope_down)
            else:
                dw = 0.0
        if std > 0.0:
            xi, st = normal(st)
            if model == EXP and (std_add > 0.0 or std_slope > 0.0):
                dw = dw + std * (std_add + abs(dw) + std_slope * abs(w)) * xi
            elif model == LINEAR and not mult_noise:
                dw = dw + scale * std * xi
            else:
                dw = dw * (1.0 + std * xi)
        w = w + dw if up else w - dw
        if w > bmax:
            w = bmax
        elif w < bmin:
            w = bmin
    return w, st


@njit(inline="always")
def snap_to_levels(w, level_step, bmin, bmax):
    """Nearest multiple of ``level_step`` inside [bmin, bmax] (0 = continuous: w unchanged)."""
    if level_step <= 0.0:
        return w
    q = np.rint(w / level_step) * level_step
    if q > bmax:
        q -= level_step
    if q < bmin:
        q += level_step
    if q > bmax or q < bmin:  # bounds closer than one level: keep the clipped weight
        return w
    return q


def _make_pulse_rows(model, pair, deterministic, faults):
    """The row kernel's body for one device family, pair mode, pulse type and whether any device is
    faulty (compile-time constants).

    Each combination is compiled (and cached) on its own, so the inner loop has
    no branches on the family or the mode; see :func:`pulse_rows`.
    """

    def _pulse_rows(w, w_read, w_plus, w_minus, lo_plus, lo_minus, x, d, lr_sign, bl, scale_x, scale_d,
                    fcol, fmask, nfired, seed, scale_up, scale_down, slope_up, slope_down, b_min, b_max, fault,
                    std, mult_noise, es_a, es_b, es_gamma_up, es_gamma_down, es_A_up, es_A_down, std_add,
                    std_slope, pw_up, pw_down, write_noise, level_step, counts):  # fmt: skip
        """Apply the batch's pulses row by row (parallel over rows, samples in order within a row).

        ``counts`` (2, out, in) uint64 accumulates the pulses fired at every device
        (``counts[0]``: up pulses, raising w; ``counts[1]``: down pulses; for a
        one-sided pair, the pulses into G+ and G-), faulty devices included
        (their lines fire all the same). Each row writes only its own entries, once, at the
        end of the row (summed in a row buffer first: adding to ``counts`` at every device took
        the update from 3.3-3.7 ms to 6.2-6.7 ms at 256 x 784, batch 64, one thread; 5.4 ms so).

        ``w`` and ``w_read`` (out, in) float32 are updated in place. ``write_noise``
        is the absolute std of the apparent-weight noise (write_noise_std dw_min).
        Per sample, row i draws its d-line mask (one uniform per slot, only when
        p_d > 0), then visits the x lines that fired (``fcol``/``fmask``/``nfired``
        of :func:`draw_x_lines`; all columns in deterministic mode) in ascending
        order; each device's pulses (popcount of the two masks) are applied one
        after the other. Devices do not interact, so the order only fixes which
        random numbers each device draws.
        With ``pair``, each weight is a one-sided pair (``w_plus``, ``w_minus``, lower
        bounds ``lo_plus``, ``lo_minus``; upper bounds ``b_max`` and ``-b_min``): an
        up pulse goes to G+, a down pulse to G- (as an up pulse on its own response,
        ``scale_down``/``slope_down``), and ``w = w_plus - w_minus``.
        """
        n_out, n_in = w.shape
        n_samples = x.shape[0]
        n_words = fmask.shape[2]
        for i in prange(n_out):
            st = stream(seed, i)
            row_counts = np.zeros((2, n_in), np.int64)  # this row's pulses, added to ``counts`` at the end
            dmask = np.zeros(n_words, np.uint64)
            active = np.empty(n_samples, np.int64)  # samples with p_d > 0 on this row (no branch per sample)
            n_active = 0
            for n in range(n_samples):
                active[n_active] = n
                n_active += (bl[n] > 0) & (scale_d[n] * abs(np.float64(d[n, i])) > 0.0)
            for s in range(n_active):
                n = active[s]
                n_slots = bl[n]
                di = np.float64(d[n, i])
                p_d = min(scale_d[n] * abs(di), 1.0)
                if deterministic:
                    n_visit = n_in
                else:
                    fired, st = _draw_line(p_d, n_slots, dmask, st)
                    if fired == _ZERO:
                        continue
                    n_visit = nfired[n]
                sd_sign = lr_sign * (1.0 if di > 0 else -1.0)
                for k in range(n_visit):
                    if deterministic:
                        j = k
                        p_x = min(scale_x[n] * abs(np.float64(x[n, j])), 1.0)
                        cnt = np.int64(np.rint(n_slots * p_x * p_d))
                    else:
                        j = fcol[n, k]
                        cnt = popcount(fmask[n, k, 0] & dmask[0])
                        for wd in range(1, n_words):
                            cnt += popcount(fmask[n, k, wd] & dmask[wd])
                    if cnt == 0:
                        continue
                    up = sd_sign * (1.0 if x[n, j] > 0 else -1.0) < 0.0
                    row_counts[0 if up else 1, j] += cnt
                    if faults and fault[i, j] != 0:
                        continue
                    if pair:
                        if up:
                            su, sl = np.float64(scale_up[i, j]), np.float64(slope_up[i, j])
                            lo, hi, wt = np.float64(lo_plus[i, j]), np.float64(b_max[i, j]), np.float64(w_plus[i, j])
                        else:
                            su, sl = np.float64(scale_down[i, j]), np.float64(slope_down[i, j])
                            lo, hi = np.float64(lo_minus[i, j]), -np.float64(b_min[i, j])
                            wt = np.float64(w_minus[i, j])
                        wt, st = _apply_pulses(wt, cnt, True, model, su, su, sl, sl, lo, hi, std, mult_noise, es_a,
                                               es_b, es_gamma_up, es_gamma_down, es_A_up, es_A_down, std_add,
                                               std_slope, pw_up, pw_down, st)  # fmt: skip
                        wt = snap_to_levels(wt, level_step, lo, hi)
                        if up:
                            w_plus[i, j] = wt
                        else:
                            w_minus[i, j] = wt
                        wij = np.float64(w_plus[i, j]) - np.float64(w_minus[i, j])
                    else:
                        lo, hi = np.float64(b_min[i, j]), np.float64(b_max[i, j])
                        if up:
                            su, sl = np.float64(scale_up[i, j]), np.float64(slope_up[i, j])
                        else:
                            su, sl = np.float64(scale_down[i, j]), np.float64(slope_down[i, j])
                        wij, st = _apply_pulses(np.float64(w[i, j]), cnt, up, model, su, su, sl, sl, lo, hi, std,
                                                mult_noise, es_a, es_b, es_gamma_up, es_gamma_down, es_A_up,
                                                es_A_down, std_add, std_slope, pw_up, pw_down, st)  # fmt: skip
                        wij = snap_to_levels(wij, level_step, lo, hi)
                    w[i, j] = wij
                    if write_noise > 0.0:
                        z, st = normal(st)
                        w_read[i, j] = wij + write_noise * z
                    else:
                        w_read[i, j] = wij
            for j in range(n_in):
                counts[0, i, j] += np.uint64(row_counts[0, j])
                counts[1, i, j] += np.uint64(row_counts[1, j])

    return _pulse_rows


def _make_mixed_rows(model, pair, faults):
    """The mixed-precision kernel's body for one device family, pair mode and whether any device is
    faulty (compile-time constants; see :func:`mixed_rows`)."""

    def _mixed_rows(w, w_read, w_plus, w_minus, lo_plus, lo_minus, chi, step, max_pulses, seed, scale_up,
                    scale_down, slope_up, slope_down, b_min, b_max, fault, std, mult_noise, es_a, es_b, es_gamma_up,
                    es_gamma_down, es_A_up, es_A_down, std_add, std_slope, pw_up, pw_down, write_noise,
                    level_step, counts):  # fmt: skip
        """Fire the pulses the digital accumulator ``chi`` (out, in) float64 holds, row by row.

        Device (i, j) gets n = min(|trunc(chi_ij / step)|, max_pulses) pulses, up
        if chi_ij > 0, down if below, applied one after the other with the
        device's own step, cycle noise and bounds (:func:`_apply_pulses`), then
        levels and write noise, as in ``_pulse_rows``; ``chi_ij`` keeps the rest,
        ``chi_ij - sign n step`` (in place). Faulty devices take no pulses but their accumulator is spent
        alike (the controller fires; the device does not respond); ``counts``
        (2, out, in) uint64 adds the fired pulses as in the pulsed update. Row i draws
        from ``stream(seed, i)``, devices in ascending column order, one normal
        per pulse (``std`` > 0) and one per written device (write noise), so the
        result does not depend on the thread count.
        """
        n_out, n_in = w.shape
        for i in prange(n_out):
            st = stream(seed, i)
            for j in range(n_in):
                c = chi[i, j]
                if abs(c) < step:  # most devices: nothing to fire
                    continue
                n = min(math.floor(abs(c) / step), max_pulses)
                up = c > 0.0
                chi[i, j] = c - n * step if up else c + n * step
                counts[0 if up else 1, i, j] += np.uint64(n)
                if faults and fault[i, j] != 0:
                    continue
                cnt = np.int64(n)
                if pair:
                    if up:
                        su, sl = np.float64(scale_up[i, j]), np.float64(slope_up[i, j])
                        lo, hi, wt = np.float64(lo_plus[i, j]), np.float64(b_max[i, j]), np.float64(w_plus[i, j])
                    else:
                        su, sl = np.float64(scale_down[i, j]), np.float64(slope_down[i, j])
                        lo, hi = np.float64(lo_minus[i, j]), -np.float64(b_min[i, j])
                        wt = np.float64(w_minus[i, j])
                    wt, st = _apply_pulses(wt, cnt, True, model, su, su, sl, sl, lo, hi, std, mult_noise, es_a, es_b,
                                           es_gamma_up, es_gamma_down, es_A_up, es_A_down, std_add, std_slope,
                                           pw_up, pw_down, st)  # fmt: skip
                    wt = snap_to_levels(wt, level_step, lo, hi)
                    if up:
                        w_plus[i, j] = wt
                    else:
                        w_minus[i, j] = wt
                    wij = np.float64(w_plus[i, j]) - np.float64(w_minus[i, j])
                else:
                    lo, hi = np.float64(b_min[i, j]), np.float64(b_max[i, j])
                    if up:
                        su, sl = np.float64(scale_up[i, j]), np.float64(slope_up[i, j])
                    else:
                        su, sl = np.float64(scale_down[i, j]), np.float64(slope_down[i, j])
                    wij, st = _apply_pulses(np.float64(w[i, j]), cnt, up, model, su, su, sl, sl, lo, hi, std,
                                            mult_noise, es_a, es_b, es_gamma_up, es_gamma_down, es_A_up, es_A_down,
                                            std_add, std_slope, pw_up, pw_down, st)  # fmt: skip
                    wij = snap_to_levels(wij, level_step, lo, hi)
                w[i, j] = wij
                if write_noise > 0.0:
                    z, st = normal(st)
                    w_read[i, j] = wij + write_noise * z
                else:
                    w_read[i, j] = wij

    return _mixed_rows


# Each kernel is compiled serial and parallel from one body. Parallel regions pay only for large
# updates: below that, thread hand-off costs more than the work, and idle OpenMP threads that spin
# after a region steal the cores BLAS needs next (10-20x slower training steps on a busy 2-core box).
_x_lines_serial, _x_lines_parallel = njit(_x_lines_body), njit_parallel(_x_lines_body)
_ROW_KERNELS: dict[tuple[int, bool, bool, bool, bool], object] = {}
_MIXED_KERNELS: dict[tuple[int, bool, bool, bool], object] = {}
PARALLEL_MIN_WORK = 1 << 26
"""Updates with batch * out * in below this run the serial kernels."""


def _parallel(work: int) -> bool:
    return work >= PARALLEL_MIN_WORK and numba.get_num_threads() > 1


def draw_x_lines(x, bl, scale_x, seed, fcol, fmask, nfired, work: int) -> None:
    """Bit masks of the x lines (see ``_x_lines_body``), serial or parallel by ``work``."""
    (_x_lines_parallel if _parallel(work) else _x_lines_serial)(x, bl, scale_x, seed, fcol, fmask, nfired)


def row_kernel(model: int, pair: bool, deterministic: bool, faults: bool, parallel: bool):
    """The compiled row kernel (see ``_make_pulse_rows``) of one combination, built on first use."""
    key = (int(model), bool(pair), bool(deterministic), bool(faults), bool(parallel))
    kernel = _ROW_KERNELS.get(key)
    if kernel is None:
        body = _make_pulse_rows(*key[:4])
        kernel = _ROW_KERNELS[key] = (njit_parallel if parallel else njit)(body)
    return kernel


def pulse_rows(model: int, pair: bool, deterministic: bool, faults: bool, *args, work: int) -> None:
    """Apply the pulses (``args`` as in ``_make_pulse_rows``), serial or parallel by ``work``."""
    row_kernel(model, pair, deterministic, faults, _parallel(work))(*args)


PARALLEL_MIN_DEVICES = 1 << 22
"""Mixed-precision updates of tiles with fewer devices than this run the serial kernel."""


def mixed_kernel(model: int, pair: bool, faults: bool, parallel: bool):
    """The compiled mixed-precision kernel (see ``_make_mixed_rows``) of one combination, built on first use."""
    key = (int(model), bool(pair), bool(faults), bool(parallel))
    kernel = _MIXED_KERNELS.get(key)
    if kernel is None:
        body = _make_mixed_rows(*key[:3])
        kernel = _MIXED_KERNELS[key] = (njit_parallel if parallel else njit)(body)
    return kernel


def mixed_rows(model: int, pair: bool, faults: bool, *args) -> None:
    """Fire an accumulator's pulses (``args`` as in ``_make_mixed_rows``), serial or parallel by tile size."""
    w = args[0]
    parallel = w.size >= PARALLEL_MIN_DEVICES and numba.get_num_threads() > 1
    mixed_kernel(model, pair, faults, parallel)(*args)
