"""Thread counts of sweep workers: each worker's share of its host's cores.

A sweep runs one training per Dask worker thread at once. Each run's numba, BLAS
and OpenMP pools get ``$ANALOGDECOR_THREADS`` when the user set it (in the
environment of the ``analogdecor sweep`` process, or of a worker started by hand),
otherwise floor(cores / runs at once on that host), at least 1: one thread per
run when there are as many workers as cores, more when fewer workers share a
machine. :func:`analogdecor.sweep.runner.execute_run` applies the count with
:func:`analogdecor.threads.configured` and writes it to the run's record
(``threads``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from analogdecor.errors import ConfigError
from analogdecor.threads import THREADS_ENV, available_cpus, resolve

__all__ = [
    "Threads",
    "host_slots",
    "task_threads",
    "user_threads",
    "worker_env",
    "worker_share",
    "worker_threads",
]

Threads = int | str | Mapping[str, int] | None
"""What a sweep task is told about its threads: a count, ``"auto"``, a map worker address -> runs at once
on that worker's host (an external cluster), or None (the worker decides alone)."""


def user_threads(env: Mapping[str, str] | None = None) -> int | str | None:
    """``$ANALOGDECOR_THREADS`` when set (an integer or ``"auto"``, validated), else None."""
    value = (os.environ if env is None else env).get(THREADS_ENV, "").strip()
    if not value:
        return None
    if value == "auto":
        return value
    try:
        return resolve(value)
    except ConfigError:
        raise ConfigError(f"{THREADS_ENV} = {value!r}: must be 'auto' or an integer >= 1") from None


def worker_share(workers: int, cores: int | None = None) -> int:
    """floor(``cores`` / ``workers``), at least 1 (``cores``: this process's CPUs)."""
    cores = available_cpus() if cores is None else int(cores)
    return max(1, cores // max(1, int(workers)))


def worker_threads(workers: int, cores: int | None = None) -> int | str:
    """Threads of each of ``workers`` local single-threaded workers: the user's count, else their share."""
    given = user_threads()
    return given if given is not None else worker_share(workers, cores)


def worker_env(threads: int | str) -> dict[str, str]:
    """Environment of a local worker process that will run with ``threads`` threads.

    numba's pool is fixed when numba starts (``NUMBA_NUM_THREADS``), so it is sized here, before the
    worker imports anything; ``"auto"`` keeps every CPU available and lets each run measure the free cores.
    """
    n = available_cpus() if threads == "auto" else int(threads)
    env = {name: str(n) for name in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                     "OPENBLAS_NUM_THREADS")}  # fmt: skip
    env[THREADS_ENV] = str(threads)
    return env


def host_slots(workers_info: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    """Worker address -> Dask threads of all workers on its host (``client.scheduler_info()["workers"]``)."""
    per_host: dict[str, int] = {}
    for info in workers_info.values():
        host = str(info.get("host", ""))
        per_host[host] = per_host.get(host, 0) + int(info.get("nthreads", 1) or 1)
    return {addr: per_host[str(info.get("host", ""))] for addr, info in workers_info.items()}


def task_threads(threads: Threads) -> int | str:
    """The count a task applies, inside its worker: ``threads`` resolved for this worker and host.

    An int or ``"auto"`` is used as given; otherwise the worker's own ``$ANALOGDECOR_THREADS``, else
    floor(CPUs / runs at once on this host), where the runs at once are looked up in the map by this
    worker's address (or, outside the map or outside Dask, are this worker's Dask threads, or 1).
    """
    if isinstance(threads, int | str):
        return threads
    given = user_threads()
    if given is not None:
        return given
    slots = 1
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        worker = None
    if worker is not None:
        slots = int(worker.state.nthreads)
        if threads is not None:
            slots = int(threads.get(worker.address, slots))
    return worker_share(slots)
