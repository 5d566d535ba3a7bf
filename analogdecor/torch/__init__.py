"""torch modules whose weights live on analogdecor's emulated crossbar tiles (optional: needs torch).

A model written in torch runs on emulated analogue devices with the same pieces as
analogdecor's own networks (numba tiles, the decorrelation rules, the analogue update modes):

- :class:`AnalogLinear`, :class:`AnalogConv2d`: the weight matrix on a tile (a device preset
  or a :class:`~analogdecor.crossbar.TileConfig`); forward and backward are the tile's reads
  (with their periphery) inside torch autograd. Convolutions read the tile on every im2col patch.
- :class:`DecorrelatedLinear`, :class:`DecorrelatedConv2d`: z = R (x - mu) before the weights
  (N. Ahmad, arXiv 2407.10780), R in float or on its own tile, any decorrelation rule.
- :class:`AnalogSGD`: pulsed updates of the tiles (update modes ``mixed``, ``per_sample``,
  ``low_rank``), plain SGD for every digital parameter, and the decorrelation step of every R.
- :func:`convert_to_analog`: a model's ``nn.Linear`` / ``nn.Conv2d`` layers onto tiles, keeping
  their weights.
- :func:`node_perturbation`: the clean and noisy passes of node perturbation on any model of
  these modules; writes the estimate where :class:`AnalogSGD` applies it.

torch is imported here and nowhere in analogdecor's core: ``import analogdecor`` works without it,
and importing this package without torch raises
:class:`~analogdecor.errors.BackendUnavailableError` saying how to install it.
"""

from __future__ import annotations

from analogdecor.errors import BackendUnavailableError

try:
    import torch  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise BackendUnavailableError(
        f"analogdecor.torch needs PyTorch, which is not installed (import failed: {exc}); "
        'install with: pip install "analogdecor[torch]"'
    ) from exc

from analogdecor.torch.convert import convert_to_analog
from analogdecor.torch.decorrelated import DecorrelatedConv2d, DecorrelatedLinear
from analogdecor.torch.modules import AnalogConv2d, AnalogLinear, resolve_tile_config
from analogdecor.torch.node_perturbation import node_perturbation
from analogdecor.torch.optim import AnalogSGD

__all__ = [
    "AnalogConv2d",
    "AnalogLinear",
    "AnalogSGD",
    "DecorrelatedConv2d",
    "DecorrelatedLinear",
    "convert_to_analog",
    "node_perturbation",
    "resolve_tile_config",
]
