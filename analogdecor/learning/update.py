"""Apply a rule's (z, delta) pairs to a network: digital optimiser steps or pulsed tile updates.

Analogue tiles can take a batch's update in three ways (``AnalogUpdater.mode``):

``per_sample``
    As a crossbar does natively: one parallel pulsed outer-product update per
    sample, ``tile.update(z, delta / (alpha B), lr)`` (the batch mean in expectation).
``low_rank``
    The batch-mean update G = delta^T z / B is formed digitally, truncated to its
    best rank-r approximation (SVD), and applied as r pulsed outer products
    (low-rank training: Gokmen, Onen & Haensch, Front. Neurosci. 2018; Zhao et
    al., arXiv 2009.03887). Fewer, better-averaged pulses per batch.
``mixed``
    Mixed-precision training (Nandakumar et al., Front. Neurosci. 14:406, 2020):
    a digital accumulator chi (one float per device) collects -lr G / alpha; whenever
    |chi_ij| reaches the weight granularity g of the device (the change of one
    pulse), trunc(chi_ij / g) pulses are fired into the device, one by one with its
    own step, noise and bounds (:meth:`Tile.apply_accumulator
    <analogdecor.crossbar.Tile.apply_accumulator>`; aihwkit tiles take the counts as
    one-hot outer products through their pulsed update), and chi keeps the rest.
    Zero-mean noise in the updates (node perturbation's, above all) cancels in
    chi instead of being turned into drift by asymmetric devices.

In all three, the layer's effective weights alpha W change by -lr G in
expectation, so a learning rate means the same step on every backend.

:class:`UpdateRouter` is the one place where a network's parameters change in
training: W on any backend, the digital biases, every decorrelating R (its own
rule in float, or pulses on its tile plus the digital gain), each named by its
:class:`~analogdecor.networks.keys.ParamKey`. A convolution's rows are patch
positions: its G is the sum over every row divided by the batch size B.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from analogdecor.backends import is_analog
from analogdecor.errors import ConfigError
from analogdecor.learning.rules import RuleResult
from analogdecor.networks.keys import ParamKey

__all__ = [
    "ANALOG_UPDATES",
    "AnalogUpdater",
    "UpdateRouter",
    "apply_updates",
    "decorrelation_step",
    "low_rank_factors",
]

ANALOG_UPDATES: tuple[str, ...] = ("per_sample", "low_rank", "mixed")


def low_rank_factors(
    z: np.ndarray, delta: np.ndarray, rank: int, n: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Rank-``rank`` factors (x_k, d_k) with sum_k d_k x_k^T the best approximation of delta^T z / B.

    G = delta^T z / B ~ sum_k s_k u_k v_k^T (truncated SVD); returns x_k = sqrt(s_k) v_k and
    d_k = sqrt(s_k) u_k as (r, in) and (r, out) float32 arrays, so that
    ``tile.update(x, d, lr)`` applies -lr G_r as r outer products. B is ``n`` when given
    (a convolution's rows are B x P patch positions), else the number of rows.
    """
    B = z.shape[0] if n is None else int(n)
    G = delta.T.astype(np.float64) @ z.astype(np.float64) / B
    U, S, Vt = np.linalg.svd(G, full_matrices=False)
    r = min(rank, len(S))
    root = np.sqrt(S[:r])
    return (Vt[:r] * root[:, None]).astype(np.float32), (U[:, :r].T * root[:, None]).astype(np.float32)


class AnalogUpdater:
    """How batches of (z, delta) become pulsed updates of analogue tiles (see the module notes).

    Parameters
    ----------
    mode : {"per_sample", "low_rank", "mixed"}
    rank : int
        ``low_rank`` only: rank r of the applied approximation.
    """

    def __init__(self, mode: str = "per_sample", rank: int = 4) -> None:
        if mode not in ANALOG_UPDATES:
            raise ConfigError(f"analog update mode {mode!r}: must be one of {', '.join(ANALOG_UPDATES)}")
        if rank < 1:
            raise ConfigError(f"update rank {rank!r}: must be >= 1")
        self.mode = mode
        self.rank = int(rank)
        self.chi: dict[str, np.ndarray] = {}

    def apply(
        self, key: str, tile: Any, z: np.ndarray, delta: np.ndarray, alpha: float, lr: float,
        n: int | None = None,
    ) -> None:  # fmt: skip
        """Change the tile's weights W so that alpha W moves by -lr delta^T z / B (in expectation).

        B is ``n`` when given (a convolution: rows are the B x P patch positions of B images,
        each a sample of the per-sample update), else the number of rows.
        """
        B = z.shape[0] if n is None else int(n)
        if self.mode == "per_sample":
            tile.update(z, (delta / np.float32(B * alpha)).astype(np.float32), lr)
        elif self.mode == "low_rank":
            x_k, d_k = low_rank_factors(z, delta, self.rank, B)
            tile.update(x_k, (d_k / np.float32(alpha)).astype(np.float32), lr)
        else:
            self._mixed(key, tile, z, delta, alpha, lr, B)

    def _mixed(
        self, key: str, tile: Any, z: np.ndarray, delta: np.ndarray, alpha: float, lr: float, B: int
    ) -> None:
        chi = self.chi.get(key)
        if chi is None:
            chi = self.chi[key] = np.zeros((tile.out_size, tile.in_size), dtype=np.float64)
        # the batch gradient as one float32 GEMM (half the time of a float64 one, and no float64 copies
        # of B x P conv patch rows), accumulated into the float64 chi that keeps the remainders
        g = np.asarray(delta, dtype=np.float32).T @ np.asarray(z, dtype=np.float32)
        chi -= (lr / (B * alpha)) * g.astype(np.float64)
        if hasattr(tile, "apply_accumulator"):  # emulated crossbar: exact pulse counts, one kernel pass
            tile.apply_accumulator(chi)
            return
        # tiles without it (aihwkit): the counts as one-hot outer products through the pulsed update
        step = float(tile.config.device.dw_min)
        n = np.trunc(chi / step)
        rows = np.flatnonzero(np.any(n != 0, axis=1))
        if rows.size == 0:
            return
        # W_i += n_i dw_min for each row i: outer products of x = -n_i dw_min with the one-hot error e_i.
        x = (-n[rows] * step).astype(np.float32)
        d = np.zeros((rows.size, tile.out_size), dtype=np.float32)
        d[np.arange(rows.size), rows] = 1.0
        tile.update(x, d, 1.0)
        chi -= n * step

    def state_dict(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self.chi.items()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        self.chi = {k: np.array(v, dtype=np.float64) for k, v in state.items()}


class UpdateRouter:
    """Route every parameter change of a training step (see the module notes).

    Parameters
    ----------
    optimizer : SGD or Adam
        Steps digital weights (float backend) and every bias, keyed by ``str(ParamKey)``.
    analog_lr : float
        Learning rate of analogue weight tiles.
    updater : AnalogUpdater, optional
        How analogue tiles (W and R) take a batch's update; default per-sample pulses.
    """

    def __init__(self, optimizer: Any, analog_lr: float, updater: AnalogUpdater | None = None) -> None:
        self.optimizer = optimizer
        self.analog_lr = float(analog_lr)
        self.updater = updater if updater is not None else AnalogUpdater()

    def step(self, net: Any, result: RuleResult) -> None:
        """The whole training step's update: weights and biases, then every R and running mean."""
        self.weights(net, result)
        self.decorrelation(net, result)

    def weights(self, net: Any, result: RuleResult) -> None:
        """alpha W -= lr * sum_rows delta z^T / B and b -= lr * sum_rows delta / B on every layer."""
        B = int(result.logits.shape[0])
        for (i, layer), (z, delta) in zip(net.param_layers(), result.signals, strict=True):
            key = ParamKey(i, "W")
            if is_analog(layer.tile):
                self.updater.apply(str(key), layer.tile, z, delta, layer.out_scale, self.analog_lr, B)
            else:
                d = delta if layer.out_scale == 1.0 else delta * np.float32(layer.out_scale)
                if z.shape[0] == B:
                    grad = (d.T.astype(np.float64) @ z.astype(np.float64)) / B
                else:  # conv patch rows: a float32 product (float64 copies of B x P rows cost more than the product)
                    grad = (d.T @ z).astype(np.float64) / B
                self.optimizer.step(str(key), layer.tile.weights, grad)
            self.optimizer.step(str(ParamKey(i, "bias")), layer.bias, _row_mean(delta, B))

    def decorrelation(self, net: Any, result: RuleResult) -> None:
        """Every layer's R (and running mean) from the clean pass of ``result``.

        R in float takes its own rule's step; R on an analogue tile takes the rule's
        pulsed outer products through the analogue updater and its gain in the
        digital scale; R on a float tile takes the outer products exactly.
        """
        for (i, layer), cache in zip(net.param_layers(), net.param_caches(result.caches), strict=True):
            decor = layer.decor
            if decor is None:
                continue
            x, z = layer.decor_rows(cache)
            k = layer.decor_subset(int(cache.a.shape[0]))  # the recorded pass's samples (2B when stacked)
            if cache.mu is not None:
                decor.update_mean(cache.mu)
            if decor.tile is None or not is_analog(decor.tile):
                decor.step(x, z, k)
                continue
            ts = decor.tile_step(x, z, k)
            if ts is None:
                continue
            self.updater.apply(str(ParamKey(i, "R")), decor.tile, ts.x, ts.err, 1.0, ts.lr)
            decor.scale *= ts.gain


def _row_mean(delta: np.ndarray, n: int) -> np.ndarray:
    """sum over rows / n in float64 (the batch mean when there is one row per sample)."""
    if delta.shape[0] == n:
        return delta.mean(axis=0, dtype=np.float64)
    return delta.sum(axis=0, dtype=np.float64) / n


def apply_updates(
    net: Any, result: RuleResult, optimizer: Any, analog_lr: float, updater: AnalogUpdater | None = None
) -> None:
    """SGD step alpha W -= lr * mean_n delta_n z_n^T on every layer, and the biases.

    The effective weights are alpha W (alpha: the layer's digital output scale,
    1 unless ``weight_scaling`` is used). Digital weights (float backend) and all
    biases go through ``optimizer`` (SGD or Adam); analogue tiles through
    ``updater`` (default: per-sample pulsed outer products) with ``analog_lr``.
    Same as ``UpdateRouter(optimizer, analog_lr, updater).weights(net, result)``.
    """
    UpdateRouter(optimizer, analog_lr, updater).weights(net, result)


def decorrelation_step(net: Any, result: RuleResult, updater: AnalogUpdater | None = None) -> None:
    """Update every layer's R (and running mean) from the clean pass of ``result``.

    Same as ``UpdateRouter(None, 0, updater).decorrelation(net, result)``.
    """
    UpdateRouter(None, 0.0, updater).decorrelation(net, result)
