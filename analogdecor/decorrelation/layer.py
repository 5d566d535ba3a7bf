"""The decorrelating stage of a layer: z = R (x - mu), with R kept in float or on a tile.

A thin stateful wrapper around the pure rules of
:mod:`analogdecor.decorrelation.rules` (house style: pure steps, thin objects).

On a tile (``DecorrelationConfig.on_tile``) the effective matrix is
R = s * R_tile, where s is a digital output scale in the periphery. The paper's
rule R <- g R (I - eta C) then splits into
  s <- g s                                   (digital, no device touched), and
  R_tile <- R_tile - (eta / k) sum_n (R_tile z_n) z_n^T   (local ordering)
which is one parallel pulsed outer-product update with input z_n and error
R_tile z_n (a forward read of the same tile). The global ordering uses the
transposed read instead: input R_tile^T z_n, error z_n.

Because the gain lives in s, R_tile itself shrinks by about (1 - eta c) per step
at the whitening fixed point (C = c I) while s grows by the inverse factor. Over
runs of T steps with T eta c >> 1 the tile's weights approach the device
resolution; such runs need either a smaller eta or an occasional re-programming
of s R_tile (not done automatically).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from analogdecor.decorrelation import rules
from analogdecor.decorrelation.config import DecorrelationConfig
from analogdecor.errors import ConfigError, ShapeError

__all__ = ["Decorrelator", "TileStep", "fold_linear"]


@dataclass(frozen=True)
class TileStep:
    """One step of R on a tile, as a pulsed outer-product update and a digital gain.

    Applying it means: move the tile's weights by -lr * err^T x / k (one outer product per
    row, as any tile update) and multiply the decorrelator's digital scale by ``gain``.
    :func:`analogdecor.learning.update.route_updates` does that for training; a standalone
    :meth:`Decorrelator.step` applies it as per-sample pulses.
    """

    x: np.ndarray
    """(k, d) float32 input of the outer products."""
    err: np.ndarray
    """(k, d) float32 error of the outer products (not yet divided by k)."""
    gain: float
    """Factor for the digital scale s."""
    lr: float


class Decorrelator:
    """z = R (x - mu) for inputs of dimension ``dim``; R starts at the identity.

    Parameters
    ----------
    dim : int
        Input dimension d.
    config : DecorrelationConfig
        Rule and its parameters.
    tile : object with the Tile contract, optional
        A (dim, dim) tile that stores R (``config.on_tile``); None keeps R in float64.
    """

    def __init__(self, dim: int, config: DecorrelationConfig, *, tile: Any = None) -> None:
        self.dim = int(dim)
        self.config = config
        self.tile = tile
        self.mu = np.zeros(self.dim, dtype=np.float64)
        if tile is None:
            self._set_float(np.eye(self.dim))
        else:
            if (tile.out_size, tile.in_size) != (self.dim, self.dim):
                raise ShapeError(f"R tile is {tile.out_size} x {tile.in_size}: expected {dim} x {dim}")
            if config.rule not in ("ahmad", "zca"):
                raise ConfigError(
                    f"DecorrelationConfig.rule = {config.rule!r} with on_tile = true: only 'ahmad' and 'zca' "
                    "run on a tile (their updates are outer products or programming)"
                )
            scale = config.tile_init_scale
            tile.set_weights(np.eye(self.dim, dtype=np.float32) * scale)
            self.scale = 1.0 / scale

    # ------------------------------------------------------------------ state
    def _set_float(self, R: np.ndarray) -> None:
        self.R = np.asarray(R, dtype=np.float64)
        self._R32 = self.R.astype(np.float32)

    def matrix(self) -> np.ndarray:
        """The effective R (float64; for a tile s * read_weights())."""
        if self.tile is None:
            return self.R.copy()
        return self.scale * self.tile.read_weights().astype(np.float64)

    def state_dict(self) -> dict[str, Any]:
        """Plain arrays: running mean, and R (float) or scale (tile; the tile saves itself)."""
        out: dict[str, Any] = {"mu": self.mu.copy()}
        if self.tile is None:
            out["R"] = self.R.copy()
        else:
            out["scale"] = np.float64(self.scale)
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mu = np.array(state["mu"], dtype=np.float64)
        if self.tile is None:
            self._set_float(np.array(state["R"]))
        else:
            self.scale = float(state["scale"])

    # ------------------------------------------------------------------ forward
    def center(
        self, x: np.ndarray, *, train: bool, mu: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """x - mu with mu = ``mu`` if given, else the batch mean (train) or the running mean (eval)."""
        if not self.config.centring:
            return x, np.zeros(self.dim)
        if mu is None:
            mu = x.mean(axis=0, dtype=np.float64) if train else self.mu
        return (x - mu.astype(np.float32)).astype(np.float32), mu

    def apply(self, xc: np.ndarray) -> np.ndarray:
        """z = R xc for every row of the centred batch ``xc`` (float32)."""
        if self.tile is None:
            return xc @ self._R32.T
        return (self.tile.forward(xc) * np.float32(self.scale)).astype(np.float32)

    def backward(self, e: np.ndarray) -> np.ndarray:
        """R^T e for every row (the transposed read on a tile): the error at the layer input.

        For a training batch centred with its own mean and ``config.mean_gradient``, the
        error's batch mean is subtracted too: the derivative of x - mean(x).
        """
        if self.tile is None:
            out = e @ self._R32
        else:
            out = (self.tile.backward(e) * np.float32(self.scale)).astype(np.float32)
        if self.config.centring and self.config.mean_gradient:
            out = out - out.mean(axis=0, keepdims=True)
        return out

    # ------------------------------------------------------------------ learning
    def update_mean(self, mu_batch: np.ndarray) -> None:
        """Running mean for evaluation: mu <- (1 - m) mu + m mu_batch."""
        if self.config.centring:
            m = self.config.momentum
            self.mu = (1.0 - m) * self.mu + m * np.asarray(mu_batch, dtype=np.float64)

    def step(self, x: np.ndarray, z: np.ndarray, k: int | None = None) -> None:
        """One update of R from a training batch's inputs ``x`` and signals ``z`` (B, d).

        Uses the first k = floor(f B) + 1 samples (batches are shuffled), or the first ``k``
        rows when given (a convolution: every patch position of the first images). R in float takes
        its rule's step; R on a tile takes :meth:`tile_step` as one pulsed update per sample
        (training routes that step through the network's analogue updater instead).
        """
        if self.tile is not None:
            ts = self.tile_step(x, z, k)
            if ts is not None:
                self.tile.update(ts.x, ts.err / np.float32(ts.x.shape[0]), ts.lr)
                self.scale *= ts.gain
            return
        cfg = self.config
        if cfg.rule == "zca" or cfg.lr == 0.0:
            return
        k = rules.subset_size(x.shape[0], cfg.subset_fraction) if k is None else int(k)
        xs = np.asarray(x[:k], dtype=np.float64)
        zs = np.asarray(z[:k], dtype=np.float64)
        if cfg.rule == "ahmad":
            R, _ = rules.ahmad_step(self.R, xs, zs, cfg.lr, ordering=cfg.ordering, gain=cfg.gain)
            self._set_float(R)
        elif cfg.rule == "copi":
            self._set_float(rules.copi_step(self.R, zs, cfg.lr, ordering=cfg.ordering))
        elif cfg.rule == "kappa":
            self._set_float(rules.kappa_step(self.R, zs, cfg.lr, cfg.kappa, ordering=cfg.ordering))
        else:  # pragma: no cover - validated by DecorrelationConfig
            raise ConfigError(f"DecorrelationConfig.rule = {cfg.rule!r}")

    def tile_step(self, x: np.ndarray, z: np.ndarray, k: int | None = None) -> TileStep | None:
        """The paper's rule for R on a tile: the gain for the digital scale, the C term as pulses.

        Nothing is changed here (the tile's forward or transposed read is taken, which
        draws the tile's read noise); None when the rule makes no step (zca, lr = 0).
        """
        cfg = self.config
        if self.tile is None:
            raise ConfigError("tile_step: this decorrelator keeps R in float (no tile)")
        if cfg.rule == "zca" or cfg.lr == 0.0:
            return None
        k = rules.subset_size(x.shape[0], cfg.subset_fraction) if k is None else int(k)
        xs = np.asarray(x[:k], dtype=np.float64)
        zs = np.asarray(z[:k], dtype=np.float64)
        g = rules.gain_factor(xs, zs, cfg.gain)
        z32 = zs.astype(np.float32)
        if cfg.ordering == "local":
            # R_t C = (1/k) sum_n (R_t z_n) z_n^T: input z_n, error R_t z_n (forward read).
            x_in, err = z32, self.tile.forward(z32)
        else:
            # C R_t = (1/k) sum_n z_n (R_t^T z_n)^T: input R_t^T z_n (transposed read), error z_n.
            x_in, err = self.tile.backward(z32), z32
        return TileStep(
            x=np.asarray(x_in, dtype=np.float32), err=np.asarray(err, dtype=np.float32), gain=float(g), lr=cfg.lr
        )

    def refit_zca(self, x: np.ndarray) -> None:
        """Closed-form baseline: R = (Sigma + eps I)^(-1/2), mu = sample mean, from inputs ``x``."""
        R, mu = rules.zca_matrix(x, self.config.zca_eps, centring=self.config.centring)
        self.mu = mu
        if self.tile is None:
            self._set_float(R)
        else:
            self.scale = float(np.abs(R).max()) / self.config.tile_init_scale
            self.tile.program((R / self.scale).astype(np.float32))


def fold_linear(W: np.ndarray, b: np.ndarray, R: np.ndarray, mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fold a decorrelating matrix into the forward weights for inference.

    a = W R (x - mu) + b = W_eff x + b_eff with W_eff = W R and b_eff = b - W R mu
    (arXiv 2407.10780: R is absorbed into the weights after training).

    Returns float32 arrays (W_eff (out, in), b_eff (out,)); products are taken in float64.
    """
    WR = np.asarray(W, dtype=np.float64) @ np.asarray(R, dtype=np.float64)
    b_eff = np.asarray(b, dtype=np.float64) - WR @ np.asarray(mu, dtype=np.float64)
    return WR.astype(np.float32), b_eff.astype(np.float32)
