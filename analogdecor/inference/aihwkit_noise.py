"""IBM aihwkit's inference noise models behind analogdecor's :class:`InferenceNoiseModel` hooks.

``analogdecor evaluate RUN_DIR --noise-backend aihwkit`` (``EvaluateConfig.noise_backend``)
runs the same accuracy-vs-time evaluation with aihwkit's own implementation of the
physics instead of :mod:`.models`, so that the two can be compared on one trained
network; :mod:`analogdecor.validation.inference_check` compares them statistically.

- :class:`AihwkitPCMNoise` wraps ``aihwkit.inference.noise.pcm.PCMLikeNoiseModel``
  (Nandakumar et al., ICECS 2019), the model :class:`~.models.PCMLikeNoise` reimplements;
- :class:`AihwkitReRAMNoise` wraps ``aihwkit.inference.noise.reram.ReRamWan2022NoiseModel``
  (Wan et al., Nature 608, 504, 2022), whose 1-second fit :class:`~.models.ReRAMNoise` uses.

Units and conventions are analogdecor's: conductances in uS, one array per device set
(G+ and G- are programmed separately, as aihwkit's ``SinglePairConductanceConverter``
does), and ``t`` counted from t0 after programming, which is aihwkit's ``t_inference``.
Only the conductance-level functions of aihwkit are called (programming noise, drift
coefficients, drift + accumulated noise); the weight-to-conductance mapping stays the
tile's own.

Randomness: aihwkit draws from torch's global generator (``randn_like``). Each hook
draws a seed from the NumPy generator it is given and runs aihwkit under
``torch.random.fork_rng`` seeded with it, so results are reproducible from the NumPy
seed and torch's global random state is left untouched.

Notes
-----
Differences of semantics between aihwkit 1.2.0 and :mod:`.models` (all checked in the
installed source, aihwkit/inference/noise/pcm.py and reram.py):

- PCM: the equations agree for the default g_max = 25 uS. aihwkit multiplies the
  programming-noise polynomial by ``g_max / 25`` (the fit's reference); analogdecor's
  ``prog_coeffs`` are in uS and not rescaled, so the two differ for g_max != 25.
  aihwkit clips g^0.65 below at 1e-3 in the read-noise amplitude Q, analogdecor clips g
  at 1e-7; both then cap Q at 0.2, which binds first, so Q agrees everywhere.
- PCM drift and 1/f read noise are one aihwkit function
  (``apply_drift_noise_to_conductance``); the accumulated read noise is drawn once per
  call (per evaluation time), as :meth:`InferenceNoiseModel.at_time` does. aihwkit's
  per-forward weight read noise (``forward.w_noise``) is a periphery setting, not part
  of the noise model, and is not used here.
- ReRAM: aihwkit's Wan model is not a trajectory. At t = 1 s, 1 d and 2 d (the only
  times it accepts) it redraws every conductance around its *target* with that time's
  polynomial; the programmed state is ignored. analogdecor's ``reram`` has the 1-second
  programming error only and no time dependence. The adapter keeps aihwkit's behaviour
  (t = 0 reads the programmed state; other times raise ConfigError), so only the
  programming rows of the validation compare the two ReRAM models.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from analogdecor.errors import ConfigError
from analogdecor.inference.models import (
    PCM_COEFFICIENTS,
    RERAM_COEFFICIENTS,
    InferenceNoiseModel,
    ProgrammedConductances,
    _check_time,
)

__all__ = [
    "AIHWKIT_NOISE_MODELS",
    "AihwkitNoise",
    "AihwkitPCMNoise",
    "AihwkitReRAMNoise",
    "aihwkit_noise_model",
]

_SEED_HIGH = 2**63 - 1


class AihwkitNoise(InferenceNoiseModel):
    """Base of the adapters: NumPy <-> torch conversion and seeded calls into aihwkit.

    Parameters
    ----------
    model : aihwkit.inference.noise.base.BaseNoiseModel
        The aihwkit noise model (conductance-level methods are used).
    name : str
        Name in tables and run records.
    g_max, t0 : float
        As in :class:`InferenceNoiseModel` (uS, s); they must be the aihwkit model's.
    """

    def __init__(self, model: Any, name: str, g_max: float, t0: float) -> None:
        super().__init__(g_max=g_max, t0=t0)
        self._model = model
        self.name = name

    @property
    def aihwkit_model(self) -> Any:
        """The wrapped aihwkit noise model."""
        return self._model

    def _call(self, fn: Any, rng: np.random.Generator | None, *arrays: np.ndarray, **kw: Any) -> np.ndarray:
        """Run ``fn`` on float64 tensors of ``arrays`` under a torch generator seeded from ``rng``."""
        import torch

        seed = 0 if rng is None else int(rng.integers(_SEED_HIGH))
        tensors = [torch.from_numpy(np.array(a, dtype=np.float64, copy=True)) for a in arrays]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            out = fn(*tensors, **kw)
        return out.detach().cpu().numpy().astype(np.float64, copy=False)

    def program_noise(self, g_target: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """aihwkit's ``apply_programming_noise_to_conductance`` (clipped at 0 uS by aihwkit)."""
        return self._call(self._model.apply_programming_noise_to_conductance, rng, g_target)

    def describe(self) -> dict:
        from analogdecor.backends.aihwkit._guard import AIHWKIT_VERSION

        return {
            "model": self.name,
            "noise_backend": "aihwkit",
            "aihwkit_class": type(self._model).__name__,
            "aihwkit_version_expected": AIHWKIT_VERSION,
            "g_max": self.g_max,
            "t0": self.t0,
        }


class AihwkitPCMNoise(AihwkitNoise):
    """aihwkit's ``PCMLikeNoiseModel`` (Nandakumar et al. 2019) with analogdecor's hooks.

    Parameters
    ----------
    g_max : float
        Conductance (uS) that the state dependence refers to (default 25, the fit's own;
        see the module notes for g_max != 25).
    t0, t_read : float
        Drift reference time and 1/f read duration (s), aihwkit's ``t_0`` and ``t_read``.
    prog_noise_scale, read_noise_scale, drift_scale : float
        aihwkit's multipliers of the three noise sources.

    Notes
    -----
    :meth:`at_time` is aihwkit's ``apply_drift_noise_to_conductance(g_prog, nu, t)``:
    G(t) = G_prog ((t + t0) / t0)^(-nu) + |G(t)| Q(G_prog) sqrt(ln((t + t0 + t_read) / (2 t_read))) xi,
    clipped at 0. The separate hooks :meth:`drift` and :meth:`read_noise` call the same
    function (with the read noise off, and with the exponent that reproduces the given
    drifted conductance, respectively), so ``read_noise(drift(...))`` has the same
    distribution as :meth:`at_time`.
    """

    def __init__(
        self,
        g_max: float = PCM_COEFFICIENTS.g_max,
        t0: float = PCM_COEFFICIENTS.t0,
        t_read: float = PCM_COEFFICIENTS.t_read,
        prog_noise_scale: float = 1.0,
        read_noise_scale: float = 1.0,
        drift_scale: float = 1.0,
    ) -> None:
        from analogdecor.backends.aihwkit._guard import require_aihwkit

        require_aihwkit()
        from aihwkit.inference.noise.pcm import PCMLikeNoiseModel

        for name, value in (
            ("prog_noise_scale", prog_noise_scale),
            ("read_noise_scale", read_noise_scale),
            ("drift_scale", drift_scale),
        ):
            if not np.isfinite(value) or value < 0:
                raise ConfigError(f"AihwkitPCMNoise.{name} = {value!r}: must be finite and >= 0")
        if not np.isfinite(t_read) or t_read <= 0:
            raise ConfigError(f"AihwkitPCMNoise.t_read = {t_read!r}: must be > 0")
        if not np.isfinite(g_max) or g_max <= 0:
            raise ConfigError(f"AihwkitPCMNoise.g_max = {g_max!r}: must be > 0")
        model = PCMLikeNoiseModel(
            g_max=float(g_max),
            t_read=float(t_read),
            t_0=float(t0),
            prog_noise_scale=float(prog_noise_scale),
            read_noise_scale=float(read_noise_scale),
            drift_scale=float(drift_scale),
        )
        super().__init__(model, "aihwkit:pcm", g_max, t0)
        self._no_read = copy.deepcopy(model)
        self._no_read.read_noise_scale = 0.0

    def drift_exponents(self, g_target: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """aihwkit's ``generate_drift_coefficients`` (drawn from the target state)."""
        return self._call(self._model.generate_drift_coefficients, rng, g_target)

    def drift(self, g_prog: np.ndarray, nu: np.ndarray, t: float) -> np.ndarray:
        """aihwkit's drift with its read noise switched off (deterministic)."""
        return self._call(
            self._no_read.apply_drift_noise_to_conductance, None, g_prog, nu, t_inference=float(t)
        )

    def read_noise(
        self, g_drift: np.ndarray, g_prog: np.ndarray, t: float, rng: np.random.Generator
    ) -> np.ndarray:
        """aihwkit's accumulated 1/f noise on ``g_drift`` (amplitude Q from ``g_prog``).

        aihwkit computes drift and read noise in one function; it is called with the drift
        exponent nu = -ln(g_drift / g_prog) / ln((t + t0) / t0), which reproduces ``g_drift``.
        """
        g_prog = np.asarray(g_prog, dtype=np.float64)
        g_drift = np.asarray(g_drift, dtype=np.float64)
        if t > 0:
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(g_prog > 0, g_drift / np.where(g_prog > 0, g_prog, 1.0), 1.0)
                nu = np.where(ratio > 0, -np.log(ratio) / np.log((t + self.t0) / self.t0), 0.0)
        else:
            nu = np.zeros_like(g_prog)
        out = self._call(self._model.apply_drift_noise_to_conductance, rng, g_prog, nu, t_inference=float(t))
        # the noise is proportional to |g_drift|: none where either conductance is 0
        return np.where((g_prog > 0) & (g_drift > 0), out, g_drift)

    def at_time(self, state: ProgrammedConductances, t: float, rng: np.random.Generator) -> np.ndarray:
        """aihwkit's ``apply_drift_noise_to_conductance(g_prog, nu, t)``: drift and read noise in one call."""
        t = _check_time(t)
        return self._call(
            self._model.apply_drift_noise_to_conductance, rng, state.g_prog, state.nu, t_inference=t
        )

    def describe(self) -> dict:
        m = self._model
        return {
            **super().describe(),
            "t_read": m.t_read,
            "prog_coeff": list(m.prog_coeff),
            "prog_noise_scale": m.prog_noise_scale,
            "read_noise_scale": m.read_noise_scale,
            "drift_scale": m.drift_scale,
        }


class AihwkitReRAMNoise(AihwkitNoise):
    """aihwkit's ``ReRamWan2022NoiseModel`` (Wan et al., Nature 2022) with analogdecor's hooks.

    Parameters
    ----------
    g_max : float
        Conductance (uS) of the fits (default 40, Wan et al.'s). aihwkit's own default
        converter has g_max = 25 and then evaluates the 40 uS polynomial at G / 25 without
        rescaling, so the adapter always passes g_max explicitly.
    noise_scale : float
        aihwkit's multiplier of the noise.

    Notes
    -----
    Programming noise is the 1-second fit. aihwkit stores the *target* conductance as the
    drift parameter, so :attr:`ProgrammedConductances.nu` holds G_target here. At
    t = 1 s, 1 d or 2 d :meth:`at_time` redraws every device around its target with that
    time's fit (aihwkit's ``apply_drift_noise_to_conductance``); t = 0 reads the programmed
    state; other times raise :class:`~analogdecor.errors.ConfigError`. :meth:`drift` and
    :meth:`read_noise` leave conductances alone (the time dependence is a redraw, not a drift).
    """

    def __init__(self, g_max: float = RERAM_COEFFICIENTS.g_max, noise_scale: float = 1.0) -> None:
        from analogdecor.backends.aihwkit._guard import require_aihwkit

        require_aihwkit()
        from aihwkit.inference.noise.reram import ReRamWan2022NoiseModel

        if not np.isfinite(noise_scale) or noise_scale < 0:
            raise ConfigError(f"AihwkitReRAMNoise.noise_scale = {noise_scale!r}: must be finite and >= 0")
        if not np.isfinite(g_max) or g_max <= 0:
            raise ConfigError(f"AihwkitReRAMNoise.g_max = {g_max!r}: must be > 0")
        model = ReRamWan2022NoiseModel(g_max=float(g_max), noise_scale=float(noise_scale))
        super().__init__(model, "aihwkit:reram", g_max, RERAM_COEFFICIENTS.t0)

    @property
    def times(self) -> tuple[float, ...]:
        """The times (s) at which aihwkit's model is defined."""
        return tuple(sorted(float(k) for k in self._model.coeff_dic))

    def drift_exponents(self, g_target: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """aihwkit's ``generate_drift_coefficients``: the target conductances themselves."""
        return np.array(g_target, dtype=np.float64, copy=True)

    def at_time(self, state: ProgrammedConductances, t: float, rng: np.random.Generator) -> np.ndarray:
        """The programmed state at t = 0; aihwkit's redraw around the target at t in :attr:`times`."""
        t = _check_time(t)
        if t == 0:
            return np.array(state.g_prog, dtype=np.float64, copy=True)
        key = next((k for k in self._model.coeff_dic if float(k) == t), None)
        if key is None:
            from analogdecor.inference.evaluate import format_time

            known = ", ".join(format_time(k) for k in self.times)
            raise ConfigError(
                f"t = {t:g} s: aihwkit's ReRamWan2022NoiseModel is only defined at t = {known} "
                f"(and 0, the programmed state); choose --times among these"
            )
        return self._call(
            self._model.apply_drift_noise_to_conductance, rng, state.g_prog, state.nu, t_inference=key
        )

    def describe(self) -> dict:
        m = self._model
        return {
            **super().describe(),
            "noise_scale": m.noise_scale,
            "coeff_dic": {str(k): list(v) for k, v in m.coeff_dic.items()},
        }


AIHWKIT_NOISE_MODELS = {"pcm": AihwkitPCMNoise, "reram": AihwkitReRAMNoise}
"""Names accepted by ``--noise-backend aihwkit`` (the models of :mod:`.models` with an aihwkit counterpart)."""


def aihwkit_noise_model(name: str) -> AihwkitNoise:
    """The aihwkit counterpart of analogdecor's noise model ``name`` ("pcm" or "reram").

    Raises
    ------
    ConfigError
        For models without an aihwkit counterpart (coefficient files, ``none``).
    BackendUnavailableError
        When aihwkit is not installed.
    """
    key = str(name)
    if key not in AIHWKIT_NOISE_MODELS:
        raise ConfigError(
            f"noise model {key!r} with noise_backend 'aihwkit': aihwkit has counterparts of "
            f"{', '.join(sorted(AIHWKIT_NOISE_MODELS))} only (use noise_backend 'analogdecor' for others)"
        )
    return AIHWKIT_NOISE_MODELS[key]()
