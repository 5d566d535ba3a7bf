"""The layer specification of ``model.layers`` (a plain dataclass: configs import it without any backend)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from analogdecor.errors import ConfigError

__all__ = ["LAYER_KINDS", "LayerSpec"]

LAYER_KINDS: tuple[str, ...] = ("conv2d", "dense", "maxpool", "avgpool", "flatten")


@dataclass(frozen=True)
class LayerSpec:
    """One hidden layer of a sequential network (``model.layers`` entries)."""

    kind: Literal["conv2d", "dense", "maxpool", "avgpool", "flatten"]
    """conv2d, dense, maxpool, avgpool or flatten."""
    channels: int | None = None
    """conv2d: output channels C_out."""
    units: int | None = None
    """dense: output units."""
    kernel: int = 3
    """conv2d: kernel size k (square)."""
    stride: int | None = None
    """Stride; None: 1 for conv2d, the window size for pooling."""
    padding: int = 0
    """conv2d: zero padding on every side."""
    size: int = 2
    """Pooling window (square)."""

    def __post_init__(self) -> None:
        if self.kind not in LAYER_KINDS:
            raise ConfigError(f"LayerSpec.kind = {self.kind!r}: must be one of {', '.join(LAYER_KINDS)}")
        if self.kind == "conv2d" and (not isinstance(self.channels, int) or self.channels < 1):
            raise ConfigError(f"LayerSpec.channels = {self.channels!r}: a conv2d layer needs channels >= 1")
        if self.kind == "dense" and (not isinstance(self.units, int) or self.units < 1):
            raise ConfigError(f"LayerSpec.units = {self.units!r}: a dense layer needs units >= 1")
        for name, lo in (("kernel", 1), ("stride", 1), ("padding", 0), ("size", 1)):
            v = getattr(self, name)
            if name == "stride" and v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ConfigError(f"LayerSpec.{name} = {v!r}: must be an integer >= {lo}")

    @property
    def step(self) -> int:
        """The stride in effect: ``stride``, else 1 (conv2d) or the window size (pooling)."""
        if self.stride is not None:
            return self.stride
        return 1 if self.kind == "conv2d" else self.size
