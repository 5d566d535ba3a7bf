"""Decorrelated layers (N. Ahmad, arXiv 2407.10780): rules for R and the z = R (x - mu) stage.

:mod:`~analogdecor.decorrelation.rules` holds the pure update rules (the paper's,
COPI, Dalm et al.'s kappa rule, closed-form ZCA); :class:`Decorrelator` wraps one
R (in float or on a crossbar tile) with its running mean; :func:`fold_linear`
absorbs R into the forward weights for inference.
"""

from __future__ import annotations

from analogdecor.decorrelation.config import DECOR_RULES, DecorrelationConfig
from analogdecor.decorrelation.layer import Decorrelator, TileStep, fold_linear
from analogdecor.decorrelation.rules import (
    ahmad_step,
    ahmad_step_exact,
    copi_step,
    gain_factor,
    kappa_step,
    moment_product,
    subset_size,
    zca_matrix,
)

__all__ = [
    "DECOR_RULES",
    "DecorrelationConfig",
    "Decorrelator",
    "TileStep",
    "ahmad_step",
    "ahmad_step_exact",
    "copi_step",
    "fold_linear",
    "gain_factor",
    "kappa_step",
    "moment_product",
    "subset_size",
    "zca_matrix",
]
