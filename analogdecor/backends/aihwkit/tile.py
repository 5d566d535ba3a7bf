"""AihwkitTile: analogdecor's Tile contract on one IBM aihwkit analogue tile.

The tile wraps aihwkit's C++ simulator tile (``aihwkit.simulator.tiles.AnalogTile(...).tile``)
and calls its own forward, backward and pulsed update, so every learning rule that
produces (input, error) vectors (BP, FA, DFA, NP) runs on it unchanged.

Randomness: ``seed`` fixes the device-to-device draws (aihwkit's ``construction_seed``)
and analogdecor's own draws (dead devices, programming noise). aihwkit's cycle-to-cycle
noise (read noise, stochastic pulse trains, write noise) comes from a C++ generator
seeded from the clock that Python cannot reach: two runs with the same seed agree
statistically, not bit for bit. :mod:`analogdecor.validation` compares the backends
accordingly.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from analogdecor._arrays import as_batch
from analogdecor.backends.aihwkit._guard import require_aihwkit
from analogdecor.backends.aihwkit.translate import check_translatable, to_rpu_config
from analogdecor.crossbar.config import TileConfig
from analogdecor.crossbar.mapping import conductances_to_weights, weights_to_conductances
from analogdecor.errors import ConfigError, ShapeError

__all__ = ["AihwkitTile"]

_DEVICE_STREAM = 0x5D1E  # spawn key of the numpy stream for analogdecor's own device draws
_PROGRAM_STREAM = 0x960F  # spawn key of the numpy stream for programming noise


class AihwkitTile:
    """An ``out_size`` x ``in_size`` weight matrix on an aihwkit analogue tile.

    Parameters
    ----------
    out_size, in_size : int
        Matrix shape (outputs = rows = the ``d`` side, inputs = columns = the ``x`` side).
    config : TileConfig
        Translated by :func:`~analogdecor.backends.aihwkit.translate.to_rpu_config`; a
        setting with no aihwkit equivalent raises ConfigError naming it.
    seed : int
        Device-to-device draws (see the module notes on aihwkit's clock-seeded noise).

    Notes
    -----
    ``update(x, d, lr)`` is aihwkit's pulsed rank update W <- W - lr sum_n d_n x_n^T,
    applied sample by sample with stochastic pulse trains (Gokmen & Vlasov 2016, eq. 2-4;
    the translation to pulses is in ``../shared/notes/aihwkit-semantics.md``).
    ``device.stuck_fraction`` uses aihwkit's corrupt devices (stuck at a uniform value within
    their own bounds); ``device.dead_fraction`` sets both bounds and both step sizes of the
    chosen devices to zero through aihwkit's hidden device parameters (so do stuck one-sided
    pairs: G+ fixed within its bounds, G- at zero).
    """

    is_analog = True
    backend = "aihwkit"

    def __init__(
        self, out_size: int, in_size: int, config: TileConfig | None = None, *, seed: int = 0
    ) -> None:
        if isinstance(out_size, bool) or isinstance(in_size, bool) or int(out_size) < 1 or int(in_size) < 1:
            raise ShapeError(f"tile size {out_size!r} x {in_size!r}: both must be integers >= 1")
        cfg = config if config is not None else TileConfig()
        check_translatable(cfg)
        require_aihwkit()
        import torch  # noqa: F401  (aihwkit's tensors)
        from aihwkit.simulator.tiles import AnalogTile

        self.out_size = int(out_size)
        self.in_size = int(in_size)
        self.config = cfg
        self.seed = int(seed)
        rpu = to_rpu_config(cfg, seed=self.seed)
        dev = cfg.device
        self.is_pair = bool(dev.one_sided_pair)
        """True for one-sided device pairs (aihwkit OneSidedUnitCell: device 1 holds w+, device 0 w-)."""
        if dev.stuck_fraction > 0 and not self.is_pair:
            # aihwkit's corrupt devices: stuck at a uniform value within the device's own bounds
            rpu.device.corrupt_devices_prob = float(dev.stuck_fraction)
            rpu.device.corrupt_devices_range = float(1e6 * max(dev.w_abs_max, 1.0))
        self._module = AnalogTile(self.out_size, self.in_size, rpu, bias=False)
        self._tile = self._module.tile
        self._lr = float("nan")
        self._names = list(self._tile.get_hidden_parameter_names())
        if dev.dead_fraction > 0 or (self.is_pair and dev.stuck_fraction > 0):
            self._draw_faults()
        self._program_rng = np.random.default_rng([self.seed, _PROGRAM_STREAM])
        self.set_weights(np.zeros((self.out_size, self.in_size), dtype=np.float32))

    # ------------------------------------------------------------------ internals
    def _torch(self, a: np.ndarray) -> Any:
        import torch

        return torch.from_numpy(a)

    def _hidden_rows(self, base: str) -> list[int]:
        """Indices of hidden parameter ``base`` (one per device of a pair: ``base_0``, ``base_1``)."""
        return [
            k
            for k, n in enumerate(self._names)
            if n == base or (n.startswith(base + "_") and n[-1].isdigit())
        ]

    def _draw_faults(self) -> None:
        """Dead devices (and stuck pairs) through aihwkit's hidden device parameters.

        Dead: bounds and step sizes zero (weight 0 for good), chosen with probability
        ``dead_fraction / (1 - stuck_fraction)`` among the devices not stuck. A stuck pair has its
        G+ device fixed at a uniform value within its bounds and its G- device at 0.
        """
        dev = self.config.device
        hidden = self._tile.get_hidden_parameters()
        shape = (self.out_size, self.in_size)
        rng = np.random.default_rng([self.seed, _DEVICE_STREAM])
        u_fault, u_value = rng.random(shape), rng.random(shape)
        frozen = ("max_bound", "min_bound", "dwmin_up", "dwmin_down")
        hi = np.stack([hidden[k].numpy() for k in self._hidden_rows("max_bound")])
        lo = np.stack([hidden[k].numpy() for k in self._hidden_rows("min_bound")])
        healthy = np.all(hi != lo, axis=0)
        if self.is_pair:
            stuck = u_fault < dev.stuck_fraction
            dead = ~stuck & (u_fault < dev.stuck_fraction + dev.dead_fraction)
            plus = self._names.index("max_bound_1"), self._names.index("min_bound_1")
            value = lo[1] + (hi[1] - lo[1]) * u_value  # G+ device's stuck value, within its bounds
            stuck_t = self._torch(stuck)
            for name in frozen:
                for k in self._hidden_rows(name):
                    hidden[k][stuck_t] = 0.0
            for k in plus:
                hidden[k][stuck_t] = self._torch(value.astype(np.float32))[stuck_t]
            for k in self._hidden_rows("hidden_weights"):
                hidden[k][stuck_t] = hidden[plus[0]][stuck_t] if self._names[k].endswith("_1") else 0.0
        else:
            dead = healthy & (u_fault < dev.dead_fraction / max(1.0 - dev.stuck_fraction, 1e-12))
        dead_t = self._torch(dead)
        for name in (*frozen, "hidden_weights"):
            for k in self._hidden_rows(name):
                hidden[k][dead_t] = 0.0
        self._tile.set_hidden_parameters(hidden)

    def _set_lr(self, lr: float) -> None:
        if lr != self._lr:
            self._tile.set_learning_rate(lr)
            self._lr = lr

    # ------------------------------------------------------------------ the Tile contract
    def forward(self, x: Any) -> np.ndarray:
        """Analogue read y = W x per sample through the forward periphery: (B, in) -> (B, out) float32."""
        xb = as_batch("x", x, self.in_size, "in_size", vector_ok=True)
        return (
            self._tile.forward(self._torch(xb), False, False, False, False)
            .numpy()
            .astype(np.float32, copy=False)
        )

    def backward(self, d: Any) -> np.ndarray:
        """Transposed read W^T d per sample through the backward periphery: (B, out) -> (B, in) float32."""
        db = as_batch("d", d, self.out_size, "out_size", vector_ok=True)
        return (
            self._tile.backward(self._torch(db), False, False, False).numpy().astype(np.float32, copy=False)
        )

    def update(self, x: Any, d: Any, lr: float) -> None:
        """Pulsed update W <- W - lr sum_n d_n x_n^T, sample by sample (aihwkit's own rank update).

        ``lr`` < 0 is applied as ``|lr|`` with ``-d`` (aihwkit takes positive rates only).
        """
        xb = as_batch("x", x, self.in_size, "in_size", vector_ok=True)
        db = as_batch("d", d, self.out_size, "out_size", vector_ok=True)
        if xb.shape[0] != db.shape[0]:
            raise ShapeError(f"x has {xb.shape[0]} samples but d has {db.shape[0]}")
        lr = float(lr)
        if not np.isfinite(lr):
            raise ConfigError(f"lr = {lr!r}: must be a finite number")
        if lr == 0.0:
            return
        if lr < 0:
            lr, db = -lr, -db
        self._set_lr(lr)
        self._tile.update(self._torch(xb), self._torch(np.ascontiguousarray(db)), False)

    def set_weights(self, W: Any) -> None:
        """Exact write (no noise), clipped to each device's bounds."""
        w = np.array(W, dtype=np.float32, copy=True)
        if w.shape != (self.out_size, self.in_size):
            raise ShapeError(f"W has shape {w.shape}: expected ({self.out_size}, {self.in_size})")
        if not np.all(np.isfinite(w)):
            raise ShapeError("W contains NaN or infinite values")
        self._tile.set_weights(self._torch(w))

    def program(self, W: Any) -> None:
        """Write ``W`` with Gaussian programming error ``device.prog_noise_std * max(|w_min|, |w_max|)``.

        The error is drawn from this tile's own numpy stream (aihwkit's training tiles have no
        programming model), then written and clipped to the device bounds; with write noise the
        read-out gets fresh write noise, as on the numba tile.
        """
        w = np.array(W, dtype=np.float64, copy=True)
        if w.shape != (self.out_size, self.in_size):
            raise ShapeError(f"W has shape {w.shape}: expected ({self.out_size}, {self.in_size})")
        dev = self.config.device
        if dev.prog_noise_std > 0:
            w = w + dev.prog_noise_std * dev.w_abs_max * self._program_rng.standard_normal(w.shape)
        self.set_weights(w)
        if dev.write_noise_std > 0 and dev.model != "ideal":
            # re-setting the hidden parameters makes aihwkit store the weights as the persistent
            # ones and draw fresh write noise on the read-out (PulsedRPUDevice::onSetWeights)
            self._tile.set_hidden_parameters(self._tile.get_hidden_parameters())

    def read_weights(self) -> np.ndarray:
        """(out, in) float32 copy of the weights the reads see (with write noise, if any)."""
        return self._tile.get_weights().numpy().astype(np.float32, copy=True)

    @property
    def w_scale(self) -> float:
        """Weight that maps onto g_max - g_min: ``mapping.w_scale``, or the largest |bound| of the devices.

        The same rule as :attr:`analogdecor.crossbar.tile.Tile.w_scale`.
        """
        if self.config.mapping.w_scale is not None:
            return float(self.config.mapping.w_scale)
        h = self._tile.get_hidden_parameters().numpy()
        rows = self._hidden_rows("max_bound") + self._hidden_rows("min_bound")
        limit = float(np.abs(h[rows]).max())
        return limit if limit > 0 else float(self.config.device.w_abs_max)

    def conductances(self) -> tuple[np.ndarray, np.ndarray]:
        """(G+, G-) in microsiemens of the weights a read sees, through :mod:`analogdecor.crossbar.mapping`.

        Dead devices (weight 0) read G+ = G- = g_min, as on the numba tile. For one-sided pairs
        G+ and G- are the two devices' own conductances (their hidden weights w+ and w-).
        """
        m = self.config.mapping
        scale = self.w_scale
        if self.is_pair:
            h = self.hidden_parameters()

            def g(v: np.ndarray) -> np.ndarray:
                return weights_to_conductances(
                    np.clip(v.astype(np.float64), 0.0, scale), m.g_min, m.g_max, scale
                )[0]

            return g(h["hidden_weights_1"]), g(h["hidden_weights_0"])
        w = np.clip(self.read_weights().astype(np.float64), -scale, scale)
        return weights_to_conductances(w, m.g_min, m.g_max, scale)

    def weights_from_conductances(self, g_plus: Any, g_minus: Any) -> np.ndarray:
        """Weights of a conductance pair under this tile's mapping (inverse of :meth:`conductances`)."""
        m = self.config.mapping
        return conductances_to_weights(g_plus, g_minus, m.g_min, m.g_max, self.w_scale).astype(np.float32)

    def hidden_parameters(self) -> dict[str, np.ndarray]:
        """aihwkit's per-device hidden parameters (bounds, step sizes, slopes, persistent weights)."""
        hidden = self._tile.get_hidden_parameters().numpy()
        return {name: hidden[k].copy() for k, name in enumerate(self._names)}

    def state_dict(self) -> dict[str, Any]:
        """Weights, hidden device parameters and learning rate as plain numpy arrays and scalars."""
        state: dict[str, Any] = {
            "backend": "aihwkit",
            "out_size": self.out_size,
            "in_size": self.in_size,
            "seed": self.seed,
            "learning_rate": self._lr,
            "weights": self.read_weights(),
        }
        for name, value in self.hidden_parameters().items():
            state[f"hidden.{name}"] = value
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`.

        Weights and every hidden device parameter are restored exactly. With write noise
        (``device.write_noise_std`` > 0) aihwkit keeps a persistent weight under the read-out;
        its API can set the persistent weight but not the read-out independently, so the
        persistent weight is restored exactly and the read-out noise is drawn afresh.
        """
        if (int(state["out_size"]), int(state["in_size"])) != (self.out_size, self.in_size):
            raise ShapeError(
                f"state is for a {state['out_size']} x {state['in_size']} tile, this tile is "
                f"{self.out_size} x {self.in_size}"
            )
        missing = [n for n in self._names if f"hidden.{n}" not in state]
        if missing:
            raise ConfigError(f"state_dict lacks hidden parameters {missing} of this device model")
        import torch

        hidden = torch.from_numpy(
            np.stack([np.asarray(state[f"hidden.{n}"], dtype=np.float32) for n in self._names])
        )
        persistent = "persistent_weights" in self._names
        key = "hidden.persistent_weights" if persistent else "weights"
        weights = torch.from_numpy(np.ascontiguousarray(np.asarray(state[key], dtype=np.float32)))
        # bounds first (set_weights clips to them), then the weights; with write noise, setting the
        # hidden parameters once more stores the weights as persistent and draws the read-out noise
        self._tile.set_hidden_parameters(hidden)
        self._tile.set_weights(weights)
        if persistent:
            self._tile.set_hidden_parameters(hidden)
        self.seed = int(state.get("seed", self.seed))
        lr = float(state.get("learning_rate", float("nan")))
        self._lr = float("nan")
        if np.isfinite(lr):
            self._set_lr(lr)

    def __repr__(self) -> str:
        return f"AihwkitTile({self.out_size}, {self.in_size}, model={self.config.device.model!r}, seed={self.seed})"
