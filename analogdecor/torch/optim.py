"""AnalogSGD: pulsed updates for the tiles, SGD for everything digital, R's own rule.

One optimiser for a model of analogdecor's torch modules, applying what analogdecor's training
loop applies (:func:`analogdecor.learning.apply_updates`, then
:func:`analogdecor.learning.decorrelation_step`):

- every analogue layer (found through its ``analog_ctx`` parameter) gets the batch's pulsed update
  through an :class:`analogdecor.learning.AnalogUpdater`: the rows (z_n, g_n) its backward pass
  recorded become delta_n = N g_n (g_n = d loss / d output, N rows), so that the effective weights
  alpha W move by -lr sum_n g_n z_n^T = -lr dL/d(alpha W) in expectation, with the update mode
  ``mixed`` (mixed precision, a digital accumulator per device, the default), ``per_sample`` (one
  pulsed outer product per row) or ``low_rank`` (rank-r SVD of the batch update);
- every other parameter with a gradient (biases, digital weights) takes an SGD step (with optional
  momentum and weight decay, as ``torch.optim.SGD``);
- then every decorrelated layer's R takes one step of its rule on the last training batch (R on a
  tile through the same update mode).

The mixed-precision accumulators are optimiser state (``state_dict`` saves them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch

from analogdecor.errors import ConfigError
from analogdecor.learning import ANALOG_UPDATES, AnalogUpdater

__all__ = ["AnalogSGD"]


class AnalogSGD(torch.optim.Optimizer):
    """SGD for a model of analogue layers (see the module notes).

    Parameters
    ----------
    params : iterable of parameters or parameter groups
        Usually ``model.parameters()`` (the analogue layers' ``analog_ctx`` and the decorrelated
        layers' ``decor_ctx`` must be among them).
    lr : float
        Learning rate of the digital parameters, and of the tiles unless ``analog_lr`` is given.
    analog_lr : float, optional
        Learning rate of the pulsed updates (in effective-weight units).
    analog_update : {"mixed", "per_sample", "low_rank"}
        How a batch reaches the devices (see :mod:`analogdecor.learning.update`).
    rank : int
        ``low_rank`` only: rank of the applied approximation.
    momentum, weight_decay : float
        Of the digital SGD steps only (a crossbar keeps no per-device optimiser state).
    """

    def __init__(self, params: Iterable[Any], lr: float, *, analog_lr: float | None = None,
                 analog_update: str = "mixed", rank: int = 4, momentum: float = 0.0,
                 weight_decay: float = 0.0) -> None:  # fmt: skip
        if not lr >= 0:
            raise ConfigError(f"lr = {lr!r}: must be >= 0")
        if analog_lr is not None and not analog_lr >= 0:
            raise ConfigError(f"analog_lr = {analog_lr!r}: must be >= 0")
        if analog_update not in ANALOG_UPDATES:
            raise ConfigError(
                f"analog_update = {analog_update!r}: must be one of {', '.join(ANALOG_UPDATES)}"
            )
        if not (isinstance(rank, int) and rank >= 1):
            raise ConfigError(f"rank = {rank!r}: must be an int >= 1")
        if not momentum >= 0 or not weight_decay >= 0:
            raise ConfigError(f"momentum = {momentum!r}, weight_decay = {weight_decay!r}: must be >= 0")
        defaults = {"lr": lr, "analog_lr": analog_lr, "analog_update": analog_update, "rank": rank,
                    "momentum": momentum, "weight_decay": weight_decay}  # fmt: skip
        super().__init__(params, defaults)

    def _updater(
        self, p: torch.Tensor, group: dict[str, Any], shape: tuple[int, int], key: str
    ) -> AnalogUpdater:
        """An updater of the group's mode whose accumulator (mixed) is this parameter's state."""
        updater = AnalogUpdater(group["analog_update"], group["rank"])
        if group["analog_update"] == "mixed":
            state = self.state[p]
            if "chi" not in state or tuple(state["chi"].shape) != shape:
                state["chi"] = torch.zeros(shape, dtype=torch.float64)
            updater.chi[key] = state["chi"].numpy()  # the updater works in place on the tensor's memory
        return updater

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """As :meth:`torch.optim.Optimizer.load_state_dict`, keeping the accumulators float64.

        torch casts floating-point optimiser state to its parameter's dtype (float32 here); the
        mixed-precision accumulators ``chi`` are restored bit for bit instead.
        """
        saved_ids = [i for g in state_dict["param_groups"] for i in g["params"]]
        params = [p for g in self.param_groups for p in g["params"]]
        super().load_state_dict(state_dict)
        for i, p in zip(saved_ids, params, strict=False):
            chi = state_dict["state"].get(i, {}).get("chi")
            if chi is not None:
                self.state[p]["chi"] = chi.detach().to(torch.float64, copy=True).contiguous()

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Pulsed updates of the tiles, SGD steps of the digital parameters, then every R's step."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        decorrelated = []
        for group in self.param_groups:
            lr = float(group["lr"])
            analog_lr = lr if group["analog_lr"] is None else float(group["analog_lr"])
            for p in group["params"]:
                layer = getattr(p, "_analog_layer", None)
                if layer is not None:
                    self._analog_step(p, layer, group, analog_lr)
                    continue
                decor = getattr(p, "_decor_layer", None)
                if decor is not None:
                    decorrelated.append((p, decor, group))
                    continue
                if p.grad is not None:
                    self._digital_step(p, group, lr)
        for p, module, group in decorrelated:
            tile = module.decor.tile
            updater = None
            if tile is not None and getattr(tile, "is_analog", True):
                updater = self._updater(p, group, (tile.out_size, tile.in_size), "R")
            module.decorrelation_step(updater, "R")
        return loss

    def _analog_step(self, p: torch.Tensor, layer: Any, group: dict[str, Any], lr: float) -> None:
        rows = layer.take_records()
        if rows is None:
            return
        z, g = rows
        delta = (g * np.float32(z.shape[0])).astype(np.float32)
        tile = layer.tile
        updater = self._updater(p, group, (tile.out_size, tile.in_size), "W")
        updater.apply("W", tile, z, delta, layer.out_scale, lr)

    def _digital_step(self, p: torch.Tensor, group: dict[str, Any], lr: float) -> None:
        grad = p.grad
        assert grad is not None
        if group["weight_decay"]:
            grad = grad.add(p, alpha=group["weight_decay"])
        if group["momentum"]:
            state = self.state[p]
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = grad.detach().clone()
            else:
                buf.mul_(group["momentum"]).add_(grad)
            grad = buf
        p.add_(grad, alpha=-lr)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients, and the rows the analogue layers recorded since the last step."""
        super().zero_grad(set_to_none=set_to_none)
        for group in self.param_groups:
            for p in group["params"]:
                layer = getattr(p, "_analog_layer", None)
                if layer is not None:
                    layer.clear_records()
