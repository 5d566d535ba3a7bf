"""Tile and decorrelator states as values ``torch.load(weights_only=True)`` accepts.

A tile's ``state_dict`` holds NumPy arrays and scalars, a JSON string and a uint64 generator
state. torch's safe loader takes tensors, str, int, float, lists and dicts, so arrays become
tensors (float64 arrays stay float64), uint64 arrays (generator words, pulse counters) int64
tensors of the same bits (marked as such), and NumPy scalars Python scalars. :func:`decode` inverts :func:`encode` exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def encode(state: dict[str, Any]) -> dict[str, Any]:
    """NumPy values -> tensors / Python scalars / lists (exactly invertible by :func:`decode`)."""
    out: dict[str, Any] = {}
    for key, value in state.items():
        if isinstance(value, np.ndarray) and value.dtype == np.uint64:
            out[key] = {"uint64_bits": torch.from_numpy(np.ascontiguousarray(value).view(np.int64).copy())}
        elif isinstance(value, np.ndarray):
            out[key] = torch.from_numpy(np.array(value, copy=True))
        elif isinstance(value, np.str_ | str):
            out[key] = str(value)
        elif isinstance(value, np.integer | int):
            out[key] = {"int": int(value)}
        elif isinstance(value, np.floating | float):
            out[key] = {"float": float(value)}
        else:
            raise TypeError(f"state[{key!r}]: cannot encode {type(value).__name__}")
    return out


def decode(state: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`encode`: NumPy arrays and scalars again."""
    out: dict[str, Any] = {}
    for key, value in state.items():
        if isinstance(value, torch.Tensor):
            out[key] = value.detach().cpu().numpy().copy()
        elif isinstance(value, str):
            out[key] = np.str_(value)
        elif isinstance(value, dict) and "uint64_bits" in value:
            out[key] = value["uint64_bits"].detach().cpu().numpy().view(np.uint64).copy()
        elif isinstance(value, dict) and "int" in value:
            out[key] = np.int64(value["int"])
        elif isinstance(value, dict) and "float" in value:
            out[key] = np.float64(value["float"])
        else:
            raise TypeError(f"state[{key!r}]: cannot decode {type(value).__name__}")
    return out
