"""The emulated crossbar tile: weights stored as device states, read and updated like hardware.

:class:`Tile` is a thin stateful wrapper around the pure kernels of
:mod:`analogdecor.crossbar._forward` (reads with periphery),
:mod:`analogdecor.crossbar._update` (parallel pulsed update) and the device
draws of :mod:`analogdecor.devices.arrays`. All its state is plain NumPy arrays
(see :meth:`Tile.state_dict`). Semantics follow IBM aihwkit's analogue tiles
(Gokmen & Vlasov, Front. Neurosci. 10:333, 2016; Rasch et al., AICAS 2021);
../shared/notes/aihwkit-semantics.md lists the equations.
"""

from __future__ import annotations

import json
import math

import numpy as np

from analogdecor._arrays import as_batch
from analogdecor.config import from_dict, to_dict
from analogdecor.crossbar import _refresh, _update
from analogdecor.crossbar._forward import analog_read, draw_seeds
from analogdecor.crossbar.config import TileConfig
from analogdecor.crossbar.mapping import conductances_to_weights, level_step, weights_to_conductances
from analogdecor.devices.arrays import (
    ALIVE,
    MODEL_CODES,
    DeviceArrays,
    PairArrays,
    draw_device_arrays,
    draw_pair_arrays,
)
from analogdecor.errors import ConfigError, DataError, NonFiniteError, ShapeError

__all__ = ["Tile"]

_DUMMY = np.zeros((1, 1), np.float32)  # stands in for the pair arrays of ordinary tiles
_NEW_PAIR = ("reset_plus", "reset_minus")  # pair arrays that older state dicts lack
_NO_MASKS = (np.zeros((1, 1), np.int32), np.zeros((1, 1, 1), np.uint64), np.zeros(1, np.int32))  # deterministic


def _check_size(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ConfigError(f"{name} = {value!r}: must be an integer >= 1")
    return int(value)


def _check_seed(name: str, value, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise ConfigError(f"{name} = {value!r}: must be an integer >= 0")
    return int(value)


def _encode_rng(rng: np.random.Generator) -> np.ndarray:
    st = rng.bit_generator.state
    if st["bit_generator"] != "PCG64":  # pragma: no cover - we only build PCG64
        raise ValueError(f"cannot encode {st['bit_generator']} state")
    mask = (1 << 64) - 1
    s, inc = st["state"]["state"], st["state"]["inc"]
    return np.array([s >> 64, s & mask, inc >> 64, inc & mask, st["has_uint32"], st["uinteger"]], np.uint64)


def _decode_rng(words: np.ndarray) -> np.random.Generator:
    w = [int(v) for v in np.asarray(words, np.uint64)]
    if len(w) != 6:
        raise ValueError(f"rng state must have 6 words, got {len(w)}")
    bg = np.random.PCG64()
    bg.state = {"bit_generator": "PCG64", "state": {"state": (w[0] << 64) | w[1], "inc": (w[2] << 64) | w[3]},
                "has_uint32": w[4], "uinteger": w[5]}  # fmt: skip
    return np.random.Generator(bg)


class Tile:
    """An emulated analogue crossbar holding an ``(out_size, in_size)`` weight matrix.

    Parameters
    ----------
    out_size, in_size
        Rows (outputs) and columns (inputs) of the weight matrix.
    config
        Device model, periphery per read direction, update and mapping settings.
    seed
        Seed of all randomness. ``SeedSequence(seed).spawn(2)`` gives one
        generator for the device-to-device draws and one for cycle noise (reads,
        pulses, programming).
    device_seed
        If given, the device-to-device draws come from it instead, so the same
        chip can be run with different noise seeds.

    Notes
    -----
    Weights are in normalised weight units (those of ``config.device``); the
    physical view is :meth:`conductances` (differential pair, uS). The tile keeps
    a hidden weight per device and an apparent weight that reads see (hidden
    weight plus write noise, redrawn each time a device is written; equal to the
    hidden weight without write noise). Same seed, same calls -> the same results
    bit for bit, whatever the number of threads.

    Examples
    --------
    >>> import numpy as np
    >>> from analogdecor.crossbar import Tile, TileConfig
    >>> tile = Tile(3, 4, TileConfig.ideal(), seed=0)
    >>> tile.set_weights(np.full((3, 4), 0.5, np.float32))
    >>> tile.forward(np.ones((2, 4), np.float32))
    array([[2., 2., 2.],
           [2., 2., 2.]], dtype=float32)
    """

    def __init__(self, out_size: int, in_size: int, config: TileConfig | None = None, *,
                 seed: int = 0, device_seed: int | None = None) -> None:  # fmt: skip
        self.out_size = _check_size("out_size", out_size)
        self.in_size = _check_size("in_size", in_size)
        if config is None:
            config = TileConfig()
        if not isinstance(config, TileConfig):
            raise ConfigError(f"config must be a TileConfig, got {type(config).__name__}")
        self.config = config
        self.seed = _check_seed("seed", seed)
        self.device_seed = _check_seed("device_seed", device_seed, allow_none=True)
        dev_ss, cyc_ss = np.random.SeedSequence(self.seed).spawn(2)
        if self.device_seed is not None:
            dev_ss = np.random.SeedSequence(self.device_seed).spawn(1)[0]
        self._rng = np.random.Generator(np.random.PCG64(cyc_ss))
        dev = config.device
        limit = config.mapping.w_scale
        shape = (self.out_size, self.in_size)
        dev_rng = np.random.Generator(np.random.PCG64(dev_ss))
        self._pair: PairArrays | None = None
        if dev.one_sided_pair:
            self._dev, self._pair, wp0, wm0 = draw_pair_arrays(dev, shape, dev_rng, limit)
        else:
            self._dev, w0 = draw_device_arrays(dev, shape, dev_rng, limit)
        if limit is None:
            limit = float(max(np.abs(self._dev.b_min).max(), np.abs(self._dev.b_max).max()))
            if limit == 0.0:
                limit = dev.w_abs_max
        self.w_scale = float(limit)
        """Weight that maps onto g_max - g_min: ``mapping.w_scale``, or the largest |bound| of the devices."""
        self._level_step = level_step(self.w_scale, config.mapping.levels)
        self._set_device_views()
        self.refresh_count = 0
        """Number of one-sided pairs refreshed so far (``device.one_sided_pair``)."""
        if self._pair is not None:
            self._wp = self._snap(wp0, self._pair.lo_plus, self._dev.b_max)
            self._wm = self._snap(wm0, self._pair.lo_minus, -self._dev.b_min)
            self._w = self._wp - self._wm
        else:
            self._w = self._snap(w0)
        self._w_read = self._w.copy()
        self._masks = _update.MaskBuffers()
        self._pulses = np.zeros((2, *shape), np.uint64)

    def use_w_scale(self, w_scale: float) -> None:
        """Map ``w_scale`` onto g_max - g_min from now on (the arrays of one logical tile share one scale).

        Only a scale at least as large as every device's |bound| keeps every
        conductance in range; the conductance levels follow the new scale.
        """
        if not (math.isfinite(w_scale) and w_scale > 0):
            raise ConfigError(f"w_scale = {w_scale!r}: must be a finite number > 0")
        self.w_scale = float(w_scale)
        self._level_step = level_step(self.w_scale, self.config.mapping.levels)

    def _set_device_views(self) -> None:
        """Derived views of the device arrays (call whenever ``self._dev`` is replaced)."""
        self._alive = self._dev.fault == ALIVE
        self._any_fault = not bool(self._alive.all())

    # ------------------------------------------------------------------ reads
    def forward(self, x) -> np.ndarray:
        """Analogue forward read ``y = W x`` per row of ``x`` (B, in_size) through ``config.forward``.

        Returns (B, out_size) float32. With a perfect periphery this is exactly
        ``x.astype(float32) @ W.T``.
        """
        x = as_batch("x", x, self.in_size, "in_size")
        return analog_read(self._w_read.T, x, self.config.forward, self._rng)

    def backward(self, d) -> np.ndarray:
        """Transposed read ``W^T d`` per row of ``d`` (B, out_size) through ``config.backward``."""
        d = as_batch("d", d, self.out_size, "out_size")
        return analog_read(self._w_read, d, self.config.backward, self._rng)

    # ------------------------------------------------------------------ update
    def update(self, x, d, lr: float) -> None:
        """Apply ``W <- W - lr * sum_n d_n x_n^T`` as the hardware would.

        Parameters
        ----------
        x
            (B, in_size) inputs of the layer (the column lines).
        d
            (B, out_size) errors (the row lines). Divide by B beforehand for a
            batch mean.
        lr
            Learning rate (finite; may be negative).

        Notes
        -----
        Stochastic or deterministic pulse trains are applied sample by sample
        (:mod:`analogdecor.crossbar._update`). With ``update.pulse_type = "none"``
        or an ``ideal`` device, the exact float32 update
        ``W - float32(lr) * (d.T @ x)`` is applied at once and clipped to the
        device bounds (float SGD semantics).
        """
        x = as_batch("x", x, self.in_size, "in_size")
        d = as_batch("d", d, self.out_size, "out_size")
        if x.shape[0] != d.shape[0]:
            raise ShapeError(f"x has {x.shape[0]} rows but d has {d.shape[0]}; they must match (batch size)")
        if isinstance(lr, bool) or not isinstance(lr, int | float | np.floating | np.integer) or not math.isfinite(lr):
            raise ValueError(f"lr = {lr!r}: must be a finite number")
        lr = float(lr)
        if lr == 0.0 or x.shape[0] == 0:
            return
        cfg = self.config
        dev = cfg.device
        if cfg.update.pulse_type == "none" or dev.model == "ideal":
            self._float_update(x, d, lr)
            return
        self._pulse_trains(x, d, lr)
        if self._pair is not None:
            self._refresh_pairs()

    def _pulse_trains(self, x: np.ndarray, d: np.ndarray, lr: float) -> None:
        """The pulsed update of ``-lr d^T x`` (validated inputs, pulse_type stochastic or deterministic)."""
        cfg = self.config
        dev = cfg.device
        try:
            bl, scale_x, scale_d = _update.pulse_management(
                x, d, lr, dev.weight_granularity, cfg.update.desired_bl, cfg.update.update_management,
                cfg.update.update_bl_management)  # fmt: skip
        except ValueError as exc:  # pulse counts overflow: inputs or errors beyond any device's reach
            raise NonFiniteError(str(exc)) from None
        if not bl.any():
            return
        deterministic = cfg.update.pulse_type == "deterministic"
        seeds = draw_seeds(self._rng)
        work = x.shape[0] * self.out_size * self.in_size
        if deterministic:
            fcol, fmask, nfired = _NO_MASKS
        else:
            fcol, fmask, nfired = self._masks.get(x.shape[0], self.in_size, _update.n_mask_words(bl.max()))
            _update.draw_x_lines(x, bl, scale_x, seeds[0], fcol, fmask, nfired, work=work)
        a = self._dev
        if self._pair is not None:
            pair_args = (self._wp, self._wm, self._pair.lo_plus, self._pair.lo_minus)
        else:
            pair_args = (_DUMMY, _DUMMY, _DUMMY, _DUMMY)
        _update.pulse_rows(
            MODEL_CODES[dev.model], self._pair is not None, deterministic, self._any_fault,
            self._w, self._w_read, *pair_args, x, d, 1.0 if lr > 0 else -1.0, bl, scale_x, scale_d,
            fcol, fmask, nfired, seeds[1], a.scale_up, a.scale_down, a.shape_up, a.shape_down,
            a.b_min, a.b_max, a.fault, float(dev.dw_min_std), bool(dev.mult_noise),
            float(dev.a), float(dev.b), float(dev.gamma_up), float(dev.gamma_down), float(dev.A_up),
            float(dev.A_down), float(dev.dw_min_std_add), float(dev.dw_min_std_slope),
            np.asarray(dev.piecewise_up, np.float64), np.asarray(dev.piecewise_down, np.float64),
            float(dev.write_noise_std * dev.dw_min), float(self._level_step), self._pulses, work=work,
        )  # fmt: skip

    def apply_accumulator(self, chi: np.ndarray) -> None:
        """Fire the pulses a digital accumulator holds (mixed-precision training), keeping the rest in ``chi``.

        Parameters
        ----------
        chi
            (out_size, in_size) float array of desired weight changes (float64
            keeps the remainders exactly), updated in place.

        Notes
        -----
        With g = ``device.weight_granularity`` (the weight change one pulse is
        taken to give), device (i, j) gets n = |trunc(chi_ij / g)| pulses, at most
        ``update.desired_bl`` per call, of the sign of chi_ij, applied pulse by
        pulse with the device's own step, cycle noise and bounds; then its weight
        is snapped to the conductance levels and its apparent weight gets fresh
        write noise, as after a pulsed update. ``chi_ij`` keeps the remainder
        ``chi_ij - sign(chi_ij) n g`` (Nandakumar et al., Front. Neurosci. 14:406,
        2020). Only devices with |chi_ij| >= g are visited. With
        ``update.pulse_type = "none"`` or an ``ideal`` device the weights move by
        exactly ``n g`` (float32, clipped to the bounds). Results do not depend on
        the thread count. The fired pulses add to :meth:`pulse_counts` (not on
        ideal or pulse-free tiles, which fire none).
        """
        if not isinstance(chi, np.ndarray) or chi.dtype.kind != "f":
            raise TypeError("chi must be a floating-point NumPy array (float64 keeps the remainders exactly)")
        if chi.shape != (self.out_size, self.in_size):
            raise ShapeError(f"chi has shape {chi.shape}; expected (out_size, in_size) = "
                             f"({self.out_size}, {self.in_size})")  # fmt: skip
        cfg = self.config
        dev = cfg.device
        g = float(dev.weight_granularity)
        if cfg.update.pulse_type == "none" or dev.model == "ideal":
            n = np.clip(np.trunc(chi / g), -cfg.update.desired_bl, cfg.update.desired_bl)
            chi -= n * g
            self._float_step((-(n * g)).astype(np.float32))
            return
        a = self._dev
        if self._pair is not None:
            pair_args = (self._wp, self._wm, self._pair.lo_plus, self._pair.lo_minus)
        else:
            pair_args = (_DUMMY, _DUMMY, _DUMMY, _DUMMY)
        seed = draw_seeds(self._rng)[0]
        # the kernel takes C-contiguous float64; anything else (a torch state cast to float32) via a copy
        work = chi if chi.dtype == np.float64 and chi.flags.c_contiguous else np.ascontiguousarray(chi, np.float64)
        _update.mixed_rows(
            MODEL_CODES[dev.model], self._pair is not None, self._any_fault,
            self._w, self._w_read, *pair_args, work, g, int(cfg.update.desired_bl), seed,
            a.scale_up, a.scale_down, a.shape_up, a.shape_down, a.b_min, a.b_max, a.fault,
            float(dev.dw_min_std), bool(dev.mult_noise), float(dev.a), float(dev.b), float(dev.gamma_up),
            float(dev.gamma_down), float(dev.A_up), float(dev.A_down), float(dev.dw_min_std_add),
            float(dev.dw_min_std_slope), np.asarray(dev.piecewise_up, np.float64),
            np.asarray(dev.piecewise_down, np.float64), float(dev.write_noise_std * dev.dw_min),
            float(self._level_step), self._pulses,
        )  # fmt: skip
        if work is not chi:
            chi[...] = work
        if self._pair is not None:
            self._refresh_pairs()

    def _float_update(self, x: np.ndarray, d: np.ndarray, lr: float) -> None:
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported just below
            step = np.float32(lr) * (d.T @ x)
        if not np.isfinite(step).all():  # overflow of float32 (huge lr or inputs)
            raise NonFiniteError("update produced non-finite weights (float32 overflow); reduce lr or the inputs")
        self._float_step(step)

    def _float_step(self, step: np.ndarray) -> None:
        """W <- W - step exactly (float32), clipped to the bounds; written devices get write noise."""
        old = self._w
        if self._pair is None:
            self._commit(self._w - step, noisy=True)
        else:  # increments raise G+, decrements raise G-
            wp = np.clip(self._wp - np.minimum(step, 0), self._pair.lo_plus, self._dev.b_max)
            wm = np.clip(self._wm + np.maximum(step, 0), self._pair.lo_minus, -self._dev.b_min)
            self._commit_pair(wp, wm, noisy=True, written=self._w != (wp - wm))
            self._refresh_pairs()
        if self._pair is None:
            self._refresh_read(self._w != old)

    # ------------------------------------------------------------------ writes
    def set_weights(self, weights) -> None:
        """Write ``weights`` (out_size, in_size) exactly: clipped to each device's bounds, no noise.

        Stuck and dead devices keep their values; conductance levels apply. A
        one-sided pair gets the smallest (w+, w-) with w+ - w- = w.
        """
        self._commit(self._check_matrix("weights", weights), noisy=False)

    def program(self, weights) -> None:
        """Write ``weights`` with programming noise (``device.prog_noise_std``) and write noise.

        Each alive device gets ``w + prog_noise_std * w_abs_max * xi``, clipped to
        its bounds and snapped to the conductance levels; its apparent weight gets
        fresh write noise (``write_noise_std * dw_min``).
        """
        w = self._check_matrix("weights", weights).astype(np.float64)
        dev = self.config.device
        if dev.prog_noise_std > 0:
            w = w + dev.prog_noise_std * dev.w_abs_max * self._rng.standard_normal(w.shape)
        self._commit(w.astype(np.float32), noisy=True)
        if self._pair is None:
            self._refresh_read(self._alive)

    def _commit(self, w: np.ndarray, *, noisy: bool) -> None:
        """Store target weights ``w`` on the alive devices (clip, levels); exact read unless ``noisy``."""
        if self._pair is not None:
            self._commit_pair(*self._split(w), noisy=noisy, written=self._alive)
            return
        w = self._snap(np.clip(w, self._dev.b_min, self._dev.b_max))
        self._w = np.where(self._alive, w, self._w).astype(np.float32)
        if not noisy:
            self._w_read = self._w.copy()

    def _split(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The smallest one-sided pair (w+, w-) with w+ - w- = w, within the devices' bounds and levels."""
        p = self._pair
        assert p is not None  # only called for one-sided pairs
        wm = np.maximum(p.lo_minus, p.lo_plus - np.asarray(w, np.float64))
        wp = w + wm
        wp = self._snap(np.clip(wp, p.lo_plus, self._dev.b_max), p.lo_plus, self._dev.b_max)
        wm = self._snap(np.clip(wm, p.lo_minus, -self._dev.b_min), p.lo_minus, -self._dev.b_min)
        return wp, wm

    def _commit_pair(self, wp: np.ndarray, wm: np.ndarray, *, noisy: bool, written: np.ndarray) -> None:
        self._wp = np.where(self._alive, wp, self._wp).astype(np.float32)
        self._wm = np.where(self._alive, wm, self._wm).astype(np.float32)
        self._w = (self._wp - self._wm).astype(np.float32)
        if noisy:
            self._refresh_read(written & self._alive)
        else:
            self._w_read = self._w.copy()

    def _refresh_pairs(self) -> None:
        """Refresh saturating one-sided pairs (aihwkit ``OneSidedUnitCell``, after each update).

        A pair whose larger device exceeds ``refresh_upper_thres * w_max`` while
        the smaller exceeds ``refresh_lower_thres * w_max`` is refreshed.
        ``device.refresh_write = "pulsed"`` (aihwkit's way, :mod:`analogdecor.crossbar._refresh`):
        the criterion sees both devices read through ``config.forward``, both devices
        are reset to their noisy reset values and the read difference is rewritten with
        the pulse trains of ``config.update`` (x = e_j, d = the differences, lr = -1),
        column by column (G+ then G-). ``"exact"``: exact reads, both devices back to
        their lower bounds and the difference written exactly.
        """
        dev = self.config.device
        p = self._pair
        assert p is not None  # only called for one-sided pairs
        pulsed = dev.refresh_write == "pulsed"
        if pulsed:
            rp = _refresh.unit_read(self._wp, self.config.forward, self._rng)
            rm = _refresh.unit_read(self._wm, self.config.forward, self._rng)
        else:
            rp, rm = self._wp, self._wm
        hit = _refresh.refresh_criterion(rp, rm, dev.w_max, dev.refresh_upper_thres, dev.refresh_lower_thres)
        hit &= self._alive
        if not hit.any():
            return
        self.refresh_count += int(hit.sum())
        if not pulsed:
            wp, wm = self._split(self._wp.astype(np.float64) - self._wm)
            self._wp = np.where(hit, wp, self._wp).astype(np.float32)
            self._wm = np.where(hit, wm, self._wm).astype(np.float32)
            self._w = (self._wp - self._wm).astype(np.float32)
            self._refresh_read(hit)
            return
        diff = np.where(hit, rp - rm, np.float32(0.0)).astype(np.float32)
        self._wp = _refresh.reset_devices(self._wp, hit, p.reset_plus, dev.reset_std, p.lo_plus, self._dev.b_max,
                                          self._rng)  # fmt: skip
        self._wm = _refresh.reset_devices(self._wm, hit, p.reset_minus, dev.reset_std, p.lo_minus,
                                          -self._dev.b_min, self._rng)  # fmt: skip
        self._w = (self._wp - self._wm).astype(np.float32)
        if self.config.update.pulse_type == "none":  # rewrite of a float-update tile: exact, clipped
            self._wp = np.clip(self._wp + np.maximum(diff, 0), p.lo_plus, self._dev.b_max).astype(np.float32)
            wm = np.clip(self._wm + np.maximum(-diff, 0), p.lo_minus, -self._dev.b_min)
            self._wm = wm.astype(np.float32)
            self._w = (self._wp - self._wm).astype(np.float32)
        else:
            x, d = _refresh.rewrite_samples(diff)
            if x.shape[0]:
                self._pulse_trains(x, d, -1.0)
        self._refresh_read(hit)

    def _refresh_read(self, written: np.ndarray) -> None:
        """Apparent weights of the ``written`` devices: hidden weight + fresh write noise (if any)."""
        dev = self.config.device
        if dev.write_noise_std > 0 and dev.model != "ideal":
            noise = (dev.write_noise_std * dev.dw_min) * self._rng.standard_normal(self._w.shape)
            fresh = (self._w + noise).astype(np.float32)
            self._w_read = np.where(written, fresh, self._w_read)
            self._w_read[~self._alive] = self._w[~self._alive]
        else:
            self._w_read = self._w.copy()

    def _snap(self, w: np.ndarray, lo: np.ndarray | None = None, hi: np.ndarray | None = None) -> np.ndarray:
        """Snap to the conductance levels inside [lo, hi] (default: the weight bounds)."""
        w = np.asarray(w, np.float32)
        if self._level_step <= 0:
            return w
        lo = self._dev.b_min if lo is None else lo
        hi = self._dev.b_max if hi is None else hi
        step = self._level_step
        q = np.rint(w.astype(np.float64) / step) * step
        q = np.where(q > hi, q - step, q)
        q = np.where(q < lo, q + step, q)
        ok = (q <= hi) & (q >= lo)
        return np.where(ok, q, w).astype(np.float32)

    def _check_matrix(self, name: str, weights) -> np.ndarray:
        w = np.asarray(weights)
        if w.shape != (self.out_size, self.in_size):
            raise ShapeError(f"{name} has shape {w.shape}; expected (out_size, in_size) = "
                             f"({self.out_size}, {self.in_size})")  # fmt: skip
        with np.errstate(over="ignore", invalid="ignore"):  # overflow shows up as inf, reported below
            w = np.asarray(w, np.float32)
        if not np.isfinite(w).all():
            raise ValueError(f"{name} contains NaN or inf; refusing to write it into the conductances")
        return w

    # ------------------------------------------------------------------ views
    def read_weights(self) -> np.ndarray:
        """The weights a read sees (hidden weight + write noise), (out_size, in_size) float32 copy."""
        return self._w_read.copy()

    def hidden_weights(self) -> np.ndarray:
        """The devices' hidden weights (without write noise), float32 copy."""
        return self._w.copy()

    def conductances(self) -> tuple[np.ndarray, np.ndarray]:
        """(G+, G-) in microsiemens of the weights a read sees (mapping of ``config.mapping``).

        Dead devices read G+ = G- = g_min. ``conductances_to_weights(G+, G-, g_min,
        g_max, tile.w_scale)`` gives back :meth:`read_weights` (to float rounding).
        For one-sided pairs G+ and G- are the two devices' own conductances (of
        their hidden weights w+ and w-; write noise is not included).
        """
        m = self.config.mapping
        if self._pair is not None:
            def g(v):
                return weights_to_conductances(np.clip(v.astype(np.float64), 0.0, self.w_scale), m.g_min, m.g_max,
                                               self.w_scale)[0]  # fmt: skip
            return g(self._wp), g(self._wm)
        w = np.clip(self._w_read.astype(np.float64), -self.w_scale, self.w_scale)
        return weights_to_conductances(w, m.g_min, m.g_max, self.w_scale)

    def weights_from_conductances(self, g_plus, g_minus) -> np.ndarray:
        """Weights of a conductance pair under this tile's mapping (inverse of :meth:`conductances`)."""
        m = self.config.mapping
        return conductances_to_weights(g_plus, g_minus, m.g_min, m.g_max, self.w_scale).astype(np.float32)

    def pulse_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """(up, down) pulses fired at every device by pulsed updates so far, uint64 (out_size, in_size).

        Up pulses raise the weight, down pulses lower it (one-sided pairs: pulses
        into G+ and into G-). Counted in the update kernel itself, faulty devices
        included; float updates (``pulse_type = "none"``, ideal devices),
        programming and pair refreshes fire no counted pulses. uint64 cannot
        overflow in any run (1.8e19 pulses).
        """
        return self._pulses[0].copy(), self._pulses[1].copy()

    @property
    def device_arrays(self) -> DeviceArrays:
        """The hidden per-device parameters (bounds, step sizes, faults); read-only by convention."""
        return self._dev

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """All state as plain NumPy arrays and scalars (restores bit for bit with :meth:`load_state_dict`)."""
        out = {
            "out_size": np.int64(self.out_size),
            "in_size": np.int64(self.in_size),
            "config_json": np.str_(json.dumps(to_dict(self.config), sort_keys=True)),
            "seed": np.int64(self.seed),
            "device_seed": np.int64(-1 if self.device_seed is None else self.device_seed),
            "w_scale": np.float64(self.w_scale),
            "w": self._w.copy(),
            "w_read": self._w_read.copy(),
            "rng_state": _encode_rng(self._rng),
            "refresh_count": np.int64(self.refresh_count),
            "pulses_up": self._pulses[0].copy(),
            "pulses_down": self._pulses[1].copy(),
        }
        if self._pair is not None:
            out["pair.w_plus"] = self._wp.copy()
            out["pair.w_minus"] = self._wm.copy()
            for name, arr in self._pair.as_dict().items():
                out[f"pair.{name}"] = arr.copy()
        for name, arr in self._dev.as_dict().items():
            out[f"device.{name}"] = arr.copy()
        return out

    def load_state_dict(self, state: dict) -> None:
        """Restore the state saved by :meth:`state_dict` (same shape required)."""
        shape = (self.out_size, self.in_size)
        missing = [k for k in ("w", "w_read", "rng_state", "w_scale") if k not in state]
        missing += [f"device.{n}" for n in DeviceArrays.names() if f"device.{n}" not in state]
        pair_names = [n for n in PairArrays.names() if n not in _NEW_PAIR]
        pair_keys = ("pair.w_plus", "pair.w_minus", *[f"pair.{n}" for n in pair_names])
        if self._pair is not None or "pair.w_plus" in state:
            missing += [k for k in pair_keys if k not in state]
        if missing:
            raise ConfigError(f"state dict lacks {', '.join(missing)}")
        arrays = {}
        keys = ["w", "w_read", *[f"device.{n}" for n in DeviceArrays.names()]]
        if "pair.w_plus" in state:
            keys += list(pair_keys)
        for key in keys:
            arr = np.asarray(state[key])
            if arr.shape != shape:
                raise ShapeError(f"state[{key!r}] has shape {arr.shape}; this tile is {shape}")
            if arr.dtype.kind == "f" and not np.isfinite(arr).all():
                raise ValueError(f"state[{key!r}] contains NaN or inf")
            arrays[key] = arr
        if "config_json" in state:
            saved = json.loads(str(state["config_json"]))
            if saved != to_dict(self.config):
                self.config = from_dict(TileConfig, saved)
        self._w = np.array(arrays["w"], np.float32)
        self._w_read = np.array(arrays["w_read"], np.float32)
        self._dev = DeviceArrays(**{n: np.array(arrays[f"device.{n}"], np.uint8 if n == "fault" else np.float32)
                                    for n in DeviceArrays.names()})  # fmt: skip
        self._set_device_views()
        self.w_scale = float(state["w_scale"])
        self._level_step = level_step(self.w_scale, self.config.mapping.levels)
        self._rng = _decode_rng(state["rng_state"])
        self.refresh_count = int(state.get("refresh_count", 0))
        self._pulses = np.zeros((2, *shape), np.uint64)
        for k, name in enumerate(("pulses_up", "pulses_down")):  # absent in states saved before counting
            if name in state:
                arr = np.asarray(state[name])
                if arr.shape != shape or arr.dtype.kind not in "ui" or (arr.dtype.kind == "i" and (arr < 0).any()):
                    raise ShapeError(f"state[{name!r}]: expected non-negative integers of shape {shape}, "
                                     f"got {arr.dtype} {arr.shape}")  # fmt: skip
                self._pulses[k] = arr
        if "pair.w_plus" in state:
            self._wp = np.array(arrays["pair.w_plus"], np.float32)
            self._wm = np.array(arrays["pair.w_minus"], np.float32)
            for n in _NEW_PAIR:  # states saved before the pulsed refresh: mean reset value, no spread
                arr = np.asarray(state.get(f"pair.{n}", np.full(shape, self.config.device.reset)))
                if arr.shape != shape:
                    raise ShapeError(f"state['pair.{n}'] has shape {arr.shape}; this tile is {shape}")
                arrays[f"pair.{n}"] = arr
            self._pair = PairArrays(**{n: np.array(arrays[f"pair.{n}"], np.float32) for n in PairArrays.names()})
        else:
            self._pair = None

    @classmethod
    def from_state_dict(cls, state: dict) -> Tile:
        """A new tile rebuilt from :meth:`state_dict` output (config included).

        A state without ``config_json``, ``out_size`` or ``in_size``, or with a
        ``config_json`` that is not a TileConfig, is a :class:`DataError` naming the entry.
        """
        missing = [k for k in ("config_json", "out_size", "in_size") if k not in state]
        if missing:
            raise DataError(f"tile state lacks {', '.join(missing)}: not written by Tile.state_dict")
        try:
            raw = json.loads(str(state["config_json"]))
        except ValueError as exc:
            raise DataError(f"tile state: config_json is not valid JSON ({exc})") from None
        if not isinstance(raw, dict):
            raise DataError(f"tile state: config_json holds {type(raw).__name__}, expected a TileConfig table")
        try:
            config = from_dict(TileConfig, raw)
        except ConfigError as exc:
            raise DataError(f"tile state: config_json is not a valid TileConfig ({exc})") from None
        try:
            seed = int(state.get("seed", 0))
            dseed = int(state.get("device_seed", -1))
            out_size, in_size = int(state["out_size"]), int(state["in_size"])
        except (TypeError, ValueError) as exc:
            raise DataError(f"tile state: seed or sizes are not integers ({exc})") from None
        tile = cls(out_size, in_size, config, seed=seed, device_seed=None if dseed < 0 else dseed)
        tile.load_state_dict(state)
        return tile

    def __repr__(self) -> str:
        return (f"Tile({self.out_size}, {self.in_size}, model={self.config.device.model!r}, "
                f"pulse_type={self.config.update.pulse_type!r}, seed={self.seed})")  # fmt: skip
