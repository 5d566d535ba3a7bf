"""What a dense layer and a convolution share: a weight tile read through an optional decorrelator.

Both compute, row by row (a sample of a dense layer, a patch position of a convolution),

    z = R (x - mu)        (only when decorrelation is on)
    a = alpha W z + b     (W on the backend's tile, alpha the digital output scale)

and send errors back through the transposed reads (alpha W R)^T. The layers differ only in
what a row is; :class:`TileLayer` holds the row arithmetic once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from analogdecor.backends import FloatTile
from analogdecor.decorrelation import fold_linear

__all__ = ["TileLayer"]


class TileLayer:
    """Mixin of :class:`~analogdecor.networks.DenseLayer` and :class:`~analogdecor.networks.Conv2dLayer`.

    Subclasses are dataclasses with fields ``tile``, ``bias``, ``decor`` and ``out_scale``.
    """

    tile: Any
    bias: np.ndarray
    decor: Any
    out_scale: float

    has_params = True

    @property
    def in_size(self) -> int:
        """Inputs of the tile (C_in k^2 for a convolution: the fan-in of one output)."""
        return int(self.tile.in_size)

    @property
    def out_size(self) -> int:
        """Outputs of the tile (C_out for a convolution)."""
        return int(self.tile.out_size)

    def effective_weights(self) -> np.ndarray:
        """alpha W as float32 (the digital view of the layer's weights)."""
        return (self.tile.read_weights() * np.float32(self.out_scale)).astype(np.float32)

    def _read_rows(
        self, x: np.ndarray, *, train: bool, mu: np.ndarray | None
    ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
        """(centring mean or None, z rows, alpha W z + b rows) of the input rows ``x``."""
        m = None
        if self.decor is not None:
            xc, m = self.decor.center(x, train=train, mu=mu)
            z = self.decor.apply(xc)
        else:
            z = x
        a = self.tile.forward(z)
        if self.out_scale != 1.0:
            a = a * np.float32(self.out_scale)
        return m, z, a + self.bias

    def _input_error(self, rows: np.ndarray, feedback: np.ndarray | None) -> np.ndarray:
        """(alpha W R)^T per error row (transposed reads), or R^T B^T with a feedback matrix B; float32."""
        if feedback is None:
            e = self.tile.backward(rows)
            if self.out_scale != 1.0:
                e = e * np.float32(self.out_scale)
        else:
            e = rows @ feedback
        if self.decor is not None:
            e = self.decor.backward(e)
        return np.asarray(e, dtype=np.float32)

    def _folded_parts(self) -> tuple[FloatTile, np.ndarray]:
        """(float tile of W_eff = alpha W R, b_eff = b - W_eff mu) of the plain equivalent layer."""
        W = self.effective_weights()
        b = self.bias
        if self.decor is not None:
            W, b = fold_linear(W, b, self.decor.matrix(), self.decor.mu)
        tile = FloatTile(self.out_size, self.in_size, getattr(self.tile, "config", None))
        tile.set_weights(W)
        return tile, np.asarray(b, dtype=np.float32).copy()
