"""The numba crossbar emulator: tile, periphery, pulsed update, conductance mapping.

Public API: :class:`Tile`, the configs :class:`TileConfig`, :class:`IOConfig`,
:class:`UpdateConfig`, :class:`MappingConfig`, and the mapping functions
:func:`weights_to_conductances` / :func:`conductances_to_weights`.
"""

from __future__ import annotations

from analogdecor.crossbar.config import IOConfig, MappingConfig, TileConfig, UpdateConfig
from analogdecor.crossbar.mapping import conductances_to_weights, level_step, weights_to_conductances
from analogdecor.crossbar.tile import Tile

__all__ = [
    "IOConfig",
    "MappingConfig",
    "Tile",
    "TileConfig",
    "UpdateConfig",
    "conductances_to_weights",
    "level_step",
    "weights_to_conductances",
]
