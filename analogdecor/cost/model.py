"""First-order energy and latency of one inference and one training step, per layer and in total.

Every logical matrix of the network (``layers.i.W``, and ``layers.i.R`` when the
layer decorrelates) gets one row, split into five parts:

``mvm``
    Array reads: E = V_read^2 t_read sum(G+ + G-) per read of the whole matrix (all
    devices conduct at full input amplitude: an upper bound); the arrays of a grid
    read in parallel, so a read takes t_read.
``dac`` / ``adc``
    Converters: every array converts its own inputs and outputs. A forward read of an
    (out x in) matrix on a (gr x gc) grid makes gr in DAC and gc out ADC conversions
    (transposed reads the other way round); E_DAC = dac_energy_per_level 2^inp_bits,
    E_ADC = adc_fom 2^out_bits (Walden); ADC time adc_time per conversion, times the
    columns sharing one ADC.
``update``
    Pulsed updates: the pulses counted during training (pulses.npz) per training step,
    times pulse_energy; time: outer products per step x BL x pulse_time (per_sample: B
    products; low_rank: the rank; mixed: at most one per row, an upper bound).
``digital``
    Partial-sum adds between arrays, bias and activation, centring, R in digital
    periphery (MACs), digital feedback (FA, DFA), the digital accumulator of
    mixed-precision updates; time: operations / lanes x op time.

Latency of a row is the sum of its parts (no overlap), the total the sum over
rows (layers run one after the other): totals add up from their parts by
construction. Inference is one sample through the network as deployed
(:data:`DEPLOY_MODES`); a training step is one batch of the run's rule.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from analogdecor.cost.coefficients import CostCoefficients
from analogdecor.crossbar.arrays import grid_shape
from analogdecor.crossbar.config import IOConfig, TileConfig
from analogdecor.crossbar.mapping import weights_to_conductances
from analogdecor.deploy import DEPLOY_MODES, param_layers
from analogdecor.errors import ConfigError
from analogdecor.networks.keys import ParamKey

__all__ = ["DEPLOY_MODES", "PARTS", "MatrixSpec", "inference_cost", "training_cost"]

PARTS: tuple[str, ...] = ("mvm", "dac", "adc", "update", "digital")


@dataclass(frozen=True)
class MatrixSpec:
    """One logical matrix as deployed: its size, where it lives and what a read of it converts."""

    name: str
    rows: int
    """Outputs."""
    cols: int
    """Inputs."""
    analog: bool
    """On arrays (True) or a digital matrix (False)."""
    grid: tuple[int, int] = (1, 1)
    g_sum_uS: float = 0.0
    """sum(G+ + G-) over all devices, microsiemens."""
    forward: IOConfig | None = None
    backward: IOConfig | None = None
    array_rows: int | None = None
    """Outputs per array (for the ADC sharing time)."""


def _bits(io: IOConfig | None, which: str, c: CostCoefficients) -> int:
    if io is None or io.is_perfect:
        return int(c.default_bits)
    b = io.inp_bits if which == "inp" else io.out_bits
    return int(c.default_bits) if b is None else int(b)


def _zero() -> dict[str, dict[str, float]]:
    return {p: {"energy_J": 0.0, "latency_s": 0.0, "ops": 0.0} for p in PARTS}


def _add(row: dict, part: str, energy: float, latency: float, ops: float) -> None:
    row[part]["energy_J"] += float(energy)
    row[part]["latency_s"] += float(latency)
    row[part]["ops"] += float(ops)


def _digital(row: dict, c: CostCoefficients, macs: float = 0.0, adds: float = 0.0) -> None:
    ops = macs + adds
    _add(
        row,
        "digital",
        macs * c.mac_energy + adds * c.add_energy,
        ops / c.digital_lanes * c.digital_op_time,
        ops,
    )


def _read(row: dict, m: MatrixSpec, c: CostCoefficients, n: float, *, transposed: bool = False) -> None:
    """``n`` reads of matrix ``m`` (forward, or transposed for a backward read)."""
    if n == 0:
        return
    if not m.analog:
        _digital(row, c, macs=n * m.rows * m.cols)
        return
    gr, gc = m.grid
    io = m.backward if transposed else m.forward
    n_in, n_out = (m.rows, m.cols) if transposed else (m.cols, m.rows)
    blocks_in, blocks_out = (gc, gr) if transposed else (gr, gc)  # arrays sharing one input / one output
    _add(row, "mvm", n * c.read_voltage**2 * c.read_time * m.g_sum_uS * 1e-6, n * c.read_time, n * gr * gc)
    dac = n * blocks_in * n_in
    _add(row, "dac", dac * c.dac_energy_per_level * 2.0 ** _bits(io, "inp", c), n * c.dac_time, dac)
    adc = n * blocks_out * n_out
    out_per_array = min(n_out, m.array_rows or n_out) if not transposed else n_out
    share = min(c.adc_share, out_per_array)
    _add(row, "adc", adc * c.adc_fom * 2.0 ** _bits(io, "out", c), n * share * c.adc_time, adc)
    _digital(row, c, adds=n * (blocks_out - 1) * n_out)  # partial sums of the arrays


def _finish(rows: dict[str, dict]) -> dict[str, Any]:
    """Per-row and overall totals (sums of the parts)."""
    total = _zero()
    for row in rows.values():
        row["total"] = {k: sum(row[p][k] for p in PARTS) for k in ("energy_J", "latency_s", "ops")}
        for p in PARTS:
            for k in ("energy_J", "latency_s", "ops"):
                total[p][k] += row[p][k]
    total["total"] = {k: sum(total[p][k] for p in PARTS) for k in ("energy_J", "latency_s", "ops")}
    return {"layers": rows, "total": total}


# ----------------------------------------------------------------------------- the network as deployed
def positions(layer: Any) -> int:
    """Reads of the layer's matrix per sample: 1 for dense, output positions Ho Wo for a convolution."""
    shape = getattr(layer, "out_shape", None)
    return int(np.prod(shape[1:])) if shape is not None and len(shape) == 3 else 1


def _g_sum_of_tile(tile: Any) -> float:
    gp, gm = tile.conductances()
    return float(np.sum(gp, dtype=np.float64) + np.sum(gm, dtype=np.float64))


def _g_sum_of_weights(w: np.ndarray, cfg: TileConfig) -> float:
    """sum(G+ + G-) of weights ``w`` mapped with their own largest |w| onto g_max - g_min."""
    m = cfg.mapping
    scale = max(float(np.abs(w).max()), 1e-12)
    gp, gm = weights_to_conductances(np.clip(w, -scale, scale), m.g_min, m.g_max, scale)
    return float(gp.sum() + gm.sum())


def _spec(name: str, rows: int, cols: int, cfg: TileConfig, g_sum: float, analog: bool = True) -> MatrixSpec:
    return MatrixSpec(name, rows, cols, analog, grid_shape(rows, cols, cfg), g_sum, cfg.forward, cfg.backward,
                      cfg.mapping.array_rows)  # fmt: skip


def _tile_cfg(tile: Any, fallback: TileConfig) -> TileConfig:
    cfg = getattr(tile, "config", None)
    return cfg if isinstance(cfg, TileConfig) else fallback


def inference_cost(
    net: Any, tile_cfg: TileConfig, c: CostCoefficients, deploy: str = "separate"
) -> dict[str, Any]:
    """Energy and latency of one sample through the network deployed as ``deploy``.

    folded: W R on arrays (R and the centring fold into the weights and bias, as ``fold()``);
    separate: R on arrays of its own; digital: R as a digital matrix. Without decorrelation
    the three are the same.
    """
    if deploy not in DEPLOY_MODES:
        raise ConfigError(f"deploy = {deploy!r}: must be one of {', '.join(DEPLOY_MODES)}")
    rows: dict[str, dict] = {}
    for i, layer in param_layers(net):
        w_name, r_name = str(ParamKey(i, "W")), str(ParamKey(i, "R"))
        cfg = _tile_cfg(layer.tile, tile_cfg)
        p = positions(layer)
        out, inp = int(layer.tile.out_size), int(layer.tile.in_size)
        decor = getattr(layer, "decor", None)
        if decor is not None:
            rrow = rows[r_name] = _zero()
            if deploy == "folded":
                from analogdecor.decorrelation import fold_linear

                w_eff, _ = fold_linear(layer.effective_weights(), layer.bias, decor.matrix(), decor.mu)
                w_spec = _spec(w_name, out, inp, cfg, _g_sum_of_weights(np.asarray(w_eff), cfg))
            else:
                w_spec = _spec(w_name, out, inp, cfg, _g_sum_of_tile(layer.tile))
                _digital(rrow, c, adds=p * inp)  # centring x - mu
                if deploy == "separate":
                    rt = getattr(decor, "tile", None)
                    g = _g_sum_of_tile(rt) if rt is not None else _g_sum_of_weights(decor.matrix(), cfg)
                    _read(rrow, _spec(r_name, inp, inp, _tile_cfg(rt, cfg), g), c, p)
                else:
                    _read(rrow, MatrixSpec(r_name, inp, inp, analog=False), c, p)
        else:
            w_spec = _spec(w_name, out, inp, cfg, _g_sum_of_tile(layer.tile))
        wrow = rows[w_name] = _zero()
        _read(wrow, w_spec, c, p)
        _digital(wrow, c, adds=2 * p * out)  # output scale / bias, activation
    return {"deploy": deploy, **_finish(rows)}


def _decor_rows(layer: Any, batch_size: int) -> int:
    """Rows R's update learns from per step: the subset floor(f B) + 1 of the batch (all patch
    positions of those images for a convolution), as the training code takes them."""
    k = layer.decor_subset(batch_size)
    if k is None:
        from analogdecor.decorrelation.rules import subset_size

        k = subset_size(batch_size, layer.decor.config.subset_fraction)
    return int(k)


def training_cost(
    net: Any, tile_cfg: TileConfig, c: CostCoefficients, *, rule: str, batch_size: int, analog: bool,
    analog_update: str = "mixed", update_rank: int = 4, pulses_per_step: dict[str, float] | None = None,
    n_classes: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Energy and latency of one training step (one batch of ``batch_size``) of rule ``rule``.

    ``pulses_per_step``: counted pulses per step of every tile (``layers.i.W`` / ``.R``); tiles
    without counts contribute no update energy. ``analog``: weights on arrays (False: the float
    backend, whose weights are digital and updated by digital MACs).
    """
    pulses_per_step = pulses_per_step or {}
    B = int(batch_size)
    passes = 2 if rule == "np" else 1  # node perturbation: clean and noisy forward passes
    layers = param_layers(net)
    n_classes = n_classes or int(layers[-1][1].tile.out_size)
    rows: dict[str, dict] = {}
    for k, (i, layer) in enumerate(layers):
        w_name, r_name = str(ParamKey(i, "W")), str(ParamKey(i, "R"))
        cfg = _tile_cfg(layer.tile, tile_cfg)
        p = positions(layer)
        out, inp = int(layer.tile.out_size), int(layer.tile.in_size)
        decor = getattr(layer, "decor", None)
        if decor is not None:
            rrow = rows[r_name] = _zero()
            rt = getattr(decor, "tile", None)
            r_on_tile = rt is not None and analog
            g = _g_sum_of_tile(rt) if rt is not None else 0.0
            r_spec = _spec(r_name, inp, inp, _tile_cfg(rt, cfg), g, analog=r_on_tile)
            _digital(rrow, c, adds=B * passes * p * inp)  # centring
            _read(rrow, r_spec, c, B * passes * p)
            if rule == "bp" and k > 0:
                _read(rrow, r_spec, c, B * p, transposed=True)
            if r_on_tile:
                _read(rrow, r_spec, c, B * p)  # the R update's own read (R z), as Decorrelator's tile step
                _update(rrow, c, r_name, pulses_per_step, cfg, inp, B, analog_update, update_rank)
            else:  # digital R update (Ahmad's rule) in its O(k d^2) form: Z^T (Z R) / k on the k subset rows
                k_rows = _decor_rows(layer, B)
                _digital(rrow, c, macs=2 * k_rows * inp * inp, adds=2 * inp * inp)
        wrow = rows[w_name] = _zero()
        w_spec = _spec(w_name, out, inp, cfg, _g_sum_of_tile(layer.tile), analog=analog)
        _read(wrow, w_spec, c, B * passes * p)
        _digital(wrow, c, adds=2 * B * passes * p * out)  # bias, activation
        if k > 0:
            if rule == "bp":
                _read(wrow, w_spec, c, B * p, transposed=True)
            elif rule == "fa":
                _digital(wrow, c, macs=B * p * out * inp)
        if rule == "dfa" and k < len(layers) - 1:
            _digital(wrow, c, macs=B * p * n_classes * out)
        if analog:
            _update(wrow, c, w_name, pulses_per_step, cfg, out, B, analog_update, update_rank)
            if analog_update in ("mixed", "low_rank"):
                _digital(wrow, c, macs=B * p * out * inp, adds=out * inp)  # delta^T z and the accumulator
        else:
            _digital(wrow, c, macs=B * p * out * inp + out * inp)  # gradient and SGD step
    return {"batch_size": B, "rule": rule, **_finish(rows)}


def _update(row: dict, c: CostCoefficients, name: str, pulses_per_step: dict[str, float], cfg: TileConfig,
            out: int, B: int, mode: str, rank: int) -> None:  # fmt: skip
    pulses = float(pulses_per_step.get(name, 0.0))
    if cfg.update.pulse_type == "none" or cfg.device.model == "ideal":
        return
    products = {"per_sample": B, "low_rank": rank, "mixed": out}.get(mode, B)
    latency = products * cfg.update.desired_bl * c.pulse_time if pulses > 0 else 0.0
    _add(row, "update", pulses * c.pulse_energy, latency, pulses)


def steps_per_run(n_train: int, batch_size: int, epochs: int) -> int:
    return int(epochs) * math.ceil(int(n_train) / int(batch_size))
