"""Deploying a trained (decorrelated) network on a chip: folded, separate or digital R.

Three ways to run a decorrelated layer ``a = alpha W R (x - mu) + b`` at inference:

``folded``
    Program W_eff = alpha W R and the bias b - W_eff mu (what ``fold()`` computes) on the
    arrays: R and the centring cost nothing at inference. Every layer gets a fresh
    analogue tile (on the run's backend, with its tile config) holding W_eff / alpha',
    alpha' = max|W_eff| / weight_scaling a digital output scale.
``separate``
    R on arrays of its own: as trained when R was trained on tiles; an R trained in float
    is programmed onto fresh tiles (R / s, s = max|R| / weight_scaling a digital scale).
``digital``
    R in digital periphery: the trained R (as a read of its tile) becomes a float matrix;
    only W is on arrays.

A network without decorrelation deploys the same way in all three. :func:`arrays_needed`
counts the physical arrays each choice takes at a given array size.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from analogdecor.backends import is_analog, make_tile
from analogdecor.crossbar.arrays import grid_shape
from analogdecor.crossbar.config import MappingConfig, TileConfig
from analogdecor.errors import ConfigError
from analogdecor.networks.keys import ParamKey

__all__ = ["DEPLOY_MODES", "arrays_needed", "deploy_network", "param_layers"]

DEPLOY_MODES: tuple[str, ...] = ("folded", "separate", "digital")


def param_layers(net: Any) -> list[tuple[int, Any]]:
    """(index, layer) of the layers with weights (dense or conv; pooling/flatten layers skipped)."""
    return [(i, layer) for i, layer in enumerate(net.layers) if getattr(layer, "has_params", True)]


def _check_mode(mode: str) -> None:
    if mode not in DEPLOY_MODES:
        raise ConfigError(f"deploy = {mode!r}: must be one of {', '.join(DEPLOY_MODES)}")


def deploy_network(net: Any, mode: str, *, backend: str, tile_config: TileConfig,
                   weight_scaling: float | None = 0.6, seed: int = 0) -> Any:  # fmt: skip
    """A copy of ``net`` deployed as ``mode`` (the input network is left unchanged).

    Raises
    ------
    ConfigError
        An unknown mode, or ``folded`` for a layer whose decorrelation has no linear fold (no
        ``matrix()``).
    """
    _check_mode(mode)
    decorrelated = [(i, layer) for i, layer in param_layers(net) if getattr(layer, "decor", None) is not None]
    if mode == "separate":
        out = copy.deepcopy(net)
        ss = np.random.SeedSequence([seed, 0x52])
        seeds = [int(s) for s in ss.generate_state(len(out.layers), dtype=np.uint32)]
        for i, layer in param_layers(out):
            decor = getattr(layer, "decor", None)
            if decor is None or decor.tile is not None:
                continue  # no R, or R already on its own arrays as trained
            # R trained in float: program it onto arrays of its own, z = s * (R / s) (x - mu)
            R = decor.matrix().astype(np.float32)
            tile = make_tile(backend, decor.dim, decor.dim, tile_config, seed=seeds[i])
            s = 1.0
            if weight_scaling is not None and is_analog(tile) and np.abs(R).max() > 0:
                s = float(np.abs(R).max()) / weight_scaling
            tile.set_weights((R / np.float32(s)).astype(np.float32))
            decor.tile, decor.scale = tile, s
        return out
    if mode == "digital":
        out = copy.deepcopy(net)
        for _, layer in param_layers(out):
            decor = getattr(layer, "decor", None)
            if decor is not None and decor.tile is not None:
                R, mu = decor.matrix(), decor.mu.copy()
                decor.tile = None
                decor.load_state_dict({"mu": mu, "R": R})  # float R: the trained R as its tile reads it
        return out
    for i, layer in decorrelated:
        if not callable(getattr(layer.decor, "matrix", None)):
            raise ConfigError(
                f"deploy = 'folded': layer {i}'s decorrelation has no linear fold (no R matrix)"
            )
    folded = net.fold()
    ss = np.random.SeedSequence(seed)
    seeds = [int(s) for s in ss.generate_state(len(folded.layers), dtype=np.uint32)]
    for i, layer in param_layers(folded):
        w = np.asarray(layer.tile.read_weights(), np.float32) * np.float32(getattr(layer, "out_scale", 1.0))
        tile = make_tile(backend, int(w.shape[0]), int(w.shape[1]), tile_config, seed=seeds[i])
        alpha = 1.0
        if weight_scaling is not None and is_analog(tile) and np.abs(w).max() > 0:
            alpha = float(np.abs(w).max()) / weight_scaling
        tile.set_weights((w / np.float32(alpha)).astype(np.float32))
        layer.tile = tile
        layer.out_scale = alpha
    return folded


def arrays_needed(net: Any, tile_config: TileConfig, mode: str, array_rows: int | None = None,
                  array_cols: int | None = None) -> dict[str, Any]:  # fmt: skip
    """Physical arrays the network takes when deployed as ``mode``.

    ``array_rows`` / ``array_cols`` default to the run's ``mapping.array_rows`` / ``array_cols``
    (None there: one array per matrix). Returns {"array_size": (rows, cols), "matrices": {name:
    {"shape", "grid", "arrays"}}, "total": n}.
    """
    _check_mode(mode)
    m = tile_config.mapping
    rows = array_rows if array_rows is not None else m.array_rows
    cols = array_cols if array_cols is not None else m.array_cols
    cfg = tile_config.replace(mapping=MappingConfig(g_min=m.g_min, g_max=m.g_max, w_scale=m.w_scale,
                                                    levels=m.levels, array_rows=rows, array_cols=cols))  # fmt: skip
    mats = {}
    for i, layer in param_layers(net):
        # ParamKey: the same names as the network's tiles (analog_layers, exports, cost rows)
        out, inp = int(layer.tile.out_size), int(layer.tile.in_size)
        if getattr(layer, "decor", None) is not None and mode == "separate":
            g = grid_shape(inp, inp, cfg)
            mats[str(ParamKey(i, "R"))] = {"shape": (inp, inp), "grid": g, "arrays": g[0] * g[1]}
        g = grid_shape(out, inp, cfg)
        mats[str(ParamKey(i, "W"))] = {"shape": (out, inp), "grid": g, "arrays": g[0] * g[1]}
    return {"array_size": (rows, cols), "matrices": mats, "total": sum(v["arrays"] for v in mats.values())}
