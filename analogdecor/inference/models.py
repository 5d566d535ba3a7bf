"""Inference noise models: what happens to programmed conductances over time.

A model turns *target* conductances (microsiemens, what the mapping of the
trained weights asks for) into the conductances a read at time ``t`` after
programming sees. The template (:meth:`InferenceNoiseModel.program` then
:meth:`InferenceNoiseModel.at_time`) calls three hooks in order, each of
which a new model can override:

1. :meth:`~InferenceNoiseModel.program_noise`: G_prog = G_target + sigma_prog(G) xi;
2. :meth:`~InferenceNoiseModel.drift_exponents` and :meth:`~InferenceNoiseModel.drift`:
   G_drift(t) = G_prog ((t + t0) / t0)^(-nu) with a per-device exponent nu drawn
   once at programming;
3. :meth:`~InferenceNoiseModel.read_noise`: G(t) = G_drift + |G_drift| Q sigma_1/f(t) xi,
   redrawn at every read.

Every conductance is a separate device (G+ and G- of a differential pair are
noised independently); results are clipped at 0 uS.

:class:`GenericNoise` implements the three hooks with a parametric family whose
coefficients (:class:`NoiseCoefficients`) come from a TOML file in
``device_models/inference/``, so a measured device needs no code.
:class:`PCMLikeNoise` (Nandakumar et al. 2019, as in aihwkit's ``PCMLikeNoiseModel``)
and :class:`ReRAMNoise` (Wan et al., Nature 2022) are the same family with the
published coefficients as defaults; :class:`NoNoise` leaves conductances alone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analogdecor.config import check_finite, check_nonneg, check_positive, from_dict, load_toml, to_dict
from analogdecor.errors import ConfigError

__all__ = [
    "PCM_COEFFICIENTS",
    "RERAM_COEFFICIENTS",
    "GenericNoise",
    "InferenceNoiseModel",
    "NoNoise",
    "NoiseCoefficients",
    "PCMLikeNoise",
    "ProgrammedConductances",
    "ReRAMNoise",
    "get_noise_model",
    "model_files",
]

_G_CLIP = 1e-7
"""Smallest normalised conductance used inside logarithms and negative powers (as aihwkit's _ZERO_CLIP)."""

MODEL_DIR_CANDIDATES = (
    Path(__file__).resolve().parents[2] / "device_models" / "inference",  # source checkout
    Path(__file__).resolve().parents[1] / "device_models" / "inference",  # installed wheel (force-include)
)


def _pair(obj, name: str) -> None:
    value = getattr(obj, name)
    if len(value) != 2:
        raise ConfigError(f"{type(obj).__name__}.{name} = {value!r}: needs exactly 2 numbers")
    for v in value:
        if not np.isfinite(v):
            raise ConfigError(f"{type(obj).__name__}.{name} = {value!r}: must be finite")


def _clip_pair(obj, name: str) -> None:
    _pair(obj, name)
    lo, hi = getattr(obj, name)
    if lo > hi:
        raise ConfigError(f"{type(obj).__name__}.{name} = {getattr(obj, name)!r}: lower clip above upper")


@dataclass(frozen=True)
class NoiseCoefficients:
    """Coefficients of the parametric inference-noise family (all conductances in uS).

    With g = G / g_max (clipped below at 1e-7 inside logarithms and powers):

    - programming noise  sigma_prog = prog_scale * max(sum_k prog_coeffs[k] g^k, 0)   [uS]
    - drift exponent     nu ~ |N(mu, s)|, mu = clip(a_mu ln g + b_mu, *drift_mean_clip),
                          s = clip(a_s ln g + b_s, *drift_std_clip), times drift_scale
    - drift              G(t) = G_prog ((t + t0) / t0)^(-nu)
    - read noise         Q = min(read_q_coeff / g^read_q_exponent, read_q_max),
                          sigma = read_scale |G(t)| Q sqrt(ln((t + t0 + t_read) / (2 t_read)))
    """

    name: str = "generic"
    """Short name of the device (used in tables and file names)."""
    source: str = ""
    """Where the coefficients come from (paper, figure, measurement)."""
    g_max: float = 25.0
    """Conductance that the coefficients' normalised g = G / g_max refers to (uS)."""
    prog_coeffs: tuple[float, ...] = (0.0,)
    """Polynomial coefficients of sigma_prog in g, lowest order first (uS)."""
    prog_scale: float = 1.0
    """Multiplier of the programming noise (0 switches it off)."""
    drift_mean_coeffs: tuple[float, float] = (0.0, 0.0)
    """(a_mu, b_mu): mean drift exponent a_mu ln g + b_mu before clipping."""
    drift_mean_clip: tuple[float, float] = (0.0, 0.0)
    """(lo, hi) clip of the mean drift exponent."""
    drift_std_coeffs: tuple[float, float] = (0.0, 0.0)
    """(a_s, b_s): device-to-device spread of the drift exponent a_s ln g + b_s before clipping."""
    drift_std_clip: tuple[float, float] = (0.0, 0.0)
    """(lo, hi) clip of the drift-exponent spread."""
    drift_scale: float = 1.0
    """Multiplier of the drift exponent (0 switches drift off)."""
    read_q_coeff: float = 0.0
    """Q = min(read_q_coeff / g^read_q_exponent, read_q_max): 1/f read-noise amplitude."""
    read_q_exponent: float = 0.0
    """Exponent of g in Q."""
    read_q_max: float = 0.0
    """Upper clip of Q."""
    read_scale: float = 1.0
    """Multiplier of the read noise (0 switches it off)."""
    t0: float = 20.0
    """Time after programming at which G_prog is defined and drift starts (s)."""
    t_read: float = 250e-9
    """Duration of one read (s), the lower cut-off of the 1/f noise integral."""

    def __post_init__(self) -> None:
        check_positive(self, "g_max")
        if len(self.prog_coeffs) < 1:
            raise ConfigError("NoiseCoefficients.prog_coeffs: needs at least one coefficient")
        for c in self.prog_coeffs:
            if not np.isfinite(c):
                raise ConfigError(f"NoiseCoefficients.prog_coeffs = {self.prog_coeffs!r}: must be finite")
        for name in ("drift_mean_coeffs", "drift_std_coeffs"):
            _pair(self, name)
        for name in ("drift_mean_clip", "drift_std_clip"):
            _clip_pair(self, name)
        if self.drift_mean_clip[0] < 0 or self.drift_std_clip[0] < 0:
            raise ConfigError(
                f"NoiseCoefficients.drift_mean_clip / drift_std_clip = {self.drift_mean_clip!r} / "
                f"{self.drift_std_clip!r}: drift exponents and their spread must be >= 0"
            )
        for name in (
            "prog_scale",
            "drift_scale",
            "read_q_coeff",
            "read_q_exponent",
            "read_q_max",
            "read_scale",
        ):
            check_nonneg(self, name)
        check_finite(self, "read_q_exponent")
        check_positive(self, "t0")
        check_positive(self, "t_read")

    def replace(self, **changes) -> NoiseCoefficients:
        """dataclasses.replace, for convenience (e.g. ``read_scale=0``)."""
        return dataclasses.replace(self, **changes)


PCM_COEFFICIENTS = NoiseCoefficients(
    name="pcm",
    source=(
        "Nandakumar et al., 'Phase-change memory models for deep learning training and inference', "
        "ICECS 2019; coefficients as in aihwkit's PCMLikeNoiseModel (Joshi et al., Nat. Commun. 2020)"
    ),
    g_max=25.0,
    prog_coeffs=(0.26348, 1.9650, -1.1731),
    drift_mean_coeffs=(-0.0155, 0.0244),
    drift_mean_clip=(0.049, 0.1),
    drift_std_coeffs=(-0.0125, -0.0059),
    drift_std_clip=(0.008, 0.045),
    read_q_coeff=0.0088,
    read_q_exponent=0.65,
    read_q_max=0.2,
)
"""PCM (Nandakumar et al. 2019): state-dependent programming noise, drift and 1/f read noise."""

RERAM_COEFFICIENTS = NoiseCoefficients(
    name="reram",
    source=(
        "Wan et al., 'A compute-in-memory chip based on resistive random-access memory', Nature 608, "
        "504 (2022): programming-error fit one second after programming (4th-order polynomial, g_max 40 uS)"
    ),
    g_max=40.0,
    prog_coeffs=(0.348, 16.030, -43.853, 45.393, -16.815),
)
"""ReRAM (Wan et al. 2022): state-dependent programming noise only; no drift or read-noise model published."""


@dataclass(frozen=True)
class ProgrammedConductances:
    """State of programmed devices: conductances right after programming and their drift exponents."""

    g_prog: np.ndarray
    """Conductances at t = 0 (i.e. t0 after the programming pulse), uS."""
    nu: np.ndarray
    """Per-device drift exponent, drawn once at programming (same shape as g_prog)."""


class InferenceNoiseModel:
    """Base class: programming noise, then drift, then read noise, each a hook to override.

    The base hooks do nothing (ideal devices); subclasses override any of
    :meth:`program_noise`, :meth:`drift_exponents`, :meth:`drift`, :meth:`read_noise`.
    The template methods :meth:`program`, :meth:`at_time` and :meth:`apply` call
    them in order and clip the results at 0 uS.

    Parameters
    ----------
    g_max : float
        Conductance (uS) the model's state dependence refers to.
    t0 : float
        Reference time after programming (s): drift and read noise are defined
        relative to it (t = 0 in :meth:`at_time` means t0 after programming).
    """

    name = "base"

    def __init__(self, g_max: float = 25.0, t0: float = 20.0) -> None:
        if not np.isfinite(g_max) or g_max <= 0:
            raise ConfigError(f"{type(self).__name__}.g_max = {g_max!r}: must be > 0")
        if not np.isfinite(t0) or t0 <= 0:
            raise ConfigError(f"{type(self).__name__}.t0 = {t0!r}: must be > 0")
        self.g_max = float(g_max)
        self.t0 = float(t0)

    # ---------------------------------------------------------------- hooks
    def program_noise(self, g_target: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Conductances right after programming ``g_target`` (uS). Base: exact."""
        return np.array(g_target, dtype=np.float64, copy=True)

    def drift_exponents(self, g_target: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Per-device drift exponents nu, drawn once at programming. Base: no drift (0)."""
        return np.zeros(np.shape(g_target))

    def drift(self, g_prog: np.ndarray, nu: np.ndarray, t: float) -> np.ndarray:
        """Conductances at time ``t`` (s, measured from t0): G_prog ((t + t0) / t0)^(-nu)."""
        if t <= 0:
            return np.array(g_prog, dtype=np.float64, copy=True)
        return g_prog * ((t + self.t0) / self.t0) ** (-nu)

    def read_noise(
        self, g_drift: np.ndarray, g_prog: np.ndarray, t: float, rng: np.random.Generator
    ) -> np.ndarray:
        """One read of drifted conductances at time ``t``. Base: noiseless."""
        return np.array(g_drift, dtype=np.float64, copy=True)

    # ---------------------------------------------------------------- template
    def program(self, g_target: np.ndarray, rng: np.random.Generator) -> ProgrammedConductances:
        """Program target conductances: programming noise, then draw the drift exponents."""
        g_target = _as_conductances(g_target, "g_target")
        g_prog = np.maximum(self.program_noise(g_target, rng), 0.0)
        nu = self.drift_exponents(g_target, rng)
        return ProgrammedConductances(g_prog=g_prog, nu=nu)

    def at_time(self, state: ProgrammedConductances, t: float, rng: np.random.Generator) -> np.ndarray:
        """Read programmed devices ``t`` seconds after t0: drift, then read noise, clipped at 0."""
        t = _check_time(t)
        g_drift = self.drift(state.g_prog, state.nu, t)
        return np.maximum(self.read_noise(g_drift, state.g_prog, t, rng), 0.0)

    def apply(self, g_target: np.ndarray, t: float, rng: np.random.Generator) -> np.ndarray:
        """Program ``g_target`` and read it at time ``t`` (shorthand for program + at_time)."""
        return self.at_time(self.program(g_target, rng), t, rng)

    def describe(self) -> dict:
        """Plain-dict description for run records."""
        return {"model": self.name, "g_max": self.g_max, "t0": self.t0}


class NoNoise(InferenceNoiseModel):
    """Ideal devices: programmed exactly, no drift, noiseless reads."""

    name = "none"


class GenericNoise(InferenceNoiseModel):
    """The parametric family of :class:`NoiseCoefficients` (see its docstring for the equations).

    Parameters
    ----------
    coeffs : NoiseCoefficients
        The coefficients; :meth:`from_file` reads them from a TOML file whose
        ``[model]`` table holds the fields of :class:`NoiseCoefficients`.

    Notes
    -----
    The equations are those of aihwkit's ``PCMLikeNoiseModel`` (Nandakumar et al.
    2019; Joshi et al., Nat. Commun. 11, 2473, 2020): programming noise is drawn
    around the target, the drift exponent is drawn from the *target* state, and
    the 1/f read-noise amplitude Q refers to the *programmed* state while its
    magnitude scales with the drifted conductance.
    """

    name = "generic"

    def __init__(self, coeffs: NoiseCoefficients) -> None:
        if not isinstance(coeffs, NoiseCoefficients):
            raise ConfigError(
                f"GenericNoise(coeffs=...): expected NoiseCoefficients, got {type(coeffs).__name__}"
            )
        super().__init__(g_max=coeffs.g_max, t0=coeffs.t0)
        self.coeffs = coeffs
        self.name = coeffs.name

    @classmethod
    def from_file(cls, path: str | Path) -> GenericNoise:
        """Read coefficients from a TOML file (``[model]`` table = :class:`NoiseCoefficients` fields)."""
        path = Path(path)
        data = load_toml(path)
        if "model" not in data:
            raise ConfigError(f"{path}: needs a [model] table with the NoiseCoefficients fields")
        try:
            coeffs = from_dict(NoiseCoefficients, data["model"], path="model")
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        return GenericNoise(coeffs)

    # ---- state-dependent coefficients (public: the tests check them against the formulas)
    def _g_rel(self, g: np.ndarray) -> np.ndarray:
        return np.maximum(np.abs(g) / self.g_max, _G_CLIP)

    def prog_sigma(self, g_target: np.ndarray) -> np.ndarray:
        """Standard deviation of the programming error (uS) for each target conductance."""
        g = np.abs(np.asarray(g_target, dtype=np.float64)) / self.g_max
        sigma = np.zeros_like(g)
        power = np.ones_like(g)
        for c in self.coeffs.prog_coeffs:
            sigma += c * power
            power = power * g
        return self.coeffs.prog_scale * np.maximum(sigma, 0.0)

    def drift_mean_std(self, g_target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and spread of the drift exponent for each target conductance."""
        c = self.coeffs
        log_g = np.log(self._g_rel(np.asarray(g_target, dtype=np.float64)))
        mu = np.clip(c.drift_mean_coeffs[0] * log_g + c.drift_mean_coeffs[1], *c.drift_mean_clip)
        sd = np.clip(c.drift_std_coeffs[0] * log_g + c.drift_std_coeffs[1], *c.drift_std_clip)
        return c.drift_scale * mu, c.drift_scale * sd

    def read_q(self, g_prog: np.ndarray) -> np.ndarray:
        """1/f noise amplitude Q for each programmed conductance."""
        c = self.coeffs
        if c.read_q_coeff == 0.0:
            return np.zeros(np.shape(g_prog))
        return np.minimum(c.read_q_coeff / self._g_rel(np.asarray(g_prog)) ** c.read_q_exponent, c.read_q_max)

    def read_sigma_factor(self, t: float) -> float:
        """sqrt(ln((t + t0 + t_read) / (2 t_read))): growth of the accumulated 1/f noise with time."""
        c = self.coeffs
        return float(np.sqrt(np.log((t + c.t0 + c.t_read) / (2.0 * c.t_read))))

    # ---- hooks
    def program_noise(self, g_target, rng):
        g_target = np.asarray(g_target, dtype=np.float64)
        return g_target + self.prog_sigma(g_target) * rng.standard_normal(g_target.shape)

    def drift_exponents(self, g_target, rng):
        mu, sd = self.drift_mean_std(g_target)
        if not np.any(mu) and not np.any(sd):
            return np.zeros(np.shape(g_target))
        return np.abs(mu + sd * rng.standard_normal(np.shape(g_target)))

    def read_noise(self, g_drift, g_prog, t, rng):
        scale = self.coeffs.read_scale
        if scale == 0.0 or self.coeffs.read_q_coeff == 0.0:
            return np.array(g_drift, dtype=np.float64, copy=True)
        sigma = np.abs(g_drift) * self.read_q(g_prog) * (scale * self.read_sigma_factor(t))
        return g_drift + sigma * rng.standard_normal(np.shape(g_drift))

    def describe(self) -> dict:
        return {"model": self.name, **to_dict(self.coeffs)}


class PCMLikeNoise(GenericNoise):
    """PCM inference noise of Nandakumar et al. (2019), as in aihwkit's ``PCMLikeNoiseModel``.

    Parameters
    ----------
    **changes
        Fields of :class:`NoiseCoefficients` to change from :data:`PCM_COEFFICIENTS`
        (e.g. ``read_scale=0`` or ``drift_scale=0`` to switch a source off).
    """

    def __init__(self, **changes) -> None:
        super().__init__(PCM_COEFFICIENTS.replace(**changes))


class ReRAMNoise(GenericNoise):
    """ReRAM programming noise of Wan et al. (Nature 2022), g_max = 40 uS.

    Only the state-dependent programming error is modelled (the published fit,
    one second after programming); drift and read noise are zero unless set
    through ``**changes`` (fields of :class:`NoiseCoefficients`).
    """

    def __init__(self, **changes) -> None:
        super().__init__(RERAM_COEFFICIENTS.replace(**changes))


# ------------------------------------------------------------------------- registry
def model_files() -> dict[str, Path]:
    """Coefficient files shipped in ``device_models/inference/`` (name -> path)."""
    for folder in MODEL_DIR_CANDIDATES:
        if folder.is_dir():
            return {p.stem: p for p in sorted(folder.glob("*.toml"))}
    return {}


_BUILTIN = {"none": NoNoise, "pcm": PCMLikeNoise, "reram": ReRAMNoise}


def get_noise_model(spec: str | Path | InferenceNoiseModel) -> InferenceNoiseModel:
    """Resolve a model name or coefficient file.

    ``none``, ``pcm`` and ``reram`` are the built-in classes; any other name is a
    file ``device_models/inference/<name>.toml``; a path to a ``.toml`` file is
    read with :meth:`GenericNoise.from_file`.
    """
    if isinstance(spec, InferenceNoiseModel):
        return spec
    text = str(spec)
    if text in _BUILTIN:
        return _BUILTIN[text]()
    path = Path(text)
    if path.suffix == ".toml" or path.is_file():
        if not path.is_file():
            raise ConfigError(f"inference noise model file {path} does not exist")
        return GenericNoise.from_file(path)
    files = model_files()
    if text in files:
        return GenericNoise.from_file(files[text])
    known = sorted(set(_BUILTIN) | set(files))
    raise ConfigError(
        f"unknown inference noise model {text!r}: use one of {', '.join(known)} or a path to a .toml file"
    )


# ------------------------------------------------------------------------- helpers
def _as_conductances(g: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(g, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: conductances must be finite")
    return arr


def _check_time(t: float) -> float:
    t = float(t)
    if not np.isfinite(t) or t < 0:
        raise ValueError(f"t = {t!r}: time after programming must be finite and >= 0 seconds")
    return t
