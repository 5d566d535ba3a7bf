"""Speed of the emulator relative to plain float32 NumPy, measured in one run on one machine.

Used by ``analogdecor bench crossbar`` and scripts/bench_crossbar.py. Timings
are interleaved (baseline, emulator, baseline, ...) and summarised by their
medians, so a change in machine load affects both sides alike; the minimum
ratio is reported too, and the ratio of process CPU times, which other
processes on a shared machine disturb much less (with one thread it is the
cleanest figure; with several, threads waiting for work add to both sides).
"""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import time
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CrossbarBenchConfig:
    """Sizes of the benchmark (defaults: the targets of the crossbar issue)."""

    size: int = 512
    """Tile is size x size."""
    batch: int = 256
    """Vectors per forward read."""
    update_batch: int = 64
    """Samples per pulsed update."""
    bl: int = 31
    """Pulse-train length of every update sample (BL management off)."""
    preset: str = "GokmenVlasov"
    """Device preset (its training periphery: 7-bit DAC, 9-bit ADC, out_noise 0.1, bound management)."""
    repeats: int = 30
    """Timed forward reads (and as many matmuls)."""
    update_repeats: int = 5
    """Timed pulsed updates."""
    seed: int = 0
    """Seed of the data and the tile."""
    threads: int | None = None
    """Threads of both numba and BLAS during the run (None: as configured, numba's default is all CPUs)."""
    memory_size: int = 4096
    """Tile is memory_size x memory_size for the peak memory of one update (0: skip that part)."""
    contended: bool = False
    """Repeat the timings beside ``busy`` CPU-bound processes (started and stopped by the benchmark)."""
    busy: int = 1
    """Busy processes of ``contended``."""


FAMILY_DEVICES: dict[str, dict] = {
    "ideal": {"model": "ideal"},
    "constant": {"model": "constant"},
    "linear": {"model": "linear"},
    "softbounds": {"model": "softbounds"},
    "exp": {"model": "exp"},
    "pow": {"model": "pow"},
    "exp one-sided pair": {"model": "exp", "one_sided_pair": True, "w_min": 0.0},
}
"""One DeviceConfig (overrides of the defaults) per device family, for :func:`bytes_per_device`."""


def tile_nbytes(tile) -> int:
    """Bytes of a tile's per-device state: weights, apparent weights, device parameters, pair state.

    Counts every NumPy array held by the tile and its device/pair records, not
    the update's scratch buffers (they scale with the batch, not the tile).
    """
    from analogdecor.crossbar._update import MaskBuffers

    total = 0
    for value in vars(tile).values():
        if isinstance(value, np.ndarray):
            total += value.nbytes
        elif dataclasses.is_dataclass(value) and not isinstance(value, type | MaskBuffers):
            total += sum(a.nbytes for a in vars(value).values() if isinstance(a, np.ndarray))
    return total


def bytes_per_device() -> dict[str, float]:
    """Bytes of tile state per device (weight) for each device family (64 x 64 tiles).

    ``mixed`` training adds the digital accumulator chi: 8 bytes (float64) per device.
    """
    from analogdecor.crossbar.config import TileConfig
    from analogdecor.crossbar.tile import Tile
    from analogdecor.devices import DeviceConfig

    out = {}
    for family, fields in FAMILY_DEVICES.items():
        tile = Tile(64, 64, TileConfig(device=DeviceConfig(**fields)), seed=0)
        out[family] = tile_nbytes(tile) / (64 * 64)
    return out


def update_peak_memory(size: int, preset: str, batch: int, seed: int = 0) -> dict[str, float]:
    """Peak memory (bytes) of one update of a ``size`` x ``size`` tile, beyond the tile itself.

    Measured with :mod:`tracemalloc` (NumPy's allocations, including the update's
    scratch buffers and temporaries; the few per-row arrays numba allocates inside
    the kernels are not traced): the pulsed update of ``batch`` samples, and the
    mixed-precision update (the float64 accumulator, its GEMM and the kernel).
    Also returns the tile's own state in bytes.
    """
    import tracemalloc

    from analogdecor.crossbar.tile import Tile
    from analogdecor.devices.registry import load_preset
    from analogdecor.learning.update import AnalogUpdater

    rng = np.random.default_rng(seed)
    tile = Tile(size, size, load_preset(preset), seed=seed)
    x = np.maximum(rng.standard_normal((batch, size), np.float32), 0)
    d = (0.01 * rng.standard_normal((batch, size))).astype(np.float32)
    out = {"tile_bytes": float(tile_nbytes(tile))}
    tracemalloc.start()
    try:
        for name, step in (("pulsed", lambda: tile.update(x, d, 0.01)),
                           ("mixed", lambda: AnalogUpdater("mixed").apply("W", tile, x, d, 1.0, 0.01))):  # fmt: skip
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            step()
            out[f"{name}_update_peak_bytes"] = float(tracemalloc.get_traced_memory()[1] - base)
    finally:
        tracemalloc.stop()
    return out


def _timed(fn) -> tuple[float, float]:
    """(wall-clock, process CPU) seconds of one call."""
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def bench_crossbar(cfg: CrossbarBenchConfig | None = None) -> dict:
    """Run the benchmark; returns a flat dict of figures (times in ms).

    Keys include ``forward_vs_matmul_ratio`` (median time of a noisy,
    quantised forward read of a ``size`` x ``size`` tile over ``batch`` vectors,
    divided by the median time of ``x @ W.T`` in float32 NumPy) and
    ``pulsed_updates_per_s`` (stochastic pulsed updates of ``update_batch``
    samples with BL = ``bl`` per second; ``update_samples_per_s`` counts
    samples), ``bytes_per_device`` (per device family) and, unless
    ``memory_size`` is 0, the peak memory of one update of a ``memory_size``
    square tile (``pulsed_update_peak_bytes``, ``mixed_update_peak_bytes``).

    With ``contended``, the timings are repeated beside ``busy`` CPU-bound
    processes (default one), twice: with the thread counts of the quiet run
    (``contended_fixed_*``: what a process that sized its pools on a quiet machine
    gets) and with counts chosen again from the cores then free
    (``contended_*``: ``threads`` as given, else :func:`analogdecor.threads.configure`'s
    ``auto``).
    """
    from analogdecor.threads import busy_processes, configured

    cfg = cfg or CrossbarBenchConfig()
    res = _bench_threads(cfg)
    if cfg.contended:
        with busy_processes(cfg.busy):
            fixed = _bench_threads(dataclasses.replace(cfg, threads=res["numba_threads"]))
            with configured(cfg.threads if cfg.threads is not None else "auto"):
                cont = _bench(cfg)
        for prefix, r in (("contended_fixed_", fixed), ("contended_", cont)):
            for key in ("forward_vs_matmul_ratio", "forward_vs_matmul_cpu_ratio", "forward_ms", "matmul_ms",
                        "pulsed_update_ms", "numba_threads", "blas_threads", "load_average_1min"):  # fmt: skip
                res[prefix + key] = r[key]
            res[prefix + "forward_slowdown"] = r["forward_ms"] / res["forward_ms"]
        res["busy_processes"] = cfg.busy
    res["bytes_per_device"] = bytes_per_device()
    res.update(_memory(cfg))
    return res


def _bench_threads(cfg: CrossbarBenchConfig) -> dict:
    """:func:`_bench` with ``cfg.threads`` numba and BLAS threads (None: as configured)."""
    import numba

    if cfg.threads is None:
        return _bench(cfg)
    from threadpoolctl import threadpool_limits

    from analogdecor.errors import ConfigError

    max_threads = int(numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]
    if not 1 <= cfg.threads <= max_threads:
        raise ConfigError(f"threads = {cfg.threads}: must lie in [1, {max_threads}] (NUMBA_NUM_THREADS)")
    before = numba.get_num_threads()
    numba.set_num_threads(cfg.threads)
    try:
        with threadpool_limits(limits=cfg.threads, user_api="blas"):
            return _bench(cfg)
    finally:
        numba.set_num_threads(before)


def _bench(cfg: CrossbarBenchConfig) -> dict:
    import numba

    from analogdecor.config import with_overrides
    from analogdecor.crossbar._update import pulse_management
    from analogdecor.crossbar.tile import Tile
    from analogdecor.devices.registry import load_preset

    tile_cfg = with_overrides(load_preset(cfg.preset), {
        "update.pulse_type": "stochastic", "update.desired_bl": cfg.bl, "update.update_bl_management": False,
    })  # fmt: skip
    rng = np.random.default_rng(cfg.seed)
    n = cfg.size
    tile = Tile(n, n, tile_cfg, seed=cfg.seed)
    tile.set_weights(np.clip(rng.normal(0.0, 1.0 / math.sqrt(n), (n, n)), -0.5, 0.5))
    w = tile.read_weights()
    x = rng.standard_normal((cfg.batch, n)).astype(np.float32)
    xu = np.maximum(rng.standard_normal((cfg.update_batch, n)), 0).astype(np.float32)  # ReLU-like inputs
    du = (0.1 * rng.standard_normal((cfg.update_batch, n))).astype(np.float32)
    lr = 0.01

    # warm up: compile kernels, fault in pages
    tile.forward(x)
    _ = x @ w.T
    tile.update(xu[:2], du[:2], lr)

    runs: dict[str, list[tuple[float, float]]] = {"mm": [], "fwd": [], "upd": [], "fupd": []}
    for _ in range(cfg.repeats):
        runs["mm"].append(_timed(lambda: x @ w.T))
        runs["fwd"].append(_timed(lambda: tile.forward(x)))
    for _ in range(cfg.update_repeats):
        runs["fupd"].append(_timed(lambda: w - np.float32(lr) * (du.T @ xu)))
        runs["upd"].append(_timed(lambda: tile.update(xu, du, lr)))
    cpu = {k: float(np.median([c for _, c in v])) * 1e3 for k, v in runs.items()}
    wall = {k: [t for t, _ in v] for k, v in runs.items()}
    bl, sx, sd = pulse_management(xu, du, lr, tile_cfg.device.weight_granularity, cfg.bl, True, False)
    p_x = np.minimum(sx[:, None] * np.abs(xu), 1.0)
    p_d = np.minimum(sd[:, None] * np.abs(du), 1.0)
    expected_pulses = float(np.sum(bl[:, None] * (p_d.sum(1, keepdims=True) * p_x.sum(1, keepdims=True))))

    med = {k: float(np.median(v)) * 1e3 for k, v in wall.items()}
    return {
        "forward_vs_matmul_ratio": med["fwd"] / med["mm"],
        "forward_vs_matmul_ratio_min": min(wall["fwd"]) / min(wall["mm"]),
        "forward_vs_matmul_cpu_ratio": cpu["fwd"] / cpu["mm"],
        "forward_cpu_ms": cpu["fwd"],
        "matmul_cpu_ms": cpu["mm"],
        "pulsed_update_cpu_ms": cpu["upd"],
        "forward_ms": med["fwd"],
        "matmul_ms": med["mm"],
        "pulsed_updates_per_s": 1e3 / med["upd"],
        "update_samples_per_s": cfg.update_batch * 1e3 / med["upd"],
        "pulsed_update_ms": med["upd"],
        "float_update_ms": med["fupd"],
        "pulsed_vs_float_update_ratio": med["upd"] / med["fupd"],
        "expected_pulses_per_update": expected_pulses,
        "size": n,
        "batch": cfg.batch,
        "update_batch": cfg.update_batch,
        "bl": cfg.bl,
        "preset": cfg.preset,
        "repeats": cfg.repeats,
        "numba_threads": numba.get_num_threads(),
        "blas_threads": _blas_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan"),
        "machine": platform.machine(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "bytes_per_device": bytes_per_device(),
        **_memory(cfg),
    }


def _memory(cfg: CrossbarBenchConfig) -> dict:
    if cfg.memory_size <= 0:
        return {}
    m = update_peak_memory(cfg.memory_size, cfg.preset, cfg.update_batch, cfg.seed)
    return {"memory_size": cfg.memory_size, "memory_tile_bytes": m["tile_bytes"],
            "pulsed_update_peak_bytes": m["pulsed_update_peak_bytes"],
            "mixed_update_peak_bytes": m["mixed_update_peak_bytes"]}  # fmt: skip


def format_report(res: dict) -> str:
    """Human-readable summary of :func:`bench_crossbar`'s figures."""
    return "\n".join([
        f"crossbar benchmark ({res['size']}x{res['size']} tile, preset {res['preset']}; "
        f"threads: numba {res['numba_threads']}, BLAS {res['blas_threads']}; {res['cpu_count']} CPUs, "
        f"load {res['load_average_1min']:.2f})",
        f"  forward read, batch {res['batch']}: {res['forward_ms']:.3f} ms vs float32 matmul "
        f"{res['matmul_ms']:.3f} ms -> ratio {res['forward_vs_matmul_ratio']:.2f} "
        f"(best-of ratio {res['forward_vs_matmul_ratio_min']:.2f}; target <= 2)",
        f"  the same in process CPU time (robust to other load; all threads summed): {res['forward_cpu_ms']:.3f} "
        f"ms vs {res['matmul_cpu_ms']:.3f} ms -> ratio {res['forward_vs_matmul_cpu_ratio']:.2f}",
        f"  stochastic pulsed update, batch {res['update_batch']}, BL {res['bl']}: {res['pulsed_update_ms']:.1f} ms "
        f"-> {res['pulsed_updates_per_s']:.1f} updates/s ({res['update_samples_per_s']:.0f} samples/s, "
        f"~{res['expected_pulses_per_update']:.3g} pulses each)",
        f"  float32 outer-product update (same batch): {res['float_update_ms']:.3f} ms "
        f"-> pulsed/float {res['pulsed_vs_float_update_ratio']:.1f}x",
        "  tile state per device: " + ", ".join(f"{k} {v:.0f} B" for k, v in res["bytes_per_device"].items())
        + " (mixed training adds 8 B: the float64 accumulator)",
        *_memory_lines(res),
        *_contended_lines(res),
    ])  # fmt: skip


def _contended_lines(res: dict) -> list[str]:
    if "contended_forward_ms" not in res:
        return []
    out = [f"  beside {res['busy_processes']} busy process(es):"]
    for prefix, what in (("contended_fixed_", "threads of the quiet run"), ("contended_", "threads from free cores")):
        out.append(f"    {what} (numba {res[prefix + 'numba_threads']}, BLAS {res[prefix + 'blas_threads']}; load "
                   f"{res[prefix + 'load_average_1min']:.2f}): forward {res[prefix + 'forward_ms']:.3f} ms "
                   f"({res[prefix + 'forward_slowdown']:.2f}x quiet), matmul {res[prefix + 'matmul_ms']:.3f} ms "
                   f"-> ratio {res[prefix + 'forward_vs_matmul_ratio']:.2f} (target <= 2.5)")  # fmt: skip
    return out


def _memory_lines(res: dict) -> list[str]:
    if "memory_size" not in res:
        return []
    n, mib = res["memory_size"], 2.0**20
    return [f"  {n}x{n} tile ({res['preset']}): state {res['memory_tile_bytes'] / mib:.0f} MiB; peak beyond it "
            f"during one pulsed update (batch {res['update_batch']}) {res['pulsed_update_peak_bytes'] / mib:.1f} MiB, "
            f"one mixed update {res['mixed_update_peak_bytes'] / mib:.1f} MiB"]  # fmt: skip


def _blas_threads() -> int | None:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return None
    blas = [p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"]
    return min(blas) if blas else None
