"""Cost coefficients: TOML data files beside the device presets (device_models/cost/*.toml).

Each coefficient is a table ``{value, units, source}``; the units must be the SI
units listed in :data:`FIELDS` (no prefixes, so that a file cannot be misread by a
factor of 1e12) and every source must be given. A ``[source]`` table names the
file. Errors name the file and the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analogdecor.config import load_toml
from analogdecor.errors import ConfigError

__all__ = ["FIELDS", "Coefficient", "CostCoefficients", "cost_dir", "list_cost_files", "load_coefficients"]

FIELDS: dict[str, tuple[str, str]] = {
    "read_voltage": ("V", "Read voltage across a device during an MVM."),
    "read_time": ("s", "Duration of one analogue read (one MVM of one array)."),
    "dac_energy_per_level": ("J", "DAC energy per conversion is value * 2**bits."),
    "dac_time": ("s", "DAC conversion time."),
    "adc_fom": ("J", "Walden figure of merit: ADC energy per conversion is value * 2**bits."),
    "adc_time": ("s", "Time of one ADC conversion."),
    "adc_share": ("1", "Columns that share one ADC (their conversions are serialised)."),
    "pulse_energy": ("J", "Energy of one update pulse on one device."),
    "pulse_time": ("s", "Duration of one pulse slot of the parallel update."),
    "mac_energy": ("J", "Digital multiply-accumulate."),
    "add_energy": ("J", "Digital add (partial sums, bias, accumulators)."),
    "digital_op_time": ("s", "Time of one digital operation on one lane."),
    "digital_lanes": ("1", "Digital operations in parallel."),
    "default_bits": ("bit", "Converter bits assumed where the periphery has no quantisation."),
}
"""name -> (required units, meaning)."""


@dataclass(frozen=True)
class Coefficient:
    value: float
    units: str
    source: str


@dataclass(frozen=True)
class CostCoefficients:
    """A loaded coefficient file: ``name``, ``path`` and one :class:`Coefficient` per field of :data:`FIELDS`."""

    name: str
    path: Path | None
    values: dict[str, Coefficient]

    def __getattr__(self, key: str) -> float:
        values = self.__dict__.get("values", {})
        if key in values:
            return values[key].value
        raise AttributeError(key)

    def as_dict(self) -> dict[str, Any]:
        return {k: {"value": c.value, "units": c.units, "source": c.source} for k, c in self.values.items()}


def cost_dir() -> Path:
    """device_models/cost next to the device presets (follows ANALOGDECOR_DEVICE_MODELS)."""
    from analogdecor.devices.registry import preset_dir

    return preset_dir() / "cost"


def list_cost_files() -> list[str]:
    d = cost_dir()
    return sorted(p.stem for p in d.glob("*.toml")) if d.is_dir() else []


def parse_coefficients(data: dict[str, Any], where: str) -> CostCoefficients:
    """Validate a coefficient table (errors name ``where`` and the field)."""
    src = data.get("source")
    if not isinstance(src, dict) or not isinstance(src.get("name"), str) or not src["name"]:
        raise ConfigError(f"{where}: missing [source] table with a name")
    unknown = sorted(set(data) - set(FIELDS) - {"source"})
    if unknown:
        raise ConfigError(f"{where}: unknown coefficient(s) {', '.join(unknown)}; known: {', '.join(FIELDS)}")
    values = {}
    for name, (units, _) in FIELDS.items():
        entry = data.get(name)
        if entry is None:
            raise ConfigError(
                f"{where}: missing coefficient {name} (a table with value, units = {units!r}, source)"
            )
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: {name} must be a table with value, units and source")
        for key in ("value", "units", "source"):
            if key not in entry:
                raise ConfigError(f"{where}: {name}.{key} is missing")
        extra = sorted(set(entry) - {"value", "units", "source"})
        if extra:
            raise ConfigError(f"{where}: {name} has unknown key(s) {', '.join(extra)}")
        v = entry["value"]
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
            raise ConfigError(f"{where}: {name}.value = {v!r}: must be a finite number >= 0")
        if entry["units"] != units:
            raise ConfigError(f"{where}: {name}.units = {entry['units']!r}: must be {units!r}")
        if not isinstance(entry["source"], str) or not entry["source"].strip():
            raise ConfigError(f"{where}: {name}.source must say where the value comes from")
        values[name] = Coefficient(float(v), units, entry["source"])
    for name in ("adc_share", "digital_lanes", "default_bits"):
        if values[name].value < 1 or values[name].value != int(values[name].value):
            raise ConfigError(f"{where}: {name}.value = {values[name].value!r}: must be an integer >= 1")
    return CostCoefficients(name=src["name"], path=None, values=values)


def load_coefficients(name_or_path: str | Path = "default") -> CostCoefficients:
    """A coefficient file by name (device_models/cost/NAME.toml) or path."""
    p = Path(name_or_path)
    if p.suffix != ".toml":
        p = cost_dir() / f"{name_or_path}.toml"
        if not p.is_file():
            raise ConfigError(
                f"unknown cost coefficients {str(name_or_path)!r}; known: {', '.join(list_cost_files())}"
            )
    elif not p.is_file():
        raise ConfigError(f"cost coefficient file {str(p)!r} does not exist")
    out = parse_coefficients(load_toml(p), str(p))
    return CostCoefficients(name=out.name, path=p, values=out.values)
