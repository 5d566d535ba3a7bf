"""Fit a device family to measured pulse responses: per-device fits, spreads, noise, goodness of fit.

Input: a :class:`~analogdecor.devices.measurements.Measurements` file converted to weight units.
Every pulse gives (w, step): the state read before it and the change of the read it caused.

1. **Pulses at a bound are left out**: a pulse whose read after (or before) equals the device's
   extreme read in its direction was clipped by the hard bound, so its step says nothing about the
   family's step size.
2. **Per device** the family's mean step is fitted by least squares to the remaining pulses
   (up and down separately where they are independent; shared shape parameters are fitted jointly
   over all devices by alternating with the per-device scales). Bounds are each device's extreme
   reads (hard-bound families) or fitted (SoftBounds, PowStep).
3. **Device-to-device** spreads follow from the per-device values with aihwkit's draw formulas
   (../shared/notes/aihwkit-semantics.md): scale_up = (up_bias + gain + r) dw_min,
   scale_down = (down_bias + gain - r) dw_min, so dw_min and up_down come from the mean scales,
   dw_min_dtod = std(gain), up_down_dtod = std(r); w_max = mean(b_max), w_max_dtod = std(b_max) / |w_max|
   (likewise w_min); shape spreads as each family's draw defines them.
4. **Cycle-to-cycle** noise from the residuals r = step - fitted mean step: a read error e that is
   redrawn at each write (write noise) makes consecutive steps of a train anticorrelated,
   cov(r_t, r_t+1) = -sigma_w^2, while cycle noise is independent per pulse, var(r) =
   dw_min_std^2 E[f^2] + 2 sigma_w^2 (f the fitted mean step). sigma_w^2 is taken as
   -mean(r_t r_t+1) when that exceeds twice its standard error (else 0).
5. **Goodness of fit** per family: RMSE of the residual step, R^2 of the state dependence
   (1 - RSS / sum of squares about each device's mean up and down step), and
   BIC = n ln(RSS / n) + k ln(n) over the n pulses used and the k fitted numbers.
   ``auto`` picks the family with the lowest BIC. A family whose RSS exceeds the best family's by
   more than :data:`POOR_FIT_RATIO` is reported as a poor fit (a warning with the numbers).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from analogdecor.devices.config import DeviceConfig
from analogdecor.errors import AnalogDecorError, DataError

__all__ = ["FAMILIES", "POOR_FIT_RATIO", "DeviceData", "FitError", "FitResult", "choose", "fit_all", "fit_family",
           "prepare", "pulse_data"]  # fmt: skip

FAMILIES = ("constant", "linear", "softbounds", "exp", "pow", "piecewise")
POOR_FIT_RATIO = 1.25
"""A family whose residual sum of squares exceeds the best family's by this factor is a poor fit."""
MIN_PULSES = 4
"""Fewest usable pulses per device and direction (more for families with more parameters)."""


class FitError(AnalogDecorError, ValueError):
    """A family cannot be fitted to the measurements; the message names the file, the device and why."""


@dataclass
class DeviceData:
    """The usable pulses of one device, in weight units."""

    name: str
    w: np.ndarray
    """State read before each pulse."""
    dw: np.ndarray
    """Change of the read caused by the pulse (signed)."""
    up: np.ndarray
    """True for up pulses."""
    nxt: np.ndarray
    """Index of the next usable pulse of the same train, -1 if none (for the write-noise estimate)."""
    lo: float
    """Lowest read of the device."""
    hi: float
    """Highest read of the device."""


def pulse_data(meas, weights: list[np.ndarray], margin: float = 0.0) -> list[DeviceData]:
    """Per-device pulses from each train's reads in weight units, pulses at a bound left out.

    Without read noise (``margin`` 0) a device's bounds are its extreme reads and a pulse is at a
    bound when its read before or after equals the extreme in its direction. With write noise of
    std sigma, reads at a bound scatter around it: pass ``margin`` = 3 sigma; a bound is then the
    median of the reads within 2 margins of the extreme read, and pulses whose read before or after
    lies within ``margin`` of it (or beyond) are left out.
    """
    out = []
    for name in meas.devices:
        idx = [k for k, tr in enumerate(meas.trains) if tr.device == name]
        reads = np.concatenate([weights[k] for k in idx])
        lo, hi = float(reads.min()), float(reads.max())
        tol = 1e-6 * max(hi - lo, 1e-30)
        if margin > 0:
            hi = float(np.median(reads[reads >= hi - 2 * margin]))
            lo = float(np.median(reads[reads <= lo + 2 * margin]))
            tol = margin
        ws: list[float] = []
        dws: list[float] = []
        ups: list[bool] = []
        nxt: list[int] = []
        for k in idx:
            w = weights[k]
            up = meas.trains[k].polarity > 0
            sgn = 1.0 if up else -1.0
            edge = hi if up else lo
            keep = [t for t in range(len(w) - 1) if sgn * (edge - w[t + 1]) > tol and sgn * (edge - w[t]) > tol]
            base = len(ws)
            for pos, t in enumerate(keep):
                ws.append(w[t])
                dws.append(w[t + 1] - w[t])
                ups.append(up)
                nxt.append(base + pos + 1 if pos + 1 < len(keep) and keep[pos + 1] == t + 1 else -1)
        out.append(DeviceData(name, np.asarray(ws), np.asarray(dws), np.asarray(ups, bool),
                              np.asarray(nxt, np.int64), lo, hi))  # fmt: skip
    return out


@dataclass
class FitResult:
    """One family fitted to one measurement set."""

    family: str
    config: DeviceConfig
    per_device: dict[str, np.ndarray]
    """Per-device fitted values: scale_up, scale_down, b_min, b_max (and shape values), one per device."""
    gof: dict[str, float]
    """rmse, r2, bic, n (pulses used), k (numbers fitted), rss, write_noise (weight units)."""
    step_fn: Any = field(repr=False, default=None)
    """step_fn(i, w, up) -> mean step magnitude of device i at states w (the fitted model)."""

    def predict_train(self, i: int, w0: float, up: bool, n: int) -> np.ndarray:
        """Noise-free reads of device ``i`` over ``n`` pulses from ``w0``, clipped to its fitted bounds."""
        lo, hi = self.per_device["b_min"][i], self.per_device["b_max"][i]
        out = np.empty(n + 1)
        out[0] = w = float(w0)
        for t in range(n):
            f = float(self.step_fn(i, np.array([w]), np.array([up]))[0])
            w = min(max(w + f if up else w - f, lo), hi)
            out[t + 1] = w
        return out


def _where(path, dev: DeviceData | None = None) -> str:
    return f"{path}: device {dev.name!r}" if dev is not None else f"{path}"


def _linfit(x: np.ndarray, y: np.ndarray, var_w: float = 0.0, sign: float = 1.0) -> tuple[float, float]:
    """Intercept and slope of the step y = sign * (change of the read) on the state x read before it,
    corrected for write noise.

    With a read error e of variance ``var_w`` on every read, x = w + e_t and y = sign (dw + e_t+1 - e_t),
    so cov(x, y) = c var(w) - sign var_w and var(x) = var(w) + var_w: least squares would be biased;
    c = (cov(x, y) + sign var_w) / (var(x) - var_w) is not (ordinary least squares when var_w = 0).
    """
    mx, my = float(x.mean()), float(y.mean())
    vx = float(((x - mx) ** 2).mean())
    cxy = float(((x - mx) * (y - my)).mean())
    denom = vx - var_w
    c1 = (cxy + sign * var_w) / denom if denom > 0.1 * vx else cxy / vx if vx > 0 else 0.0
    return my - c1 * mx, c1


def _inv(f: np.ndarray, v: np.ndarray, var_w: float, weighted: bool) -> np.ndarray:
    """Fit weights 1 / (fitted step f) of pulses with measured steps ``v`` (ones if not ``weighted``).

    Cycle noise is multiplicative (its std is proportional to the step, so residuals are weighted by
    the inverse fitted step); write noise is not (std sqrt(2) sigma_w whatever the step), so below
    3 sqrt(2) sigma_w, and below a tenth of the mean step, the weight stays flat."""
    if not weighted:
        return np.ones_like(f)
    floor = max(0.1 * max(float(np.abs(v).mean()), 1e-300), 3.0 * math.sqrt(2.0 * var_w))
    return 1.0 / np.maximum(f, floor)


# ----------------------------------------------------------------------------------- families
def _fit_devices(family: str, data: list[DeviceData], path, base: DeviceConfig, nodes: int, w_scale: float,
                 var_w: float = 0.0, weighted: bool = True):  # fmt: skip
    """Per-device values and the fitted step function of ``family``; raises FitError."""
    n_dev = len(data)
    su = np.zeros(n_dev)
    sd = np.zeros(n_dev)
    bmin = np.array([d.lo for d in data])
    bmax = np.array([d.hi for d in data])
    extra: dict[str, np.ndarray] = {}
    shared: dict[str, Any] = {}
    k_params = 0
    need = {"constant": 1, "linear": 2, "softbounds": 2, "exp": 2, "pow": 3, "piecewise": 1}[family]
    for d in data:
        for direction, mask in (("up", d.up), ("down", ~d.up)):
            if int(mask.sum()) < max(MIN_PULSES, need + 2):
                raise FitError(f"{_where(path, d)}: only {int(mask.sum())} usable {direction} pulses (pulses "
                               f"clipped at a bound left out); family {family!r} needs at least "
                               f"{max(MIN_PULSES, need + 2)}")  # fmt: skip

    if family == "constant":
        for i, d in enumerate(data):
            su[i] = d.dw[d.up].mean()
            sd[i] = -d.dw[~d.up].mean()
        k_params = 2 * n_dev

        def step(i, w, up):
            return np.where(up, su[i], sd[i])

    elif family == "linear":
        w_max, w_min = float(bmax.mean()), float(bmin.mean())
        if not w_min < 0 < w_max:
            raise FitError(f"{path}: family 'linear' needs devices whose range spans weight 0 (mean bounds "
                           f"{w_min:.4g}, {w_max:.4g}); check --g-min/--g-max")  # fmt: skip
        gu, gd = np.zeros(n_dev), np.zeros(n_dev)
        for i, d in enumerate(data):
            c0, c1 = _linfit(d.w[d.up], d.dw[d.up], var_w)
            su[i], gu[i] = c0, max(-c1 * w_max / c0, 0.0) if c0 > 0 else 0.0
            c0, c1 = _linfit(d.w[~d.up], -d.dw[~d.up], var_w, -1.0)
            sd[i], gd[i] = c0, max(-c1 * w_min / c0, 0.0) if c0 > 0 else 0.0
        extra = {"gamma_up": gu, "gamma_down": gd}
        k_params = 4 * n_dev

        def step(i, w, up):
            return np.where(up, su[i] * (1 - gu[i] * w / w_max), sd[i] * (1 - gd[i] * w / w_min))

    elif family == "softbounds":
        for i, d in enumerate(data):
            c0, c1 = _linfit(d.w[d.up], d.dw[d.up], var_w)
            e0, e1 = _linfit(d.w[~d.up], -d.dw[~d.up], var_w, -1.0)
            if not (c0 > 0 and c1 < 0 and e0 > 0 and e1 > 0):
                raise FitError(f"{_where(path, d)}: family 'softbounds' does not fit: its up step must shrink "
                               f"towards the top and its down step towards the bottom (fitted slopes "
                               f"{c1:.3g}, {-e1:.3g} per unit weight)")  # fmt: skip
            su[i], bmax[i] = c0, min(-c0 / c1, w_scale)
            sd[i], bmin[i] = e0, max(-e0 / e1, -w_scale)
        if not (np.all(bmin < 0) and np.all(bmax > 0)):
            raise FitError(f"{path}: family 'softbounds' puts a device's soft bound on the wrong side of 0")
        k_params = 4 * n_dev

        def step(i, w, up):
            return np.where(up, su[i] * (1 - w / bmax[i]), sd[i] * (1 - w / bmin[i]))

    elif family == "pow":
        gu, gd = np.ones(n_dev), np.ones(n_dev)
        for i, d in enumerate(data):
            span = d.hi - d.lo

            def resid(p, d=d):
                s_u, g_u, s_d, g_d, lo, hi = p
                om = np.clip((hi - d.w) / (hi - lo), 0.0, 1.0)
                f = np.where(d.up, s_u * om**g_u, s_d * (1.0 - om) ** g_d)
                return np.where(d.up, d.dw, -d.dw) - f

            s0u, s0d = max(d.dw[d.up].mean(), 1e-12), max(-d.dw[~d.up].mean(), 1e-12)
            p0 = [2 * s0u, 1.0, 2 * s0d, 1.0, d.lo - 0.01 * span, d.hi + 0.01 * span]  # clipped into lb..ub
            # the step vanishes at the bounds, which the reads approach but need not reach: each bound
            # lies between the extreme read and the mapping's range (extrapolated from the curvature)
            lb = [0.0, 0.0, 0.0, 0.0, -w_scale - 1e-9, d.hi]
            ub = [np.inf, 20.0, np.inf, 20.0, d.lo, w_scale + 1e-9]
            p0 = np.clip(p0, np.array(lb) + 1e-12, np.array(ub) - 1e-12)
            res = least_squares(resid, p0, bounds=(lb, ub), x_scale="jac")
            if res.status > 0 and np.all(np.isfinite(res.x)):  # again, weighted for multiplicative noise
                f1 = np.where(d.up, d.dw, -d.dw) - resid(res.x)
                wt = _inv(f1, d.dw, var_w, weighted)
                res = least_squares(lambda p, wt=wt: resid(p) * wt, res.x, bounds=(lb, ub), x_scale="jac")
            if res.status <= 0 or not np.all(np.isfinite(res.x)):
                raise FitError(f"{_where(path, d)}: family 'pow' did not converge ({res.message})")
            su[i], gu[i], sd[i], gd[i], bmin[i], bmax[i] = res.x
        extra = {"gamma_up": gu, "gamma_down": gd}
        k_params = 6 * n_dev

        def step(i, w, up):
            om = np.clip((bmax[i] - w) / (bmax[i] - bmin[i]), 0.0, 1.0)
            return np.where(up, su[i] * om ** gu[i], sd[i] * (1.0 - om) ** gd[i])

    elif family == "exp":
        a_, b_ = (base.a, base.b) if base.model == "exp" else (-0.5, -0.5)
        shared = {"a": a_, "b": b_}
        theta = (np.array([base.A_up, base.gamma_up, base.A_down, base.gamma_down]) if base.model == "exp"
                 else np.array([-1.18445, 5.0, -0.081404, 5.0]))  # ReRamES's shape as a start  # fmt: skip

        def shape_y(i, w, up, th):
            z = 2.0 * a_ * w / (bmax[i] - bmin[i]) + b_
            with np.errstate(over="ignore"):
                yu = np.maximum(1.0 - th[0] * np.exp(np.minimum(th[1] * z, 700)), 0.0)
                yd = np.maximum(1.0 - th[2] * np.exp(np.minimum(-th[3] * z, 700)), 0.0)
            return np.where(up, yu, yd)

        # cycle noise is multiplicative (std proportional to the step), so every residual is weighted by
        # the inverse of its fitted step (floored at a tenth of the device's mean step): the steep end
        # of the curve, crossed in few pulses, does not dominate the fit
        def scales(th):
            for i, d in enumerate(data):
                y = shape_y(i, d.w, d.up, th)
                m = np.where(d.up, d.dw, -d.dw)
                for mask, out in ((d.up, su), (~d.up, sd)):
                    scale = max(float(m[mask].mean()) / max(float(y[mask].mean()), 1e-300), 1e-300)  # rough
                    wgt = _inv(scale * y[mask], m[mask], var_w, weighted) ** 2
                    out[i] = float((wgt * m[mask]) @ y[mask]) / max(float((wgt * y[mask]) @ y[mask]), 1e-300)

        def fitted(th):
            return [np.where(d.up, su[i], sd[i]) * shape_y(i, d.w, d.up, th) for i, d in enumerate(data)]

        def resid_exp(th, weights):
            return np.concatenate([(np.where(d.up, d.dw, -d.dw) - f) * wt
                                   for d, f, wt in zip(data, fitted(th), weights, strict=True)])  # fmt: skip

        for _ in range(6):  # alternate: per-device scales (linear), shared shape (non-linear, weights fixed)
            scales(theta)
            weights = [_inv(f, d.dw, var_w, weighted) for d, f in zip(data, fitted(theta), strict=True)]
            res = least_squares(resid_exp, theta, args=(weights,), x_scale="jac", bounds=([-np.inf, 0, -np.inf, 0], [np.inf, 50, np.inf, 50]))
            if res.status <= 0 or not np.all(np.isfinite(res.x)):
                raise FitError(f"{path}: family 'exp' did not converge ({res.message})")
            theta = res.x
        scales(theta)
        if np.any(su <= 0) or np.any(sd <= 0):
            raise FitError(f"{path}: family 'exp' did not converge to positive step sizes")
        shared.update(A_up=float(theta[0]), gamma_up=float(theta[1]), A_down=float(theta[2]),
                      gamma_down=float(theta[3]))  # fmt: skip
        k_params = 2 * n_dev + 4

        def step(i, w, up):
            return np.where(up, su[i], sd[i]) * shape_y(i, w, up, theta)

    elif family == "piecewise":
        if nodes < 2:
            raise FitError(f"nodes = {nodes}: a piecewise table needs at least 2 nodes")
        tables: dict[bool, np.ndarray] = {}
        cu, cd = np.ones(n_dev), np.ones(n_dev)

        def basis(i, w):
            u = np.clip((w - bmin[i]) / (bmax[i] - bmin[i]), 0.0, 1.0) * (nodes - 1)
            k = np.minimum(np.floor(u).astype(int), nodes - 2)
            t = u - k
            m = np.zeros((len(w), nodes))
            m[np.arange(len(w)), k] = 1.0 - t
            m[np.arange(len(w)), k + 1] = t
            return m

        bases = [basis(i, d.w) for i, d in enumerate(data)]
        for is_up, scale in ((True, cu), (False, cd)):
            mats = [(bases[i][d.up == is_up], np.where(is_up, d.dw, -d.dw)[d.up == is_up])
                    for i, d in enumerate(data)]  # fmt: skip
            table = np.ones(nodes)
            for _ in range(20):  # alternate: table given scales, scales given table (both linear)
                # weights 1 / (current fitted step) for multiplicative cycle noise (see 'exp')
                preds = [scale[i] * (m @ table) for i, (m, _) in enumerate(mats)]
                wts = [_inv(p, v, var_w, weighted) if len(v) else p for p, (_, v) in zip(preds, mats, strict=True)]
                a = np.vstack([scale[i] * m * wt[:, None] for i, ((m, _), wt) in enumerate(zip(mats, wts, strict=True))])
                y = np.concatenate([v * wt for (_, v), wt in zip(mats, wts, strict=True)])
                weight = np.vstack([m for m, _ in mats]).sum(axis=0)
                table, *_ = np.linalg.lstsq(a, y, rcond=None)
                empty = weight <= 1e-9
                if empty.all():
                    raise FitError(f"{path}: no usable {'up' if is_up else 'down'} pulses for a table")
                if empty.any():  # nodes no pulse reaches: nearest fitted node's value
                    good = np.flatnonzero(~empty)
                    for j in np.flatnonzero(empty):
                        table[j] = table[good[np.argmin(np.abs(good - j))]]
                table = np.maximum(table, 0.0)
                for i, (m, v) in enumerate(mats):
                    pred = m @ table
                    wt = _inv(scale[i] * pred, v, var_w, weighted) ** 2
                    scale[i] = float((wt * v) @ pred) / max(float((wt * pred) @ pred), 1e-300)
            mean = scale.mean()
            scale /= mean
            tables[is_up] = table * mean
        t_up, t_down = tables[True], tables[False]
        # per-device scales carry the device-to-device spread; the table's middle up node is dw_min
        mid = t_up[nodes // 2]
        ref = mid if mid > 0 else max(t_up.max(), 1e-300)
        su[:] = cu * ref
        sd[:] = cd * ref
        shared = {"piecewise_up": tuple(float(v) for v in t_up / ref),
                  "piecewise_down": tuple(float(v) for v in t_down / ref)}  # fmt: skip
        k_params = 2 * n_dev + 2 * nodes

        def step(i, w, up):
            m = basis(i, np.asarray(w, float))
            return np.where(up, su[i] * (m @ (t_up / ref)), sd[i] * (m @ (t_down / ref)))

    else:
        raise FitError(f"unknown family {family!r}; choose from {', '.join(FAMILIES)} or auto")
    per = {"scale_up": su.copy(), "scale_down": sd.copy(), "b_min": bmin.copy(), "b_max": bmax.copy(), **extra}
    return per, shared, step, k_params


def _spreads(values: np.ndarray, err_var: float = 0.0) -> tuple[float, float]:
    """Mean and device-to-device std of per-device estimates, the estimates' own error variance
    ``err_var`` taken out of the spread (method of moments, not below 0)."""
    mean = float(values.mean())
    var = float(values.var(ddof=1)) if values.size > 1 else 0.0
    return mean, math.sqrt(max(var - err_var, 0.0))


def _to_config(family: str, per: dict[str, np.ndarray], shared: dict[str, Any], noise: tuple[float, float],
               base: DeviceConfig, se: tuple[np.ndarray, np.ndarray] | None = None) -> DeviceConfig:  # fmt: skip
    su, sd = per["scale_up"], per["scale_down"]
    mu_u, mu_d = float(su.mean()), float(sd.mean())
    if mu_u >= mu_d:  # up_down >= 0: the down step is the smaller one (aihwkit's sign)
        dw_min, up_down = mu_u, 1.0 - mu_d / mu_u
    else:
        dw_min, up_down = mu_d, mu_u / mu_d - 1.0
    up_bias = 0.0 if up_down > 0 else up_down
    down_bias = -up_down if up_down > 0 else 0.0
    gain_plus_r = su / dw_min - up_bias
    gain_minus_r = sd / dw_min - down_bias
    gain, r = (gain_plus_r + gain_minus_r) / 2, (gain_plus_r - gain_minus_r) / 2
    # both gain and r are half sums of the two scale estimates: error variance (se_u^2 + se_d^2) / (4 dw_min^2)
    err = float(np.mean(se[0] ** 2 + se[1] ** 2)) / (4 * dw_min**2) if se is not None else 0.0
    w_max, s_max = _spreads(per["b_max"])
    w_min, s_min = _spreads(per["b_min"])
    std, wn = noise
    fields: dict[str, Any] = dict(
        model=family, dw_min=dw_min, up_down=up_down, dw_min_dtod=_spreads(gain, err)[1], up_down_dtod=_spreads(r, err)[1],
        dw_min_dtod_log_normal=False, dw_min_std=std, w_min=w_min, w_max=w_max,
        w_min_dtod=s_min / abs(w_min) if w_min else 0.0, w_max_dtod=s_max / abs(w_max) if w_max else 0.0,
        write_noise_std=wn / dw_min, enforce_consistency=True, mult_noise=True, dw_min_std_add=0.0,
        dw_min_std_slope=0.0, one_sided_pair=False,
    )  # fmt: skip
    if family == "linear":
        for d in ("up", "down"):
            mean, sdev = _spreads(per[f"gamma_{d}"])
            fields[f"gamma_{d}"], fields[f"gamma_{d}_dtod"] = mean, sdev
        fields["mean_bound_reference"] = True
    elif family == "pow":
        gu, gd = per["gamma_up"], per["gamma_down"]
        p_k = (gu + gd) / 2
        p = float(p_k.mean())
        beta = (gu - gd) / (2 * p)
        fields.update(pow_gamma=p, pow_gamma_dtod=_spreads(p_k / p)[1], pow_up_down=_spreads(beta)[0],
                      pow_up_down_dtod=_spreads(beta)[1])  # fmt: skip
    fields.update(shared)
    return dataclasses.replace(base, **fields)


def _scale_errors(data: list[DeviceData], step, per) -> tuple[np.ndarray, np.ndarray]:
    """Standard errors of each device's fitted up and down scale, as if only the scale were fitted:
    se^2 = var(residual) / sum(g^2), g the fitted step divided by the scale (a lower bound when shape
    parameters are fitted too). Used to take the estimation noise out of the device-to-device spread."""
    se = np.zeros((2, len(data)))
    for i, d in enumerate(data):
        f = step(i, d.w, d.up)
        r = d.dw - np.where(d.up, f, -f)
        for row, (mask, scale) in enumerate(((d.up, per["scale_up"][i]), (~d.up, per["scale_down"][i]))):
            g = f[mask] / scale if scale > 0 else f[mask]
            n = int(mask.sum())
            se[row, i] = math.sqrt(float(r[mask] @ r[mask]) / max(n - 1, 1) / max(float(g @ g), 1e-300))
    return se[0], se[1]


def _noise(data: list[DeviceData], step) -> tuple[float, float, float, int]:
    """(dw_min_std, write-noise std in weight units, RSS, n) from the residuals (module docstring, 4)."""
    rs, fs, lag = [], [], []
    for i, d in enumerate(data):
        f = step(i, d.w, d.up)
        r = d.dw - np.where(d.up, f, -f)
        rs.append(r)
        fs.append(f)
        ok = d.nxt >= 0
        lag.append(r[ok] * r[d.nxt[ok]])
    r = np.concatenate(rs)
    f = np.concatenate(fs)
    lg = np.concatenate(lag)
    var_w = 0.0
    if lg.size > 2:
        m = float(lg.mean())
        se = float(lg.std(ddof=1)) / math.sqrt(lg.size)
        if -m > 2 * se:
            var_w = -m
    rss = float(r @ r)
    denom = float(np.mean(f * f))
    var_c = max(float(np.mean(r * r)) - 2 * var_w, 0.0)
    std = math.sqrt(var_c / denom) if denom > 0 else 0.0
    return std, math.sqrt(var_w), rss, r.size


def fit_family(family: str, data: list[DeviceData], *, path="measurements", base: DeviceConfig | None = None,
               nodes: int = 9, w_scale: float = 1.0, write_noise: float = 0.0, weighted: bool = True) -> FitResult:  # fmt: skip
    """Fit one family (see the module docstring) to per-device pulse data; raises FitError.

    ``write_noise`` (std of the read error, weight units; from :func:`prepare`) corrects the linear
    fits of LinearStep and SoftBounds for the error in the state read before each pulse, and sets
    where the weighting of the non-linear fits stops (``weighted``; see :func:`_floor`).
    """
    base = base or DeviceConfig()
    if not data:
        raise FitError(f"{path}: no devices")
    per, shared, step, k = _fit_devices(family, data, path, base, nodes, w_scale, write_noise**2, weighted)
    for name, values in per.items():
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise FitError(f"{_where(path, data[int(bad[0])])}: family {family!r} gave a non-finite {name}")
    std, wn, rss, n = _noise(data, step)
    se = _scale_errors(data, step, per)
    try:
        cfg = _to_config(family, per, shared, (std, wn), base, se)
    except AnalogDecorError as exc:
        raise FitError(f"{path}: family {family!r} gives no valid device ({exc})") from None
    tss = 0.0
    for d in data:
        for mask in (d.up, ~d.up):
            v = d.dw[mask]
            tss += float(((v - v.mean()) ** 2).sum())
    k_total = k + 2  # + the two noise figures
    gof = {"n": float(n), "k": float(k_total), "rss": rss, "rmse": math.sqrt(rss / n),
           "r2": 1.0 - rss / tss if tss > 0 else 0.0, "bic": n * math.log(max(rss, 1e-300) / n) + k_total * math.log(n),
           "write_noise": wn}  # fmt: skip
    return FitResult(family=family, config=cfg, per_device=per, gof=gof, step_fn=step)


def prepare(meas, weights: list[np.ndarray], **kwargs) -> tuple[list[DeviceData], float]:
    """Pulse data with the bound margin set from the data: a first pass (margin 0) fits the piecewise
    family to estimate the write noise sigma; if it is > 0 the pulses are taken again with margin
    3 sigma (see :func:`pulse_data`). Returns (data, sigma), sigma for ``fit_family(write_noise=)``."""
    data = pulse_data(meas, weights)
    try:
        sigma = fit_family("piecewise", data, path=meas.path, weighted=False, **kwargs).gof["write_noise"]
    except FitError:
        return data, 0.0
    if sigma <= 0:
        return data, 0.0
    return pulse_data(meas, weights, margin=3 * sigma), sigma


def fit_all(data: list[DeviceData], families=FAMILIES, **kwargs) -> dict[str, FitResult | FitError]:
    """Fit every family in ``families``; a family that cannot be fitted maps to its FitError."""
    out: dict[str, FitResult | FitError] = {}
    for fam in families:
        try:
            out[fam] = fit_family(fam, data, **kwargs)
        except FitError as exc:
            out[fam] = exc
    return out


def choose(results: dict[str, FitResult | FitError], model: str, path) -> FitResult:
    """The requested family's fit (``auto``: lowest BIC); warns when it is a poor fit."""
    good = {k: v for k, v in results.items() if isinstance(v, FitResult)}
    if model == "auto":
        if not good:
            raise FitError(f"{path}: no family could be fitted: " + "; ".join(str(e) for e in results.values()))
        chosen = min(good.values(), key=lambda r: r.gof["bic"])
    else:
        res = results.get(model)
        if res is None:
            raise DataError(f"--model {model!r}: choose from {', '.join(FAMILIES)} or auto")
        if isinstance(res, FitError):
            raise res
        chosen = res
    best = min(r.gof["rss"] for r in good.values())
    ratio = chosen.gof["rss"] / best if best > 0 else 1.0
    if ratio > POOR_FIT_RATIO:
        warnings.warn(
            f"{path}: family {chosen.family!r} is a poor fit: residual sum of squares {ratio:.2f}x the best "
            f"family's (RMSE {chosen.gof['rmse']:.3g}, R^2 {chosen.gof['r2']:.3f}, BIC {chosen.gof['bic']:.1f}; "
            + ", ".join(f"{k} BIC {v.gof['bic']:.1f}" for k, v in good.items()) + ")",
            UserWarning, stacklevel=2,
        )  # fmt: skip
    return chosen
