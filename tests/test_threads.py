"""Thread counts from the free cores (analogdecor.threads); no timing is asserted."""

from __future__ import annotations

import numba
import pytest

from analogdecor.errors import ConfigError
from analogdecor.threads import THREADS_ENV, available_cpus, busy_processes, configured, free_cores, resolve


def test_free_cores_lies_between_one_and_the_available_cpus():
    assert 1 <= free_cores(0.02) <= available_cpus()


@pytest.mark.parametrize(("own_s", "expect"), [(0.0, 1), (1.0, 2)])
def test_free_cores_counts_this_process_own_threads_as_idle(monkeypatch, own_s, expect):
    """A window in which one of 2 CPUs was busy: busy with another process leaves 1 free core;
    busy with this process's own (spinning) threads leaves both free."""
    import analogdecor.threads as th

    jiffies = iter([(0.0, 0.0), (100.0, 200.0)])  # (idle, total) over 2 CPUs: half the time idle
    own = iter([10.0, 10.0 + own_s])
    monkeypatch.setattr(th, "_cpu_times", lambda: next(jiffies))
    monkeypatch.setattr(th, "_own_cpu_s", lambda: next(own))
    monkeypatch.setattr(th, "_clock_ticks", lambda: 100.0)
    monkeypatch.setattr(th, "available_cpus", lambda: 2)
    monkeypatch.setattr(th.os, "cpu_count", lambda: 2)
    assert th.free_cores(0.0) == expect


def test_resolve_reads_integers_auto_and_the_environment(monkeypatch):
    assert resolve(3) == 3
    assert resolve("2") == 2
    assert 1 <= resolve("auto") <= available_cpus()
    monkeypatch.setenv(THREADS_ENV, "1")
    assert resolve() == 1
    monkeypatch.setenv(THREADS_ENV, "many")
    with pytest.raises(ConfigError, match=THREADS_ENV):
        resolve()
    for bad in (0, -1, True):
        with pytest.raises(ConfigError, match="threads"):
            resolve(bad)


def test_configured_sets_numba_and_blas_then_restores_them():
    from threadpoolctl import threadpool_info

    before = numba.get_num_threads()
    with configured(1) as n:
        assert n == 1
        assert numba.get_num_threads() == 1
        assert all(p["num_threads"] == 1 for p in threadpool_info() if p["user_api"] == "blas")
    assert numba.get_num_threads() == before


def test_busy_processes_run_and_are_stopped():
    with busy_processes(1) as procs:
        assert procs[0].poll() is None  # running
    assert procs[0].poll() is not None  # killed and reaped
