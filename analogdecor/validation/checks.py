"""The statistical checks of the cross-validation harness: each compares two tile backends.

A *tile factory* is any callable ``factory(out_size, in_size, config, seed)`` that
returns an object with the Tile contract (the numba emulator, the aihwkit backend,
or a deliberately wrong emulator in the tests). Every check builds both tiles from
the same :class:`~analogdecor.crossbar.config.TileConfig`, feeds them the same
inputs and returns :class:`Comparison` objects: two summaries, and one or more
z statistics whose standard errors come from :mod:`analogdecor.validation.stats`.

The checks (issue 4 of the project):

- forward read: error of ``forward(x)`` against the ideal product ``x W^T`` (W as
  read back from the tile), with the DAC, the ADC and the output noise each alone
  and all together: per-trial mean error and mean squared error, paired over trials
  (both backends read the same inputs);
- pulsed update: for fixed x, d and lr, with device-to-device variation off, the
  weight change of every device over many trials: per-device mean and variance,
  same-row covariances, and two pooled per-trial statistics (the update's projection
  on the gradient and its squared deviation from it), which are the most sensitive;
- pulse counts: on a noise-free constant-step device with the preset's step size
  and update settings, each device's pulse count is |dW| / dw_min exactly: per-device
  mean and distribution (chi-square homogeneity);
- device response: the weight of independent replica devices after n up pulses and
  then n down pulses (exactly one pulse per device per sample), at five checkpoints.

Replication (issue 12): the forward, update and response checks spread their trials
and replicas over ``Sizes.tiles`` independent tiles per backend and compare per-tile
statistics with a t test over tiles, because aihwkit draws the Gaussians of one tile
from a fixed table, which correlates everything measured on one tile.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from analogdecor.crossbar.config import IOConfig, TileConfig, UpdateConfig
from analogdecor.devices.config import DeviceConfig
from analogdecor.errors import ConfigError
from analogdecor.validation.stats import (
    chi2_homogeneity_z,
    cluster_diff,
    float32_floor,
    mean_se,
    z_scores,
)

__all__ = [
    "Comparison",
    "Sizes",
    "TileFactory",
    "forward_checks",
    "forward_conditions",
    "pulse_count_checks",
    "quiet_device",
    "response_checks",
    "response_curves",
    "update_checks",
]

TileFactory = Callable[[int, int, TileConfig, int], Any]


@dataclass(frozen=True)
class Sizes:
    """Problem sizes of one validation run (small in CI, larger from the CLI)."""

    out_size: int = 8
    """Rows of the tiles used by the forward, update and pulse-count checks."""
    in_size: int = 8
    """Columns of those tiles."""
    forward_trials: int = 400
    """Input vectors per forward condition."""
    update_trials: int = 300
    """Independent single-sample updates per update check."""
    replicas: int = 64
    """Independent devices per response curve."""
    max_pulses: int = 3000
    """Cap on the pulses per direction of a response curve."""
    tiles: int = 32
    """Independent tiles per backend that the trials and replicas are spread over. Draws within one
    aihwkit tile are correlated (its CPU simulator takes Gaussians from a fixed table per tile), so
    every statistic is computed per tile and its standard error comes from the spread between tiles
    (t test over tiles, :func:`~analogdecor.validation.stats.cluster_diff`)."""
    target_pulses: float = 7.5
    """lr max|x| max|d| / dw_min in the update checks (sets lr); not an integer, so that the pulse-train
    length ceil(.) does not hinge on the last bit of float32 versus float64 arithmetic."""


@dataclass
class Comparison:
    """One statistic of two backends: summaries ``a`` and ``b`` and the elementary z statistics."""

    check: str
    preset: str
    a: float
    b: float
    z: np.ndarray
    diff: float | None = None
    se: float | None = None
    detail: str = ""
    floor: float = 0.0
    """float32 rounding allowance added to the tolerance of a scalar comparison."""
    df: float | None = None
    """Degrees of freedom of a scalar comparison's t test (None: a z test); the tolerance is then
    t*(df) se + floor, t* the t quantile of the same per-test error as z*."""

    @property
    def n_tests(self) -> int:
        return int(np.size(self.z))


def _scalar(
    check: str, preset: str, a: float, b: float, diff: float, se: float, detail: str = ""
) -> Comparison:
    floor = float(float32_floor(a, b))
    z = z_scores(np.array([diff]), np.array([se]), floor)
    return Comparison(check, preset, float(a), float(b), z, float(abs(diff)), float(se), detail, floor)


def _clustered(
    check: str, preset: str, a: np.ndarray, b: np.ndarray, *, paired: bool = False, detail: str = "",
    floor: float = 0.0,
) -> Comparison:  # fmt: skip
    """A comparison of per-tile values ``a`` (tiles_a, ...) and ``b`` (tiles_b, ...): a t test over tiles.

    A scalar statistic (one value per tile) gives an ``abs`` row with t degrees of freedom; more
    give one z per element. ``floor``: an absolute numerical allowance added to the relative float32 one.
    """
    ma, mb = np.asarray(a, np.float64).mean(axis=0), np.asarray(b, np.float64).mean(axis=0)
    allowance = float32_floor(ma, mb) + floor
    diff, se, df, z = cluster_diff(a, b, allowance, paired=paired)
    if np.ndim(diff) == 0:
        return Comparison(check, preset, float(ma), float(mb), np.atleast_1d(z), float(abs(diff)), float(se),
                          detail, float(allowance), float(df))  # fmt: skip
    return Comparison(check, preset, float(ma.mean()), float(mb.mean()), np.ravel(z), detail=detail)


def _pair(
    fa: TileFactory, fb: TileFactory, out_size: int, in_size: int, cfg: TileConfig, seed: int
) -> tuple[Any, Any]:
    return fa(out_size, in_size, cfg, seed), fb(out_size, in_size, cfg, seed)


def _tile_seed(seed: int, r: int) -> int:
    """Seed of the r-th replica tile of a check (independent device draws and noise)."""
    return int(seed) * 100_003 + r


def _split(n: int, parts: int) -> list[range]:
    """``range(n)`` cut into ``parts`` contiguous chunks (sizes differ by at most one; none empty)."""
    parts = max(1, min(int(parts), int(n)))
    edges = np.linspace(0, n, parts + 1).round().astype(int)
    return [range(int(lo), int(hi)) for lo, hi in itertools.pairwise(edges)]


def quiet_device(dev: DeviceConfig) -> DeviceConfig:
    """The same device with every device-to-device spread and defect switched off."""
    return dataclasses.replace(
        dev, dw_min_dtod=0.0, up_down_dtod=0.0, w_min_dtod=0.0, w_max_dtod=0.0, gamma_up_dtod=0.0,
        gamma_down_dtod=0.0, pow_gamma_dtod=0.0, pow_up_down_dtod=0.0, stuck_fraction=0.0, dead_fraction=0.0,
    )  # fmt: skip


# ---------------------------------------------------------------------------------- forward
def forward_conditions(io: IOConfig) -> dict[str, IOConfig]:
    """The read configurations to compare: each noise source of ``io`` alone, then ``io`` itself."""
    if io.is_perfect:
        return {"perfect": io}
    off: dict[str, Any] = dict(inp_noise=0.0, w_noise=0.0)
    conds: dict[str, IOConfig] = {}
    if io.inp_bits is not None:
        conds["dac"] = dataclasses.replace(io, **off, out_bits=None, out_noise=0.0)
    if io.out_bits is not None:
        conds["adc"] = dataclasses.replace(io, **off, inp_bits=None, out_noise=0.0)
    if io.out_noise > 0:
        conds["out_noise"] = dataclasses.replace(io, **off, inp_bits=None, out_bits=None)
    conds["all"] = io
    return conds


def forward_checks(
    cfg: TileConfig, preset: str, fa: TileFactory, fb: TileFactory, sizes: Sizes, seed: int
) -> list[Comparison]:
    """Forward-read error against the ideal product, per noise condition (paired over trials)."""
    rng = np.random.default_rng([seed, 101])
    cfg = cfg.replace(device=quiet_device(cfg.device))  # the same stored weights on both backends
    dev = cfg.device
    W = rng.uniform(0.5 * dev.w_min, 0.5 * dev.w_max, (sizes.out_size, sizes.in_size)).astype(np.float32)
    X = rng.uniform(-1.0, 1.0, (sizes.forward_trials, sizes.in_size)).astype(np.float32)
    out: list[Comparison] = []
    chunks = _split(sizes.forward_trials, sizes.tiles)
    for name, io in forward_conditions(cfg.forward).items():
        stats_ab = []  # per backend: (tiles, 2) mean error and mean squared error of each tile's chunk
        for factory in (fa, fb):
            per_tile = []
            for r, rows in enumerate(chunks):  # both backends read chunk r on their r-th tile: paired
                t = factory(sizes.out_size, sizes.in_size, cfg.replace(forward=io), _tile_seed(seed, r))
                t.set_weights(W)
                x = X[rows.start : rows.stop]
                e = (
                    t.forward(x).astype(np.float64)
                    - x.astype(np.float64) @ t.read_weights().astype(np.float64).T
                )
                per_tile.append((e.mean(), (e**2).mean()))
            stats_ab.append(np.array(per_tile))
        sa, sb = stats_ab
        detail = f"{len(chunks)} tiles, paired t"
        out.append(
            _clustered(f"forward {name}: mean error", preset, sa[:, 0], sb[:, 0], paired=True, detail=detail)
        )
        out.append(_clustered(f"forward {name}: mean sq. error", preset, sa[:, 1], sb[:, 1], paired=True,
                              detail=detail))  # fmt: skip
    return out


# ---------------------------------------------------------------------------------- update
def _update_inputs(cfg: TileConfig, sizes: Sizes, seed: int) -> tuple[np.ndarray, np.ndarray, float]:
    rng = np.random.default_rng([seed, 202])
    x = rng.uniform(-1.0, 1.0, sizes.in_size).astype(np.float32)
    d = rng.uniform(-1.0, 1.0, sizes.out_size).astype(np.float32)
    lr = sizes.target_pulses * cfg.device.dw_min / float(np.abs(x).max() * np.abs(d).max())
    return x, d, lr


def _weight_changes(
    tile: Any, w0: np.ndarray, x: np.ndarray, d: np.ndarray, lr: float, trials: int
) -> np.ndarray:
    out = np.empty((trials, *w0.shape), dtype=np.float64)
    for t in range(trials):
        tile.set_weights(w0)
        tile.update(x[None, :], d[None, :], lr)
        out[t] = tile.read_weights().astype(np.float64) - w0
    return out


def _start_weight(dev: DeviceConfig) -> float:
    """A start weight well inside the bounds (0 unless the device is one-sided)."""
    return 0.0 if dev.w_min < 0 < dev.w_max else 0.5 * (dev.w_min + dev.w_max)


def update_checks(
    cfg: TileConfig, preset: str, fa: TileFactory, fb: TileFactory, sizes: Sizes, seed: int
) -> list[Comparison]:
    """Statistics of the weight change of one pulsed update with fixed x, d, lr (dtod off)."""
    if cfg.update.pulse_type == "none" or cfg.device.model == "ideal":
        return []
    c = cfg.replace(device=quiet_device(cfg.device))
    x, d, lr = _update_inputs(c, sizes, seed)
    w0 = np.full((sizes.out_size, sizes.in_size), _start_weight(c.device), dtype=np.float32)
    g = -lr * np.outer(d, x).astype(np.float64)  # the SGD step the pulses stand for
    gg = float((g**2).sum())
    j, k = np.triu_indices(sizes.in_size, 1)
    per_backend = []
    if sizes.update_trials < 4:
        raise ConfigError(f"Sizes.update_trials = {sizes.update_trials}: needs >= 4 (2 tiles of 2 trials)")
    chunks = _split(sizes.update_trials, max(2, min(sizes.tiles, sizes.update_trials // 2)))
    for factory in (fa, fb):
        tiles: dict[str, list[Any]] = {"mean": [], "var": [], "cov": [], "proj": [], "dev": []}
        for r, rows in enumerate(chunks):
            dw = _weight_changes(factory(sizes.out_size, sizes.in_size, c, _tile_seed(seed, r)), w0, x, d, lr,
                                 len(rows))  # fmt: skip
            tiles["mean"].append(dw.mean(axis=0))
            tiles["var"].append(dw.var(axis=0, ddof=1))
            if j.size:
                cj, ck = dw[:, :, j], dw[:, :, k]
                tiles["cov"].append(((cj - cj.mean(0)) * (ck - ck.mean(0))).sum(axis=0) / (len(rows) - 1))
            tiles["proj"].append(((dw * g).sum(axis=(1, 2)) / gg).mean())
            tiles["dev"].append((((dw - g) ** 2).sum(axis=(1, 2)) / gg).mean())
        per_backend.append({key: np.array(v) for key, v in tiles.items()})
    a, b = per_backend
    n_t = f"{len(chunks)} tiles"
    out = [
        _clustered(
            "update: mean dW per device", preset, a["mean"], b["mean"], detail=f"{w0.size} devices, {n_t}"
        ),
        _clustered(
            "update: var dW per device", preset, a["var"], b["var"], detail=f"{w0.size} devices, {n_t}"
        ),
    ]
    if j.size:
        out.append(_clustered("update: same-row cov dW", preset, a["cov"], b["cov"],
                              detail=f"{a['cov'].shape[1] * a['cov'].shape[2]} pairs, {n_t}"))  # fmt: skip
    out.append(_clustered("update: projection on -lr d x^T", preset, a["proj"], b["proj"], detail=n_t))
    out.append(_clustered("update: sq. deviation from -lr d x^T", preset, a["dev"], b["dev"], detail=n_t))
    return out


# ---------------------------------------------------------------------------------- pulse counts
def pulse_count_checks(
    cfg: TileConfig, preset: str, fa: TileFactory, fb: TileFactory, sizes: Sizes, seed: int
) -> list[Comparison]:
    """Pulse counts of one update, read off a noise-free constant-step device as |dW| / dw_min."""
    if cfg.update.pulse_type == "none" or cfg.device.model == "ideal":
        return []
    step = cfg.device.dw_min
    counter = DeviceConfig(
        model="constant", dw_min=step, dw_min_dtod=0.0, dw_min_std=0.0, up_down=0.0, up_down_dtod=0.0,
        w_min=-1e3, w_max=1e3, w_min_dtod=0.0, w_max_dtod=0.0,
    )  # fmt: skip
    c = cfg.replace(device=counter)
    x, d, lr = _update_inputs(c, sizes, seed)
    w0 = np.zeros((sizes.out_size, sizes.in_size), dtype=np.float32)
    ta, tb = _pair(fa, fb, sizes.out_size, sizes.in_size, c, seed)
    na = np.rint(np.abs(_weight_changes(ta, w0, x, d, lr, sizes.update_trials)) / step).astype(np.int64)
    nb = np.rint(np.abs(_weight_changes(tb, w0, x, d, lr, sizes.update_trials)) / step).astype(np.int64)
    ma, sa = mean_se(na)
    mb, sb = mean_se(nb)
    z = z_scores(ma - mb, np.sqrt(sa**2 + sb**2))
    out = [Comparison("pulses: mean count per device", preset, float(ma.mean()), float(mb.mean()), z,
                      detail=f"{z.size} devices")]  # fmt: skip
    zc = np.array(
        [
            chi2_homogeneity_z(na[:, i, j], nb[:, i, j])
            for i in range(sizes.out_size)
            for j in range(sizes.in_size)
        ]
    )
    out.append(Comparison("pulses: count distribution per device", preset, float(na.var(axis=0).mean()),
                          float(nb.var(axis=0).mean()), zc, detail="chi-square; a, b: mean variance"))  # fmt: skip
    return out


# ---------------------------------------------------------------------------------- response curves
def _one_pulse_config(cfg: TileConfig) -> TileConfig:
    """Quiet device; BL = 1 and no management, so a large lr makes exactly one pulse per sample."""
    return cfg.replace(
        device=quiet_device(cfg.device),
        update=UpdateConfig(
            pulse_type="stochastic", desired_bl=1, update_management=False, update_bl_management=False
        ),
    )


def response_checks(
    cfg: TileConfig, preset: str, fa: TileFactory, fb: TileFactory, sizes: Sizes, seed: int
) -> list[Comparison]:
    """Mean weight of independent replicas after n up then n down pulses, at five checkpoints."""
    if cfg.device.model == "ideal":
        return []
    c = _one_pulse_config(cfg)
    dev = c.device
    n = int(min(sizes.max_pulses, math.ceil(1.2 * (dev.w_max - dev.w_min) / dev.dw_min)))
    marks = [("up", max(n // 4, 1)), ("up", max(n // 2, 1)), ("up", n), ("down", max(n // 2, 1)), ("down", n)]
    groups = _split(sizes.replicas, max(2, min(sizes.tiles, sizes.replicas)))
    curves = [
        response_curves(factory, c, marks, [len(g) for g in groups], seed)[:, :, 0] for factory in (fa, fb)
    ]
    comp = _clustered(f"response: w after n up, n down (n={n})", preset, curves[0], curves[1],
                      detail=f"{len(groups)} tiles; a, b: mean w after n up pulses")  # fmt: skip
    comp.a, comp.b = float(curves[0][:, 2].mean()), float(curves[1][:, 2].mean())
    return [comp]


def response_curves(
    factory: TileFactory, cfg: TileConfig, marks: list[tuple[str, int]], replicas: list[int], seed: int
) -> np.ndarray:
    """Per tile, the mean and the variance over its devices of the weight at each checkpoint.

    Tile r is a column of ``replicas[r]`` devices of ``cfg`` (with its one-pulse update settings),
    driven from the start weight through ``marks`` (direction, cumulative pulses). Returns
    (tiles, checkpoints, 2): mean and variance (ddof 1; 0 for a single device) over the tile's devices.
    """
    dev = cfg.device
    lr = 10.0 * dev.dw_min  # BL = 1: probability sqrt(lr / dw_min) |x| is capped at 1 for |x| = 1
    out = np.zeros((len(replicas), len(marks), 2))
    for r, m in enumerate(replicas):
        tile = factory(m, 1, cfg, _tile_seed(seed, r))
        tile.set_weights(np.full((m, 1), _start_weight(dev), dtype=np.float32))
        done = {"up": 0, "down": 0}
        for q, (direction, upto) in enumerate(marks):
            k = upto - done[direction]
            if k > 0:
                sign = -1.0 if direction == "up" else 1.0  # sign(x d lr) > 0 is a DOWN pulse
                tile.update(np.ones((k, 1), np.float32), np.full((k, m), sign, np.float32), lr)
                done[direction] = upto
            w = tile.read_weights()[:, 0].astype(np.float64)
            out[r, q] = w.mean(), (w.var(ddof=1) if m > 1 else 0.0)
    return out
