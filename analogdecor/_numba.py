"""Numba options in one place (house style: no options scattered over decorators).

Every kernel module imports :func:`njit` and :func:`njit_parallel` from here.
``cache=True`` keeps the start-up of the CLI and the tests fast after the first
compilation. ``fastmath`` stays off: kernels must match their NumPy references
and be bit-for-bit reproducible for a given seed.
"""

from __future__ import annotations

import types

import numba

JIT_OPTIONS = {"cache": True, "fastmath": False, "nogil": True}


def njit(*args, **kwargs):
    """``numba.njit`` with the project's options (serial kernel)."""
    opts = {**JIT_OPTIONS, **kwargs}
    if args and callable(args[0]):
        return numba.njit(**opts)(args[0])
    return numba.njit(*args, **opts)


def njit_parallel(*args, **kwargs):
    """``numba.njit(parallel=True)`` with the project's options (parallel driver).

    The function is compiled under its own name plus ``__parallel``: numba's
    on-disk cache keys compiled code by qualified name, signature and bytecode but
    not by the ``parallel`` flag, so a body compiled both with :func:`njit` and
    with this would otherwise share one cache entry, and the serial driver could
    load the parallel code (whose idle threads then spin next to BLAS).
    """
    opts = {**JIT_OPTIONS, "parallel": True, **kwargs}
    if args and callable(args[0]):
        return numba.njit(**opts)(_renamed(args[0], "__parallel"))
    jit = numba.njit(*args, **opts)
    return lambda fn: jit(_renamed(fn, "__parallel"))


def _renamed(fn, suffix: str):
    """A copy of the function ``fn`` whose name and qualified name end in ``suffix``."""
    new = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + suffix, fn.__defaults__, fn.__closure__)
    new.__qualname__ = fn.__qualname__ + suffix
    new.__doc__ = fn.__doc__
    new.__module__ = fn.__module__
    new.__kwdefaults__ = fn.__kwdefaults__
    return new
