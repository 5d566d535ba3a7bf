"""Tile configuration: periphery (DAC/ADC, noise), pulsed update, conductance mapping.

One dataclass per concern, composed into :class:`TileConfig` (after aihwkit's
``IOParameters``/``UpdateParameters``/``RPUConfig``). Defaults are aihwkit's
(see ../shared/notes/aihwkit-semantics.md); :meth:`TileConfig.ideal` gives a
tile that reproduces float32 matrix algebra exactly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from analogdecor.config import check_choice, check_int, check_nonneg, check_positive
from analogdecor.devices.config import DeviceConfig
from analogdecor.errors import ConfigError

#: Longest pulse train a config may ask for (update.desired_bl): beyond it the per-sample line
#: masks (desired_bl / 64 words per line) outgrow memory for ordinary layer sizes.
MAX_BL = 4096


def levels_step(bits: int | None, bound: float) -> float:
    """Quantisation step of a signed converter with ``bits`` bits over [-bound, bound] (0: none).

    ``bits = 7`` gives 127 levels (step bound/63), which is aihwkit's ``inp_res = 1/126``.
    """
    if bits is None:
        return 0.0
    return bound / (2 ** (bits - 1) - 1)


@dataclass(frozen=True)
class IOConfig:
    """Periphery of one read direction (forward or backward)."""

    is_perfect: bool = False
    """Bypass the whole periphery: y = W x in float32, no noise, no quantisation, no management."""
    inp_bits: int | None = 7
    """DAC resolution in bits (signed, 2**(bits-1)-1 levels per sign); None: no input quantisation."""
    inp_bound: float = 1.0
    """DAC range: inputs (after noise management) are clipped to [-inp_bound, inp_bound]."""
    inp_noise: float = 0.0
    """Std of Gaussian noise added to every DAC output (units of inp_bound)."""
    w_noise: float = 0.0
    """Std of weight read noise (weight units), redrawn at every read."""
    w_noise_type: Literal["additive", "pcm"] = "additive"
    """additive: y_i += w_noise ||v|| xi; pcm: y_i += w_noise sqrt(sum_j |w_ij| v_j^2) xi."""
    out_noise: float = 0.06
    """Std of Gaussian noise added to every output before the ADC (output units)."""
    out_bits: int | None = 9
    """ADC resolution in bits (signed); None: no output quantisation."""
    out_bound: float = 12.0
    """ADC range: outputs are clipped to [-out_bound, out_bound]."""
    noise_management: Literal["abs_max", "none"] = "abs_max"
    """abs_max: scale each input vector by its max |x| before the DAC and back after the ADC."""
    bound_management: Literal["iterative", "none"] = "iterative"
    """iterative: when any output saturates, redo the read with the input halved (up to max_bm_passes)."""
    max_bm_passes: int = 5
    """Maximum number of reads per vector under iterative bound management."""

    def __post_init__(self) -> None:
        why = "signals are float32, which resolves 24 bits; more bits change nothing and 2**bits overflows"
        check_int(self, "inp_bits", minimum=2, allow_none=True, maximum=32, why=why)
        check_int(self, "out_bits", minimum=2, allow_none=True, maximum=32, why=why)
        check_positive(self, "inp_bound")
        check_positive(self, "out_bound")
        for name in ("inp_noise", "w_noise", "out_noise"):
            check_nonneg(self, name)
        check_choice(self, "w_noise_type", ("additive", "pcm"))
        check_choice(self, "noise_management", ("abs_max", "none"))
        check_choice(self, "bound_management", ("iterative", "none"))
        check_int(self, "max_bm_passes", minimum=1)

    @property
    def inp_step(self) -> float:
        """DAC step (0 when no quantisation)."""
        return levels_step(self.inp_bits, self.inp_bound)

    @property
    def out_step(self) -> float:
        """ADC step (0 when no quantisation)."""
        return levels_step(self.out_bits, self.out_bound)

    @classmethod
    def perfect(cls) -> IOConfig:
        return cls(is_perfect=True)


@dataclass(frozen=True)
class UpdateConfig:
    """How a gradient outer product becomes pulses (aihwkit ``UpdateParameters``)."""

    pulse_type: Literal["stochastic", "deterministic", "none"] = "stochastic"
    """stochastic: bit streams of length BL, pulse count ~ coincidences; deterministic: expected
    pulse counts (rounded), no stream noise; none: exact float update W -= lr d x^T (clipped to bounds)."""
    desired_bl: int = 31
    """Maximum pulse-train length BL."""
    update_management: bool = True
    """Balance the x and d pulse probabilities by sqrt(max|x| / max|d|). Must be on when
    update_bl_management is (aihwkit forces it on then)."""
    update_bl_management: bool = True
    """Shorten BL to ceil(lr max|x| max|d| / dw_min) when that is below desired_bl (needs update_management)."""

    def __post_init__(self) -> None:
        check_choice(self, "pulse_type", ("stochastic", "deterministic", "none"))
        check_int(self, "desired_bl", minimum=1, maximum=MAX_BL,
                  why="the pulse-train masks take desired_bl / 64 words per line and sample")  # fmt: skip
        if self.update_bl_management and not self.update_management:
            # aihwkit (PulsedUpdateMetaParameter::initialize) silently turns update management on with
            # BL management; honouring the flag instead shrinks the update when |x| and |d| differ.
            raise ConfigError(
                "UpdateConfig.update_management = False with update_bl_management = True: aihwkit always "
                "balances the line probabilities when it shortens the pulse train, and without the balance "
                "the shortened train cannot deliver the update; set update_management = true, or "
                "update_bl_management = false to run without both"
            )


@dataclass(frozen=True)
class MappingConfig:
    """Physical view: each weight is a differential pair G+ - G- in microsiemens.

    w = (G+ - G-) / (g_max - g_min) * w_scale; a positive weight is stored on G+
    (G- = g_min) and a negative one on G- (one-sided pairs store both). With
    ``levels`` > 0 each conductance takes one of ``levels`` equally spaced values
    in [g_min, g_max] (finite precision of the stored value). The tile's
    effective scale is :attr:`analogdecor.crossbar.Tile.w_scale`.
    """

    g_min: float = 0.0
    """Lowest conductance of a device (uS)."""
    g_max: float = 25.0
    """Highest conductance of a device (uS)."""
    w_scale: float | None = None
    """Weight that maps onto g_max - g_min; devices' bounds are clipped to +-w_scale. None: the largest
    |bound| of the tile's devices after their device-to-device spread (so every conductance stays in range)."""
    levels: int = 0
    """Number of distinct conductance levels per device (0: continuous)."""
    array_rows: int | None = None
    """Rows (outputs) of one physical array. A logical tile with more outputs is split over a grid of
    arrays, each with its own periphery, and partial sums are added digitally
    (:class:`analogdecor.crossbar.arrays.ArrayTile`). None: one array holds the whole tile."""
    array_cols: int | None = None
    """Columns (inputs) of one physical array (as ``array_rows``, for the inputs). None: the whole tile."""

    def __post_init__(self) -> None:
        check_int(self, "array_rows", minimum=1, allow_none=True)
        check_int(self, "array_cols", minimum=1, allow_none=True)
        check_nonneg(self, "g_min")
        check_positive(self, "g_max")
        if self.g_max <= self.g_min:
            raise ConfigError(f"MappingConfig.g_max = {self.g_max!r} must be > g_min = {self.g_min!r}")
        check_positive(self, "w_scale", allow_none=True)
        check_int(self, "levels", minimum=0, maximum=2**24,
                  why="float32 weights resolve at most 2**24 levels; the kernels take it as a 64-bit integer")  # fmt: skip
        if self.levels == 1:
            raise ConfigError("MappingConfig.levels = 1: needs 0 (continuous) or >= 2 levels")


@dataclass(frozen=True)
class TileConfig:
    """Everything that defines an emulated crossbar tile (aihwkit's RPUConfig)."""

    device: DeviceConfig = field(default_factory=DeviceConfig)
    forward: IOConfig = field(default_factory=IOConfig)
    backward: IOConfig = field(default_factory=lambda: IOConfig(bound_management="none"))
    update: UpdateConfig = field(default_factory=UpdateConfig)
    mapping: MappingConfig = field(default_factory=MappingConfig)

    @classmethod
    def ideal(cls, w_bound: float = 1e6) -> TileConfig:
        """No noise, no quantisation, float update: reproduces float32 matrix algebra exactly."""
        dev = DeviceConfig(
            model="ideal", dw_min=1e-6, dw_min_dtod=0.0, dw_min_std=0.0, up_down_dtod=0.0,
            w_min=-w_bound, w_max=w_bound, w_min_dtod=0.0, w_max_dtod=0.0,
        )  # fmt: skip
        return cls(
            device=dev,
            forward=IOConfig.perfect(),
            backward=IOConfig.perfect(),
            update=UpdateConfig(pulse_type="none"),
        )

    def replace(self, **changes) -> TileConfig:
        """dataclasses.replace, for convenience."""
        return dataclasses.replace(self, **changes)
