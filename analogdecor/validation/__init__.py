"""Cross-validation of two tile backends (the numba emulator against IBM aihwkit).

``analogdecor validate`` runs :func:`run_validation`: for each device preset it
compares forward-read errors (DAC, ADC, output noise alone and together), the
statistics of one pulsed update (per-device mean, variance, same-row covariance),
pulse-count distributions, device response curves, and short training runs (an MLP
and a small conv net); and
once per run it compares analogdecor's inference noise models (programming noise,
drift, read noise) with aihwkit's (:mod:`.inference_check`), and random device
configurations of every family with aihwkit's (:mod:`.random_configs`).
Every row has its statistic, a tolerance from standard errors (Bonferroni over the
run's elementary tests at family-wise error ``alpha``) and pass/fail.
See :mod:`analogdecor.validation.stats` for the statistics.
"""

from __future__ import annotations

from analogdecor.validation.checks import Comparison, Sizes, quiet_device
from analogdecor.validation.harness import (
    CHECKS,
    ValidationResult,
    backend_factory,
    family_configs,
    run_validation,
)
from analogdecor.validation.inference_check import InferenceSpec, inference_checks, inference_comparisons
from analogdecor.validation.random_configs import random_checks, random_configs, random_device
from analogdecor.validation.report import Row, format_table, make_rows, rows_to_json
from analogdecor.validation.training_check import CONV_TRAINING, TrainingSpec

__all__ = [
    "CHECKS",
    "CONV_TRAINING",
    "Comparison",
    "InferenceSpec",
    "Row",
    "Sizes",
    "TrainingSpec",
    "ValidationResult",
    "backend_factory",
    "family_configs",
    "format_table",
    "inference_checks",
    "inference_comparisons",
    "make_rows",
    "quiet_device",
    "random_checks",
    "random_configs",
    "random_device",
    "rows_to_json",
    "run_validation",
]
