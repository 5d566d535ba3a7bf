"""Learning rules (BP, FA, DFA, node perturbation), the loss, and digital optimisers.

Every rule produces per-layer (input, error) pairs; :func:`apply_updates`
turns them into SGD/Adam steps on digital parameters or pulsed updates on
analogue tiles.
"""

from __future__ import annotations

from analogdecor.learning.losses import softmax, softmax_xent
from analogdecor.learning.optim import SGD, Adam, adam_step, make_optimizer
from analogdecor.learning.rules import RULES, RuleResult, compute_signals, init_rule_state
from analogdecor.learning.update import (
    ANALOG_UPDATES,
    AnalogUpdater,
    UpdateRouter,
    apply_updates,
    decorrelation_step,
)

__all__ = [
    "ANALOG_UPDATES",
    "RULES",
    "SGD",
    "Adam",
    "AnalogUpdater",
    "RuleResult",
    "UpdateRouter",
    "adam_step",
    "apply_updates",
    "compute_signals",
    "decorrelation_step",
    "init_rule_state",
    "make_optimizer",
    "softmax",
    "softmax_xent",
]
