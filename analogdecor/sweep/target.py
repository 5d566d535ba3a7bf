"""What a sweep runs: the bridge between sweep points and :func:`analogdecor.training.train`.

A target has three methods, all of which must work in a fresh worker process
(targets are pickled to Dask workers):

``base_config(table) -> cfg``
    Build the base config from the spec's ``[base]`` table.
``configure(base, overrides) -> cfg``
    Apply one point's dotted overrides and validate the result completely
    (raising :class:`~analogdecor.errors.ConfigError` naming the setting).
``run(cfg, out_dir) -> RunOutcome``
    Execute the run, writing its own files into ``out_dir``, and return its
    per-epoch metrics and status (``ok``, or ``diverged`` when training stopped
    on a non-finite loss). Raising an exception marks the run ``failed``.

An optional attribute ``metric_names`` lists the metrics runs report, so that a
misspelt ``[sweep] metric`` is caught before anything runs. An optional method
``missing_artefacts(out_dir) -> str | None`` names what a finished run's
directory lacks (None: complete); a run whose record says ``ok`` but whose files
are gone is then run again rather than trusted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from analogdecor.config import from_dict

__all__ = ["RunOutcome", "TrainingTarget", "make_target", "missing_files"]


@dataclass(frozen=True)
class RunOutcome:
    """What a target's ``run`` returns."""

    metrics: dict[str, list[float]] = field(default_factory=dict)
    """Per-epoch metric lists, e.g. {"test_accuracy": [...], "train_loss": [...]}."""
    status: Literal["ok", "diverged"] = "ok"
    """ok, or diverged: the run finished early on a non-finite loss (not retried on resume)."""


class TrainingTarget:
    """Sweeps over :class:`~analogdecor.training.config.TrainConfig`, runs :func:`~analogdecor.training.train`.

    Settings named ``tile.<path>`` are merged into the config's ``tile`` table of
    dotted overrides on the device preset (``tile.device.dw_min_std`` sets
    ``cfg.tile["device.dw_min_std"]``); all other settings are dotted paths of
    TrainConfig itself. :meth:`configure` resolves the tile configuration, so a
    misspelt tile field is caught before any run starts.
    """

    @property
    def metric_names(self) -> tuple[str, ...]:
        """Per-epoch metrics of a training run (``sweep.metric`` must be one of them)."""
        from analogdecor.training.metrics import METRIC_KEYS, OPTIONAL_METRIC_KEYS

        keys = (*METRIC_KEYS, *OPTIONAL_METRIC_KEYS)  # optional ones: top-5 (> 10 classes), val_* (validation)
        return tuple(sorted(k for k in keys if k != "epoch" and not k.endswith("_time_s")))

    def base_config(self, table: Mapping[str, Any]) -> Any:
        from analogdecor.training.config import TrainConfig

        table = dict(table)
        table.pop("resolved_tile", None)  # a run directory's config.toml works as a base too
        cfg = from_dict(TrainConfig, table)
        self._resolve(cfg)
        return cfg

    def configure(self, base: Any, overrides: Mapping[str, Any]) -> Any:
        from analogdecor.training.config import apply_overrides

        cfg = apply_overrides(base, dict(overrides))
        self._resolve(cfg)
        return cfg

    @staticmethod
    def _resolve(cfg: Any) -> None:
        from analogdecor.training.config import resolve_tile_config

        resolve_tile_config(cfg)

    @staticmethod
    def missing_artefacts(out_dir: Path) -> str | None:
        """The files of a finished run directory that are missing, or None."""
        return missing_files(out_dir, ("config.toml", "run.json", "model.npz", "metrics.json"))

    def run(self, cfg: Any, out_dir: Path) -> RunOutcome:
        from analogdecor.training import train

        result = train(cfg, out_dir, progress=False)
        metrics = {k: [float(x) for x in v] for k, v in result.metrics.items()}
        return RunOutcome(metrics=metrics, status="diverged" if result.status == "diverged" else "ok")


def missing_files(out_dir: Path, names: tuple[str, ...]) -> str | None:
    """``names`` that are not files in ``out_dir``, in words, or None when all are there."""
    lost = [n for n in names if not (Path(out_dir) / n).is_file()]
    return ", ".join(lost) if lost else None


def make_target(name: str) -> Any:
    """The target named by a spec's ``[sweep] target``: ``train`` or ``evaluate``."""
    if name == "train":
        return TrainingTarget()
    if name == "evaluate":
        from analogdecor.inference.sweep_target import EvaluationTarget

        return EvaluationTarget()
    from analogdecor.errors import ConfigError

    raise ConfigError(f"sweep.target = {name!r}: must be 'train' or 'evaluate'")
