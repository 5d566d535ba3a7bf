"""Backends: where a layer's weight matrix lives.

``make_tile(backend, out_size, in_size, tile_config, seed)`` returns an object
with the Tile contract (forward, backward, update, set_weights, program,
read_weights, conductances, state_dict, load_state_dict):

- ``"float"``: :class:`~analogdecor.backends.float_tile.FloatTile`, plain float32
  weights; a digital parameter, so SGD or Adam can update it (``is_analog`` False).
- ``"numba"``: :class:`analogdecor.crossbar.tile.Tile`, the numba crossbar emulator, or an
  :class:`analogdecor.crossbar.arrays.ArrayTile` (a grid of them) when ``mapping.array_rows`` /
  ``array_cols`` are smaller than the matrix.
- ``"aihwkit"``: ``analogdecor.backends.aihwkit.AihwkitTile`` (IBM aihwkit; optional,
  imported only when asked for).

Analogue tiles take updates as pulses with SGD semantics only.
"""

from __future__ import annotations

from typing import Any

from analogdecor.backends.float_tile import FloatTile
from analogdecor.crossbar.config import TileConfig
from analogdecor.errors import ConfigError

__all__ = ["BACKENDS", "FloatTile", "is_analog", "make_tile"]

BACKENDS: tuple[str, ...] = ("float", "numba", "aihwkit")


def make_tile(
    backend: str, out_size: int, in_size: int, tile_config: TileConfig | None = None, seed: int = 0
) -> Any:
    """Build one weight matrix of ``out_size`` x ``in_size`` on ``backend``.

    Parameters
    ----------
    backend : {"float", "numba", "aihwkit"}
    out_size, in_size : int
    tile_config : TileConfig, optional
        Device, periphery, update and mapping settings (analogue backends);
        ``TileConfig.ideal()`` when omitted.
    seed : int
        Seed of the tile's device draws and noise (same seed, same results).
    """
    cfg = tile_config if tile_config is not None else TileConfig.ideal()
    if backend == "float":
        return FloatTile(out_size, in_size, cfg, seed=seed)
    if backend == "numba":  # a grid of arrays when mapping.array_rows / array_cols split the matrix
        from analogdecor.crossbar.arrays import make_numba_tile

        return make_numba_tile(out_size, in_size, cfg, seed=seed)
    if backend == "aihwkit":
        from analogdecor.backends.aihwkit import AihwkitTile

        return AihwkitTile(out_size, in_size, cfg, seed=seed)
    raise ConfigError(f"backend = {backend!r}: must be one of {', '.join(map(repr, BACKENDS))}")


def is_analog(tile: Any) -> bool:
    """True for tiles whose weights can only change by pulsed updates (not a digital parameter)."""
    return bool(getattr(tile, "is_analog", True))
