"""Time one training step of an MLP on two tile backends (numba emulator vs aihwkit).

The step is what a backprop update costs on analogue tiles, layer by layer:
forward reads through every layer, the backward (transposed) read of every layer
but the first, and the pulsed update of every layer, with the same inputs, errors
and learning rate on both backends. Issue 4's target: the numba emulator at least
3x faster than aihwkit's CPU simulator on a 784-256-10 network at batch 64, for the
ConstantStep and ReRamES presets.

Thread counts matter: numba sizes its pool when first imported (``NUMBA_NUM_THREADS``), and on a
loaded machine its parallel regions can stall behind other processes. Compare at equal thread
counts (``scripts/bench_backends.py --threads N`` sets ``NUMBA_NUM_THREADS`` and
``OMP_NUM_THREADS`` before numba is imported) and report them; :func:`format_timings` prints them.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from analogdecor.crossbar.config import TileConfig
from analogdecor.errors import ConfigError

__all__ = ["StepTiming", "compare_backends", "format_timings", "time_training_step"]


@dataclass(frozen=True)
class StepTiming:
    """Seconds per training step of one backend on one preset."""

    backend: str
    preset: str
    sizes: tuple[int, ...]
    batch: int
    median_s: float
    """Median wall time of a step."""
    min_s: float
    """Fastest step (wall time)."""
    steps: int
    cpu_median_s: float = float("nan")
    """Median CPU time of a step (all threads of the process): robust to other jobs on the machine."""


def _relu(a: np.ndarray) -> np.ndarray:
    return np.maximum(a, 0.0)


def _step(tiles: Sequence[Any], x: np.ndarray, y: np.ndarray, lr: float) -> None:
    """One BP step on analogue tiles: forward, backward reads, pulsed updates (softmax cross-entropy)."""
    acts = [x]
    pre = []
    h = x
    for k, t in enumerate(tiles):
        a = t.forward(h)
        pre.append(a)
        h = a if k == len(tiles) - 1 else _relu(a)
        acts.append(h)
    logits = acts[-1].astype(np.float64)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    delta = (p - np.eye(p.shape[1])[y]).astype(np.float32) / x.shape[0]  # batch mean
    deltas = [delta]
    for k in range(len(tiles) - 1, 0, -1):
        back = tiles[k].backward(deltas[0])
        deltas.insert(0, back * (pre[k - 1] > 0))
    for k, t in enumerate(tiles):
        t.update(acts[k], deltas[k], lr)


def time_training_step(
    backends: str | Sequence[str],
    preset: str | TileConfig,
    *,
    sizes: Sequence[int] = (784, 256, 10),
    batch: int = 64,
    steps: int = 20,
    warmup: int = 2,
    lr: float = 0.05,
    seed: int = 0,
) -> list[StepTiming]:
    """Median and minimum wall time of one training step of an MLP ``sizes`` on each backend.

    With several backends the steps are interleaved (backend A step s, backend B step s, ...),
    so that changes in the machine's load hit all of them alike. Inputs are MNIST-like (80 %
    zeros, the rest uniform in [0, 1]) and the same on every backend; weights start uniform in
    +-1/sqrt(fan_in) (clipped by the devices). The first ``warmup`` steps (numba compilation,
    aihwkit set-up) are not timed.
    """
    from analogdecor.backends import make_tile

    names = [backends] if isinstance(backends, str) else list(backends)
    if len(sizes) < 2 or batch < 1 or steps < 1 or not names:
        raise ConfigError(
            f"sizes = {tuple(sizes)}, batch = {batch}, steps = {steps}, backends = {names}: need >= 2 sizes, "
            "batch and steps >= 1 and a backend"
        )
    if isinstance(preset, TileConfig):
        cfg, name = preset, "custom"
    else:
        from analogdecor.devices.registry import load_preset

        cfg, name = load_preset(preset), preset
    rng = np.random.default_rng(seed)
    init = [rng.uniform(-1, 1, (o, i)).astype(np.float32) / np.sqrt(i) for i, o in itertools.pairwise(sizes)]
    stacks = []
    for backend in names:
        tiles = []
        for k, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
            t = make_tile(backend, n_out, n_in, cfg, seed=seed + k)
            t.set_weights(init[k])
            tiles.append(t)
        stacks.append(tiles)
    total = warmup + steps
    xs = rng.uniform(0, 1, (total, batch, sizes[0])).astype(np.float32)
    xs *= rng.random(xs.shape) < 0.2
    ys = rng.integers(0, sizes[-1], (total, batch))
    times: list[list[float]] = [[] for _ in names]
    cpu: list[list[float]] = [[] for _ in names]
    for s in range(total):
        for b, tiles in enumerate(stacks):
            t0, c0 = time.perf_counter(), time.process_time()
            _step(tiles, xs[s], ys[s], lr)
            if s >= warmup:
                times[b].append(time.perf_counter() - t0)
                cpu[b].append(time.process_time() - c0)
    return [
        StepTiming(
            backend,
            name,
            tuple(int(v) for v in sizes),
            int(batch),
            float(np.median(ts)),
            float(np.min(ts)),
            int(steps),
            float(np.median(cs)),
        )
        for backend, ts, cs in zip(names, times, cpu, strict=True)
    ]


def compare_backends(presets: Sequence[str], **kwargs: Any) -> list[tuple[StepTiming, StepTiming]]:
    """(numba, aihwkit) timings per preset, measured in the same process with interleaved steps."""
    from analogdecor.backends.aihwkit import require_aihwkit

    require_aihwkit()
    out = []
    for p in presets:
        a, b = time_training_step(("numba", "aihwkit"), p, **kwargs)
        out.append((a, b))
    return out


def format_timings(pairs: Sequence[tuple[StepTiming, StepTiming]]) -> str:
    """Table: ms per step on each backend, the ratio numba / aihwkit and the speed-up (its inverse)."""
    import torch

    lines = [
        f"training step (forward, backward, pulsed update); threads: numba {_numba_threads()}, "
        f"torch {torch.get_num_threads()}, NumPy BLAS {_blas_threads()}; cpus {os.cpu_count()}, "
        f"load {os.getloadavg()[0]:.2f}",
        "wall: median wall time per step; cpu: median CPU time per step (all threads), robust to other jobs",
        f"{'preset':<14}{'network':<12}{'batch':>6}{'numba ms':>10}{'aihwkit ms':>12}{'numba/aihwkit':>15}"
        f"{'numba cpu ms':>14}{'aihwkit cpu ms':>16}{'cpu ratio':>11}",
    ]
    for a, b in pairs:
        net = "-".join(map(str, a.sizes))
        lines.append(f"{a.preset:<14}{net:<12}{a.batch:>6}{1e3 * a.median_s:>10.2f}{1e3 * b.median_s:>12.2f}"
                     f"{a.median_s / b.median_s:>15.3f}{1e3 * a.cpu_median_s:>14.2f}{1e3 * b.cpu_median_s:>16.2f}"
                     f"{a.cpu_median_s / b.cpu_median_s:>11.3f}")  # fmt: skip
    return "\n".join(lines)


def _blas_threads() -> int | None:
    from analogdecor.crossbar.bench import _blas_threads as blas_threads

    return blas_threads()


def _numba_threads() -> int:
    import numba

    return int(numba.get_num_threads())
