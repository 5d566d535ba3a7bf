"""Inference-time physics of programmed crossbars: programming noise, drift, read noise,
write-verify, drift compensation, IR drop, and accuracy-vs-time evaluation.

- :mod:`.models`: :class:`InferenceNoiseModel` (hooks program_noise / drift / read_noise),
  :class:`PCMLikeNoise`, :class:`ReRAMNoise`, :class:`GenericNoise` (coefficients from
  ``device_models/inference/*.toml``), :func:`get_noise_model`;
- :mod:`.writeverify`: :func:`write_verify` with a per-layer residual report;
- :mod:`.compensation`: :func:`drift_compensation_scale` (global output rescale);
- :mod:`.irdrop`: first-order line-resistance model, :func:`ir_drop_conductances`;
- :mod:`.evaluate`: :func:`evaluate_network`, :func:`evaluate_run` (``analogdecor evaluate``);
- :mod:`.aihwkit_noise`: IBM aihwkit's PCM and ReRAM noise models behind the same hooks
  (``analogdecor evaluate --noise-backend aihwkit``; aihwkit imported only when used);
- :mod:`.sweep_target`: :class:`~.sweep_target.EvaluationTarget`, evaluation settings as sweep axes.
"""

from __future__ import annotations

from analogdecor.inference.aihwkit_noise import (
    AihwkitNoise,
    AihwkitPCMNoise,
    AihwkitReRAMNoise,
    aihwkit_noise_model,
)
from analogdecor.inference.compensation import drift_compensation_scale
from analogdecor.inference.evaluate import EvaluateConfig, EvaluationResult, evaluate_network, evaluate_run
from analogdecor.inference.irdrop import IRDropConfig, ir_drop_conductances
from analogdecor.inference.models import (
    PCM_COEFFICIENTS,
    RERAM_COEFFICIENTS,
    GenericNoise,
    InferenceNoiseModel,
    NoiseCoefficients,
    NoNoise,
    PCMLikeNoise,
    ProgrammedConductances,
    ReRAMNoise,
    get_noise_model,
    model_files,
)
from analogdecor.inference.writeverify import WriteVerifyConfig, WriteVerifyReport, write_verify

__all__ = [
    "PCM_COEFFICIENTS",
    "RERAM_COEFFICIENTS",
    "AihwkitNoise",
    "AihwkitPCMNoise",
    "AihwkitReRAMNoise",
    "EvaluateConfig",
    "EvaluationResult",
    "GenericNoise",
    "IRDropConfig",
    "InferenceNoiseModel",
    "NoNoise",
    "NoiseCoefficients",
    "PCMLikeNoise",
    "ProgrammedConductances",
    "ReRAMNoise",
    "WriteVerifyConfig",
    "WriteVerifyReport",
    "aihwkit_noise_model",
    "drift_compensation_scale",
    "evaluate_network",
    "evaluate_run",
    "get_noise_model",
    "ir_drop_conductances",
    "model_files",
    "write_verify",
]
