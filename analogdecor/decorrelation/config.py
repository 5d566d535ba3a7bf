"""Settings of a decorrelated layer (one frozen dataclass, validated once).

See :mod:`analogdecor.decorrelation.rules` for the equations each field controls
(N. Ahmad, arXiv 2407.10780, section "decorrelation rule").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from analogdecor.config import check_choice, check_int, check_nonneg, check_positive, check_range

DECOR_RULES: tuple[str, ...] = ("ahmad", "copi", "kappa", "zca")
"""ahmad: the paper's rule (default); copi: Ahmad et al. TMLR 2023; kappa: Dalm et al.
arXiv 2405.02385; zca: closed-form whitening (Sigma + eps I)^(-1/2) refitted from data."""


@dataclass(frozen=True)
class DecorrelationConfig:
    """How every layer's input is decorrelated: z = R (x - mu)."""

    enabled: bool = False
    """Give every linear layer (first and last included) its own decorrelating matrix R."""
    rule: Literal["ahmad", "copi", "kappa", "zca"] = "ahmad"
    """Update rule of R: ahmad (paper), copi, kappa (decorrelated BP of Dalm et al.) or zca."""
    lr: float = 1e-3
    """Rate eta of the R update (the paper's useful range is 1e-6 .. 1e-3; 1e-3 suits short runs;
    too large a rate makes R chase every batch and destabilises the forward weights' learning)."""
    ordering: Literal["local", "global"] = "local"
    """local: R <- g R (I - eta C) (anti-Hebbian, local signals); global: R <- g (I - eta C) R."""
    gain: Literal["norm", "rms"] = "norm"
    """ahmad rule's scalar gain g: norm = mean_n ||x_n|| / ||z_n||; rms = rms(x) / rms(z)."""
    subset_fraction: float = 0.1
    """The rule uses k = floor(f B) + 1 samples of each batch of size B (0 < f <= 1)."""
    centring: bool = True
    """Subtract the mean mu (batch mean in training, running mean in evaluation) before R."""
    momentum: float = 0.1
    """Momentum of the running mean: mu <- (1 - m) mu + m mean(batch)."""
    mean_gradient: bool = True
    """With centring, errors pass through the batch mean's derivative: the error at a layer's
    input is R^T e minus its batch mean, the exact gradient of the training-mode forward pass
    (autograd does this in the paper's code, where the mean is part of the graph). False
    treats mu as a constant. BP and FA only (DFA and NP never send errors through R)."""
    kappa: float = 1e-2
    """kappa rule only: weight of the variance-normalising term (about 1e-3 .. 1e-2)."""
    zca_eps: float = 1e-3
    """zca rule only: ridge eps in (Sigma + eps I)^(-1/2)."""
    zca_samples: int = 1024
    """zca rule only: training samples used to refit R at the start of every epoch."""
    on_tile: bool = False
    """Store R on its own crossbar tile of the run's backend (float backend: a float tile).
    The rule is then a pulsed outer-product update (input z, error R z) and the gain g is a
    digital output scale of the tile, so no device is reprogrammed for it."""
    tile_init_scale: float = 0.9
    """on_tile only: the tile starts at tile_init_scale * I and the digital scale at
    1 / tile_init_scale. Large values matter: each output of an R tile carries little more
    than one input, so its read's signal-to-noise ratio grows with the diagonal (0.9 against
    0.5: decorrelated NP on a GokmenVlasov R tile 0.76 against 0.51 on digits); devices whose
    own bound lies below it are clipped to that bound."""

    def __post_init__(self) -> None:
        check_choice(self, "rule", DECOR_RULES)
        check_nonneg(self, "lr")
        check_choice(self, "ordering", ("local", "global"))
        check_choice(self, "gain", ("norm", "rms"))
        check_range(self, "subset_fraction", 0.0, 1.0)
        check_positive(self, "subset_fraction")
        check_range(self, "momentum", 0.0, 1.0)
        check_nonneg(self, "kappa")
        check_nonneg(self, "zca_eps")
        check_int(self, "zca_samples", minimum=2)
        check_positive(self, "tile_init_scale")
