"""Device-noise sweeps on Dask: ``analogdecor sweep SPEC.toml``.

A spec (:mod:`analogdecor.sweep.spec`) names a base training config and axes
over any of its settings (device noise, conductance levels, converter bits,
learning rule, decorrelation, seeds). :func:`run_sweep` validates every run,
executes them as Dask tasks (a local cluster or an existing scheduler), keeps
one atomic record per run so that re-running resumes, and writes a tidy table
and plots (:mod:`analogdecor.sweep.results`, :mod:`analogdecor.sweep.plots`).
"""

from __future__ import annotations

from analogdecor.sweep.runner import WORKER_ENV, SweepReport, execute_run, rebuild_table, run_sweep
from analogdecor.sweep.spec import (
    Axis,
    PlannedRun,
    SweepSettings,
    SweepSpec,
    load_spec,
    parse_spec,
    plan_runs,
    run_id,
)
from analogdecor.sweep.target import TrainingTarget

__all__ = [
    "WORKER_ENV",
    "Axis",
    "PlannedRun",
    "SweepReport",
    "SweepSettings",
    "SweepSpec",
    "TrainingTarget",
    "execute_run",
    "load_spec",
    "parse_spec",
    "plan_runs",
    "rebuild_table",
    "run_id",
    "run_sweep",
]
