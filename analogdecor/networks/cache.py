"""What a forward pass records at each layer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["LayerCache"]


@dataclass
class LayerCache:
    """What one forward pass recorded at a layer (float32 arrays except mu).

    Dense layers: x the input (B, in), z the decorrelated input, a the pre-activation,
    h the output. Convolutions: x and z are patch rows (B positions, C_in k^2), a and h
    (B, C_out, Ho, Wo). Pooling: x the input image, z the arg-max indices (max pooling).
    """

    x: np.ndarray
    mu: np.ndarray | None
    z: Any
    a: np.ndarray
    h: np.ndarray
