"""What a sweep runs: the bridge between sweep points and :func:`analogdecor.training.train`.

A target has three methods, all of which must work in a fresh worker process
(targets are pickled to Dask workers):

``base_config(table) -> cfg``
    Build the base config from the spec's ``[base]`` table.
``configure(base, overrides) -> cfg``
    Apply one point's dotted overrides and validate the result completely
    (raising :class:`~analogdecor.errors.ConfigError` naming the setting).
``run(cfg, out_dir) -> dict[str, list[float]]``
    Execute the run, writing its own files into ``out_dir``, and return its
    per-epoch metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from analogdecor.config import from_dict, with_overrides

__all__ = ["TILE_PREFIX", "TrainingTarget"]

#: Axis prefix for overrides of the device preset's TileConfig (stored in TrainConfig.tile).
TILE_PREFIX = "tile."


class TrainingTarget:
    """Sweeps over :class:`~analogdecor.training.config.TrainConfig`, runs :func:`~analogdecor.training.train`.

    Settings named ``tile.<path>`` are merged into the config's ``tile`` table of
    dotted overrides on the device preset (``tile.device.dw_min_std`` sets
    ``cfg.tile["device.dw_min_std"]``); all other settings are dotted paths of
    TrainConfig itself. :meth:`configure` resolves the tile configuration, so a
    misspelt tile field is caught before any run starts.
    """

    def base_config(self, table: Mapping[str, Any]) -> Any:
        from analogdecor.training.config import TrainConfig

        cfg = from_dict(TrainConfig, table)
        self._resolve(cfg)
        return cfg

    def configure(self, base: Any, overrides: Mapping[str, Any]) -> Any:
        plain = {k: v for k, v in overrides.items() if not k.startswith(TILE_PREFIX)}
        tile = {k[len(TILE_PREFIX):]: v for k, v in overrides.items() if k.startswith(TILE_PREFIX)}
        if tile:
            plain["tile"] = {**dict(base.tile or {}), **tile}
        cfg = with_overrides(base, plain)
        self._resolve(cfg)
        return cfg

    @staticmethod
    def _resolve(cfg: Any) -> None:
        from analogdecor.training.config import resolve_tile_config

        resolve_tile_config(cfg)

    def run(self, cfg: Any, out_dir: Path) -> dict[str, list[float]]:
        from analogdecor.training import train

        result = train(cfg, out_dir, progress=False)
        return {k: list(v) for k, v in result.metrics.items()}
