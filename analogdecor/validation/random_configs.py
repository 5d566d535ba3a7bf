"""Randomised device configurations for the cross-validation (the ``random`` check).

The preset rows check each preset's own parameter values; a formula that is
wrong only away from them (PowStep's ``pow_up_down``, which every preset leaves
at 0, was applied wrongly for a long time) passes them. This check draws device
configurations at random, every parameter with an aihwkit counterpart over its
meaningful range (seeded), and compares each with aihwkit on many independent
tiles with device-to-device variation on: a response curve (n up pulses, then n
down, one pulse per device per sample) from each tile, summarised per tile by
the mean and the standard deviation over its devices at five checkpoints. A wrong formula
for any parameter moves the mean or the spread of the weights along the curve.

Statistics are compared across tiles (Welch t over tiles,
:func:`~analogdecor.validation.stats.cluster_diff`): aihwkit's Gaussians come
from a fixed table per tile, so only independent tiles give independent values.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from typing import Any

import numpy as np

from analogdecor.crossbar.config import TileConfig, UpdateConfig
from analogdecor.devices.config import DeviceConfig
from analogdecor.validation.checks import Comparison, Sizes, TileFactory, _clustered, response_curves

__all__ = ["RANDOM_FAMILIES", "random_checks", "random_configs", "random_device"]

RANDOM_FAMILIES: tuple[str, ...] = ("constant", "linear", "softbounds", "exp", "pow")
"""Device families the random configurations are drawn from (one-sided pairs and 'ideal' excluded)."""


def random_device(family: str, rng: np.random.Generator) -> DeviceConfig:
    """A random ``family`` device: every parameter with an aihwkit counterpart drawn over its range.

    Ranges: step sizes large enough for a response curve of a few hundred pulses, spreads from 0 to
    about the largest any preset uses, asymmetries of both signs, bounds of either size.
    """
    u = rng.uniform
    w_max, w_min = u(0.5, 1.5), -u(0.5, 1.5)
    common: dict[str, Any] = dict(
        model=family, dw_min=float(np.exp(u(np.log(0.004), np.log(0.03)))), dw_min_dtod=u(0.0, 0.4),
        dw_min_dtod_log_normal=bool(rng.random() < 0.3), dw_min_std=u(0.0, 0.8), up_down=u(-0.3, 0.3),
        up_down_dtod=u(0.0, 0.1), w_min=w_min, w_max=w_max, w_min_dtod=u(0.0, 0.3), w_max_dtod=u(0.0, 0.3),
    )  # fmt: skip
    if family == "constant":
        return DeviceConfig(**common)
    common["write_noise_std"] = float(u(0.0, 3.0)) if rng.random() < 0.5 else 0.0
    if family == "linear":
        return DeviceConfig(
            **common, gamma_up=u(0.0, 0.6), gamma_down=u(0.0, 0.6), gamma_up_dtod=u(0.0, 0.1),
            gamma_down_dtod=u(0.0, 0.1), mult_noise=bool(rng.random() < 0.5),
            mean_bound_reference=bool(rng.random() < 0.5),
        )  # fmt: skip
    if family == "softbounds":
        return DeviceConfig(**common, mult_noise=bool(rng.random() < 0.5))
    if family == "exp":
        noisy = rng.random() < 0.5  # aihwkit's PCM-like additive noise model, or the multiplicative one
        return DeviceConfig(
            **common, a=u(-0.6, 0.3), b=u(-0.5, 0.3), gamma_up=u(1.0, 5.0), gamma_down=u(1.0, 5.0),
            A_up=u(-1.5, 0.5), A_down=u(-0.5, 0.5), dw_min_std_add=u(0.0, 0.1) if noisy else 0.0,
            dw_min_std_slope=u(0.0, 0.2) if noisy else 0.0,
        )  # fmt: skip
    if family == "pow":
        return DeviceConfig(
            **common, pow_gamma=u(0.5, 3.0), pow_gamma_dtod=u(0.0, 0.3), pow_up_down=u(-0.5, 0.5),
            pow_up_down_dtod=u(0.0, 0.2),
        )  # fmt: skip
    raise ValueError(f"family {family!r}: choose from {', '.join(RANDOM_FAMILIES)}")


def random_configs(
    n_per_family: int, seed: int, families: tuple[str, ...] = RANDOM_FAMILIES
) -> dict[str, TileConfig]:
    """``n_per_family`` random configurations per family, named ``random:<family>:<k>`` (seeded)."""
    out = {}
    for f_index, family in enumerate(families):
        for k in range(n_per_family):
            rng = np.random.default_rng([seed, 7301, f_index, k])
            out[f"random:{family}:{k}"] = TileConfig(device=random_device(family, rng))
    return out


def random_checks(
    cfg: TileConfig, name: str, fa: TileFactory, fb: TileFactory, sizes: Sizes, seed: int
) -> list[Comparison]:
    """Mean and spread over devices of the response curve of ``cfg``'s device (dtod on), over tiles."""
    dev = cfg.device
    c = cfg.replace(
        update=UpdateConfig(pulse_type="stochastic", desired_bl=1, update_management=False,
                            update_bl_management=False),
    )  # fmt: skip
    n = int(min(sizes.max_pulses, math.ceil(0.8 * (dev.w_max - dev.w_min) / dev.dw_min)))
    marks = [("up", max(n // 4, 1)), ("up", max(n // 2, 1)), ("up", n), ("down", max(n // 2, 1)), ("down", n)]
    per_tile = max(16, sizes.replicas // max(sizes.tiles, 1))
    groups = [per_tile] * max(2, sizes.tiles)
    # chips of their own for each configuration (so that the rows of one run are independent) and for
    # each backend (the device-to-device draws are compared, not reproduced)
    base = int(np.random.SeedSequence([seed, zlib.crc32(name.encode())]).generate_state(1)[0] % 2**30)
    ca = response_curves(fa, c, marks, groups, base)
    cb = response_curves(fb, c, marks, groups, base + 1)
    detail = f"{len(groups)} tiles x {per_tile} devices; " + _describe(dev)
    sd_a, sd_b = np.sqrt(ca[:, :, 1]), np.sqrt(cb[:, :, 1])
    return [
        _clustered(f"random: mean w along the curve (n={n})", name, ca[:, :, 0], cb[:, :, 0], detail=detail),
        # the spread as a standard deviation: per-tile variances of 16 devices are skewed (chi-square
        # like), which makes the t test over tiles run hot in the tails; their square roots much less so
        _clustered(f"random: sd of w over devices (n={n})", name, sd_a, sd_b, detail=detail),
    ]


def _describe(dev: DeviceConfig) -> str:
    """The drawn parameters that differ from the defaults, compactly."""
    default = DeviceConfig(model=dev.model)
    parts = []
    for f in dataclasses.fields(dev):
        v = getattr(dev, f.name)
        if f.name != "model" and v != getattr(default, f.name):
            parts.append(f"{f.name}={v:.4g}" if isinstance(v, float) else f"{f.name}={v}")
    return ", ".join(parts)
