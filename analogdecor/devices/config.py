"""Device models: the pulsed-update physics of one resistive device, as a typed dataclass.

Semantics follow IBM aihwkit's pulsed devices (see ../shared/notes/aihwkit-semantics.md
and :mod:`analogdecor.crossbar` for the kernels). All weights are in *normalised
weight units* (the unit in which ``w_min``/``w_max`` are given); the physical
conductance view (microsiemens) is :class:`analogdecor.crossbar.config.MappingConfig`.

Suffix conventions: ``*_dtod`` is a device-to-device spread, drawn once per
device when a tile is built (from the tile's own device seed); ``*_std`` is a
cycle-to-cycle spread, drawn afresh for every pulse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from analogdecor.config import check_choice, check_finite, check_nonneg, check_positive, check_range
from analogdecor.errors import ConfigError

DeviceModel = Literal["ideal", "constant", "linear", "softbounds", "exp", "pow", "piecewise"]
DEVICE_MODELS: tuple[str, ...] = ("ideal", "constant", "linear", "softbounds", "exp", "pow", "piecewise")
"""``ideal``: float update, no pulses, no bounds effects beyond clipping to [w_min, w_max];
``constant``: ConstantStep; ``linear``: LinearStep; ``softbounds``: SoftBounds
(LinearStep with gamma = 1 at each device's own bounds); ``exp``: ExpStep; ``pow``: PowStep;
``piecewise``: PiecewiseStep (step sizes interpolated from a measured table, see ``piecewise_up``)."""


@dataclass(frozen=True)
class DeviceConfig:
    """One pulsed resistive device model (aihwkit-compatible parameters)."""

    model: DeviceModel = "constant"
    """Update family: ideal, constant, linear, softbounds, exp or pow."""

    # ---- step size -----------------------------------------------------------------
    dw_min: float = 0.001
    """Mean weight change of one pulse at w = 0 (weight units). Must be > 0."""
    dw_min_dtod: float = 0.3
    """Device-to-device relative spread of the step size (gain = 1 + dw_min_dtod xi)."""
    dw_min_dtod_log_normal: bool = False
    """Draw the step-size gain log-normally (exp(dw_min_dtod xi)) instead of normally."""
    dw_min_std: float = 0.3
    """Cycle-to-cycle relative spread of every pulse (step * (1 + dw_min_std xi))."""

    # ---- asymmetry -----------------------------------------------------------------
    up_down: float = 0.0
    """Systematic up/down asymmetry; > 0 makes the DOWN step smaller (aihwkit sign)."""
    up_down_dtod: float = 0.01
    """Device-to-device spread of the up/down asymmetry (weight-step units of dw_min)."""

    # ---- bounds --------------------------------------------------------------------
    w_min: float = -0.6
    """Mean lower hard bound of the weight (weight units); must be < w_max."""
    w_max: float = 0.6
    """Mean upper hard bound of the weight (weight units)."""
    w_min_dtod: float = 0.3
    """Device-to-device relative spread of the lower bound."""
    w_max_dtod: float = 0.3
    """Device-to-device relative spread of the upper bound."""
    enforce_consistency: bool = True
    """Take |scale_up|, |scale_down| and make b_min <= 0 <= b_max after the dtod draws."""

    # ---- LinearStep / SoftBounds ---------------------------------------------------
    gamma_up: float = 0.0
    """LinearStep: relative slope of the up step (step shrinks by gamma_up at w_max).
    ExpStep: exponent of the up response. Dimensionless."""
    gamma_down: float = 0.0
    """LinearStep: relative slope of the down step. ExpStep: exponent of the down response."""
    gamma_up_dtod: float = 0.05
    """LinearStep: device-to-device spread of gamma_up, absolute (gamma_ij = |gamma_up + gamma_up_dtod xi|)."""
    gamma_down_dtod: float = 0.05
    """LinearStep: device-to-device spread of gamma_down, absolute."""
    mult_noise: bool = True
    """LinearStep/SoftBounds: cycle noise multiplies the whole step (True) or only the constant part (False, "additive")."""
    mean_bound_reference: bool = True
    """LinearStep: slopes refer to the mean bounds w_max/w_min (True) or each device's own bounds."""

    # ---- ExpStep ---------------------------------------------------------------------
    a: float = 0.244
    """ExpStep: z = 2 a w / (b_max - b_min) + b."""
    b: float = 0.2425
    """ExpStep: offset of z."""
    A_up: float = 0.00081
    """ExpStep: y_up = max(1 - A_up exp(gamma_up z), 0)."""
    A_down: float = 0.36833
    """ExpStep: y_down = max(1 - A_down exp(-gamma_down z), 0)."""
    dw_min_std_add: float = 0.0
    """ExpStep: when this or dw_min_std_slope is > 0, the cycle noise of a step dw is additive with
    std dw_min_std (dw_min_std_add + |dw| + dw_min_std_slope |w|) (aihwkit's PCM noise model)."""
    dw_min_std_slope: float = 0.0
    """ExpStep: weight-dependent part of the additive cycle noise (see dw_min_std_add)."""

    # ---- PowStep ---------------------------------------------------------------------
    pow_gamma: float = 1.0
    """PowStep: exponent of the distance-to-bound response."""
    pow_gamma_dtod: float = 0.1
    """PowStep: device-to-device relative spread of pow_gamma (gain = 1 + pow_gamma_dtod xi)."""
    pow_up_down: float = 0.0
    """PowStep: one-sided asymmetry of the exponents, like up_down on the steps: > 0 lowers the DOWN
    exponent to pow_gamma (gain - pow_up_down - r), < 0 lowers the UP exponent (aihwkit sign)."""
    pow_up_down_dtod: float = 0.0
    """PowStep: device-to-device spread r = pow_up_down_dtod xi, added to the up exponent's factor and
    subtracted from the down one's (|exponents| taken when enforce_consistency)."""

    # ---- PiecewiseStep (measured curves) ------------------------------------------------
    piecewise_up: tuple[float, ...] = (1.0,)
    """PiecewiseStep: up-step size at nodes spaced evenly from the device's own b_min (first) to b_max
    (last), relative to its scale (step = scale_up * interpolated value); one value: the same step
    everywhere. Linear interpolation between nodes, as aihwkit's PiecewiseStepDevice."""
    piecewise_down: tuple[float, ...] = (1.0,)
    """PiecewiseStep: down-step size at the same nodes (relative to scale_down); as many values as
    piecewise_up."""

    # ---- non-idealities common to all families ----------------------------------------
    write_noise_std: float = 0.0
    """Read-out of a written device is w + write_noise_std * dw_min * xi, redrawn at every write (units of dw_min)."""
    prog_noise_std: float = 0.0
    """Gaussian error of :meth:`Tile.program`, relative to max(|w_min|, |w_max|) (dimensionless)."""
    stuck_fraction: float = 0.0
    """Fraction of devices stuck at a random weight within their bounds (never change)."""
    dead_fraction: float = 0.0
    """Fraction of dead devices: both conductances at g_min, weight 0, never change."""

    # ---- one-sided pair (aihwkit OneSidedUnitCell) --------------------------------------
    one_sided_pair: bool = False
    """Store each weight on two uni-directional devices of this model, w = w+ - w- (G+ and G-): a pulse
    that raises w raises w+, one that lowers w raises w-, each along its own up response; needs w_min >= 0."""
    refresh_upper_thres: float = 0.75
    """One-sided pair: refresh a pair after an update when its larger device exceeds this fraction of w_max
    and its smaller one exceeds refresh_lower_thres (both reset, the difference rewritten)."""
    refresh_lower_thres: float = 0.25
    """One-sided pair: lower threshold of the refresh criterion (fraction of w_max)."""
    refresh_write: Literal["pulsed", "exact"] = "pulsed"
    """One-sided pair: how a refresh works. pulsed (aihwkit's OneSidedUnitCell): both devices are read
    through the forward periphery, a flagged pair is reset (see reset, reset_dtod, reset_std) and the read
    difference rewritten with pulses of the tile's update settings; exact: exact read, both devices back to
    their lower bound and the difference written exactly."""
    reset: float = 0.0
    """One-sided pair, pulsed refresh: mean weight a device is reset to (aihwkit reset; weight units)."""
    reset_dtod: float = 0.0
    """One-sided pair, pulsed refresh: device-to-device spread of the reset value (additive, drawn once)."""
    reset_std: float = 0.0
    """One-sided pair, pulsed refresh: cycle-to-cycle spread of each reset (additive; clipped to the bounds)."""

    endurance: float | None = None
    """Pulses a device takes before it wears out (order of magnitude, from the preset's
    ``[source].endurance_source``); training warns when a device's up + down pulse count passes it.
    None: unknown (no warning). Bookkeeping only: it does not change the device's behaviour."""

    def __post_init__(self) -> None:
        check_choice(self, "model", DEVICE_MODELS)
        for name in ("dw_min",):
            check_positive(self, name)
        if self.dw_min < 1e-9:  # a smaller step is lost in float32 weights and overflows the pulse counts
            raise ConfigError(
                f"DeviceConfig.dw_min = {self.dw_min!r}: must be >= 1e-9 (a smaller step is below the float32 "
                "resolution of the weights and overflows the pulse-count arithmetic)"
            )
        for name in (
            "dw_min_dtod", "dw_min_std", "up_down_dtod", "w_min_dtod", "w_max_dtod",
            "gamma_up_dtod", "gamma_down_dtod", "pow_gamma_dtod", "pow_up_down_dtod",
            "write_noise_std", "prog_noise_std", "dw_min_std_add", "dw_min_std_slope", "reset_dtod", "reset_std",
        ):  # fmt: skip
            check_nonneg(self, name)
        for name in ("up_down", "w_min", "w_max", "gamma_up", "gamma_down", "a", "b", "A_up", "A_down",
                     "pow_gamma", "pow_up_down", "reset"):  # fmt: skip
            check_finite(self, name)
        check_choice(self, "refresh_write", ("pulsed", "exact"))
        if self.w_min >= self.w_max:
            raise ConfigError(
                f"DeviceConfig.w_min = {self.w_min!r} must be < DeviceConfig.w_max = {self.w_max!r}"
            )
        if self.model in ("linear", "softbounds") and not self.one_sided_pair and not self.w_min < 0 < self.w_max:
            raise ConfigError(
                f"DeviceConfig: model {self.model!r} needs w_min < 0 < w_max, got w_min = {self.w_min!r}, "
                f"w_max = {self.w_max!r}"
            )
        if self.model == "pow":
            check_positive(self, "pow_gamma")
        check_positive(self, "endurance", allow_none=True)
        self._check_piecewise()
        check_range(self, "stuck_fraction", 0.0, 1.0)
        check_range(self, "dead_fraction", 0.0, 1.0)
        check_range(self, "refresh_upper_thres", 0.0, 1.0)
        check_range(self, "refresh_lower_thres", 0.0, 1.0)
        if self.one_sided_pair and (self.w_min < 0 or self.model == "ideal"):
            raise ConfigError(
                f"DeviceConfig.one_sided_pair needs a pulsed model with w_min >= 0 (uni-directional devices), "
                f"got model = {self.model!r}, w_min = {self.w_min!r}"
            )
        if self.stuck_fraction + self.dead_fraction > 1.0:
            raise ConfigError(
                f"DeviceConfig.stuck_fraction + dead_fraction = {self.stuck_fraction + self.dead_fraction!r}: "
                "must be <= 1"
            )

    def _check_piecewise(self) -> None:
        for name in ("piecewise_up", "piecewise_down"):
            values = getattr(self, name)
            if isinstance(values, list):  # a list from Python code: store the (hashable) tuple
                values = tuple(values)
                object.__setattr__(self, name, values)
            if not isinstance(values, tuple) or not values:
                raise ConfigError(f"DeviceConfig.{name} = {values!r}: must be a non-empty list of numbers")
            for k, v in enumerate(values):
                if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
                    raise ConfigError(f"DeviceConfig.{name}[{k}] = {v!r}: must be a finite number >= 0")
        if len(self.piecewise_up) != len(self.piecewise_down):
            raise ConfigError(
                f"DeviceConfig.piecewise_up has {len(self.piecewise_up)} values but piecewise_down has "
                f"{len(self.piecewise_down)}: they must have the same number of nodes"
            )

    @property
    def w_abs_max(self) -> float:
        """max(|w_min|, |w_max|): the weight that maps onto the full conductance range."""
        return max(abs(self.w_min), abs(self.w_max))

    @property
    def weight_granularity(self) -> float:
        """Weight change the update management assumes for one pulse (aihwkit ``calcWeightGranularity``).

        dw_min for ideal, ConstantStep, LinearStep and SoftBounds; dw_min 0.5**pow_gamma for PowStep;
        dw_min piecewise_up[n // 2] (the middle node, n nodes; dw_min if that is 0) for PiecewiseStep;
        for ExpStep the mean down step at w = 0, (down_bias + 1) dw_min max(1 - A_down exp(-gamma_down b), 0)
        (aihwkit 1.2.0 averages the down step with itself, not with the up step; followed here), or
        dw_min if that is 0. The pulse-train length and line probabilities use it as g.
        """
        if self.model == "pow":
            return self.dw_min * 0.5**self.pow_gamma
        if self.model == "piecewise":
            mid = self.piecewise_up[len(self.piecewise_up) // 2]
            return self.dw_min * mid if mid > 0 else self.dw_min
        if self.model == "exp":
            down_bias = -self.up_down if self.up_down > 0 else 0.0
            y_down = max(1.0 - self.A_down * math.exp(-self.gamma_down * self.b), 0.0)
            g = (down_bias + 1.0) * self.dw_min * y_down
            return g if g > 0 else self.dw_min
        return self.dw_min

    @property
    def effective_w_min(self) -> float:
        """Mean lower bound of the stored weight: -w_max for a one-sided pair, else w_min."""
        return -self.w_max if self.one_sided_pair else self.w_min
