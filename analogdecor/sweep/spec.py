"""Sweep specifications: parse a TOML spec, validate it completely, expand it into runs.

A spec has up to four top-level tables::

    [sweep]                      # how to expand (SweepSettings)
    mode = "grid"                # grid | random | list
    seeds = [0, 1, 2]            # crossed with every point
    metric = "test_accuracy"     # what the plots and the summary show

    [base]                       # a training config, as `analogdecor train --config` reads it
    rule = "np"                  # (or: [sweep] base = "train.toml", relative to the spec)

    [axes]                       # dotted paths into the training config
    "decorrelation.enabled" = [false, true]
    "tile.device.dw_min_std" = { linspace = [0.0, 1.0, 5] }
    "tile.mapping.levels" = [0, 16, 64]

    [[runs]]                     # mode = "list": explicit points
    "tile.device.dw_min_std" = 0.3

Axis names are dotted paths into :class:`~analogdecor.training.config.TrainConfig`
(``seed``, ``rule``, ``decorrelation.lr``, ``optim.lr``, ...); ``tile.<path>``
goes into the config's ``tile`` overrides of the device preset's TileConfig
(``tile.device.dw_min_std``, ``tile.mapping.levels``, ``tile.forward.out_bits``).
Every run's config is built and its tile resolved before anything runs, so an
unknown field, a wrong type or an empty axis is an error naming it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any, Literal

import numpy as np

from analogdecor.config import check_choice, check_int, from_dict, load_toml, to_dict
from analogdecor.errors import ConfigError

__all__ = [
    "GRID_KINDS",
    "RANDOM_KINDS",
    "Axis",
    "PlannedRun",
    "SweepSettings",
    "SweepSpec",
    "config_change",
    "config_identity",
    "load_spec",
    "parse_spec",
    "plain_config",
    "plan_runs",
    "run_id",
]

#: Axis tables that expand to a fixed list of values (allowed in every mode).
GRID_KINDS = ("linspace", "geomspace", "range")
#: Axis tables that are distributions (mode = "random" only).
RANDOM_KINDS = ("uniform", "loguniform", "randint")
_KINDS = GRID_KINDS + RANDOM_KINDS
_TOP_LEVEL = ("sweep", "base", "axes", "runs")
#: Values of ``[sweep] target`` (see :func:`analogdecor.sweep.target.make_target`).
TARGETS = ("train", "evaluate")


@dataclass(frozen=True)
class SweepSettings:
    """The ``[sweep]`` table of a spec."""

    name: str = "sweep"
    """Label used in plot titles."""
    mode: Literal["grid", "random", "list"] = "grid"
    """grid: every combination of the axes; random: ``n_samples`` draws; list: the ``[[runs]]`` tables."""
    n_samples: int | None = None
    """Number of random points (mode = "random" only)."""
    sample_seed: int = 0
    """Seed of the random draws of mode = "random" (not a training seed)."""
    seeds: tuple[int, ...] | None = None
    """Training seeds crossed with every point (alternative to a ``seed`` axis)."""
    metric: str = "test_accuracy"
    """Training metric (key of the run's per-epoch metrics) shown in plots and summary."""
    base: str | None = None
    """Path of a training config TOML used as the base (relative to the spec); else the [base] table."""
    target: Literal["train", "evaluate"] = "train"
    """What each run does: train (a TrainConfig per run) or evaluate (inference settings over a
    trained run: analogdecor.inference.sweep_target.EvaluationTarget)."""

    def __post_init__(self) -> None:
        check_choice(self, "mode", ("grid", "random", "list"))
        check_choice(self, "target", TARGETS)
        check_int(self, "n_samples", minimum=1, allow_none=True)
        check_int(self, "sample_seed")
        if self.mode == "random" and self.n_samples is None:
            raise ConfigError("SweepSettings.n_samples: required when mode = 'random'")
        if self.mode != "random" and self.n_samples is not None:
            raise ConfigError(f"SweepSettings.n_samples = {self.n_samples}: only used when mode = 'random'")
        if self.seeds is not None:
            if not self.seeds:
                raise ConfigError("SweepSettings.seeds = []: give at least one seed, or leave it out")
            if len(set(self.seeds)) != len(self.seeds):
                raise ConfigError(f"SweepSettings.seeds = {list(self.seeds)}: seeds repeat")
        if not self.metric:
            raise ConfigError("SweepSettings.metric: must name a metric the runs report (e.g. test_accuracy)")


@dataclass(frozen=True)
class Axis:
    """One swept setting: a dotted path and either explicit values or a distribution."""

    name: str
    values: tuple[Any, ...] | None = None
    distribution: tuple[str, float, float] | None = None

    def draw(self, rng: np.random.Generator) -> Any:
        """One random value (choice among ``values``, or a draw from ``distribution``)."""
        if self.values is not None:
            return self.values[int(rng.integers(len(self.values)))]
        assert self.distribution is not None, "an axis has values or a distribution"
        kind, lo, hi = self.distribution
        if kind == "uniform":
            return float(rng.uniform(lo, hi))
        if kind == "loguniform":
            return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
        return int(rng.integers(int(lo), int(hi) + 1))


@dataclass(frozen=True)
class SweepSpec:
    """A parsed (not yet expanded) spec; see the module docstring for the format."""

    settings: SweepSettings
    base: dict[str, Any]
    axes: tuple[Axis, ...] = ()
    points: tuple[dict[str, Any], ...] = ()
    source: Path | None = None
    base_overrides: dict[str, Any] = field(default_factory=dict)
    """Dotted overrides applied to the base config before the axes (``analogdecor sweep --set``)."""

    @property
    def axis_names(self) -> list[str]:
        """Swept settings in spec order, without ``seed`` (the table has its own seed column)."""
        names = [a.name for a in self.axes] if self.settings.mode != "list" else _point_keys(self.points)
        return [n for n in names if n != "seed"]


@dataclass(frozen=True)
class PlannedRun:
    """One run of a sweep: its stable id, the swept values, and the full training config."""

    run_id: str
    overrides: dict[str, Any]
    config: Any = field(repr=False)


def _point_keys(points: tuple[dict[str, Any], ...]) -> list[str]:
    keys: list[str] = []
    for p in points:
        keys.extend(k for k in p if k not in keys)
    return keys


# --------------------------------------------------------------------------- parsing
def _flatten(table: Mapping[str, Any], *, leaf: Callable[[Any], bool]) -> dict[str, Any]:
    """Flatten TOML's nested tables (``tile.device.x = ...`` unquoted) into dotted keys."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, Mapping) and not leaf(value):
            for sub, v in _flatten(value, leaf=leaf).items():
                out[f"{key}.{sub}"] = v
        else:
            out[str(key)] = value
    return out


def _is_distribution(value: Any) -> bool:
    return isinstance(value, Mapping) and len(value) > 0 and set(value) <= set(_KINDS)


def _parse_axis(name: str, raw: Any, mode: str) -> Axis:
    where = f"axes.{name!r}" if "." in name else f"axes.{name}"
    if isinstance(raw, list):
        if not raw:
            raise ConfigError(f"{where}: empty axis; give at least one value")
        if len({json.dumps(v, sort_keys=True, default=str) for v in raw}) != len(raw):
            raise ConfigError(f"{where} = {raw!r}: values repeat")
        return Axis(name, values=tuple(tuple(v) if isinstance(v, list) else v for v in raw))
    if not _is_distribution(raw):
        raise ConfigError(f"{where} = {raw!r}: expected a list of values or one table of "
                          f"{', '.join(_KINDS)} (e.g. {{ linspace = [0.0, 1.0, 5] }})")
    if len(raw) != 1:
        raise ConfigError(f"{where} = {raw!r}: give exactly one of {', '.join(_KINDS)}")
    kind, args = next(iter(raw.items()))
    if not isinstance(args, list) or any(isinstance(a, bool) or not isinstance(a, int | float) for a in args):
        raise ConfigError(f"{where}.{kind} = {args!r}: expected a list of numbers")
    if kind in RANDOM_KINDS:
        if mode != "random":
            raise ConfigError(f"{where}: {kind} is a distribution, only for mode = 'random' (this is {mode!r}); "
                              f"use a list or {', '.join(GRID_KINDS)}")
        if len(args) != 2 or not args[0] < args[1]:
            raise ConfigError(f"{where}.{kind} = {args!r}: expected [low, high] with low < high")
        if kind == "loguniform" and args[0] <= 0:
            raise ConfigError(f"{where}.loguniform = {args!r}: bounds must be > 0")
        if kind == "randint" and not all(float(a).is_integer() for a in args):
            raise ConfigError(f"{where}.randint = {args!r}: bounds must be integers")
        return Axis(name, distribution=(kind, float(args[0]), float(args[1])))
    return Axis(name, values=_grid_values(where, kind, args))


def _grid_values(where: str, kind: str, args: list[float]) -> tuple[Any, ...]:
    if kind == "range":
        if len(args) not in (2, 3) or not all(float(a).is_integer() for a in args):
            raise ConfigError(f"{where}.range = {args!r}: expected integers [start, stop] or [start, stop, step]")
        values: tuple[Any, ...] = tuple(range(*(int(a) for a in args)))
    else:
        if len(args) != 3 or not float(args[2]).is_integer() or args[2] < 1:
            raise ConfigError(f"{where}.{kind} = {args!r}: expected [start, stop, count] with count >= 1")
        if kind == "geomspace" and (args[0] <= 0 or args[1] <= 0):
            raise ConfigError(f"{where}.geomspace = {args!r}: start and stop must be > 0")
        fn = np.linspace if kind == "linspace" else np.geomspace
        values = tuple(float(v) for v in fn(args[0], args[1], int(args[2])))
    if not values:
        raise ConfigError(f"{where}.{kind} = {args!r}: expands to no values (empty axis)")
    return values


def parse_spec(data: Mapping[str, Any], *, source: str | Path | None = None) -> SweepSpec:
    """Parse a spec given as a (TOML-shaped) mapping; structure only, see :func:`plan_runs`.

    Raises
    ------
    ConfigError
        Unknown tables or settings, malformed axes, empty axes; the message
        names the table and key.
    """
    source = Path(source) if source is not None else None
    unknown = sorted(set(data) - set(_TOP_LEVEL))
    if unknown:
        raise ConfigError(f"sweep spec: unknown table(s) {', '.join(map(repr, unknown))}; "
                          f"known: {', '.join(_TOP_LEVEL)}")
    settings = from_dict(SweepSettings, data.get("sweep", {}), path="sweep")
    if settings.base is not None:
        if "base" in data:
            raise ConfigError("sweep.base names a file and a [base] table is given too; keep one")
        base_path = Path(settings.base)
        if not base_path.is_absolute() and source is not None:
            base_path = source.parent / base_path
        base = load_toml(base_path)
    else:
        base = data.get("base", {})
        if not isinstance(base, Mapping):
            raise ConfigError(f"base = {base!r}: expected a table (a training config)")
    axes_raw = data.get("axes", {})
    runs_raw = data.get("runs", [])
    if not isinstance(axes_raw, Mapping):
        raise ConfigError(f"axes = {axes_raw!r}: expected a table of dotted setting names")
    flat_axes = _flatten(axes_raw, leaf=_is_distribution)
    axes = tuple(_parse_axis(name, raw, settings.mode) for name, raw in flat_axes.items())

    points: tuple[dict[str, Any], ...] = ()
    if settings.mode == "list":
        if not isinstance(runs_raw, list) or not runs_raw:
            raise ConfigError("runs: mode = 'list' needs at least one [[runs]] table of settings")
        if axes:
            raise ConfigError(f"axes: mode = 'list' takes its points from [[runs]]; move "
                              f"{', '.join(a.name for a in axes)} into the runs (or use mode = 'grid')")
        parsed = []
        for i, run in enumerate(runs_raw):
            if not isinstance(run, Mapping) or not run:
                raise ConfigError(f"runs[{i}] = {run!r}: expected a non-empty table of settings")
            parsed.append(_flatten(run, leaf=lambda _v: False))
        points = tuple(parsed)
    else:
        if runs_raw:
            raise ConfigError(f"runs: [[runs]] tables are for mode = 'list' (this is {settings.mode!r})")
        if not axes:
            raise ConfigError("axes: no axis given; a sweep needs at least one [axes] entry")
    names = [a.name for a in axes] + _point_keys(points)
    if settings.seeds is not None and "seed" in names:
        raise ConfigError("seed is swept twice: as sweep.seeds and as an axis/run setting; keep one")
    return SweepSpec(settings=settings, base=dict(base), axes=axes, points=points, source=source)


def load_spec(path: str | Path) -> SweepSpec:
    """Read and parse a spec TOML file (errors name the file)."""
    try:
        return parse_spec(load_toml(path), source=path)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


# --------------------------------------------------------------------------- expansion
def _expand_points(spec: SweepSpec) -> list[dict[str, Any]]:
    s = spec.settings
    if s.mode == "grid":
        names = [a.name for a in spec.axes]
        grids = [a.values or () for a in spec.axes]  # grid mode has no distributions (checked by parse_spec)
        points = [dict(zip(names, combo, strict=True)) for combo in product(*grids)]
    elif s.mode == "random":
        rng = np.random.default_rng(s.sample_seed)
        # a listed seed axis is crossed with every draw, so each point has its spread over seeds
        seed_axis = next((a for a in spec.axes if a.name == "seed" and a.values is not None), None)
        drawn = [a for a in spec.axes if a is not seed_axis]
        points = []
        for _ in range(s.n_samples or 0):
            point = {a.name: a.draw(rng) for a in drawn}
            for seed in (seed_axis.values or ()) if seed_axis else (None,):
                points.append(point if seed is None else {**point, "seed": seed})
    else:
        points = [dict(p) for p in spec.points]
    if s.seeds is not None:
        points = [{**p, "seed": seed} for p in points for seed in s.seeds]
    return points


def config_identity(cfg: Any) -> dict[str, Any]:
    """The settings of ``cfg`` that differ from its class's defaults, as a nested dict.

    This is what identifies a run: the same settings give the same identity however
    they were spelt (in [base], on an axis, or left at the default), and a new
    field added to the config class later, with its default, changes nothing.
    """
    full = to_dict(cfg)
    try:
        default = to_dict(type(cfg)())
    except Exception:  # a config class without defaults for every field: use everything
        return full
    return _changed(full, default)


_MISSING = object()


def _changed(value: Mapping[str, Any], default: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, v in value.items():
        d = default.get(key, _MISSING)
        if isinstance(v, Mapping) and isinstance(d, Mapping):
            sub = _changed(v, d)
            if sub:
                out[key] = sub
        elif v != d:
            out[key] = v
    for key in default.keys() - value.keys():  # to_dict drops None: a default that was set to None
        out[key] = None
    return out


def plain_config(cfg: Any) -> Any:
    """JSON-ready form of a config that keeps None values (unlike :func:`~analogdecor.config.to_dict`)."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return {f.name: plain_config(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    return json.loads(json.dumps(to_dict(cfg), default=str))


def config_change(stored: Any, cfg: Any, path: str = "") -> str | None:
    """First difference between a run's stored config (:func:`plain_config`) and ``cfg``; None if equal.

    Fields of ``cfg`` that the stored config does not have (added to the config
    class since the run) are ignored; everything else, None values included,
    must be equal. A record without a stored config counts as equal.
    """
    if stored is None:
        return None
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        if not isinstance(stored, Mapping):
            return f"{path or 'config'}: {stored!r} -> {plain_config(cfg)!r}"
        for f in dataclasses.fields(cfg):
            if f.name in stored:
                diff = config_change(stored[f.name], getattr(cfg, f.name), f"{path}.{f.name}" if path else f.name)
                if diff is not None:
                    return diff
        removed = sorted(set(stored) - {f.name for f in dataclasses.fields(cfg)})
        return f"{path + '.' if path else ''}{removed[0]} no longer exists" if removed else None
    now = plain_config(cfg)
    return None if stored == now else f"{path}: {stored!r} -> {now!r}"


def run_id(cfg: Any) -> str:
    """Stable id of a run (12 hex digits): a hash of :func:`config_identity` of its config."""
    text = json.dumps(config_identity(cfg), sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def plan_runs(spec: SweepSpec, target: Any | None = None) -> list[PlannedRun]:
    """Expand ``spec`` into runs and validate every run's config before anything runs.

    Parameters
    ----------
    spec : SweepSpec
        The parsed spec.
    target : object, optional
        What the configs are for (see :mod:`analogdecor.sweep.target`); default:
        the spec's ``[sweep] target``.

    Returns
    -------
    list of PlannedRun
        In expansion order; ids are hashes of the resolved configs, so the same
        spec gives the same ids and a changed base config gives new ones.

    Raises
    ------
    ConfigError
        An unknown setting, a wrong type, an invalid value or two runs that
        resolve to the same config; the message names the axis and value.
    """
    if target is None:
        from analogdecor.sweep.target import make_target

        target = make_target(spec.settings.target)
    known = getattr(target, "metric_names", None)
    if known is not None and spec.settings.metric not in known:
        raise ConfigError(f"sweep.metric = {spec.settings.metric!r}: the runs report {', '.join(known)}")
    try:
        base = target.base_config(spec.base)
    except ConfigError as exc:
        raise ConfigError(f"base: {exc}") from None
    if spec.base_overrides:
        base = _build(target, base, spec.base_overrides, f"base overrides {spec.base_overrides}")
    runs: list[PlannedRun] = []
    seen: dict[str, dict[str, Any]] = {}
    for i, point in enumerate(_expand_points(spec)):
        what = f"runs[{i}]" if spec.settings.mode == "list" else f"run {i} {point}"
        cfg = _build(target, base, point, what)
        rid = run_id(cfg)
        if rid in seen:
            raise ConfigError(f"{what} resolves to the same configuration as {seen[rid]}; "
                              "remove the duplicate (a value that has no effect?)")
        seen[rid] = point
        runs.append(PlannedRun(run_id=rid, overrides=point, config=cfg))
    return runs


def _build(target: Any, base: Any, overrides: Mapping[str, Any], what: str) -> Any:
    try:
        return target.configure(base, overrides)
    except ConfigError as exc:
        raise ConfigError(f"{what}: {exc}") from None
