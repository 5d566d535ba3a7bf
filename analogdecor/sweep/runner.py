"""Run a sweep on Dask: one task per run, resumable, failures recorded without stopping the rest.

Execution model
---------------
* Every planned run whose record (``runs/<id>/result.json``) says ``ok`` (or
  ``diverged``: it finished, on a non-finite loss) is skipped, unless the
  resolved config stored in the record differs from today's (a default that
  changed since; fields added since are ignored): then it runs again; the others (never run, failed, interrupted) are submitted.
* Each run is one Dask task, :func:`execute_run`, that sets its threads
  (:mod:`analogdecor.sweep.workers`: ``$ANALOGDECOR_THREADS``, else the worker's
  share of its host's cores) and trains into
  ``runs/<id>/`` and writes its record there atomically *before* returning, so
  a finished run survives a Ctrl-C, a killed client or killed workers.
  The client also writes records it receives, which covers clusters whose
  workers do not share the sweep directory's file system.
* An exception in a run becomes a record with ``status = "failed"``, the
  message and the traceback; a lost worker (``KilledWorker``) likewise. Failed
  runs are retried the next time the same command runs.
* The table and plots are rebuilt from the records at the end (and the table
  also after an interruption).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from analogdecor._lock import DirLock
from analogdecor._signals import signals_deferred
from analogdecor.config import to_dict
from analogdecor.sweep.results import (
    atomic_write_text,
    build_table,
    read_result,
    summarise_metrics,
    write_csv,
    write_result,
)
from analogdecor.sweep.spec import PlannedRun, SweepSpec, config_change, load_spec, plain_config, plan_runs
from analogdecor.sweep.workers import (
    Threads,
    host_slots,
    task_threads,
    user_threads,
    worker_env,
    worker_threads,
)
from analogdecor.threads import configured

__all__ = ["DONE", "WORKER_ENV", "SweepReport", "execute_run", "rebuild_table", "run_sweep"]

#: Record statuses of finished runs (skipped on resume); any other status is retried.
DONE = ("ok", "diverged")

#: Environment of local workers with one thread each for numba, OpenMP and BLAS (as many workers as
#: cores); :func:`analogdecor.sweep.workers.worker_env` gives it for any count.
WORKER_ENV = worker_env(1)


@dataclass
class SweepReport:
    """What :func:`run_sweep` did."""

    sweep_dir: Path
    n_planned: int
    skipped: list[str] = field(default_factory=list)
    """Runs finished by an earlier invocation (not run again)."""
    finished: list[str] = field(default_factory=list)
    """Runs that completed in this invocation."""
    failed: list[str] = field(default_factory=list)
    """Runs that raised (their records hold the error)."""
    not_run: list[str] = field(default_factory=list)
    """Runs left pending (max_runs, or an interruption)."""
    changed: dict[str, str] = field(default_factory=dict)
    """Finished runs run again because their resolved config changed (run id -> first difference)."""
    interrupted: bool = False
    table: Path | None = None
    plots: list[Path] = field(default_factory=list)

    def __str__(self) -> str:
        parts = [f"{self.n_planned} runs planned", f"{len(self.skipped)} done earlier (skipped)",
                 f"{len(self.finished)} finished", f"{len(self.failed)} failed"]
        if self.changed:
            parts.append(f"{len(self.changed)} redone (config changed, e.g. {next(iter(self.changed.values()))})")
        if self.not_run:
            parts.append(f"{len(self.not_run)} not run")
        return ", ".join(parts) + (" (interrupted)" if self.interrupted else "")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _failure(exc: BaseException, tb: str | None = None) -> dict[str, Any]:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return {"status": "failed", "error": f"{type(exc).__name__}: {message}".rstrip(": "),
            "traceback": tb if tb is not None else "".join(traceback.format_exception(exc))}


def execute_run(run: PlannedRun, sweep_dir: str, attempt: str, target: Any,
                threads: Threads = None) -> dict[str, Any]:  # fmt: skip
    """Run one planned run (a Dask task) and return its record, already written to disk.

    The run's numba, BLAS and OpenMP threads are set for its duration to ``threads`` as
    :func:`analogdecor.sweep.workers.task_threads` resolves it (None: ``$ANALOGDECOR_THREADS``, else
    the worker's share of its host's cores); the record's ``threads`` says how many.

    The run directory is cleared first (it can only hold a failed or
    interrupted earlier attempt; a run whose ``ok`` record appeared meanwhile
    is not run again). Exceptions raised by the run are caught and recorded;
    the task itself only fails if the worker dies.
    """
    run_dir = Path(sweep_dir) / "runs" / run.run_id
    # One attempt at a time per run: an earlier attempt may still execute (orphaned on an external
    # cluster when the client that submitted it was stopped); wait for it rather than delete its files.
    with run_lock(Path(sweep_dir), run.run_id).acquire(timeout=None):
        return _execute_locked(run, run_dir, attempt, target, threads)


def run_lock(sweep_dir: Path, run_id: str) -> DirLock:
    """The lock one attempt of run ``run_id`` holds while it executes (``runs/.<run_id>.lock``)."""
    return DirLock(sweep_dir / "runs", f"sweep run {run_id}", purpose="sweep run", name=f".{run_id}.lock")


def _execute_locked(run: PlannedRun, run_dir: Path, attempt: str, target: Any,
                    threads: Threads) -> dict[str, Any]:  # fmt: skip
    earlier = read_result(run_dir)
    if (earlier is not None and earlier.get("status") in DONE
            and config_change(earlier.get("config"), run.config) is None
            and _missing(target, run_dir) is None):
        return earlier  # finished meanwhile (an orphaned attempt on an external cluster)
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    record: dict[str, Any] = {
        "run_id": run.run_id,
        "attempt": attempt,
        "overrides": dict(run.overrides),
        "seed": getattr(run.config, "seed", run.overrides.get("seed")),
        "config": plain_config(run.config),
        "started_at": _now(),
        "host": platform.node(),
        "pid": os.getpid(),
    }
    t0 = time.perf_counter()
    try:
        with configured(task_threads(threads)) as n_threads:
            record["threads"] = n_threads
            outcome = target.run(run.config, run_dir)
    except Exception as exc:
        record.update(_failure(exc))
        atomic_write_text(run_dir / "error.txt", record["traceback"])
    else:
        metrics = outcome.metrics
        record.update(status=outcome.status, metrics=metrics, summary=summarise_metrics(metrics),
                      epochs=max((len(v) for v in metrics.values()), default=0),
                      error="" if outcome.status == "ok" else "training diverged (non-finite loss)")
    record["wall_time_s"] = round(time.perf_counter() - t0, 3)
    record["finished_at"] = _now()
    _ensure_record(run_dir, record)
    return record


def _connect(scheduler: str):
    """A client of the scheduler at ``scheduler``, or a ConfigError naming the address and the reason."""
    from dask.distributed import Client

    from analogdecor.errors import ConfigError

    try:
        return Client(scheduler, timeout=SCHEDULER_TIMEOUT_S)
    except (OSError, ValueError, TypeError, TimeoutError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"scheduler = {scheduler!r}: cannot connect to a Dask scheduler there within {SCHEDULER_TIMEOUT_S} s "
            f"({reason}); expected an address such as tcp://HOST:8786 of a running `dask scheduler`"
        ) from None


#: Seconds to wait for an external scheduler to answer.
SCHEDULER_TIMEOUT_S = 30


def _start_client(workers: int | None, scheduler: str | None, dashboard: str | None = None):
    """(client, local cluster or None, threads of each run: a count, or None to ask the cluster per host)."""
    from dask.distributed import Client, LocalCluster

    if scheduler is not None:
        return _connect(scheduler), None, user_threads()
    n = workers or os.cpu_count() or 1
    threads = worker_threads(n)
    # Ctrl-C in a terminal reaches the whole process group: the worker processes are started
    # with SIGINT ignored (inherited through exec), so only this process handles it, by closing
    # the cluster. The nanny's env reaches the worker process before anything imports numba.
    ignore = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if ignore else None
    try:
        # Scheduler and workers listen on the loopback interface only; the dashboard (no
        # authentication) is off unless asked for, and then bound where asked (e.g. localhost:8787).
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=dashboard, env=worker_env(threads), silence_logs=40)
    finally:
        if ignore:
            signal.signal(signal.SIGINT, previous)
    return Client(cluster), cluster, threads


def run_sweep(
    spec: SweepSpec | str | Path,
    sweep_dir: str | Path,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    dashboard: str | None = None,
    max_runs: int | None = None,
    progress: bool = True,
    plots: bool = True,
    target: Any | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> SweepReport:
    """Plan, validate and run a sweep; write its records, table and plots to ``sweep_dir``.

    Parameters
    ----------
    spec : SweepSpec or path
        The spec (or its TOML file). It is validated completely (every run's
        config built) before anything runs.
    sweep_dir : path
        Output folder; re-running with the same folder resumes (finished runs
        are skipped, failed ones retried).
    workers : int, optional
        Worker processes of the local Dask cluster (one thread each); default:
        all cores. Ignored with ``scheduler``.
    scheduler : str, optional
        Address of an existing Dask scheduler (``tcp://host:8786``). Its workers
        need analogdecor installed and, to keep run directories, the sweep
        directory on a shared file system. The scheduler must be trusted: Dask
        sends pickles, so whoever runs it can run code in this process and its
        workers can run code sent by anyone who reaches the scheduler.
    dashboard : str, optional
        Address for the local cluster's Dask dashboard, e.g. ``localhost:8787``
        (it has no authentication: bind it to localhost). Default: no dashboard.
    max_runs : int, optional
        Run at most this many of the pending runs now (the rest stay pending
        for a later invocation).
    progress : bool
        Show a progress bar over runs.
    plots : bool
        Draw the plots at the end.
    target : object, optional
        What runs are (see :mod:`analogdecor.sweep.target`); default: the
        spec's ``[sweep] target`` (training unless it says ``evaluate``).
    on_record : callable, optional
        Called in the client with each record as it arrives.

    Returns
    -------
    SweepReport
    """
    if not isinstance(spec, SweepSpec):
        spec = load_spec(spec)
    if target is None:
        from analogdecor.sweep.target import make_target

        target = make_target(spec.settings.target)
    if max_runs is not None and (isinstance(max_runs, bool) or not isinstance(max_runs, int) or max_runs < 0):
        from analogdecor.errors import ConfigError

        raise ConfigError(f"max_runs = {max_runs!r}: must be an integer >= 0")
    planned = plan_runs(spec, target)  # validates everything before anything runs
    sweep_dir = Path(sweep_dir)
    # One invocation per sweep directory at a time (a second is refused, naming the first).
    with DirLock(sweep_dir, "sweep directory", purpose="sweep").acquire():
        return _run_locked(spec, planned, sweep_dir, workers, scheduler, max_runs, progress, plots, target,
                           on_record, dashboard)


def _missing(target: Any, run_dir: Path) -> str | None:
    """What a finished run's directory lacks (the target's ``missing_artefacts``), or None."""
    check = getattr(target, "missing_artefacts", None)
    return check(run_dir) if check is not None else None


def _run_locked(spec: SweepSpec, planned: list[PlannedRun], sweep_dir: Path, workers: int | None,
                scheduler: str | None, max_runs: int | None, progress: bool, plots: bool, target: Any,
                on_record: Callable[[dict[str, Any]], None] | None, dashboard: str | None) -> SweepReport:  # fmt: skip
    runs_dir = sweep_dir / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    _write_plan(sweep_dir, spec, planned)

    report = SweepReport(sweep_dir=sweep_dir, n_planned=len(planned))
    pending: list[PlannedRun] = []
    for run in planned:
        record = read_result(runs_dir / run.run_id)
        if record is None or record.get("status") not in DONE:
            pending.append(run)
            continue
        change = config_change(record.get("config"), run.config)
        if change is None and (lost := _missing(target, runs_dir / run.run_id)) is not None:
            change = f"its record says {record.get('status')} but its directory lacks {lost}"
        if change is None:
            report.skipped.append(run.run_id)
        else:  # finished, but under other settings (a default changed since) or lost files: run it again
            report.changed[run.run_id] = change
            pending.append(run)
    todo = pending if max_runs is None else pending[:max_runs]
    report.not_run = [r.run_id for r in pending[len(todo):]]
    try:
        if todo:
            _execute(todo, sweep_dir, workers, scheduler, progress, target, report, on_record, dashboard)
    except KeyboardInterrupt:
        report.interrupted = True
        done = set(report.finished) | set(report.failed)
        report.not_run = [r.run_id for r in pending if r.run_id not in done]
        raise
    finally:
        if plots and not report.interrupted:
            from analogdecor.sweep.plots import plot_sweep

            report.plots = plot_sweep(sweep_dir, spec, planned)
        with signals_deferred("interrupt"):  # the table, written last, is never lost to a second Ctrl-C or a SIGTERM
            report.table = _write_table(sweep_dir, spec, planned)
    return report


def _execute(todo: Sequence[PlannedRun], sweep_dir: Path, workers: int | None, scheduler: str | None,
             progress: bool, target: Any, report: SweepReport,
             on_record: Callable[[dict[str, Any]], None] | None, dashboard: str | None = None) -> None:
    """Submit runs as a sliding window of one run per worker thread; record each as it ends.

    Runs are not all submitted at once: Dask would assign them to workers up front, and a
    worker that dies (OOM, kill -9) takes every run queued on it down with it. With at most
    one run per worker thread in flight, a dying worker takes only the run it executes.
    """
    from dask.distributed import as_completed
    from tqdm.auto import tqdm

    client, cluster, threads = _start_client(workers, scheduler, dashboard)
    bar = tqdm(total=len(todo), desc="sweep", unit="run", disable=not progress)
    queue = list(todo)
    futures: dict[Any, tuple[PlannedRun, str]] = {}
    in_flight = as_completed()
    root = str(sweep_dir.resolve())

    def fill() -> None:
        slots = max(1, sum(client.nthreads().values())) - in_flight.count()
        if slots < 1 or not queue:
            return
        # an external cluster: each worker's share of its host's cores, from the workers there now
        share: Threads = threads if threads is not None else _cluster_slots(client)
        for _ in range(min(slots, len(queue))):
            run = queue.pop(0)
            attempt = uuid.uuid4().hex
            fut = client.submit(execute_run, run, root, attempt, target, share,
                                key=f"run-{run.run_id}-{attempt[:8]}", pure=False, retries=0)
            futures[fut] = (run, attempt)
            in_flight.add(fut)

    recorded: set[Any] = set()

    def take(fut: Any) -> None:
        run, attempt = futures[fut]
        try:
            record = fut.result()
        except Exception as exc:  # the task itself failed: a killed worker, a lost connection
            record = {"run_id": run.run_id, "attempt": attempt, "overrides": dict(run.overrides),
                      "seed": getattr(run.config, "seed", None), "finished_at": _now(), **_failure(exc)}
        _ensure_record(sweep_dir / "runs" / run.run_id, record)
        recorded.add(fut)
        (report.finished if record["status"] in DONE else report.failed).append(run.run_id)
        bar.set_postfix(ok=len(report.finished), failed=len(report.failed), refresh=False)
        bar.update(1)
        if on_record is not None:
            on_record(record)

    try:
        fill()
        for fut in in_flight:
            take(fut)
            fill()
    finally:
        with signals_deferred("interrupt"):
            # Runs that ended while we were stopping: keep their records (the client's copy matters
            # where the workers do not share the sweep directory's file system).
            for fut in futures:
                if fut not in recorded and fut.status == "finished":
                    with contextlib.suppress(Exception):
                        take(fut)
        bar.close()
        for fut in futures:
            if not fut.done():
                fut.cancel()
        client.close()
        if cluster is not None:
            cluster.close()


def _cluster_slots(client: Any) -> dict[str, int] | None:
    """Worker address -> runs at once on its host (:func:`~analogdecor.sweep.workers.host_slots`); None on failure."""
    try:
        return host_slots(client.scheduler_info(n_workers=-1)["workers"])
    except Exception:  # an old scheduler, a lost connection: each worker then counts its own threads
        return None


def _ensure_record(run_dir: Path, record: Mapping[str, Any]) -> None:
    """Write ``record`` unless the file already holds it, or holds a finished run and this one failed.

    The client calls this for records its workers may already have written (a
    shared file system). A failure never replaces a finished run's record: an
    orphaned attempt of the same run (still executing on an external cluster
    after the client that submitted it was interrupted) may fail when the new
    attempt clears its directory.
    """
    on_disk = read_result(run_dir)
    if on_disk is not None and (
        on_disk.get("attempt") == record.get("attempt")
        or (on_disk.get("status") in DONE and record.get("status") not in DONE)
    ):
        return
    write_result(run_dir, record)


def _write_plan(sweep_dir: Path, spec: SweepSpec, planned: Sequence[PlannedRun]) -> None:
    plan = {
        "source": str(spec.source) if spec.source else None,
        "settings": to_dict(spec.settings),
        "base": spec.base,
        "axes": spec.axis_names,
        "runs": [{"run_id": r.run_id, "overrides": r.overrides, "config": to_dict(r.config)} for r in planned],
    }
    atomic_write_text(sweep_dir / "plan.json", json.dumps(plan, indent=1, default=str))


def _write_table(sweep_dir: Path, spec: SweepSpec, planned: Sequence[PlannedRun]) -> Path:
    columns, rows = build_table(((r.run_id, r.overrides) for r in planned), sweep_dir / "runs", spec.axis_names)
    path = sweep_dir / "results.csv"
    write_csv(path, columns, rows)
    return path


def rebuild_table(sweep_dir: str | Path, spec: SweepSpec | str | Path, target: Any | None = None) -> Path:
    """Rebuild ``results.csv`` from the records on disk (e.g. while a sweep still runs elsewhere)."""
    if not isinstance(spec, SweepSpec):
        spec = load_spec(spec)
    return _write_table(Path(sweep_dir), spec, plan_runs(spec, target))

