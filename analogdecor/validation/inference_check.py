"""Inference noise models: analogdecor's (:mod:`analogdecor.inference.models`) against aihwkit's own.

The same target conductances are programmed with both implementations of a model
(:class:`~analogdecor.inference.models.PCMLikeNoise` against aihwkit's
``PCMLikeNoiseModel``, :class:`~analogdecor.inference.models.ReRAMNoise` against
``ReRamWan2022NoiseModel``, the latter through :mod:`analogdecor.inference.aihwkit_noise`),
``devices`` independent devices per conductance band, and the distributions are
compared band by band:

- ``program``: mean and spread (standard deviation) of the programmed conductance;
- ``drift``: mean and spread of the per-device drift exponent nu;
- ``time``: mean and spread of the conductance read at ``time`` after programming
  (programming noise, drift and accumulated read noise together);
- ``read``: spread of the read noise alone: devices programmed exactly to the band's
  conductance with nu = 0 (no drift), read at ``time``.

The two samples are independent, so each statistic is a two-sample z with
se = sqrt(se_a^2 + se_b^2): for means se = sd / sqrt(n); for spreads the delta method on
the sample variance, se(s) = se(s^2) / (2 s), with se(s^2) from
:func:`~analogdecor.validation.stats.var_se`. The rows join the run's Bonferroni family
like every other check.

Which statistics are compared depends on what the two implementations claim in common
(:data:`COMPARED`): for PCM all four; for ReRAM only ``program``, because aihwkit's Wan
model redraws conductances around their targets at 1 d and 2 d while analogdecor's has
no time dependence (see :mod:`analogdecor.inference.aihwkit_noise`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from analogdecor.config import check_int
from analogdecor.errors import ConfigError
from analogdecor.inference.models import InferenceNoiseModel, ProgrammedConductances
from analogdecor.validation.checks import Comparison, _scalar
from analogdecor.validation.stats import mean_se, var_se

__all__ = ["COMPARED", "InferenceSpec", "inference_checks", "inference_comparisons"]

COMPARED: dict[str, tuple[str, ...]] = {
    "pcm": ("program", "drift", "time", "read"),
    "reram": ("program",),
}
"""Statistics compared per model (the physics both implementations share)."""


@dataclass(frozen=True)
class InferenceSpec:
    """Sizes and settings of the inference-noise comparison."""

    models: tuple[str, ...] = ("pcm", "reram")
    """Models compared (keys of :data:`COMPARED`)."""
    devices: int = 20000
    """Independent devices per conductance band and implementation."""
    bands: tuple[float, ...] = (0.0, 0.1, 0.4, 1.0)
    """Target conductances as fractions of the model's g_max."""
    time: float = 86400.0
    """Time after programming (s, from t0) of the ``time`` and ``read`` statistics (default 1 day)."""

    def __post_init__(self) -> None:
        check_int(self, "devices", minimum=2)
        unknown = [m for m in self.models if m not in COMPARED]
        if unknown or not self.models:
            raise ConfigError(f"InferenceSpec.models = {self.models!r}: choose among {', '.join(COMPARED)}")
        if not self.bands or any(not np.isfinite(b) or not 0 <= b <= 1 for b in self.bands):
            raise ConfigError(f"InferenceSpec.bands = {self.bands!r}: fractions of g_max in [0, 1]")
        if not np.isfinite(self.time) or self.time <= 0:
            raise ConfigError(f"InferenceSpec.time = {self.time!r}: must be > 0 seconds")


def _std_se(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standard deviation along the last axis and its standard error (delta method)."""
    v, se_v = var_se(samples, axis=-1)
    s = np.sqrt(v)
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.where(s > 0, se_v / (2 * np.where(s > 0, s, 1.0)), 0.0)
    return s, se


def _compare(
    out: list[Comparison],
    label: str,
    preset: str,
    a: np.ndarray,
    b: np.ndarray,
    g: np.ndarray,
    n: int,
    spread_only: bool = False,
) -> None:
    """Mean (unless ``spread_only``) and spread rows of samples a, b of shape (bands, devices)."""
    stats = (
        [("spread", _std_se)]
        if spread_only
        else [("mean", lambda x: mean_se(x, axis=-1)), ("spread", _std_se)]
    )
    for stat, fn in stats:
        ma, sa = fn(a)
        mb, sb = fn(b)
        for k, gk in enumerate(g):
            out.append(
                _scalar(
                    f"inference: {label} {stat} @ {gk:.4g} uS",
                    preset,
                    ma[k],
                    mb[k],
                    ma[k] - mb[k],
                    float(np.hypot(sa[k], sb[k])),
                    detail=f"{n} devices each; a: analogdecor, b: aihwkit",
                )
            )


def inference_checks(
    name: str,
    ours: InferenceNoiseModel,
    theirs: InferenceNoiseModel,
    spec: InferenceSpec | None = None,
    seed: int = 0,
    statistics: Sequence[str] | None = None,
) -> list[Comparison]:
    """Compare two implementations of one inference noise model band by band.

    Parameters
    ----------
    name : str
        Model name (the ``preset`` column is ``noise:<name>``).
    ours, theirs : InferenceNoiseModel
        The two implementations (``a`` and ``b`` columns); both get the bands of ``ours.g_max``.
    spec : InferenceSpec
    seed : int
        Seed of both implementations' noise (independent streams).
    statistics : sequence of str, optional
        Any of "program", "drift", "time", "read"; default ``COMPARED[name]``.

    Returns
    -------
    list of Comparison
        Per band: mean and spread rows (spread only for "read").
    """
    spec = spec or InferenceSpec()
    statistics = tuple(statistics if statistics is not None else COMPARED[name])
    bad = [s for s in statistics if s not in COMPARED["pcm"]]
    if bad:
        raise ConfigError(f"statistics {bad}: choose among {', '.join(COMPARED['pcm'])}")
    if not np.isclose(ours.g_max, theirs.g_max):
        raise ConfigError(
            f"noise model {name!r}: g_max {ours.g_max} (analogdecor) and {theirs.g_max} (aihwkit) differ"
        )
    preset = f"noise:{name}"
    n = spec.devices
    g = np.asarray(spec.bands, dtype=np.float64) * ours.g_max
    target = np.repeat(g[:, None], n, axis=1)
    rng_a, rng_b = (np.random.default_rng(c) for c in np.random.SeedSequence([seed, 303]).spawn(2))
    out: list[Comparison] = []
    sa, sb = ours.program(target, rng_a), theirs.program(target, rng_b)
    if "program" in statistics:
        _compare(out, "programmed G", preset, sa.g_prog, sb.g_prog, g, n)
    if "drift" in statistics:
        _compare(out, "drift exponent nu", preset, sa.nu, sb.nu, g, n)
    t = spec.time
    if "time" in statistics:
        _compare(out, f"G(t={t:g} s)", preset, ours.at_time(sa, t, rng_a), theirs.at_time(sb, t, rng_b), g, n)
    if "read" in statistics:
        exact = ProgrammedConductances(g_prog=target.copy(), nu=np.zeros_like(target))
        ra, rb = ours.at_time(exact, t, rng_a), theirs.at_time(exact, t, rng_b)
        _compare(out, f"read noise (nu = 0, t={t:g} s)", preset, ra, rb, g, n, spread_only=True)
    return out


def inference_comparisons(
    spec: InferenceSpec | None = None,
    seed: int = 0,
    ours: Mapping[str, InferenceNoiseModel] | None = None,
) -> list[Comparison]:
    """:func:`inference_checks` for every model of ``spec``: analogdecor's against aihwkit's.

    ``ours`` replaces analogdecor's implementation of a model by name (e.g. a deliberately
    wrong one in the tests). Needs aihwkit (BackendUnavailableError otherwise).
    """
    from analogdecor.inference.aihwkit_noise import aihwkit_noise_model
    from analogdecor.inference.models import get_noise_model

    spec = spec or InferenceSpec()
    ours = dict(ours or {})
    out: list[Comparison] = []
    for k, name in enumerate(spec.models):
        mine = ours.get(name) or get_noise_model(name)
        out += inference_checks(name, mine, aihwkit_noise_model(name), spec, seed=seed + 7919 * k)
    return out
