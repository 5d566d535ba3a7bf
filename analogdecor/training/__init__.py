"""Training: :class:`TrainConfig`, :func:`train` (writes a run directory), :func:`resume`, :func:`load_run`."""

from __future__ import annotations

from analogdecor.training.config import (
    DataConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
    apply_overrides,
    load_train_config,
    resolve_tile_config,
)
from analogdecor.training.loop import TrainResult, evaluate, prepare, resume, train
from analogdecor.training.rundir import build_network, load_run, load_run_config

__all__ = [
    "DataConfig",
    "ModelConfig",
    "OptimConfig",
    "TrainConfig",
    "TrainResult",
    "apply_overrides",
    "build_network",
    "evaluate",
    "load_run",
    "load_run_config",
    "load_train_config",
    "prepare",
    "resolve_tile_config",
    "resume",
    "train",
]
