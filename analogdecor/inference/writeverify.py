"""Programming with write-verify: program, read, re-program what is out of tolerance.

Model (as in closed-loop programming of ReRAM/PCM arrays, e.g. Wan et al.,
Nature 2022): after the first programming pass every device is read (with read
noise when the model has it, at t = 0); each device whose read lies more than
``tolerance * g_max`` from its target is programmed again from scratch (a fresh
draw of the model's programming noise and drift exponent). This repeats until
all reads are within tolerance or ``max_iterations`` passes have been made.
By default the verify read is exact (see ``WriteVerifyConfig.verify_read_noise``).
The reported residual is the *true* error of the programmed state (what the
chip holds), not the last read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analogdecor.config import check_int, check_positive
from analogdecor.inference.models import InferenceNoiseModel, ProgrammedConductances

__all__ = ["WriteVerifyConfig", "WriteVerifyReport", "write_verify"]


@dataclass(frozen=True)
class WriteVerifyConfig:
    """Write-verify settings."""

    enabled: bool = False
    """Use write-verify (False: a single open-loop programming pass)."""
    tolerance: float = 0.02
    """Accepted |read - target| as a fraction of the model's g_max."""
    max_iterations: int = 10
    """Maximum number of programming passes (the first one included)."""
    verify_read_noise: bool = False
    """Verify reads carry the model's read noise at t = 0 (default False: the verify read is exact).
    The 1/f read noise of the PCM model is the deviation accumulated from t_read to t + t0, which
    overstates what a read right after the programming pulse sees; switch on for a pessimistic bound."""

    def __post_init__(self) -> None:
        check_positive(self, "tolerance")
        check_int(self, "max_iterations", minimum=1)


@dataclass(frozen=True)
class WriteVerifyReport:
    """Outcome of programming one array (one layer's G+ and G- together)."""

    iterations: int
    """Programming passes made."""
    rms_error_us: float
    """Root-mean-square |G_prog - G_target| (uS) of the final state."""
    max_error_us: float
    """Largest |G_prog - G_target| (uS)."""
    fraction_within: float
    """Fraction of devices whose final (true) state lies within tolerance (also for open loop)."""
    tolerance_us: float
    """The tolerance (uS): ``tolerance * g_max`` of the config, whether or not write-verify ran."""

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def write_verify(
    g_target: np.ndarray,
    model: InferenceNoiseModel,
    rng: np.random.Generator,
    config: WriteVerifyConfig | None = None,
) -> tuple[ProgrammedConductances, WriteVerifyReport]:
    """Program ``g_target`` (uS) with ``model``, with write-verify when ``config.enabled``.

    Parameters
    ----------
    g_target : ndarray
        Target conductances (any shape).
    model : InferenceNoiseModel
        Supplies programming noise, drift exponents and read noise.
    rng : numpy.random.Generator
        Source of all noise.
    config : WriteVerifyConfig, optional
        None or ``enabled=False``: one open-loop pass.

    Returns
    -------
    state : ProgrammedConductances
    report : WriteVerifyReport
    """
    config = config or WriteVerifyConfig()
    g_target = np.asarray(g_target, dtype=np.float64)
    state = model.program(g_target, rng)
    g_prog, nu = state.g_prog.copy(), state.nu.copy()
    iterations = 1
    tol = config.tolerance * model.g_max  # also reported for open-loop programming
    if config.enabled:
        while True:
            current = ProgrammedConductances(g_prog, nu)
            read = model.at_time(current, 0.0, rng) if config.verify_read_noise else g_prog
            bad = np.abs(read - g_target) > tol
            if not bad.any() or iterations >= config.max_iterations:
                break
            again = model.program(g_target[bad], rng)
            g_prog[bad] = again.g_prog
            nu[bad] = again.nu
            iterations += 1
    err = np.abs(g_prog - g_target)
    report = WriteVerifyReport(
        iterations=iterations,
        rms_error_us=float(np.sqrt(np.mean(err**2))) if err.size else 0.0,
        max_error_us=float(err.max()) if err.size else 0.0,
        fraction_within=float(np.mean(err <= tol)) if err.size else 1.0,
        tolerance_us=float(tol),
    )
    return ProgrammedConductances(g_prog, nu), report
