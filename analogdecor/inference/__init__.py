"""Inference-time physics of programmed crossbars: programming noise, drift, read noise,
write-verify, drift compensation, IR drop, and accuracy-vs-time evaluation."""

from __future__ import annotations

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
