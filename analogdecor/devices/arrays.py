"""Per-device hidden parameters of a tile, drawn once from the device seed.

A crossbar of ``(out, in)`` devices is described by plain float32 arrays (one
value per device): step sizes up and down, hard bounds, and a shape parameter
per direction whose meaning depends on the family (relative slope for
LinearStep/SoftBounds, exponent for PowStep). The draws follow aihwkit's
``PulsedDevice`` (see ../shared/notes/aihwkit-semantics.md, "Per-device hidden
parameters"):

    b_max = w_max (1 + w_max_dtod xi),   b_min = w_min (1 + w_min_dtod xi)
    gain  = 1 + dw_min_dtod xi           (exp(dw_min_dtod xi) if log-normal)
    r     = up_down_dtod xi
    scale_up   = (up_bias + gain + r) dw_min,  scale_down = (down_bias + gain - r) dw_min

Every quantity has its own standard-normal array, always drawn in the same
order whatever the model, so one device seed gives the same chip for every
family and parameter value.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from analogdecor.devices.config import DeviceConfig

MODEL_CODES: dict[str, int] = {"ideal": 0, "constant": 1, "linear": 2, "softbounds": 2, "exp": 3, "pow": 4,
                               "piecewise": 5}
"""Integer code of each family in the kernels (SoftBounds is LinearStep with per-device slopes)."""

ALIVE, STUCK, DEAD = 0, 1, 2
"""Codes of :attr:`DeviceArrays.fault`."""


@dataclass
class DeviceArrays:
    """Hidden per-device parameters, each an ``(out, in)`` array.

    Attributes
    ----------
    scale_up, scale_down : float32
        Mean weight change of one up / down pulse at w = 0 (weight units, >= 0
        when ``enforce_consistency``).
    b_min, b_max : float32
        The device's own hard bounds (b_min <= b_max).
    shape_up, shape_down : float32
        LinearStep/SoftBounds: relative slope ``gamma_ij`` of the step,
        step = scale (1 + shape w). PowStep: exponent of the distance to the
        bound, pow_gamma (bias + gain + r) as for the step sizes (aihwkit
        ``PowStepRPUDevice``). Zero for the other families.
    fault : uint8
        0 alive, 1 stuck (never changes), 2 dead (weight 0, never changes).
    """

    scale_up: np.ndarray
    scale_down: np.ndarray
    b_min: np.ndarray
    b_max: np.ndarray
    shape_up: np.ndarray
    shape_down: np.ndarray
    fault: np.ndarray

    def as_dict(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


def draw_device_arrays(
    cfg: DeviceConfig, shape: tuple[int, int], rng: np.random.Generator, w_limit: float | None = None
) -> tuple[DeviceArrays, np.ndarray]:
    """Draw the hidden parameters of a ``shape`` crossbar of ``cfg`` devices.

    Parameters
    ----------
    cfg
        The device model.
    shape
        ``(out_size, in_size)``.
    rng
        The device-to-device generator (only this function draws from it).
    w_limit
        If given, bounds are clipped to [-w_limit, w_limit] (the weight that maps
        onto the full conductance range: a device cannot exceed g_max).

    Returns
    -------
    arrays, w0
        The per-device parameters and the initial weights (0 clipped into each
        device's bounds; stuck devices at a uniform value within their bounds;
        dead devices 0).
    """
    xi = {name: rng.standard_normal(shape) for name in
          ("gain", "up_down", "b_max", "b_min", "gamma_up", "gamma_down", "pow_gamma", "pow_up_down")}  # fmt: skip
    u_fault = rng.random(shape)
    u_stuck = rng.random(shape)

    if cfg.dw_min_dtod_log_normal:
        gain = np.exp(cfg.dw_min_dtod * xi["gain"])
    else:
        gain = 1.0 + cfg.dw_min_dtod * xi["gain"]
    r = cfg.up_down_dtod * xi["up_down"]
    up_bias = 0.0 if cfg.up_down > 0 else cfg.up_down
    down_bias = -cfg.up_down if cfg.up_down > 0 else 0.0
    scale_up = (up_bias + gain + r) * cfg.dw_min
    scale_down = (down_bias + gain - r) * cfg.dw_min
    b_max = cfg.w_max * (1.0 + cfg.w_max_dtod * xi["b_max"])
    b_min = cfg.w_min * (1.0 + cfg.w_min_dtod * xi["b_min"])
    if cfg.enforce_consistency:
        scale_up = np.abs(scale_up)
        scale_down = np.abs(scale_down)
        lo, hi = np.minimum(b_min, b_max), np.maximum(b_min, b_max)
        b_max = np.abs(hi)
        b_min = -np.abs(lo)
    else:
        lo, hi = np.minimum(b_min, b_max), np.maximum(b_min, b_max)
        b_min, b_max = lo, hi
    if w_limit is not None:
        b_max = np.minimum(b_max, w_limit)
        b_min = np.maximum(b_min, -w_limit)
        b_min = np.minimum(b_min, b_max)

    shape_up = np.zeros(shape)
    shape_down = np.zeros(shape)
    tiny = np.finfo(np.float32).tiny
    if cfg.model == "linear":
        g_up = np.abs(cfg.gamma_up + cfg.gamma_up_dtod * xi["gamma_up"])
        g_down = np.abs(cfg.gamma_down + cfg.gamma_down_dtod * xi["gamma_down"])
        ref_max = cfg.w_max if cfg.mean_bound_reference else np.maximum(b_max, tiny)
        ref_min = cfg.w_min if cfg.mean_bound_reference else np.minimum(b_min, -tiny)
        shape_up = -g_up / ref_max
        shape_down = -g_down / ref_min
    elif cfg.model == "softbounds":
        shape_up = -1.0 / np.maximum(b_max, tiny)
        shape_down = -1.0 / np.minimum(b_min, -tiny)
    elif cfg.model == "pow":
        # aihwkit PowStepRPUDevice::populate: pow_up_down is a one-sided bias, like up_down on the
        # step sizes (> 0 lowers the DOWN exponent only), and the exponents' sign is dropped.
        pow_gain = 1.0 + cfg.pow_gamma_dtod * xi["pow_gamma"]
        pow_r = cfg.pow_up_down_dtod * xi["pow_up_down"]
        pow_bias_up = min(cfg.pow_up_down, 0.0)
        pow_bias_down = -max(cfg.pow_up_down, 0.0)
        shape_up = cfg.pow_gamma * (pow_bias_up + pow_gain + pow_r)
        shape_down = cfg.pow_gamma * (pow_bias_down + pow_gain - pow_r)
        if cfg.enforce_consistency:
            shape_up, shape_down = np.abs(shape_up), np.abs(shape_down)

    f32 = np.float32
    b_min32, b_max32 = b_min.astype(f32), b_max.astype(f32)
    fault = np.zeros(shape, np.uint8)
    fault[u_fault < cfg.dead_fraction] = DEAD
    fault[(u_fault >= cfg.dead_fraction) & (u_fault < cfg.dead_fraction + cfg.stuck_fraction)] = STUCK
    w0 = np.clip(np.zeros(shape, f32), b_min32, b_max32)
    stuck = fault == STUCK
    w0[stuck] = np.clip((b_min + (b_max - b_min) * u_stuck).astype(f32), b_min32, b_max32)[stuck]
    w0[fault == DEAD] = 0.0
    arrays = DeviceArrays(
        scale_up=scale_up.astype(f32),
        scale_down=scale_down.astype(f32),
        b_min=b_min32,
        b_max=b_max32,
        shape_up=np.asarray(shape_up, f32) * np.ones(shape, f32),
        shape_down=np.asarray(shape_down, f32) * np.ones(shape, f32),
        fault=fault,
    )
    return arrays, w0


@dataclass
class PairArrays:
    """Hidden state of one-sided pairs (``DeviceConfig.one_sided_pair``), each an ``(out, in)`` array.

    The G+ device takes the pulses that raise the weight, the G- device those
    that lower it, each along its own up response. The pair's
    :class:`DeviceArrays` then describe the effective weight w = w+ - w-:
    ``scale_up``/``shape_up``/``b_max`` are the G+ device's, ``scale_down``/
    ``shape_down`` the G- device's up response and ``b_min = -(G- b_max)``;
    the lower bounds of the two devices are kept here, with the values each
    device is reset to on a pulsed refresh (reset + reset_dtod xi, drawn once).
    """

    lo_plus: np.ndarray
    lo_minus: np.ndarray
    reset_plus: np.ndarray
    reset_minus: np.ndarray

    def as_dict(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


def draw_pair_arrays(
    cfg: DeviceConfig, shape: tuple[int, int], rng: np.random.Generator, w_limit: float | None = None
) -> tuple[DeviceArrays, PairArrays, np.ndarray, np.ndarray]:
    """Draw a crossbar of one-sided pairs: the G+ devices, the G- devices, then their reset values, from ``rng``.

    Returns the effective :class:`DeviceArrays`, the :class:`PairArrays` and the
    initial hidden weights (w+, w-) (each device at its lower bound; a stuck
    pair's G+ device at its stuck value).
    """
    plus, wp0 = draw_device_arrays(cfg, shape, rng, w_limit)
    minus, _ = draw_device_arrays(cfg, shape, rng, w_limit)
    reset_plus = (cfg.reset + cfg.reset_dtod * rng.standard_normal(shape)).astype(np.float32)
    reset_minus = (cfg.reset + cfg.reset_dtod * rng.standard_normal(shape)).astype(np.float32)
    eff = DeviceArrays(
        scale_up=plus.scale_up, scale_down=minus.scale_up, b_min=-minus.b_max, b_max=plus.b_max,
        shape_up=plus.shape_up, shape_down=minus.shape_up, fault=plus.fault,
    )  # fmt: skip
    wp0 = np.where(plus.fault == STUCK, wp0, plus.b_min).astype(np.float32)
    wm0 = minus.b_min.copy()
    dead = plus.fault == DEAD
    wp0[dead] = plus.b_min[dead]
    pair = PairArrays(lo_plus=plus.b_min, lo_minus=minus.b_min, reset_plus=reset_plus, reset_minus=reset_minus)
    return eff, pair, wp0, wm0
