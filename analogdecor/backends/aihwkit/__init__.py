"""The aihwkit backend: analogdecor's Tile contract on IBM aihwkit analogue tiles.

IBM's aihwkit (Rasch et al., "A flexible and fast PyTorch toolkit for simulating
training and inference on analog crossbar arrays", AICAS 2021) is the field's
reference simulator. This backend runs the same networks and learning rules on
it, and :mod:`analogdecor.validation` uses it to check the numba emulator.

- :func:`~analogdecor.backends.aihwkit.translate.to_rpu_config`: TileConfig to
  aihwkit ``SingleRPUConfig``; a setting with no aihwkit equivalent raises
  :class:`~analogdecor.errors.ConfigError` naming it.
- :class:`~analogdecor.backends.aihwkit.tile.AihwkitTile`: the Tile contract.

aihwkit is optional and imported lazily: importing this package never needs it;
using :class:`AihwkitTile` or :func:`to_rpu_config` without it raises
:class:`~analogdecor.errors.BackendUnavailableError` with the install command.
"""

from __future__ import annotations

from typing import Any

from analogdecor.backends.aihwkit._guard import INSTALL_HINT, aihwkit_available, require_aihwkit

__all__ = [
    "INSTALL_HINT",
    "AihwkitTile",
    "aihwkit_available",
    "check_translatable",
    "require_aihwkit",
    "to_rpu_config",
]


def __getattr__(name: str) -> Any:
    if name == "AihwkitTile":
        from analogdecor.backends.aihwkit.tile import AihwkitTile

        return AihwkitTile
    if name in ("to_rpu_config", "check_translatable"):
        from analogdecor.backends.aihwkit import translate

        return getattr(translate, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
