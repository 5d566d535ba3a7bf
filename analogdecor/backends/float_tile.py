"""The float backend: a plain float32 weight matrix with the Tile contract.

It stands where a crossbar tile would, so networks and learning rules never
ask which backend they run on. Unlike an analogue tile its weights are a
digital parameter: :attr:`FloatTile.weights` is the live array, which the
digital optimisers (SGD, Adam) update in place.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from analogdecor._arrays import as_batch
from analogdecor.crossbar.config import TileConfig
from analogdecor.errors import ShapeError

__all__ = ["FloatTile"]


class FloatTile:
    """Float32 weights W (out_size, in_size) with forward/backward/update like a tile.

    ``forward(x) = x W^T``, ``backward(d) = d W``, ``update(x, d, lr)``:
    W <- W - lr d^T x, all in float32 (exactly :meth:`TileConfig.ideal` algebra).
    ``config`` only serves :meth:`conductances` (the mapping to microsiemens).
    """

    is_analog = False

    def __init__(
        self, out_size: int, in_size: int, config: TileConfig | None = None, *, seed: int = 0
    ) -> None:
        if int(out_size) < 1 or int(in_size) < 1:
            raise ShapeError(f"tile size {out_size} x {in_size}: both must be >= 1")
        self.out_size = int(out_size)
        self.in_size = int(in_size)
        self.config = config if config is not None else TileConfig.ideal()
        self.seed = int(seed)
        self.weights = np.zeros((self.out_size, self.in_size), dtype=np.float32)

    def forward(self, x: Any) -> np.ndarray:
        return as_batch("x", x, self.in_size, "in_size", vector_ok=True, finite=False) @ self.weights.T

    def backward(self, d: Any) -> np.ndarray:
        return as_batch("d", d, self.out_size, "out_size", vector_ok=True, finite=False) @ self.weights

    def update(self, x: Any, d: Any, lr: float) -> None:
        xb = as_batch("x", x, self.in_size, "in_size", vector_ok=True, finite=False)
        db = as_batch("d", d, self.out_size, "out_size", vector_ok=True, finite=False)
        if xb.shape[0] != db.shape[0]:
            raise ShapeError(f"x has {xb.shape[0]} samples but d has {db.shape[0]}")
        self.weights -= np.float32(lr) * (db.T @ xb)

    def set_weights(self, W: Any) -> None:
        W = np.asarray(W, dtype=np.float32)
        if W.shape != (self.out_size, self.in_size):
            raise ShapeError(f"W has shape {W.shape}: expected ({self.out_size}, {self.in_size})")
        if not np.all(np.isfinite(W)):
            raise ValueError("W contains NaN or inf")
        self.weights[...] = W

    def program(self, W: Any) -> None:
        """Same as :meth:`set_weights`: float weights are written exactly."""
        self.set_weights(W)

    def read_weights(self) -> np.ndarray:
        return self.weights.copy()

    def conductances(self) -> tuple[np.ndarray, np.ndarray]:
        """Differential pair (G+, G-) in uS, through the same mapping as analogue tiles.

        The weight scale is ``config.mapping.w_scale`` when set (weights beyond it saturate at g_max,
        as on an analogue tile), else max |W| (a float matrix has no device range of its own).
        """
        from analogdecor.crossbar.mapping import weights_to_conductances

        m = self.config.mapping
        w_scale = m.w_scale if m.w_scale is not None else max(float(np.abs(self.weights).max()), 1e-12)
        return weights_to_conductances(np.clip(self.weights, -w_scale, w_scale), m.g_min, m.g_max, w_scale)

    def state_dict(self) -> dict[str, Any]:
        return {"weights": self.weights.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.set_weights(state["weights"])
