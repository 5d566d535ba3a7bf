"""Lazy import of IBM aihwkit: the backend is an optional extra.

Nothing in :mod:`analogdecor` imports aihwkit at import time. Asking for the
backend when aihwkit is missing raises
:class:`~analogdecor.errors.BackendUnavailableError` with the install recipe.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from analogdecor.errors import BackendUnavailableError

__all__ = ["AIHWKIT_VERSION", "INSTALL_HINT", "aihwkit_available", "require_aihwkit"]

AIHWKIT_VERSION = "1.2.0"
"""The aihwkit release the backend is written and validated against."""

INSTALL_HINT = (
    "the aihwkit backend needs IBM aihwkit 1.2.0, which is not installed; install with: "
    "bash scripts/dev.sh setup (builds aihwkit 1.2.0 from source against the pinned torch, "
    "about 12 minutes the first time; needs libopenblas-dev)"
)


def require_aihwkit() -> ModuleType:
    """Import and return the ``aihwkit`` package, or raise BackendUnavailableError saying how to install it."""
    try:
        module = importlib.import_module("aihwkit")
        importlib.import_module("aihwkit.simulator.tiles")
    except ImportError as exc:  # includes sys.modules["aihwkit"] = None
        raise BackendUnavailableError(f"{INSTALL_HINT} (import failed: {exc})") from exc
    return module


def aihwkit_available() -> bool:
    """True when aihwkit imports (without raising)."""
    try:
        require_aihwkit()
    except BackendUnavailableError:
        return False
    return True
