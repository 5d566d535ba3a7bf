"""Slow, obviously-correct NumPy/Python references of the crossbar kernels.

Every fast path of analogdecor.crossbar is compared against one of these in
tests/test_crossbar_*.py. They are written from the equations in
../shared/notes/aihwkit-semantics.md with plain loops, not by calling the
kernels. Two deliberate shortcuts, stated where they are used:

* the matrix product ``v @ mat`` uses the same float32 NumPy call as the tile
  (``_forward.matmul``; a loop would sum in another order and differ in the
  last bit);
* random numbers come from :class:`RefStream`, a pure-Python re-implementation
  of the kernels' splitmix64 streams and ziggurat normals, so that kernels
  with noise switched on can be compared exactly (the generator itself is
  tested for its distribution separately).
"""

from __future__ import annotations

import math

import numpy as np

from analogdecor.crossbar import _forward, _rng

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def _mix(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


class RefStream:
    """Pure-Python copy of the kernels' random stream ``index`` under ``seed``."""

    # The ziggurat tables are data (Marsaglia & Tsang 2000); take them from the module.
    KN, WN, FN = _rng._KN, _rng._WN, _rng._FN
    R = 3.442619855899

    def __init__(self, seed: int, index: int) -> None:
        self.state = _mix(int(seed) ^ _mix((int(index) + GOLDEN) & MASK))

    def u64(self) -> int:
        self.state = (self.state + GOLDEN) & MASK
        return _mix(self.state)

    def uniform(self) -> float:
        return float(self.u64() >> 11) * (1.0 / 9007199254740992.0)

    def _uniform_open(self) -> float:
        return (float(self.u64() >> 11) + 1.0) * (1.0 / 9007199254740992.0)

    def _split(self, r: int) -> tuple[int, int]:
        iz = r & 127
        hz = r >> 32
        if hz >= 1 << 31:
            hz -= 1 << 32
        return hz, iz

    def normal(self) -> float:
        hz, iz = self._split(self.u64())
        if abs(hz) < self.KN[iz]:
            return hz * float(self.WN[iz])
        while True:
            x = hz * float(self.WN[iz])
            if iz == 0:
                while True:
                    xt = -math.log(self._uniform_open()) / self.R
                    yt = -math.log(self._uniform_open())
                    if yt + yt >= xt * xt:
                        break
                return self.R + xt if hz > 0 else -self.R - xt
            u = self.uniform()
            if float(self.FN[iz]) + u * (float(self.FN[iz - 1]) - float(self.FN[iz])) < math.exp(-0.5 * x * x):
                return x
            hz, iz = self._split(self.u64())
            if abs(hz) < self.KN[iz]:
                return hz * float(self.WN[iz])


# ---------------------------------------------------------------------------------- reads
def ref_read_pass(mat, x, io, pass_scale, seed_in, seed_out):
    """One analogue read of every row of ``x`` (steps 1-4, 6); returns (y float32, saturated bool)."""
    n_rows, n = x.shape
    m = mat.shape[1]
    v = np.zeros((n_rows, n), np.float32)
    alpha = np.zeros(n_rows)
    step_in = io.inp_step
    for b in range(n_rows):
        if io.noise_management == "abs_max":
            a = max(abs(float(t)) for t in x[b])
            if a == 0.0:
                continue  # v = 0, alpha = 0: output exactly 0
        else:
            a = 1.0
        a *= pass_scale
        st = RefStream(seed_in, b)
        for j in range(n):
            # divisions written as products with reciprocals, as the kernel (same rounding)
            t = float(x[b, j]) * (1.0 / a)
            if step_in > 0:
                t = float(np.rint(t * (1.0 / step_in))) * step_in
            v[b, j] = min(max(t, -io.inp_bound), io.inp_bound)
        if io.inp_noise > 0:
            for j in range(n):
                v[b, j] = float(v[b, j]) + io.inp_noise * io.inp_bound * st.normal()
        alpha[b] = a
    y = _forward.matmul(v, mat)  # same float32 product as the tile (see module docstring)
    if io.w_noise > 0 and io.w_noise_type == "pcm":
        wn_var = io.w_noise**2 * _forward.matmul(v * v, np.abs(mat)).astype(np.float64)
    elif io.w_noise > 0:
        wn_var = np.array([[io.w_noise**2 * sum(float(t) ** 2 for t in v[b])] for b in range(n_rows)])
    else:
        wn_var = None
    out = np.zeros((n_rows, m), np.float32)
    sat = np.zeros(n_rows, bool)
    step_out = io.out_step
    for b in range(n_rows):
        st = RefStream(seed_out, b)
        for i in range(m):
            t = float(y[b, i])
            extra = 0.0 if wn_var is None else float(wn_var[b, i if wn_var.shape[1] > 1 else 0])
            sd = math.sqrt(io.out_noise * io.out_noise + extra)
            if sd > 0:
                t = t + sd * st.normal()
            if step_out > 0:
                t = float(np.rint(t * (1.0 / step_out))) * step_out
            if t >= io.out_bound:
                t, sat[b] = io.out_bound, True
            elif t <= -io.out_bound:
                t, sat[b] = -io.out_bound, True
            out[b, i] = t * alpha[b]
    return out, sat


def ref_read(mat, x, io, rng):
    """Full read with iterative bound management; ``rng`` is a copy of the tile's cycle generator."""
    if io.is_perfect:
        return np.array([[sum(float(x[b, j]) * float(mat[j, i]) for j in range(x.shape[1]))
                          for i in range(mat.shape[1])] for b in range(x.shape[0])], np.float32)  # fmt: skip

    def seeds():
        s = rng.integers(0, np.iinfo(np.uint64).max, size=2, dtype=np.uint64, endpoint=True)
        return int(s[0]), int(s[1])

    y, sat = ref_read_pass(mat, x, io, 1.0, *seeds())
    if io.bound_management == "iterative":
        rows = [b for b in range(x.shape[0]) if sat[b]]
        k = 1
        while rows and k < io.max_bm_passes:
            y_sub, sat_sub = ref_read_pass(mat, x[rows], io, 2.0**k, *seeds())
            for pos, b in enumerate(rows):
                y[b] = y_sub[pos]
            rows = [b for pos, b in enumerate(rows) if sat_sub[pos]]
            k += 1
    return y


# ---------------------------------------------------------------------------------- update
def ref_management(x, d, lr, dw_min, desired_bl, um, blm):
    """Per-sample (BL, scale_x, scale_d) from the notes' "Gradient to pulses" equations."""
    out = []
    for n in range(x.shape[0]):
        xmax = max((abs(float(t)) for t in x[n]), default=0.0)
        dmax = max((abs(float(t)) for t in d[n]), default=0.0)
        if xmax == 0 or dmax == 0 or lr == 0:
            out.append((0, 0.0, 0.0))
            continue
        k = abs(lr) * xmax * dmax / dw_min
        bl = max(min(math.ceil(k), desired_bl) if blm else desired_bl, 1)
        if k > bl:
            dmax = dmax * bl / k
        a = b = math.sqrt(abs(lr) / (dw_min * bl))
        if um:
            a *= math.sqrt(xmax / dmax)
            b *= math.sqrt(dmax / xmax)
        out.append((bl, b, a))
    return out


def ref_granularity(dev):
    """aihwkit's weight granularity: ExpStep's down step at w = 0, PowStep's dw_min / 2**gamma, else dw_min."""
    if dev.model == "exp":
        scale_down = (1.0 - dev.up_down if dev.up_down > 0 else 1.0) * dev.dw_min
        z = 0.0 * dev.a + dev.b  # w = 0
        g = scale_down * max(1.0 - dev.A_down * math.exp(dev.gamma_down * -z), 0.0)
        return g if g > 0 else dev.dw_min
    if dev.model == "pow":
        return dev.dw_min * math.pow(0.5, dev.pow_gamma)
    if dev.model == "piecewise":
        mid = dev.piecewise_up[len(dev.piecewise_up) // 2]
        return dev.dw_min * mid if mid > 0 else dev.dw_min
    return dev.dw_min


def ref_piecewise(table, w, bmin, bmax):
    """aihwkit PiecewiseStep interpolation: nodes evenly from bmin to bmax, linear in between."""
    n = len(table) - 1
    if n <= 0 or bmax <= bmin:
        return float(table[0])
    pos = max((w - bmin) / (bmax - bmin) * n, 0.0)
    k = min(math.floor(pos), n - 1)
    t = min(pos - k, 1.0)
    return (1.0 - t) * float(table[k]) + t * float(table[k + 1])


def ref_step(model, w, up, p, dev, st):
    """One pulse on one device (family equations of the notes, "One pulse"); returns the new weight.

    ``p`` holds the device's hidden parameters (scale_up, scale_down, shape_up,
    shape_down, b_min, b_max as floats); ``dev`` is the DeviceConfig.
    """
    scale = p["scale_up"] if up else p["scale_down"]
    bmin, bmax = p["b_min"], p["b_max"]
    if model in ("constant",):
        dw = scale
    elif model in ("linear", "softbounds"):
        dw = scale * (1.0 + (p["shape_up"] if up else p["shape_down"]) * w)
    elif model == "exp":
        z = 2.0 * dev.a * w / (bmax - bmin) + dev.b if bmax > bmin else dev.b
        y = 1.0 - dev.A_up * math.exp(dev.gamma_up * z) if up else 1.0 - dev.A_down * math.exp(-dev.gamma_down * z)
        dw = max(y, 0.0) * scale
    elif model == "pow":
        if bmax > bmin:
            omega = (bmax - w) / (bmax - bmin)
            base = min(max(omega if up else 1.0 - omega, 0.0), 1.0)
            e = p["shape_up"] if up else p["shape_down"]
            dw = scale * (math.inf if base == 0.0 and e < 0.0 else base**e)  # C powf(0, e < 0) = inf
        else:
            dw = 0.0
    elif model == "piecewise":
        dw = scale * ref_piecewise(dev.piecewise_up if up else dev.piecewise_down, w, bmin, bmax)
    else:
        raise ValueError(model)
    if dev.dw_min_std > 0:
        xi = st.normal()
        if model == "exp" and (dev.dw_min_std_add > 0 or dev.dw_min_std_slope > 0):
            dw = dw + dev.dw_min_std * (dev.dw_min_std_add + abs(dw) + dev.dw_min_std_slope * abs(w)) * xi
        elif model in ("linear", "softbounds") and not dev.mult_noise:
            dw = dw + scale * dev.dw_min_std * xi
        else:
            dw = dw * (1.0 + dev.dw_min_std * xi)
    w = w + dw if up else w - dw
    return min(max(w, bmin), bmax)


def ref_snap(w, step, bmin, bmax):
    """Nearest conductance level inside the device's bounds (weight units)."""
    if step <= 0:
        return w
    q = float(np.rint(w / step)) * step
    if q > bmax:
        q -= step
    if q < bmin:
        q += step
    return w if (q > bmax or q < bmin) else q


def ref_pulsed_update(w, w_read, arrays, dev, upd, level_step, x, d, lr, seed_x, seed_rows, pair=None,
                      counts=None):  # fmt: skip
    """Pulsed update of a whole tile, sample by sample (stochastic or deterministic).

    ``w``/``w_read`` are float32 arrays updated in place; ``arrays`` the tile's
    DeviceArrays; seeds are the two kernel seeds the tile drew. ``pair`` =
    (w_plus, w_minus, lo_plus, lo_minus) for one-sided pairs (w+, w- updated in
    place): a pulse raising w is an up pulse of G+ (params scale_up, shape_up,
    bounds [lo_plus, b_max]), one lowering w an up pulse of G- (scale_down,
    shape_down, [lo_minus, -b_min]). ``counts`` = (up, down) integer arrays, if given, add every
    device's fired pulses (faulty devices included).
    """
    n_out, n_in = w.shape
    man = ref_management(x, d, lr, ref_granularity(dev), upd.desired_bl, upd.update_management,
                         upd.update_bl_management)  # fmt: skip
    deterministic = upd.pulse_type == "deterministic"
    # x-line bit streams: one stream per sample; columns in order, a column's slots in order
    fired = []  # fired[n][j] = set of slots in which line j fired
    for n, (bl, sx, _) in enumerate(man):
        st = RefStream(seed_x, n)
        slots = [set() for _ in range(n_in)]
        for j in range(n_in if not deterministic else 0):
            p = min(sx * abs(float(x[n, j])), 1.0)
            if p > 0:
                for t in range(bl):
                    if st.uniform() < p:
                        slots[j].add(t)
        fired.append(slots)
    p_of = {k: np.asarray(v, np.float64) for k, v in arrays.as_dict().items()}
    sgn_lr = 1.0 if lr > 0 else -1.0
    wn = dev.write_noise_std * dev.dw_min
    for i in range(n_out):
        st = RefStream(seed_rows, i)
        for n, (bl, sx, sd) in enumerate(man):
            if bl == 0:
                continue
            di = float(d[n, i])
            p_d = min(sd * abs(di), 1.0)
            if p_d == 0:
                continue
            count = [0] * n_in
            if deterministic:
                for j in range(n_in):
                    p_x = min(sx * abs(float(x[n, j])), 1.0)
                    count[j] = int(np.rint(bl * p_x * p_d))
            else:
                d_slots = {t for t in range(bl) if st.uniform() < p_d}
                for j in range(n_in):  # coincidences: slots where both lines fired
                    count[j] = len(fired[n][j] & d_slots)
            for j in range(n_in):  # devices in ascending column order
                if count[j] == 0:
                    continue
                up = sgn_lr * (1.0 if di > 0 else -1.0) * (1.0 if float(x[n, j]) > 0 else -1.0) < 0
                if counts is not None:
                    counts[0 if up else 1][i, j] += count[j]
                if arrays.fault[i, j] != 0:
                    continue
                p = {k: float(v[i, j]) for k, v in p_of.items()}
                if pair is not None:
                    wp, wm, lo_p, lo_m = pair
                    if up:
                        q = {"scale_up": p["scale_up"], "shape_up": p["shape_up"], "b_min": float(lo_p[i, j]),
                             "b_max": p["b_max"]}  # fmt: skip
                        target = wp
                    else:
                        q = {"scale_up": p["scale_down"], "shape_up": p["shape_down"], "b_min": float(lo_m[i, j]),
                             "b_max": -p["b_min"]}  # fmt: skip
                        target = wm
                    v = float(target[i, j])
                    for _ in range(count[j]):
                        v = ref_step(dev.model, v, True, q, dev, st)
                    target[i, j] = ref_snap(v, level_step, q["b_min"], q["b_max"])
                    wij = float(wp[i, j]) - float(wm[i, j])
                else:
                    wij = float(w[i, j])
                    for _ in range(count[j]):
                        wij = ref_step(dev.model, wij, up, p, dev, st)
                    wij = ref_snap(wij, level_step, p["b_min"], p["b_max"])
                w[i, j] = wij
                w_read[i, j] = wij + wn * st.normal() if wn > 0 else wij


def ref_mixed_update(w, w_read, arrays, dev, chi, step, max_pulses, level_step, seed, pair=None, counts=None):
    """Mixed-precision update: fire the pulses the accumulator ``chi`` holds, keep the remainder.

    Device (i, j) gets n = min(|trunc(chi_ij / step)|, max_pulses) pulses of the
    sign of chi_ij, one after the other (:func:`ref_step`), then levels and write
    noise; chi_ij -= sign n step (in place, faulty devices included; they take
    no pulses). Row i draws from ``RefStream(seed, i)``, devices in column order.
    ``pair`` and ``counts`` (up, down arrays that add the fired pulses) as in :func:`ref_pulsed_update`.
    """
    n_out, n_in = w.shape
    p_of = {k: np.asarray(v, np.float64) for k, v in arrays.as_dict().items()}
    wn = dev.write_noise_std * dev.dw_min
    for i in range(n_out):
        st = RefStream(seed, i)
        for j in range(n_in):
            c = float(chi[i, j])
            n = min(int(abs(c) / step), max_pulses)  # int() truncates toward zero
            if n == 0:
                continue
            up = c > 0
            chi[i, j] = c - n * step if up else c + n * step
            if counts is not None:
                counts[0 if up else 1][i, j] += n
            if arrays.fault[i, j] != 0:
                continue
            p = {k: float(v[i, j]) for k, v in p_of.items()}
            if pair is not None:
                wp, wm, lo_p, lo_m = pair
                if up:
                    q = {"scale_up": p["scale_up"], "shape_up": p["shape_up"], "b_min": float(lo_p[i, j]),
                         "b_max": p["b_max"]}  # fmt: skip
                    target = wp
                else:
                    q = {"scale_up": p["scale_down"], "shape_up": p["shape_down"], "b_min": float(lo_m[i, j]),
                         "b_max": -p["b_min"]}  # fmt: skip
                    target = wm
                v = float(target[i, j])
                for _ in range(n):
                    v = ref_step(dev.model, v, True, q, dev, st)
                target[i, j] = ref_snap(v, level_step, q["b_min"], q["b_max"])
                wij = float(wp[i, j]) - float(wm[i, j])
            else:
                wij = float(w[i, j])
                for _ in range(n):
                    wij = ref_step(dev.model, wij, up, p, dev, st)
                wij = ref_snap(wij, level_step, p["b_min"], p["b_max"])
            w[i, j] = wij
            w_read[i, j] = wij + wn * st.normal() if wn > 0 else wij


def ref_device_arrays(cfg, shape, rng):
    """Hidden per-device parameters from the notes' formulas, device by device (same draw order)."""
    names = ("gain", "up_down", "b_max", "b_min", "gamma_up", "gamma_down", "pow_gamma", "pow_up_down")
    xi = {k: rng.standard_normal(shape) for k in names}
    u_fault, u_stuck = rng.random(shape), rng.random(shape)
    out = {k: np.zeros(shape) for k in ("scale_up", "scale_down", "b_min", "b_max", "shape_up", "shape_down")}
    fault = np.zeros(shape, np.uint8)
    w0 = np.zeros(shape)
    for i in range(shape[0]):
        for j in range(shape[1]):
            g = (math.exp(cfg.dw_min_dtod * xi["gain"][i, j]) if cfg.dw_min_dtod_log_normal
                 else 1 + cfg.dw_min_dtod * xi["gain"][i, j])  # fmt: skip
            r = cfg.up_down_dtod * xi["up_down"][i, j]
            ub = 0.0 if cfg.up_down > 0 else cfg.up_down
            db = -cfg.up_down if cfg.up_down > 0 else 0.0
            su, sd = (ub + g + r) * cfg.dw_min, (db + g - r) * cfg.dw_min
            bmax = cfg.w_max * (1 + cfg.w_max_dtod * xi["b_max"][i, j])
            bmin = cfg.w_min * (1 + cfg.w_min_dtod * xi["b_min"][i, j])
            if bmin > bmax:
                bmin, bmax = bmax, bmin
            if cfg.enforce_consistency:
                su, sd, bmax, bmin = abs(su), abs(sd), abs(bmax), -abs(bmin)
            shu = shd = 0.0
            if cfg.model == "linear":
                gu = abs(cfg.gamma_up + cfg.gamma_up_dtod * xi["gamma_up"][i, j])
                gd = abs(cfg.gamma_down + cfg.gamma_down_dtod * xi["gamma_down"][i, j])
                shu = -gu / (cfg.w_max if cfg.mean_bound_reference else bmax)
                shd = -gd / (cfg.w_min if cfg.mean_bound_reference else bmin)
            elif cfg.model == "softbounds":
                shu, shd = -1 / bmax, -1 / bmin
            elif cfg.model == "pow":  # aihwkit PowStepRPUDevice::populate
                pg = 1 + cfg.pow_gamma_dtod * xi["pow_gamma"][i, j]
                pr = cfg.pow_up_down_dtod * xi["pow_up_down"][i, j]
                pub = 0.0 if cfg.pow_up_down > 0 else cfg.pow_up_down
                pdb = -cfg.pow_up_down if cfg.pow_up_down > 0 else 0.0
                shu, shd = (pub + pg + pr) * cfg.pow_gamma, (pdb + pg - pr) * cfg.pow_gamma
                if cfg.enforce_consistency:
                    shu, shd = abs(shu), abs(shd)
            for k, v in (("scale_up", su), ("scale_down", sd), ("b_min", bmin), ("b_max", bmax),
                         ("shape_up", shu), ("shape_down", shd)):  # fmt: skip
                out[k][i, j] = v
            if u_fault[i, j] < cfg.dead_fraction:
                fault[i, j] = 2
            elif u_fault[i, j] < cfg.dead_fraction + cfg.stuck_fraction:
                fault[i, j] = 1
                w0[i, j] = bmin + (bmax - bmin) * u_stuck[i, j]
            else:
                w0[i, j] = min(max(0.0, bmin), bmax)
    out["fault"] = fault
    return out, w0


def ref_refresh(wp, wm, lo_p, lo_m, hi_p, hi_m, w_max, upper, lower):
    """aihwkit OneSidedUnitCell refresh criterion, pair by pair; returns new (w+, w-) and the count."""
    wp, wm = wp.astype(np.float64).copy(), wm.astype(np.float64).copy()
    n = 0
    for i in range(wp.shape[0]):
        for j in range(wp.shape[1]):
            a, b = wp[i, j], wm[i, j]
            hit = (a / w_max > upper and b / w_max > lower) if a > b else (a / w_max > lower and b / w_max > upper)
            if hit:
                n += 1
                diff = a - b
                m = max(lo_m[i, j], lo_p[i, j] - diff)
                wp[i, j] = min(max(diff + m, lo_p[i, j]), hi_p[i, j])
                wm[i, j] = min(max(m, lo_m[i, j]), hi_m[i, j])
    return wp, wm, n


# --------------------------------------------------------------------------- convolutions (plain loops)
def ref_im2col(x, k, stride, pad):
    """Patch rows of (B, C, H, W) images, built element by element (zero outside the image)."""
    B, C, H, W = x.shape
    Ho, Wo = (H + 2 * pad - k) // stride + 1, (W + 2 * pad - k) // stride + 1
    out = np.zeros((B * Ho * Wo, C * k * k), dtype=np.float32)
    for b in range(B):
        for oh in range(Ho):
            for ow in range(Wo):
                r = (b * Ho + oh) * Wo + ow
                for c in range(C):
                    for i in range(k):
                        for j in range(k):
                            h, w = oh * stride + i - pad, ow * stride + j - pad
                            if 0 <= h < H and 0 <= w < W:
                                out[r, (c * k + i) * k + j] = x[b, c, h, w]
    return out


def ref_conv2d(x, W4, bias, stride, pad):
    """y[b, o, oh, ow] = b_o + sum_{c,i,j} W4[o, c, i, j] x[b, c, oh s + i - p, ow s + j - p] (float64)."""
    B, C, H, Wd = x.shape
    n_out, _, k, _ = W4.shape
    Ho, Wo = (H + 2 * pad - k) // stride + 1, (Wd + 2 * pad - k) // stride + 1
    y = np.zeros((B, n_out, Ho, Wo))
    for b in range(B):
        for o in range(n_out):
            for oh in range(Ho):
                for ow in range(Wo):
                    s = float(bias[o])
                    for c in range(C):
                        for i in range(k):
                            for j in range(k):
                                h, w = oh * stride + i - pad, ow * stride + j - pad
                                if 0 <= h < H and 0 <= w < Wd:
                                    s += float(W4[o, c, i, j]) * float(x[b, c, h, w])
                    y[b, o, oh, ow] = s
    return y


def ref_conv2d_backward(x, W4, g, stride, pad):
    """(dL/dx, sum over the batch of dL/dW4) of a convolution given dL/dy = g (float64 loops)."""
    B, C, H, Wd = x.shape
    n_out, _, k, _ = W4.shape
    Ho, Wo = g.shape[2], g.shape[3]
    dx = np.zeros(x.shape)
    dW = np.zeros(W4.shape)
    for b in range(B):
        for o in range(n_out):
            for oh in range(Ho):
                for ow in range(Wo):
                    gv = float(g[b, o, oh, ow])
                    for c in range(C):
                        for i in range(k):
                            for j in range(k):
                                h, w = oh * stride + i - pad, ow * stride + j - pad
                                if 0 <= h < H and 0 <= w < Wd:
                                    dx[b, c, h, w] += float(W4[o, c, i, j]) * gv
                                    dW[o, c, i, j] += float(x[b, c, h, w]) * gv
    return dx, dW


def ref_pool2d(x, size, stride, kind):
    """(output, dL/dx for dL/dy = ones-weighted by ``g``) of max/avg pooling: returns a function of g."""
    B, C, H, W = x.shape
    Ho, Wo = (H - size) // stride + 1, (W - size) // stride + 1
    y = np.zeros((B, C, Ho, Wo), dtype=np.float32)
    where = {}
    for b in range(B):
        for c in range(C):
            for oh in range(Ho):
                for ow in range(Wo):
                    win = [(oh * stride + i, ow * stride + j) for i in range(size) for j in range(size)]
                    vals = [x[b, c, h, w] for h, w in win]
                    if kind == "max":
                        m = int(np.argmax(vals))  # first maximum, as numpy
                        y[b, c, oh, ow] = vals[m]
                        where[b, c, oh, ow] = [win[m]]
                    else:
                        y[b, c, oh, ow] = np.float32(np.mean(np.asarray(vals, dtype=np.float32), dtype=np.float32))
                        where[b, c, oh, ow] = win

    def backward(g):
        dx = np.zeros(x.shape)
        for (b, c, oh, ow), cells in where.items():
            for h, w in cells:
                dx[b, c, h, w] += float(g[b, c, oh, ow]) / (1 if kind == "max" else size * size)
        return dx

    return y, backward


def ref_unit_read(w, io, rng):
    """Each weight read alone through the periphery with a unit input, element by element
    (analogdecor.crossbar._refresh.unit_read; one standard_normal(shape) per pass, inp_noise = 0)."""
    assert io.inp_noise == 0
    w = np.asarray(w, np.float32)
    if io.is_perfect:
        return w.copy()
    out = np.zeros(w.shape, np.float32)
    todo = [True] * w.shape[1]  # columns (unit inputs) still to read
    passes = io.max_bm_passes if io.bound_management == "iterative" else 1
    for k in range(passes):
        again = [False] * w.shape[1]
        s = 2.0**k
        inv_a = 1.0 / s
        v = float(np.rint(1.0 * inv_a * (1.0 / io.inp_step)) * io.inp_step) if io.inp_step > 0 else 1.0 * inv_a
        v32 = np.float32(min(max(v, -io.inp_bound), io.inp_bound))
        z = rng.standard_normal(w.shape)
        for i in range(w.shape[0]):
            for j in range(w.shape[1]):
                y = float(np.float32(w[i, j] * v32))
                var = io.out_noise**2
                if io.w_noise > 0:
                    var = var + (io.w_noise**2) * (abs(float(w[i, j])) if io.w_noise_type == "pcm" else 1.0) * v32**2
                sd = math.sqrt(var)
                if sd > 0:
                    y = y + sd * z[i, j]
                if io.out_step > 0:
                    y = float(np.rint(y * (1.0 / io.out_step))) * io.out_step
                again[j] = again[j] or abs(y) >= io.out_bound
                y = min(max(y, -io.out_bound), io.out_bound)
                if todo[j]:
                    out[i, j] = np.float32(y * s)
        todo = [t and a for t, a in zip(todo, again, strict=True)]
        if not any(todo):
            break
    return out


def ref_pulsed_refresh(tile, rng):
    """aihwkit OneSidedUnitCell::refreshWeights on a copy of ``tile``'s pair state, pair by pair: read both
    devices (ref_unit_read), criterion, reset (reset value + reset_std xi, clipped), rewrite the read
    difference with a pulsed update x = e_j, d = differences, lr = -1 (G+ sample then G- sample per
    column). ``rng`` is a copy of the tile's generator. Returns (w+, w-, w, number refreshed)."""
    dev, io, upd = tile.config.device, tile.config.forward, tile.config.update
    p, a = tile._pair, tile.device_arrays
    wp, wm = tile._wp.copy(), tile._wm.copy()
    rp, rm = ref_unit_read(wp, io, rng), ref_unit_read(wm, io, rng)
    shape = wp.shape
    hit = np.zeros(shape, bool)
    wmax = np.float32(dev.w_max)
    up_t, lo_t = np.float32(dev.refresh_upper_thres), np.float32(dev.refresh_lower_thres)
    for i in range(shape[0]):
        for j in range(shape[1]):
            x, y = rp[i, j], rm[i, j]
            ok = (x / wmax > up_t and y / wmax > lo_t) if x > y else (x / wmax > lo_t and y / wmax > up_t)
            hit[i, j] = ok and a.fault[i, j] == 0
    if not hit.any():
        return wp, wm, wp - wm, 0
    zp = rng.standard_normal(shape) if dev.reset_std > 0 else np.zeros(shape)
    zm = rng.standard_normal(shape) if dev.reset_std > 0 else np.zeros(shape)
    diff = np.zeros(shape, np.float32)
    for i in range(shape[0]):
        for j in range(shape[1]):
            if not hit[i, j]:
                continue
            diff[i, j] = rp[i, j] - rm[i, j]
            t = float(p.reset_plus[i, j]) + dev.reset_std * zp[i, j]
            wp[i, j] = max(min(t, float(a.b_max[i, j])), float(p.lo_plus[i, j]))
            t = float(p.reset_minus[i, j]) + dev.reset_std * zm[i, j]
            wm[i, j] = max(min(t, -float(a.b_min[i, j])), float(p.lo_minus[i, j]))
    xs, ds = [], []
    for j in range(shape[1]):
        for sign in (1, -1):
            col = [float(diff[i, j]) if sign * diff[i, j] > 0 else 0.0 for i in range(shape[0])]
            if any(col):
                e = np.zeros(shape[1], np.float32)
                e[j] = 1
                xs.append(e)
                ds.append(np.asarray(col, np.float32))
    w = (wp - wm).astype(np.float32)
    if not xs:
        return wp, wm, w, int(hit.sum())
    w_read = w.copy()
    s = rng.integers(0, np.iinfo(np.uint64).max, size=2, dtype=np.uint64, endpoint=True)
    ref_pulsed_update(w, w_read, a, dev, upd, tile._level_step, np.stack(xs), np.stack(ds), -1.0,
                      int(s[0]), int(s[1]), (wp, wm, p.lo_plus, p.lo_minus))  # fmt: skip
    return wp, wm, w, int(hit.sum())


def ref_random_crop_flip(x, shape, rng, pad, fill=None):
    """Random crop of the padded image, then a mirror, one image and channel at a time.

    Draws as analogdecor.data.random_crop_flip documents: all (row, column) offsets,
    then all mirror decisions.
    """
    c, h, w = shape
    offsets = rng.integers(0, 2 * pad + 1, size=(len(x), 2))
    flips = rng.random(len(x)) < 0.5
    out = np.empty_like(x)
    for i in range(len(x)):
        img = x[i].reshape(c, h, w)
        res = np.empty((c, h, w), dtype=x.dtype)
        for ch in range(c):
            padded = np.full((h + 2 * pad, w + 2 * pad), 0.0 if fill is None else fill[ch], dtype=x.dtype)
            padded[pad : pad + h, pad : pad + w] = img[ch]
            dy, dx = offsets[i]
            crop = padded[dy : dy + h, dx : dx + w]
            res[ch] = crop[:, ::-1] if flips[i] else crop
        out[i] = res.reshape(-1)
    return out
