"""One typed identifier for every parameter of a network: :class:`ParamKey`.

A network's parameters are named by (layer index, part). Their string form
``layers.{i}.{part}`` is what run directories (model.npz, conductances.npz),
checkpoints (optimiser and updater state) and exports have always stored, so
every file written before keeps loading; code builds and reads the names only
through this class (no f-strings, no regexes elsewhere).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from analogdecor.errors import ConfigError

__all__ = ["PARTS", "TILE_PARTS", "ParamKey"]

TILE_PARTS: tuple[str, ...] = ("W", "R")
"""Parts that live on a tile: the weights W and the decorrelating matrix R."""
PARTS: tuple[str, ...] = (*TILE_PARTS, "bias", "out_scale", "decor")
"""Every part: tiles, the digital bias and output scale, and the decorrelator's digital state."""

_PATTERN = re.compile(r"layers\.(\d+)\.([A-Za-z_]+)")


@dataclass(frozen=True, order=True)
class ParamKey:
    """Parameter ``part`` of layer ``layer``; ``str(key)`` is its stored name ``layers.{layer}.{part}``."""

    layer: int
    part: str

    def __post_init__(self) -> None:
        if not isinstance(self.layer, int) or self.layer < 0:
            raise ConfigError(f"ParamKey.layer = {self.layer!r}: must be an int >= 0")
        if self.part not in PARTS:
            raise ConfigError(f"ParamKey.part = {self.part!r}: must be one of {', '.join(PARTS)}")

    def __str__(self) -> str:
        return f"layers.{self.layer}.{self.part}"

    @property
    def prefix(self) -> str:
        """``str(key) + "."``: the prefix of this part's entries in a flat state dict."""
        return f"{self}."

    @property
    def is_tile(self) -> bool:
        return self.part in TILE_PARTS

    @classmethod
    def parse(cls, name: str) -> ParamKey:
        """The key whose string form is ``name`` (ConfigError for anything else)."""
        m = _PATTERN.fullmatch(str(name))
        if m is None or m.group(2) not in PARTS:
            raise ConfigError(
                f"{name!r} is not a parameter name: expected layers.<i>.<part> with part one of {', '.join(PARTS)}"
            )
        return cls(int(m.group(1)), m.group(2))
