"""The shared batch validator used by every tile backend."""

from __future__ import annotations

import numpy as np
import pytest

from analogdecor._arrays import as_batch
from analogdecor.backends import make_tile
from analogdecor.errors import ShapeError


def test_as_batch_converts_and_checks():
    out = as_batch("x", [[1, 2, 3]], 3, "in_size")
    assert out.dtype == np.float32
    assert out.flags.c_contiguous
    with pytest.raises(ShapeError, match=r"x has shape \(3,\); expected \(batch, 3\) with 3 = in_size"):
        as_batch("x", [1, 2, 3], 3, "in_size")
    assert as_batch("x", [1, 2, 3], 3, "in_size", vector_ok=True).shape == (1, 3)
    with pytest.raises(ShapeError, match="dtype"):
        as_batch("d", np.ones((1, 2), complex), 2, "out_size")
    with pytest.raises(ValueError, match="x contains 2 non-finite"):
        as_batch("x", [[np.nan, 1e39]], 2, "in_size")  # 1e39 overflows float32
    assert np.isnan(as_batch("x", [[np.nan, 0]], 2, "in_size", finite=False)).any()


def test_float_tile_passes_nan_through_so_divergence_is_seen_in_the_loss():
    tile = make_tile("float", 2, 2)
    assert np.isnan(tile.forward(np.array([[np.nan, 0.0]]))).all()
    with pytest.raises(ValueError, match="x contains 1 non-finite"):
        make_tile("numba", 2, 2).forward(np.array([[np.nan, 0.0]]))
