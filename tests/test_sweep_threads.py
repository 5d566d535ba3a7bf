"""Sweep workers set their thread counts: $ANALOGDECOR_THREADS, else their share of the cores."""

from __future__ import annotations

import numba
import pytest
from sweep_toy import ThreadsTarget

from analogdecor.errors import ConfigError
from analogdecor.sweep import parse_spec, run_sweep
from analogdecor.sweep.workers import host_slots, task_threads, worker_env, worker_share, worker_threads
from analogdecor.threads import THREADS_ENV, available_cpus

SPEC = {"sweep": {"name": "threads", "seeds": [0, 1]}, "base": {"levels": 4}, "axes": {"noise": [0.0]}}


def test_share_is_cores_over_workers_at_least_one(monkeypatch):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    assert worker_share(2, cores=2) == 1  # as many workers as cores: one thread each
    assert worker_share(1, cores=2) == 2
    assert worker_share(3, cores=8) == 2  # floor
    assert worker_share(16, cores=2) == 1  # never 0
    assert worker_threads(2, cores=2) == 1
    monkeypatch.setenv(THREADS_ENV, "3")  # the user's count wins
    assert worker_threads(2, cores=2) == 3
    assert task_threads(None) == 3
    monkeypatch.setenv(THREADS_ENV, "auto")
    assert worker_threads(2, cores=2) == "auto"
    monkeypatch.setenv(THREADS_ENV, "0")
    with pytest.raises(ConfigError, match=THREADS_ENV):
        worker_threads(2)


def test_worker_env_sizes_every_pool():
    env = worker_env(3)
    assert env["NUMBA_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == env["OMP_NUM_THREADS"] == "3"
    assert env[THREADS_ENV] == "3"
    assert worker_env("auto")["NUMBA_NUM_THREADS"] == str(available_cpus())


def test_host_slots_count_the_runs_sharing_a_host():
    info = {"tcp://a:1": {"host": "a", "nthreads": 1}, "tcp://a:2": {"host": "a", "nthreads": 2},
            "tcp://b:1": {"host": "b", "nthreads": 4}}  # fmt: skip
    assert host_slots(info) == {"tcp://a:1": 3, "tcp://a:2": 3, "tcp://b:1": 4}


def _records(report):
    from analogdecor.sweep.results import read_result

    return [read_result(report.sweep_dir / "runs" / rid) for rid in report.finished]


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_local_workers_report_their_share(tmp_path, monkeypatch, workers):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    report = run_sweep(parse_spec(SPEC), tmp_path / "sw", workers=workers, progress=False, plots=False,
                       target=ThreadsTarget())  # fmt: skip
    expected = max(1, available_cpus() // workers)
    records = _records(report)
    assert len(records) == 2
    for rec in records:
        assert rec["status"] == "ok"
        assert rec["threads"] == expected
        assert rec["metrics"]["numba_threads"][-1] == expected  # the worker's numba pool, as the run saw it


@pytest.mark.slow
def test_user_threads_reach_the_workers(tmp_path, monkeypatch):
    monkeypatch.setenv(THREADS_ENV, "2")
    report = run_sweep(parse_spec(SPEC), tmp_path / "sw", workers=2, progress=False, plots=False,
                       target=ThreadsTarget())  # fmt: skip
    for rec in _records(report):
        assert rec["threads"] == 2
        assert rec["metrics"]["numba_threads"][-1] == min(2, numba.config.NUMBA_NUM_THREADS)


def test_execute_run_sets_and_restores_threads(tmp_path):
    from analogdecor.sweep.runner import execute_run
    from analogdecor.sweep.spec import plan_runs

    before = numba.get_num_threads()
    run = plan_runs(parse_spec(SPEC), ThreadsTarget())[0]
    record = execute_run(run, str(tmp_path), "a", ThreadsTarget(), 1)
    assert record["threads"] == 1
    assert record["metrics"]["numba_threads"][-1] == 1
    assert numba.get_num_threads() == before
