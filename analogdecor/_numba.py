"""Numba options in one place (house style: no options scattered over decorators).

Every kernel module imports :func:`njit` and :func:`njit_parallel` from here.
``cache=True`` keeps the start-up of the CLI and the tests fast after the first
compilation. ``fastmath`` stays off: kernels must match their NumPy references
and be bit-for-bit reproducible for a given seed.
"""

from __future__ import annotations

import numba

JIT_OPTIONS = {"cache": True, "fastmath": False, "nogil": True}


def njit(*args, **kwargs):
    """``numba.njit`` with the project's options (serial kernel)."""
    opts = {**JIT_OPTIONS, **kwargs}
    if args and callable(args[0]):
        return numba.njit(**opts)(args[0])
    return numba.njit(*args, **opts)


def njit_parallel(*args, **kwargs):
    """``numba.njit(parallel=True)`` with the project's options (parallel driver)."""
    opts = {**JIT_OPTIONS, "parallel": True, **kwargs}
    if args and callable(args[0]):
        return numba.njit(**opts)(args[0])
    return numba.njit(*args, **opts)
