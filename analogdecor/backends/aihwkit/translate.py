"""Translate analogdecor's TileConfig into an aihwkit ``SingleRPUConfig``.

Every field of :class:`~analogdecor.crossbar.config.TileConfig` either maps onto
an aihwkit parameter with the same meaning, is realised by
:class:`~analogdecor.backends.aihwkit.tile.AihwkitTile` itself (stuck and dead
devices through aihwkit's per-device hidden parameters, programming noise in
:meth:`~analogdecor.backends.aihwkit.tile.AihwkitTile.program`, the conductance
view through :mod:`analogdecor.crossbar.mapping`), or raises
:class:`~analogdecor.errors.ConfigError` naming it. Nothing is dropped silently.

Correspondence (analogdecor -> aihwkit 1.2.0; semantics in
``../shared/notes/aihwkit-semantics.md``):

=====================================  =================================================
``device.model`` constant              ``ConstantStepDevice`` (``LinearStepDevice`` with
                                       gamma 0 when ``write_noise_std`` > 0: aihwkit's
                                       ConstantStep has no write noise, LinearStep with
                                       gamma = 0 is the same device with it)
``device.model`` linear                ``LinearStepDevice``
``device.model`` softbounds            ``SoftBoundsDevice`` (LinearStep, gamma 1, own bounds)
``device.model`` exp                   ``ExpStepDevice``
``device.model`` pow                   ``PowStepDevice``
``device.model`` piecewise             ``PiecewiseStepDevice`` (``piecewise_up``/``_down``
                                       as aihwkit's node vectors)
``device.model`` ideal                 ``ConstantStepDevice`` with the mean bounds and no
                                       spread, updated with ``PulseType.NONE_WITH_DEVICE``
                                       (float update, clipped to the bounds)
``IOConfig.inp_bits`` b                ``inp_res = 1 / (2**b - 2)`` (None: ``-1``, off)
``IOConfig.out_bits`` b                ``out_res = 1 / (2**b - 2)``
``IOConfig.inp_noise``                 ``inp_noise * inp_bound`` (aihwkit's is absolute)
``IOConfig.w_noise_type``              additive: ``ADDITIVE_CONSTANT``, pcm: ``PCM_READ``
``IOConfig.max_bm_passes`` P           ``max_bm_factor = 2**(P-1) - 1``, ``max_bm_res``
                                       off: at most P reads, inputs halved each time
``device.one_sided_pair``              ``UnitCellRPUConfig`` with a ``OneSidedUnitCell`` of
                                       the device, refresh after every update;
                                       ``refresh_write`` pulsed: ``refresh_forward`` the
                                       forward periphery, ``refresh_update`` the update
                                       settings, ``reset*`` the device's; exact: perfect
                                       refresh read, float rewrite, reset to 0 exactly
``UpdateConfig.pulse_type``            stochastic: ``STOCHASTIC_COMPRESSED``,
                                       deterministic: ``DETERMINISTIC_IMPLICIT``,
                                       none: ``NONE_WITH_DEVICE``
=====================================  =================================================

No aihwkit equivalent (ConfigError): ``mapping.levels`` > 0 (aihwkit's pulsed
devices store a continuous value), iterative bound management on the backward
read (aihwkit ignores it there), write noise on an ideal device or on a one-sided
pair (aihwkit draws it per device of the pair, analogdecor on the difference).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from analogdecor.backends.aihwkit._guard import require_aihwkit
from analogdecor.crossbar.config import IOConfig, MappingConfig, TileConfig, UpdateConfig
from analogdecor.devices.config import DeviceConfig
from analogdecor.errors import ConfigError

__all__ = ["TRANSLATED_FIELDS", "check_translatable", "construction_seed", "io_parameters", "to_rpu_config"]

_NO_EQUIVALENT = "has no aihwkit 1.2.0 equivalent"

TRANSLATED_FIELDS: dict[type, frozenset[str]] = {
    DeviceConfig: frozenset(
        [
            "model",
            "dw_min",
            "dw_min_dtod",
            "dw_min_dtod_log_normal",
            "dw_min_std",
            "up_down",
            "up_down_dtod",
            "w_min",
            "w_max",
            "w_min_dtod",
            "w_max_dtod",
            "enforce_consistency",
            "gamma_up",
            "gamma_down",
            "gamma_up_dtod",
            "gamma_down_dtod",
            "mult_noise",
            "mean_bound_reference",
            "a",
            "b",
            "A_up",
            "A_down",
            "dw_min_std_add",
            "dw_min_std_slope",
            "pow_gamma",
            "pow_gamma_dtod",
            "pow_up_down",
            "pow_up_down_dtod",
            "piecewise_up",
            "piecewise_down",
            "write_noise_std",
            "prog_noise_std",
            "stuck_fraction",
            "dead_fraction",
            "one_sided_pair",
            "refresh_upper_thres",
            "refresh_lower_thres",
            "endurance",  # bookkeeping (pulse-count warning), no device behaviour to translate
            "refresh_write",
            "reset",
            "reset_dtod",
            "reset_std",
        ]
    ),
    IOConfig: frozenset(
        [
            "is_perfect",
            "inp_bits",
            "inp_bound",
            "inp_noise",
            "w_noise",
            "w_noise_type",
            "out_noise",
            "out_bits",
            "out_bound",
            "noise_management",
            "bound_management",
            "max_bm_passes",
        ]
    ),
    UpdateConfig: frozenset(["pulse_type", "desired_bl", "update_management", "update_bl_management"]),
    MappingConfig: frozenset(["g_min", "g_max", "w_scale", "levels", "array_rows", "array_cols"]),  # arrays: refused
}
"""Every field this module (or AihwkitTile) translates. A field added to the configs later and not
listed here is refused by :func:`check_translatable` when it differs from its default, so a new
setting can never be dropped silently (and the test suite flags the gap)."""


def _untranslated(obj: Any, path: str) -> None:
    known = TRANSLATED_FIELDS[type(obj)]
    for f in dataclasses.fields(obj):
        if f.name in known:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc,operator]
        if getattr(obj, f.name) != default:
            raise ConfigError(
                f"{path}.{f.name} = {getattr(obj, f.name)!r} has no translation to aihwkit in analogdecor yet; "
                "leave it at its default to run on aihwkit"
            )


def check_translatable(cfg: TileConfig) -> None:
    """Raise ConfigError naming the first setting of ``cfg`` that aihwkit cannot express.

    Pure Python: works without aihwkit installed.
    """
    if not isinstance(cfg, TileConfig):
        raise ConfigError(f"tile config is a {type(cfg).__name__}: expected a TileConfig")
    for name in ("array_rows", "array_cols"):
        if getattr(cfg.mapping, name) is not None:
            raise ConfigError(
                f"MappingConfig.{name} = {getattr(cfg.mapping, name)!r}: physical arrays are not available on "
                "the aihwkit backend (each layer runs on one aihwkit AnalogTile, which has no tile mapping; "
                "aihwkit splits layers only inside its torch modules); use backend 'numba', or leave it unset"
            )
    for path, part in (("TileConfig.device", cfg.device), ("TileConfig.forward", cfg.forward),
                       ("TileConfig.backward", cfg.backward), ("TileConfig.update", cfg.update),
                       ("TileConfig.mapping", cfg.mapping)):  # fmt: skip
        _untranslated(part, path)
    if cfg.mapping.levels > 0:
        raise ConfigError(
            f"MappingConfig.levels = {cfg.mapping.levels} {_NO_EQUIVALENT}: aihwkit's pulsed devices store a "
            "continuous weight; set mapping.levels = 0 to run on aihwkit"
        )
    if not cfg.backward.is_perfect and cfg.backward.bound_management != "none":
        raise ConfigError(
            f"TileConfig.backward.bound_management = {cfg.backward.bound_management!r} {_NO_EQUIVALENT}: "
            "aihwkit applies bound management on the forward read only; set it to 'none'"
        )
    dev = cfg.device
    if dev.one_sided_pair and dev.write_noise_std > 0:
        raise ConfigError(
            f"DeviceConfig.write_noise_std = {dev.write_noise_std!r} with one_sided_pair {_NO_EQUIVALENT}: "
            "aihwkit draws write noise on each device of the pair, analogdecor on their difference; "
            "set it to 0 to run on aihwkit"
        )
    if dev.model == "ideal" and dev.write_noise_std > 0:
        raise ConfigError(
            f"DeviceConfig.write_noise_std = {dev.write_noise_std!r} with model 'ideal' {_NO_EQUIVALENT}: "
            "aihwkit's float update has no write noise; use model 'constant' or set it to 0"
        )


def _res(bits: int | None) -> float:
    """aihwkit resolution of a signed converter with ``bits`` bits (2**(bits-1)-1 levels per sign)."""
    return -1.0 if bits is None else 1.0 / (2**bits - 2)


def io_parameters(io: IOConfig, *, direction: str) -> Any:
    """aihwkit ``IOParameters`` for one read direction ("forward" or "backward")."""
    require_aihwkit()
    from aihwkit.simulator.parameters.enums import BoundManagementType, NoiseManagementType, WeightNoiseType
    from aihwkit.simulator.parameters.io import IOParameters

    if io.is_perfect:
        return IOParameters(is_perfect=True)
    bm = BoundManagementType.ITERATIVE if io.bound_management == "iterative" else BoundManagementType.NONE
    if direction == "backward":
        bm = BoundManagementType.NONE  # check_translatable has refused anything else
    if io.w_noise > 0:
        w_type = (
            WeightNoiseType.ADDITIVE_CONSTANT if io.w_noise_type == "additive" else WeightNoiseType.PCM_READ
        )
    else:
        w_type = WeightNoiseType.NONE
    return IOParameters(
        is_perfect=False,
        inp_bound=float(io.inp_bound),
        inp_res=_res(io.inp_bits),
        inp_noise=float(io.inp_noise * io.inp_bound),
        inp_sto_round=False,
        out_bound=float(io.out_bound),
        out_res=_res(io.out_bits),
        out_noise=float(io.out_noise),
        out_noise_std=0.0,
        out_sto_round=False,
        out_scale=1.0,
        w_noise=float(io.w_noise),
        w_noise_type=w_type,
        noise_management=NoiseManagementType.ABS_MAX
        if io.noise_management == "abs_max"
        else NoiseManagementType.NONE,
        nm_thres=0.0,
        bound_management=bm,
        # at most max_bm_passes reads: aihwkit stops once the reduction factor r (1, 2, 4, ...)
        # exceeds max_bm_factor, so the last read uses r = 2**(P-1); max_bm_res is switched off.
        max_bm_factor=int(2 ** (io.max_bm_passes - 1) - 1),
        max_bm_res=1e30,
        bm_test_negative_bound=True,
        ir_drop=0.0,
        out_nonlinearity=0.0,
        v_offset_std=0.0,
        r_series=0.0,
        w_read_asymmetry_dtod=0.0,
    )


def construction_seed(seed: int) -> int:
    """aihwkit's device construction seed for an analogdecor seed (never 0, which means 'unseeded')."""
    return int(seed) % (2**31 - 2) + 1


def _device(dev: DeviceConfig, seed: int) -> Any:
    from aihwkit.simulator.configs import (
        ConstantStepDevice,
        ExpStepDevice,
        LinearStepDevice,
        PiecewiseStepDevice,
        PowStepDevice,
        SoftBoundsDevice,
    )

    common = dict(
        construction_seed=construction_seed(seed),
        dw_min=float(dev.dw_min),
        dw_min_dtod=float(dev.dw_min_dtod),
        dw_min_dtod_log_normal=bool(dev.dw_min_dtod_log_normal),
        dw_min_std=float(dev.dw_min_std),
        up_down=float(dev.up_down),
        up_down_dtod=float(dev.up_down_dtod),
        w_min=float(dev.w_min),
        w_max=float(dev.w_max),
        w_min_dtod=float(dev.w_min_dtod),
        w_max_dtod=float(dev.w_max_dtod),
        enforce_consistency=bool(dev.enforce_consistency),
        # no reset/decay/diffusion/drift/corruption: analogdecor has none of them during training
        lifetime=0.0,
        diffusion=0.0,
        corrupt_devices_prob=0.0,
    )
    # analogdecor's set_weights is an exact write: the apparent weight equals the hidden one until
    # the device is next written by a pulse.
    write = dict(write_noise_std=float(dev.write_noise_std), apply_write_noise_on_set=False)
    if dev.model == "ideal":
        common.update(
            dw_min_dtod=0.0, dw_min_std=0.0, up_down=0.0, up_down_dtod=0.0, w_min_dtod=0.0, w_max_dtod=0.0
        )
        return ConstantStepDevice(**common)
    if dev.model == "constant":
        if dev.write_noise_std > 0:
            return LinearStepDevice(
                **common, **write, gamma_up=0.0, gamma_down=0.0, gamma_up_dtod=0.0, gamma_down_dtod=0.0,
                mult_noise=True, mean_bound_reference=True,
            )  # fmt: skip
        return ConstantStepDevice(**common)
    if dev.model == "linear":
        return LinearStepDevice(
            **common, **write, gamma_up=float(dev.gamma_up), gamma_down=float(dev.gamma_down),
            gamma_up_dtod=float(dev.gamma_up_dtod), gamma_down_dtod=float(dev.gamma_down_dtod),
            mult_noise=bool(dev.mult_noise), mean_bound_reference=bool(dev.mean_bound_reference),
            allow_increasing=False,
        )  # fmt: skip
    if dev.model == "softbounds":
        return SoftBoundsDevice(**common, **write, mult_noise=bool(dev.mult_noise))
    if dev.model == "exp":
        return ExpStepDevice(
            **common, **write, A_up=float(dev.A_up), A_down=float(dev.A_down), gamma_up=float(dev.gamma_up),
            gamma_down=float(dev.gamma_down), a=float(dev.a), b=float(dev.b),
            dw_min_std_add=float(dev.dw_min_std_add),
            dw_min_std_slope=float(dev.dw_min_std_slope),
        )  # fmt: skip
    if dev.model == "pow":
        return PowStepDevice(
            **common, **write, pow_gamma=float(dev.pow_gamma), pow_gamma_dtod=float(dev.pow_gamma_dtod),
            pow_up_down=float(dev.pow_up_down), pow_up_down_dtod=float(dev.pow_up_down_dtod),
        )  # fmt: skip
    if dev.model == "piecewise":
        return PiecewiseStepDevice(
            **common, **write, piecewise_up=[float(v) for v in dev.piecewise_up],
            piecewise_down=[float(v) for v in dev.piecewise_down],
        )  # fmt: skip
    raise ConfigError(f"DeviceConfig.model = {dev.model!r} {_NO_EQUIVALENT}")  # unreachable: validated


def to_rpu_config(cfg: TileConfig, *, seed: int = 0) -> Any:
    """Build the aihwkit RPU config equivalent to ``cfg`` (``SingleRPUConfig``; ``UnitCellRPUConfig`` for pairs).

    Parameters
    ----------
    cfg : TileConfig
        Device, periphery and update settings (a preset from ``device_models/`` or any other).
    seed : int
        Fixes the device-to-device draws (aihwkit's ``construction_seed``). aihwkit's
        cycle-to-cycle noise is seeded from the clock and cannot be fixed.

    Raises
    ------
    ConfigError
        Naming a setting with no aihwkit equivalent (see :func:`check_translatable`).
    BackendUnavailableError
        When aihwkit is not installed.
    """
    check_translatable(cfg)
    require_aihwkit()
    from aihwkit.simulator.configs import SingleRPUConfig, UnitCellRPUConfig
    from aihwkit.simulator.parameters.enums import PulseType
    from aihwkit.simulator.parameters.training import UpdateParameters

    up = cfg.update
    if cfg.device.model == "ideal" or up.pulse_type == "none":
        pulse = PulseType.NONE_WITH_DEVICE
    elif up.pulse_type == "deterministic":
        pulse = PulseType.DETERMINISTIC_IMPLICIT
    else:
        pulse = PulseType.STOCHASTIC_COMPRESSED
    update = UpdateParameters(
        desired_bl=int(up.desired_bl),
        fixed_bl=True,
        pulse_type=pulse,
        # aihwkit turns update management on whenever BL management is on; UpdateConfig refuses that
        # combination with update_management off, so the flags below mean the same on both sides.
        update_management=bool(up.update_management or up.update_bl_management),
        update_bl_management=bool(up.update_bl_management),
        um_grad_scale=1.0,
        sto_round=False,
        d_sparsity=False,
    )
    forward = io_parameters(cfg.forward, direction="forward")
    backward = io_parameters(cfg.backward, direction="backward")
    if cfg.device.one_sided_pair:
        refresh = (forward, update) if cfg.device.refresh_write == "pulsed" else None
        return UnitCellRPUConfig(
            device=_one_sided(cfg.device, seed, refresh), forward=forward, backward=backward, update=update
        )
    return SingleRPUConfig(
        device=_device(cfg.device, seed), forward=forward, backward=backward, update=update
    )


def _one_sided(dev: DeviceConfig, seed: int, refresh: tuple[Any, Any] | None) -> Any:
    """aihwkit ``OneSidedUnitCell`` for ``device.one_sided_pair`` (as analogdecor models it).

    Two devices of ``dev``'s family per weight (aihwkit's device 1 holds w+, device 0 holds w-);
    after every update call a pair whose larger device exceeds ``refresh_upper_thres * w_max``
    while the smaller exceeds ``refresh_lower_thres * w_max`` is reset and its difference
    rewritten. ``refresh`` = (forward IOParameters, UpdateParameters) for the pulsed refresh
    (``refresh_write = "pulsed"``: the tile's own periphery and pulse trains, the device's reset
    values); None for the exact one (perfect read, float rewrite ``PulseType.NONE``, exact reset
    to zero).
    """
    from aihwkit.simulator.configs import OneSidedUnitCell
    from aihwkit.simulator.parameters.enums import PulseType
    from aihwkit.simulator.parameters.io import IOParameters
    from aihwkit.simulator.parameters.training import UpdateParameters

    single = _device(dev, seed)
    if refresh is None:
        single.reset, single.reset_dtod, single.reset_std = 0.0, 0.0, 0.0
        refresh = (IOParameters(is_perfect=True), UpdateParameters(pulse_type=PulseType.NONE))
    else:
        single.reset, single.reset_dtod = float(dev.reset), float(dev.reset_dtod)
        single.reset_std = float(dev.reset_std)
    return OneSidedUnitCell(
        unit_cell_devices=[single],
        construction_seed=construction_seed(seed),
        refresh_every=1,
        units_in_mbatch=True,
        refresh_upper_thres=float(dev.refresh_upper_thres),
        refresh_lower_thres=float(dev.refresh_lower_thres),
        refresh_forward=refresh[0],
        refresh_update=refresh[1],
        copy_inverted=False,
    )
