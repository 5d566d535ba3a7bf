"""Validation of array arguments shared by every tile (numba, float and aihwkit backends)."""

from __future__ import annotations

from typing import Any

import numpy as np

from analogdecor.errors import NonFiniteError, ShapeError


def as_batch(name: str, arr: Any, width: int, width_name: str, *, vector_ok: bool = False,
             finite: bool = True) -> np.ndarray:  # fmt: skip
    """``arr`` as a C-contiguous float32 (batch, width) array, or an error naming ``name``.

    Parameters
    ----------
    name : str
        The argument's name in messages (``"x"``, ``"d"``).
    arr : array-like
        The argument.
    width : int
        Required number of columns; ``width_name`` names it in messages (``"in_size"``).
    vector_ok : bool
        Take a 1-D array of ``width`` entries as a batch of one.
    finite : bool
        Reject NaN and inf (after the float32 cast, so float32 overflow counts) with a
        :class:`~analogdecor.errors.NonFiniteError` (a ValueError) saying how many entries are bad. Digital layers pass False, so that a
        diverging float run is detected by its loss rather than stopped here.
    """
    a = np.asarray(arr)
    if vector_ok and a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[1] != width:
        raise ShapeError(
            f"{name} has shape {np.shape(arr)}; expected (batch, {width}) with {width} = {width_name}"
        )
    if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
        raise ShapeError(f"{name} has dtype {a.dtype}; expected real numbers")
    with np.errstate(over="ignore", invalid="ignore"):  # overflow shows up as inf, reported below
        a = np.ascontiguousarray(a, dtype=np.float32)
    if finite and not np.isfinite(a).all():
        bad = int(np.size(a) - np.isfinite(a).sum())
        raise NonFiniteError(
            f"{name} contains {bad} non-finite value(s) (NaN or inf, possibly after float32 cast)"
        )
    return a
