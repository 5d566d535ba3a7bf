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

Kernels: ``draw_x_lines`` draws the x-line bit streams (shared by all rows; one
stream per sample), ``pulse_rows`` runs the rows (in parallel for large updates;
one stream per row: the d-line bits of row i and its devices' cycle noise),
samples in order within a row. Results do not depend on the thread count.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange

from analogdecor._numba import njit, njit_parallel
from analogdecor.crossbar._rng import normal, stream, uniform

CONSTANT, LINEAR, EXP, POW = 1, 2, 3, 4


def pulse_management(x, d, lr, dw_min, desired_bl, update_management, bl_management):
    """Per-sample pulse-train length and line probabilities' scale factors.

    Parameters
    ----------
    x, d : (B, in), (B, out) float arrays.
    lr : float (may be negative).
    dw_min : float, the weight granularity g (``DeviceConfig.weight_granularity``).

    Returns
    -------
    bl : (B,) int64 pulse-train length (0 where nothing happens),
    scale_x, scale_d : (B,) float64, so that p_x = min(scale_x |x|, 1), p_d = min(scale_d |d|, 1).
    """
    xmax = np.abs(x).max(axis=1).astype(np.float64) if x.shape[1] else np.zeros(x.shape[0])
    dmax = np.abs(d).max(axis=1).astype(np.float64) if d.shape[1] else np.zeros(d.shape[0])
    alr = abs(float(lr))
    active = (xmax > 0) & (dmax > 0) & (alr > 0)
    bl = np.zeros(x.shape[0], np.int64)
    scale_x = np.zeros(x.shape[0])
    scale_d = np.zeros(x.shape[0])
    for n in np.flatnonzero(active):
        k = alr * float(xmax[n]) * float(dmax[n]) / dw_min  # Python floats: overflow gives inf, checked here
        if not math.isfinite(k):
            raise ValueError(
                f"sample {n}: lr * max|x| * max|d| / dw_min overflows ({alr!r} * {xmax[n]!r} * {dmax[n]!r} / "
                f"{dw_min!r}); reduce lr or the inputs"
            )
        length = min(math.ceil(k), desired_bl) if bl_management else desired_bl
        length = max(length, 1)
        dm = dmax[n] * length / k if k > length else dmax[n]
        a = b = math.sqrt(alr / (dw_min * length))
        if update_management:
            a *= math.sqrt(xmax[n] / dm)
            b *= math.sqrt(dm / xmax[n])
        bl[n] = length
        scale_x[n] = b
        scale_d[n] = a
    return bl, scale_x, scale_d


def _x_lines_body(x, bl, scale_x, seed, xidx, xcnt):
    """Bit streams of the x lines: for sample n and slot t, the fired columns xidx[n, t, :xcnt[n, t]]."""
    n_samples, n_in = x.shape
    for n in prange(n_samples):
        st = stream(seed, n)
        for t in range(bl[n]):
            c = 0
            for j in range(n_in):
                p = min(scale_x[n] * abs(np.float64(x[n, j])), 1.0)
                if p > 0.0:
                    u, st = uniform(st)
                    if u < p:
                        xidx[n, t, c] = j
                        c += 1
            xcnt[n, t] = c


@njit(inline="always")
def _apply_pulses(w, count, up, model, su, sd, slope_up, slope_down, bmin, bmax, std, mult_noise,
                  es_a, es_b, es_gamma_up, es_gamma_down, es_A_up, es_A_down, std_add, std_slope, st):  # fmt: skip
    """``count`` pulses in one direction on one device from weight ``w``; returns (new weight, stream state)."""
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


def _pulse_rows_body(w, w_read, pair, w_plus, w_minus, lo_plus, lo_minus,
                x, d, lr_sign, bl, scale_x, scale_d, deterministic, xidx, xcnt, seed,
                model, scale_up, scale_down, slope_up, slope_down, b_min, b_max, fault,
                std, mult_noise, es_a, es_b, es_gamma_up, es_gamma_down, es_A_up, es_A_down,
                std_add, std_slope, write_noise, level_step):  # fmt: skip
    """Apply the batch's pulses row by row (parallel over rows, samples in order within a row).

    ``w`` and ``w_read`` (out, in) float32 are updated in place. ``write_noise``
    is the absolute std of the apparent-weight noise (write_noise_std dw_min).
    Per sample, each device's pulses (its coincidences over the slots) are applied
    one after the other; devices are visited in the order they first got a pulse
    (slot by slot, columns ascending within a slot) in stochastic mode, in column
    order in deterministic mode. Devices do not interact, so the order only
    fixes which random numbers each device draws.
    With ``pair``, each weight is a one-sided pair (``w_plus``, ``w_minus``, lower
    bounds ``lo_plus``, ``lo_minus``; upper bounds ``b_max`` and ``-b_min``): an
    up pulse goes to G+, a down pulse to G- (as an up pulse on its own response,
    ``scale_down``/``slope_down``), and ``w = w_plus - w_minus``.
    """
    n_out, n_in = w.shape
    n_samples = x.shape[0]
    for i in prange(n_out):
        st = stream(seed, i)
        count = np.zeros(n_in, np.int64)
        touched = np.empty(n_in, np.int64)
        for n in range(n_samples):
            if bl[n] == 0:
                continue
            di = np.float64(d[n, i])
            p_d = min(scale_d[n] * abs(di), 1.0)
            if p_d == 0.0:
                continue
            if deterministic:
                for j in range(n_in):
                    p_x = min(scale_x[n] * abs(np.float64(x[n, j])), 1.0)
                    count[j] = np.int64(np.rint(bl[n] * p_x * p_d))
                n_visit, scan = n_in, True
            else:
                n_touched = 0
                for t in range(bl[n]):
                    u, st = uniform(st)
                    if u < p_d:
                        for c in range(xcnt[n, t]):
                            j = xidx[n, t, c]
                            if count[j] == 0:
                                touched[n_touched] = j
                                n_touched += 1
                            count[j] += 1
                n_visit, scan = n_touched, False  # devices in the order they first got a pulse
            sd_sign = lr_sign * (1.0 if di > 0 else -1.0)
            for jj in range(n_visit):
                j = jj if scan else touched[jj]
                cnt = count[j]
                if cnt == 0:
                    continue
                count[j] = 0
                if fault[i, j] != 0:
                    continue
                xj = np.float64(x[n, j])
                up = sd_sign * (1.0 if xj > 0 else -1.0) < 0.0
                if pair:
                    if up:
                        su, sl = np.float64(scale_up[i, j]), np.float64(slope_up[i, j])
                        lo, hi, wt = np.float64(lo_plus[i, j]), np.float64(b_max[i, j]), np.float64(w_plus[i, j])
                    else:
                        su, sl = np.float64(scale_down[i, j]), np.float64(slope_down[i, j])
                        lo, hi, wt = np.float64(lo_minus[i, j]), -np.float64(b_min[i, j]), np.float64(w_minus[i, j])
                    wt, st = _apply_pulses(wt, cnt, True, model, su, su, sl, sl, lo, hi, std, mult_noise, es_a,
                                           es_b, es_gamma_up, es_gamma_down, es_A_up, es_A_down, std_add,
                                           std_slope, st)  # fmt: skip
                    wt = snap_to_levels(wt, level_step, lo, hi)
                    if up:
                        w_plus[i, j] = wt
                    else:
                        w_minus[i, j] = wt
                    wij = np.float64(w_plus[i, j]) - np.float64(w_minus[i, j])
                else:
                    wij, st = _apply_pulses(np.float64(w[i, j]), cnt, up, model, np.float64(scale_up[i, j]),
                                            np.float64(scale_down[i, j]), np.float64(slope_up[i, j]),
                                            np.float64(slope_down[i, j]), np.float64(b_min[i, j]),
                                            np.float64(b_max[i, j]), std, mult_noise, es_a, es_b, es_gamma_up,
                                            es_gamma_down, es_A_up, es_A_down, std_add, std_slope, st)  # fmt: skip
                    wij = snap_to_levels(wij, level_step, np.float64(b_min[i, j]), np.float64(b_max[i, j]))
                w[i, j] = wij
                if write_noise > 0.0:
                    z, st = normal(st)
                    w_read[i, j] = wij + write_noise * z
                else:
                    w_read[i, j] = wij


# Each driver is compiled serial and parallel from one body. Parallel regions pay only for large
# updates: below that, thread hand-off costs more than the work, and idle OpenMP threads that spin
# after a region steal the cores BLAS needs next (10-20x slower training steps on a busy 2-core box).
_x_lines_serial, _x_lines_parallel = njit(_x_lines_body), njit_parallel(_x_lines_body)
_pulse_rows_serial, _pulse_rows_parallel = njit(_pulse_rows_body), njit_parallel(_pulse_rows_body)
PARALLEL_MIN_WORK = 1 << 26
"""Updates with batch * out * in below this run the serial kernels."""


def _parallel(work: int) -> bool:
    return work >= PARALLEL_MIN_WORK and numba.get_num_threads() > 1


def draw_x_lines(x, bl, scale_x, seed, xidx, xcnt, work: int) -> None:
    """Bit streams of the x lines (see ``_x_lines_body``), serial or parallel by ``work``."""
    (_x_lines_parallel if _parallel(work) else _x_lines_serial)(x, bl, scale_x, seed, xidx, xcnt)


def pulse_rows(*args, work: int) -> None:
    """Apply the pulses (see ``_pulse_rows_body`` for the arguments), serial or parallel by ``work``."""
    (_pulse_rows_parallel if _parallel(work) else _pulse_rows_serial)(*args)
