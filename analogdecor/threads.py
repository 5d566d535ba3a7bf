"""Thread counts that follow the cores actually free (numba, BLAS, OpenMP, torch).

Why: numba's parallel kernels and OpenBLAS split each call statically over
their threads and wait for the slowest. On a machine whose cores are taken by
other processes (a parameter sweep, other users), one of those threads waits
for a core, the whole call waits for it, and the idle threads spin meanwhile:
measured on a 2-core machine at load ~20 (``analogdecor bench crossbar``), a
512 x 512 float32 matmul of 256 vectors took 92-134 ms with 2 BLAS threads and
15-26 ms with 1 (1.7 ms of CPU time either way). A process that uses only the
cores that are free loses its fair share and no more.

:func:`configure` sets every thread pool of the process at once:
``"auto"`` measures the idle share of the CPUs over a short window
(:func:`free_cores`; /proc/stat on Linux, else the load average) and uses that
many threads (at least 1, at most the CPUs this process may run on); an
integer fixes the count. ``analogdecor`` commands call it at start with
``$ANALOGDECOR_THREADS`` (default ``auto``). ``analogdecor sweep`` sets every run's
count itself (``$ANALOGDECOR_THREADS`` when set, else floor(cores / runs at once on the
host)); a worker you start yourself should call ``configure(1)`` when every core has a
worker; see docs/results/speed.md.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator

from analogdecor.errors import ConfigError

__all__ = ["THREADS_ENV", "available_cpus", "busy_processes", "configure", "configured", "free_cores", "resolve"]

THREADS_ENV = "ANALOGDECOR_THREADS"
"""Environment variable read by :func:`configure` when no count is given: ``auto`` or an integer >= 1."""


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _cpu_times() -> tuple[float, float] | None:
    """(idle, total) jiffies of all CPUs from /proc/stat, or None where it does not exist."""
    try:
        with open("/proc/stat") as fh:
            parts = fh.readline().split()
    except OSError:
        return None
    if not parts or parts[0] != "cpu":
        return None
    values = [float(v) for v in parts[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0.0)  # idle + iowait
    return idle, sum(values[:8])


def _own_cpu_s() -> float:
    """CPU seconds used so far by every thread of this process (user + system)."""
    t = os.times()
    return float(t.user + t.system)


def _clock_ticks() -> float:
    """Jiffies per second of /proc/stat."""
    try:
        return float(os.sysconf("SC_CLK_TCK"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - POSIX always has it
        return 100.0


def free_cores(window_s: float = 0.1) -> int:
    """Cores left idle by every process on the machine, measured over ``window_s`` seconds.

    The idle share of all CPUs (/proc/stat) times their number, rounded, within
    [1, :func:`available_cpus`]; CPU time of this process's own threads during the window
    (e.g. BLAS or OpenMP workers still spinning after a call) counts as idle. Without /proc/stat: CPUs minus the 1-minute
    load average. A snapshot: it sees the processes running now, not those
    about to start.
    """
    n = available_cpus()
    total_cpus = os.cpu_count() or n
    a = _cpu_times()
    if a is not None:
        own_a = _own_cpu_s()
        time.sleep(window_s)
        b = _cpu_times()
        if b is not None and b[1] > a[1]:
            # this process's own threads (BLAS/OpenMP threads still spinning after their last call)
            # are not competitors: their CPU time counts as idle
            own = max(0.0, _own_cpu_s() - own_a) * _clock_ticks()
            idle_share = min(1.0, (b[0] - a[0] + own) / (b[1] - a[1]))
            return int(min(n, max(1, round(idle_share * total_cpus))))
    if hasattr(os, "getloadavg"):
        return int(min(n, max(1, round(total_cpus - os.getloadavg()[0]))))
    return n


def resolve(threads: int | str | None = None) -> int:
    """The thread count ``threads`` asks for: an integer, ``"auto"`` (:func:`free_cores`), or None
    (``$ANALOGDECOR_THREADS``, default ``auto``)."""
    if threads is None:
        threads = os.environ.get(THREADS_ENV, "auto").strip() or "auto"
    if isinstance(threads, str):
        if threads == "auto":
            return free_cores()
        try:
            threads = int(threads)
        except ValueError:
            raise ConfigError(f"{THREADS_ENV} / threads = {threads!r}: must be 'auto' or an integer >= 1") from None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"threads = {threads!r}: must be 'auto' or an integer >= 1")
    return threads


def configure(threads: int | str | None = None) -> int:
    """Set the threads of numba, BLAS and OpenMP (and torch, if imported) to one count; returns it.

    ``threads``: an integer, ``"auto"`` (the cores free now, see :func:`free_cores`) or None
    (``$ANALOGDECOR_THREADS``, default ``auto``). numba cannot go above the pool it started
    with (``NUMBA_NUM_THREADS``, default all CPUs); the count is capped there.
    """
    import numba

    n = resolve(threads)
    n_numba = min(n, int(numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
    numba.set_num_threads(n_numba)
    with contextlib.suppress(ImportError):
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=n)  # BLAS and OpenMP libraries loaded so far (kept: not a context)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)
    return n


@contextlib.contextmanager
def configured(threads: int | str | None = None) -> Iterator[int]:
    """:func:`configure` for the duration of a block, then the previous counts back."""
    import numba

    before = numba.get_num_threads()
    torch = sys.modules.get("torch")
    torch_before = torch.get_num_threads() if torch is not None else None
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        limits = contextlib.nullcontext()
    else:
        limits = threadpool_limits(limits=None)  # records the current limits, restores them on exit
    with limits:
        try:
            yield configure(threads)
        finally:
            numba.set_num_threads(before)
            torch = sys.modules.get("torch")
            if torch is not None and torch_before is not None:
                torch.set_num_threads(torch_before)


@contextlib.contextmanager
def busy_processes(n: int) -> Iterator[list[subprocess.Popen]]:
    """``n`` CPU-bound Python processes (``while True: pass``) for the duration of the block.

    The benchmarks' stand-in for the other workers of a sweep; they are killed on exit.
    """
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        time.sleep(0.5)  # let them reach the scheduler
        yield procs
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
