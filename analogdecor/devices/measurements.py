"""Measured pulse responses: the tidy CSV format, its validation, and simulated measurements.

Format (one row per conductance read; ``#`` lines are comments; column order free)::

    device,cycle,pulse,polarity,conductance_uS
    d0,0,0,up,3.12
    d0,0,1,up,3.41
    ...

- ``device``: any label of the measured device (one device per label);
- ``cycle``: integer label of the potentiation/depression cycle;
- ``polarity``: ``up`` (potentiation, the conductance rises) or ``down`` (also ``+``/``-``, ``1``/``-1``);
- ``pulse``: number of pulses of this train applied before the read: 0 is the read before the train's
  first pulse, then 1, 2, ... without gaps, in file order;
- ``conductance_uS``: the read conductance in microsiemens, within [g_min, g_max].

A train is the rows of one (device, cycle, polarity). Each pulse of a train gives one
(state before, step) pair: the difference of consecutive reads.

Weight scale: a single measured device is read against a reference at the middle of its
conductance range, so the range [g_min, g_max] maps linearly onto [-w_scale, w_scale] (the same
weight range that a tile's differential pair covers under ``MappingConfig(g_min, g_max, w_scale)``):

    w = w_scale (2 (G - g_min) / (g_max - g_min) - 1)
"""

from __future__ import annotations

import csv
import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from analogdecor.devices.config import DeviceConfig
from analogdecor.errors import DataError

__all__ = ["COLUMNS", "EXAMPLE_SETUP", "EXAMPLE_SOURCE", "Measurements", "Train", "read_measurements",
           "simulate_measurements", "write_measurements"]  # fmt: skip

COLUMNS = ("device", "cycle", "pulse", "polarity", "conductance_uS")
EXAMPLE_SOURCE = DeviceConfig(
    model="exp", dw_min=0.025, up_down=0.26, up_down_dtod=0.05, dw_min_dtod=0.2, dw_min_std=0.3,
    w_min=-0.8, w_max=0.8, w_min_dtod=0.1, w_max_dtod=0.1, a=-0.5, b=-0.5, gamma_up=5.0, gamma_down=5.0,
    A_up=-1.18445, A_down=-0.081404, write_noise_std=0.5,
)  # fmt: skip
"""The known device the bundled example measurements (device_models/measurements/example_simulated.csv)
are simulated from: ReRamES's ExpStep shape with a step large enough to cross the range in ~60 pulses."""
EXAMPLE_SETUP = {"n_devices": 8, "n_cycles": 2, "n_pulses": 60, "seed": 2026}
"""How the example file was simulated (arguments of :func:`simulate_measurements`; 0..25 uS, w_scale 1)."""
_POLARITY = {"up": 1, "+": 1, "1": 1, "+1": 1, "down": -1, "-": -1, "-1": -1}


@dataclass
class Train:
    """The reads of one pulse train: ``g[k]`` is the conductance (uS) after k pulses."""

    device: str
    cycle: int
    polarity: int
    """+1 up (potentiation), -1 down (depression)."""
    g: np.ndarray
    line: int = 0
    """Line of the train's first row in the file (for messages)."""


@dataclass
class Measurements:
    """A validated measurement file."""

    path: Path
    sha256: str
    trains: list[Train]
    devices: list[str] = field(default_factory=list)
    """Device labels in order of first appearance."""

    def weights(self, g_min: float, g_max: float, w_scale: float) -> list[np.ndarray]:
        """Each train's reads in weight units (see the module docstring); errors name the read out of range."""
        out = []
        tol = 1e-9 * (g_max - g_min)
        for tr in self.trains:
            bad = np.flatnonzero((tr.g < g_min - tol) | (tr.g > g_max + tol))
            if bad.size:
                k = int(bad[0])
                raise DataError(
                    f"{self.path}: device {tr.device!r}, cycle {tr.cycle}, "
                    f"{'up' if tr.polarity > 0 else 'down'} train, pulse {k}: conductance {float(tr.g[k])!r} uS lies "
                    f"outside the mapping's range [{g_min}, {g_max}] uS ({bad.size} read(s) out of range); "
                    "give the device's range with --g-min/--g-max"
                )
            out.append(w_scale * (2.0 * (tr.g - g_min) / (g_max - g_min) - 1.0))
        return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_measurements(path: str | Path) -> Measurements:
    """Read and validate a measurement CSV (format in the module docstring).

    Raises
    ------
    DataError
        Naming the file, and the device, train and line where it applies: a missing file or
        column, an unparsable value, an unknown polarity, a train that does not start at pulse 0
        or whose pulse indices do not increase by one, a non-finite conductance.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"measurement file {path} does not exist")
    with path.open(newline="") as fh:
        lines = [(n, row) for n, row in enumerate(fh, start=1) if row.strip() and not row.lstrip().startswith("#")]
    if not lines:
        raise DataError(f"{path}: no header and no rows (columns needed: {', '.join(COLUMNS)})")
    reader = csv.reader([row for _, row in lines])
    header = [h.strip() for h in next(reader)]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; the header has {', '.join(header)} "
                        f"(needed: {', '.join(COLUMNS)})")  # fmt: skip
    col = {c: header.index(c) for c in COLUMNS}
    groups: dict[tuple[str, int, int], tuple[int, list[int], list[float]]] = {}
    devices: list[str] = []
    for (lineno, _), row in zip(lines[1:], reader, strict=True):
        if len(row) < len(header):
            raise DataError(f"{path}, line {lineno}: {len(row)} fields, the header has {len(header)}")
        dev = row[col["device"]].strip()
        try:
            cycle = int(row[col["cycle"]])
            pulse = int(row[col["pulse"]])
            g = float(row[col["conductance_uS"]])
        except ValueError:
            raise DataError(f"{path}, line {lineno} (device {dev!r}): cycle and pulse must be integers and "
                            f"conductance_uS a number, got {row!r}") from None  # fmt: skip
        pol = _POLARITY.get(row[col["polarity"]].strip().lower())
        if pol is None:
            raise DataError(f"{path}, line {lineno} (device {dev!r}): polarity {row[col['polarity']]!r} must be "
                            "'up' or 'down'")  # fmt: skip
        if not math.isfinite(g):
            raise DataError(f"{path}, line {lineno} (device {dev!r}): conductance {g!r} is not finite")
        if dev not in devices:
            devices.append(dev)
        key = (dev, cycle, pol)
        _, pulses, gs = groups.setdefault(key, (lineno, [], []))
        expected = len(pulses)
        if pulse != expected:
            what = "must start at pulse 0" if expected == 0 else (
                f"pulse indices must increase by one (non-monotone or missing: {pulse} after {pulses[-1]})")
            raise DataError(f"{path}, line {lineno}: device {dev!r}, cycle {cycle}, "
                            f"{'up' if pol > 0 else 'down'} train {what}")  # fmt: skip
        pulses.append(pulse)
        gs.append(g)
    trains = [Train(dev, cyc, pol, np.asarray(gs, np.float64), first)
              for (dev, cyc, pol), (first, _, gs) in groups.items()]  # fmt: skip
    if not trains:
        raise DataError(f"{path}: no data rows")
    return Measurements(path=path, sha256=_sha256(path), trains=trains, devices=devices)


def write_measurements(path: str | Path, rows: list[tuple[str, int, int, str, float]], comment: str = "") -> None:
    """Write rows (device, cycle, pulse, polarity, conductance_uS) as a measurement CSV."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        for line in comment.splitlines():
            fh.write(f"# {line}\n" if line else "#\n")
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(COLUMNS)
        for dev, cyc, pulse, pol, g in rows:
            w.writerow((dev, cyc, pulse, pol, f"{g:.6g}"))


def simulate_measurements(
    config, n_devices: int, n_cycles: int, n_pulses: int, *, g_min: float = 0.0, g_max: float = 25.0,
    w_scale: float = 1.0, seed: int = 0,
) -> list[tuple[str, int, int, str, float]]:  # fmt: skip
    """Measurements of ``n_devices`` devices of ``config`` (a TileConfig) simulated pulse by pulse.

    The devices are the rows of one analogdecor :class:`~analogdecor.crossbar.Tile` (one column),
    each with its own device-to-device draws. Every cycle applies ``n_pulses`` up pulses and then
    ``n_pulses`` down pulses, one pulse per device per tile update (deterministic pulse trains of
    length 1, so each update is exactly one pulse with the device's cycle and write noise); the
    devices start at their lower bound. The read is the tile's apparent weight (write noise
    included), converted to uS with the module docstring's mapping (the tile's
    ``mapping.w_scale`` is set to ``w_scale`` so every device lies in [g_min, g_max]).
    """
    from analogdecor.crossbar.config import MappingConfig, UpdateConfig
    from analogdecor.crossbar.tile import Tile

    cfg = config.replace(update=UpdateConfig(pulse_type="deterministic", desired_bl=1),
                         mapping=MappingConfig(g_min=g_min, g_max=g_max, w_scale=w_scale))  # fmt: skip
    tile = Tile(n_devices, 1, cfg, seed=seed)
    tile.set_weights(np.full((n_devices, 1), -w_scale, np.float32))
    lr = cfg.device.weight_granularity  # k = lr |x| |d| / g = 1: one slot, probability 1 on both lines
    x = np.ones((1, 1), np.float32)

    def g_of() -> np.ndarray:
        w = tile.read_weights()[:, 0].astype(np.float64)
        return g_min + (np.clip(w / w_scale, -1.0, 1.0) + 1.0) / 2.0 * (g_max - g_min)

    rows: list[tuple[str, int, int, str, float]] = []
    names = [f"d{i}" for i in range(n_devices)]
    for cycle in range(n_cycles):
        for pol, sign in (("up", -1.0), ("down", 1.0)):  # a DOWN pulse when sign(x d lr) > 0
            reads = [g_of()]
            d = np.full((1, n_devices), sign, np.float32)
            for _ in range(n_pulses):
                tile.update(x, d, lr)
                reads.append(g_of())
            for i, name in enumerate(names):
                rows += [(name, cycle, k, pol, float(r[i])) for k, r in enumerate(reads)]
    rows.sort(key=lambda r: (int(r[0][1:]), r[1], r[3] == "down", r[2]))
    return rows
