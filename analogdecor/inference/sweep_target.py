"""A sweep target that evaluates trained runs instead of training: inference settings as sweep axes.

Pass :class:`EvaluationTarget` as ``target=`` to :func:`analogdecor.sweep.run_sweep`
(see :mod:`analogdecor.sweep.target` for the protocol). The spec's ``[base]``
table holds ``run_dir`` (the trained run) and an ``[base.evaluate]`` table of
:class:`~analogdecor.inference.evaluate.EvaluateConfig` fields; axes are dotted
paths such as ``evaluate.model``, ``evaluate.noise_backend``, ``evaluate.ir_drop.r_wire``,
``evaluate.write_verify.enabled`` or ``run_dir`` (to compare trained runs); a
sweep's ``seeds`` setting becomes ``evaluate.seed``.

Each run writes ``evaluate.csv/json/png`` into its own folder and reports the
metrics ``test_accuracy`` and ``test_accuracy_compensated``: mean accuracies
over seeds, one entry per evaluation time (in the place of epochs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analogdecor.config import check_choice, from_dict, with_overrides
from analogdecor.errors import ConfigError
from analogdecor.inference.evaluate import EvaluateConfig, resolve_noise_model

__all__ = ["EvaluationSweepConfig", "EvaluationTarget"]


@dataclass(frozen=True)
class EvaluationSweepConfig:
    """One evaluation of a sweep: which trained run, and how to evaluate it."""

    run_dir: str = ""
    """Training run directory to evaluate."""
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    """Noise model, times, seeds, write-verify and IR-drop settings."""
    metric: str = "mean"
    """Reported statistic over seeds (only 'mean' for now)."""

    def __post_init__(self) -> None:
        if not self.run_dir:
            raise ConfigError("EvaluationSweepConfig.run_dir: name the trained run directory to evaluate")
        check_choice(self, "metric", ("mean",))


class EvaluationTarget:
    """Sweeps over :class:`EvaluationSweepConfig`; runs :func:`~analogdecor.inference.evaluate.evaluate_run`."""

    def base_config(self, table: Mapping[str, Any]) -> EvaluationSweepConfig:
        cfg = from_dict(EvaluationSweepConfig, dict(table))
        self._check(cfg)
        return cfg

    def configure(self, base: EvaluationSweepConfig, overrides: Mapping[str, Any]) -> EvaluationSweepConfig:
        # a sweep's ``seeds`` setting adds "seed": here it is the noise seed of the evaluation
        overrides = {("evaluate.seed" if k == "seed" else k): v for k, v in overrides.items()}
        cfg = with_overrides(base, overrides)
        self._check(cfg)
        return cfg

    @staticmethod
    def _check(cfg: EvaluationSweepConfig) -> None:
        # unknown model names (or a model without an aihwkit counterpart) fail before any run starts
        resolve_noise_model(cfg.evaluate.model, cfg.evaluate.noise_backend)
        if not (Path(cfg.run_dir) / "config.toml").is_file():
            raise ConfigError(
                f"EvaluationSweepConfig.run_dir = {cfg.run_dir!r}: not a training run directory"
            )

    @staticmethod
    def missing_artefacts(out_dir: Path) -> str | None:
        """The files of a finished evaluation that are missing, or None."""
        from analogdecor.sweep.target import missing_files

        return missing_files(out_dir, ("evaluate.json", "evaluate.csv"))

    def run(self, cfg: EvaluationSweepConfig, out_dir: Path):
        from analogdecor.inference.evaluate import evaluate_run
        from analogdecor.sweep.target import RunOutcome

        result, _ = evaluate_run(cfg.run_dir, cfg.evaluate, out_dir=out_dir)
        return RunOutcome(
            metrics={
                "test_accuracy": [float(a) for a in result.acc_raw.mean(axis=0)],
                "test_accuracy_compensated": [float(a) for a in result.acc_comp.mean(axis=0)],
            }
        )
