"""Run the cross-validation: every check on every preset, then one Bonferroni family for the run."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from analogdecor.crossbar.config import TileConfig
from analogdecor.errors import ConfigError
from analogdecor.validation.checks import (
    Comparison,
    Sizes,
    TileFactory,
    forward_checks,
    pulse_count_checks,
    response_checks,
    update_checks,
)
from analogdecor.validation.conv_check import conv_forward_checks
from analogdecor.validation.inference_check import InferenceSpec, inference_comparisons
from analogdecor.validation.random_configs import random_checks, random_configs
from analogdecor.validation.report import Row, make_rows
from analogdecor.validation.training_check import CONV_TRAINING, TrainingSpec, training_checks

__all__ = ["CHECKS", "RUN_CHECKS", "ValidationResult", "backend_factory", "family_configs", "run_validation"]

CHECKS: dict[str, Callable[..., list[Comparison]]] = {
    "forward": forward_checks,
    "update": update_checks,
    "pulses": pulse_count_checks,
    "response": response_checks,
    "conv-read": conv_forward_checks,
}
"""Tile-level checks by name; ``"training"`` (the short training run of an MLP), ``"training-conv"`` (the same
with a small conv net, :data:`~analogdecor.validation.training_check.CONV_TRAINING`), ``"inference"`` (analogdecor's
inference noise models against aihwkit's, once per run, not per preset) and ``"random"`` (randomised device
configurations, :mod:`analogdecor.validation.random_configs`) are added by :func:`run_validation`."""

RUN_CHECKS = ("training", "training-conv", "inference", "random")
"""Checks that :func:`run_validation` runs besides the tile-level :data:`CHECKS`."""


def family_configs(presets: Sequence[str]) -> dict[str, TileConfig]:
    """One configuration per device family that none of ``presets`` covers (named ``family:<model>``).

    Each is GokmenVlasov's periphery and update with that family's device (aihwkit's default
    parameters of the family, bounds +-1), so that every family's response curve and pulsed update
    are cross-validated even without a preset of its own.
    """
    from analogdecor.devices.config import DeviceConfig
    from analogdecor.devices.registry import load_preset

    covered = {load_preset(p).device.model for p in presets}
    base = load_preset("GokmenVlasov")
    family_devices = {
        "constant": DeviceConfig(model="constant", w_min=-1.0, w_max=1.0),
        "linear": DeviceConfig(model="linear", gamma_up=0.1, gamma_down=0.1, w_min=-1.0, w_max=1.0),
        "softbounds": DeviceConfig(model="softbounds", w_min=-1.0, w_max=1.0),
        "exp": DeviceConfig(model="exp", w_min=-1.0, w_max=1.0),
        "pow": DeviceConfig(model="pow", pow_gamma=1.5, w_min=-1.0, w_max=1.0),
        "piecewise": DeviceConfig(model="piecewise", w_min=-1.0, w_max=1.0, piecewise_up=(1.5, 1.2, 1.0, 0.6, 0.2),
                                  piecewise_down=(0.3, 0.8, 1.0, 1.1, 1.3)),
    }
    return {f"family:{m}": base.replace(device=d) for m, d in family_devices.items() if m not in covered}


def backend_factory(name: str) -> TileFactory:
    """A tile factory for a named backend ("numba" or "aihwkit"), through ``backends.make_tile``."""
    from analogdecor.backends import make_tile

    if name not in ("numba", "aihwkit"):
        raise ConfigError(f"backend = {name!r}: the harness compares analogue backends 'numba' and 'aihwkit'")

    def factory(out_size: int, in_size: int, cfg: TileConfig, seed: int) -> Any:
        return make_tile(name, out_size, in_size, cfg, seed=seed)

    factory.__name__ = f"{name}_tile"
    return factory


@dataclass
class ValidationResult:
    """Rows of the table, the critical value, and the raw material behind them."""

    rows: list[Row]
    z_critical: float
    alpha: float
    names: tuple[str, str]
    comparisons: list[Comparison] = field(default_factory=list)
    training_curves: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rows)


def run_validation(
    presets: Sequence[str] | Mapping[str, TileConfig],
    *,
    names: tuple[str, str] = ("numba", "aihwkit"),
    factories: tuple[TileFactory, TileFactory] | None = None,
    checks: Sequence[str] = (*CHECKS, *RUN_CHECKS),
    sizes: Sizes | None = None,
    training: TrainingSpec | None = None,
    conv_training: TrainingSpec | None = None,
    alpha: float = 1e-3,
    seed: int = 0,
    extra: Mapping[str, TileConfig] | None = None,
    inference: InferenceSpec | None = None,
    random: int = 2,
) -> ValidationResult:
    """Compare two tile backends statistically on each preset.

    Parameters
    ----------
    presets : names of presets in ``device_models/`` or a mapping name -> TileConfig
    names : labels of the two backends (and, without ``factories``, the backends to build)
    factories : tile factories ``f(out_size, in_size, config, seed)``; default: the named backends
    checks : any of "forward", "update", "pulses", "response", "conv-read", "training", "training-conv",
        "inference", "random" ("conv-read" compares analogdecor's convolution on tiles of ``factories[0]`` with
        aihwkit's AnalogConv2d, :mod:`~analogdecor.validation.conv_check`; "training" and "training-conv" need named backends and preset names the training code can
        load; "inference" compares analogdecor's inference noise models with aihwkit's, once per run,
        whatever the presets)
    sizes, training : problem sizes of the tile checks and of the training run
    conv_training : the "training-conv" run (default
        :data:`~analogdecor.validation.training_check.CONV_TRAINING`: a small conv net on the digits)
    alpha : family-wise error rate of the whole run (Bonferroni over all elementary tests)
    seed : seed of the inputs and of the tiles' device draws
    extra : more configurations (name -> TileConfig) that get the tile checks but not the
        training check, e.g. :func:`family_configs` for device families without a preset
    inference : sizes of the "inference" check (:class:`~analogdecor.validation.inference_check.InferenceSpec`)
    random : random device configurations per family in the "random" check (seeded by ``seed``)

    Returns
    -------
    ValidationResult
        ``passed`` is False when any row fails.
    """
    sizes = sizes or Sizes()
    unknown = [c for c in checks if c not in (*CHECKS, *RUN_CHECKS)]
    if unknown:
        raise ConfigError(f"checks {unknown}: unknown; choose from {', '.join((*CHECKS, *RUN_CHECKS))}")
    if isinstance(presets, Mapping):
        configs = dict(presets)
    else:
        from analogdecor.devices.registry import load_preset

        configs = {name: load_preset(name) for name in presets}
    trainable = set() if isinstance(presets, Mapping) else set(configs)
    for name, cfg in (extra or {}).items():
        if name in configs:
            raise ConfigError(f"extra configuration {name!r} has the name of a preset")
        configs[name] = cfg
    if factories is None:
        factories = (backend_factory(names[0]), backend_factory(names[1]))
    comps: list[Comparison] = []
    curves: dict[str, Any] = {}
    for preset, cfg in configs.items():
        for name in checks:
            if name in RUN_CHECKS:
                continue
            comps += CHECKS[name](cfg, preset, factories[0], factories[1], sizes, seed)
        runs = {"training": training or TrainingSpec(), "training-conv": conv_training or CONV_TRAINING}
        for check, spec in runs.items():
            if check not in checks or not (preset in trainable or isinstance(presets, Mapping)):
                continue
            if isinstance(presets, Mapping):
                raise ConfigError(
                    f"check {check!r} needs preset names (the training code loads presets by name)"
                )
            tc, cv = training_checks(preset, names, spec)
            comps += tc
            curves[preset if check == "training" else f"{preset} ({check})"] = cv
    if "inference" in checks:
        comps += inference_comparisons(inference or InferenceSpec(), seed=seed)
    if "random" in checks and random > 0:
        for name, cfg in random_configs(random, seed).items():
            comps += random_checks(cfg, name, factories[0], factories[1], sizes, seed)
    rows, zc = make_rows(comps, alpha)
    return ValidationResult(rows, zc, alpha, names, comps, curves)
