"""Per-device pulse counts of a trained network: saving, summaries, endurance warnings.

The counts themselves are kept by the tiles (``tile.pulse_counts()``: up and down
pulses per device, counted inside the update kernel, uint64). This module
collects them per analogue layer, writes ``pulses.npz`` in the run directory
(``NAME.up`` / ``NAME.down`` for every layer NAME, and ``names``), summarises them
for ``run.json`` (mean, 99th percentile and max per layer) and warns when a
device passes its preset's ``device.endurance``.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from analogdecor.errors import DataError
from analogdecor.training.rundir import atomic_write_bytes

__all__ = [
    "PULSES_FILE",
    "EnduranceWarning",
    "check_endurance",
    "load_pulse_counts",
    "network_pulse_counts",
    "save_pulse_counts",
    "summarise_pulse_counts",
]

PULSES_FILE = "pulses.npz"


class EnduranceWarning(UserWarning):
    """Some device received more pulses than its preset's ``device.endurance``."""


def network_pulse_counts(net: Any) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{layer name: (up, down)} for every analogue layer whose tile counts pulses (numba backend)."""
    out = {}
    for name, tile in net.analog_layers():
        counts = getattr(tile, "pulse_counts", None)
        if counts is not None:
            up, down = counts()
            out[name] = (np.asarray(up, np.uint64), np.asarray(down, np.uint64))
    return out


def _stats(a: np.ndarray) -> dict[str, float | int]:
    a = np.asarray(a, np.uint64)
    return {
        "mean": float(a.mean(dtype=np.float64)),
        "p99": float(np.percentile(a.astype(np.float64), 99)),
        "max": int(a.max()),
        "sum": int(a.sum(dtype=np.uint64)),
    }


def summarise_pulse_counts(counts: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """Per layer: mean, 99th percentile, max and sum of the up, down and total pulses per device."""
    return {
        name: {"devices": int(up.size), "up": _stats(up), "down": _stats(down), "total": _stats(up + down)}
        for name, (up, down) in counts.items()
    }


def check_endurance(net: Any, counts: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
                    *, warn: bool = True) -> list[dict[str, Any]]:  # fmt: skip
    """Layers with devices past their ``device.endurance`` (up + down pulses); warns for each.

    Returns a list of {layer, endurance, devices_over, max_pulses} (empty when none is over or no
    preset states an endurance).
    """
    counts = network_pulse_counts(net) if counts is None else counts
    tiles = dict(net.analog_layers())
    over = []
    for name, (up, down) in counts.items():
        endurance = getattr(getattr(tiles[name], "config", None), "device", None)
        endurance = getattr(endurance, "endurance", None)
        if endurance is None:
            continue
        total = up + down
        n_over = int(np.count_nonzero(total > endurance))
        if n_over:
            rec = {"layer": name, "endurance": float(endurance), "devices_over": n_over,
                   "max_pulses": int(total.max())}  # fmt: skip
            over.append(rec)
            if warn:
                warnings.warn(
                    f"{name}: {n_over} device(s) received more pulses than the preset's endurance "
                    f"({int(total.max())} > device.endurance = {endurance:g})",
                    EnduranceWarning,
                    stacklevel=2,
                )
    return over


def save_pulse_counts(run_dir: str | Path, net: Any) -> dict[str, Any]:
    """Write ``pulses.npz`` (uint64 ``NAME.up``/``NAME.down`` and ``names``); return the summary.

    Nothing is written when no layer counts pulses (float and aihwkit backends).
    """
    counts = network_pulse_counts(net)
    if not counts:
        return {}
    arrays: dict[str, np.ndarray] = {"names": np.asarray(list(counts), dtype=str)}
    for name, (up, down) in counts.items():
        arrays[f"{name}.up"] = up
        arrays[f"{name}.down"] = down
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    atomic_write_bytes(Path(run_dir) / PULSES_FILE, buf.getvalue())
    return summarise_pulse_counts(counts)


def load_pulse_counts(run_dir: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{layer name: (up, down)} from a run directory's ``pulses.npz`` ({} when it has none)."""
    path = Path(run_dir) / PULSES_FILE
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {str(n): (npz[f"{n}.up"], npz[f"{n}.down"]) for n in npz["names"]}
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{path}: not a readable pulse-count file ({exc})") from None
