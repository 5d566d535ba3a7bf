"""Directory locks held with OS file locks (``fcntl.flock``): a dead process never leaves a stale lock.

A lock is a file (:data:`LOCK_NAME`) inside the directory it guards. A writer holds an
exclusive lock on it for as long as it writes the directory; readers (export,
evaluate) hold a shared one, so a writer and a reader exclude each other while readers
coexist. The operating system drops the lock when the holder exits in any way
(Ctrl-C, kill -9, a crash), so the file left behind never blocks anyone: only a live
holder does. While held, the file names its holder (pid, host, command, start time)
so that a refused process can say who holds it.

Locks are advisory and need a file system that supports ``flock``: local disks do, and
NFS (Linux emulates flock with POSIX byte-range locks there); some network file
systems do not, and then nothing is locked.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from analogdecor.errors import DataError, LockedError, OutputError

__all__ = ["LOCK_NAME", "DirLock", "output_error"]

#: Name of the lock file inside a locked directory (ignored when a directory is checked for emptiness).
LOCK_NAME = ".analogdecor.lock"


def output_error(path: str | Path, exc: OSError, what: str = "write") -> OutputError:
    """An :class:`OutputError` naming ``path`` and the OS reason (read-only, disk full, a file in the way)."""
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        reason = f"the disk is full ({exc.strerror})"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        reason = f"permission denied ({exc.strerror})"
    elif exc.errno in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
        reason = f"a file is in the way ({exc.strerror})"
    return OutputError(exc.errno or 0, f"cannot {what} {path}: {reason}")


class DirLock:
    """An exclusive (writer) or shared (reader) lock on a directory, held until :meth:`release`.

    Parameters
    ----------
    directory : path
        The directory to lock; created if missing.
    what : str
        What the directory is, for messages (``"run directory"``, ``"sweep directory"``).
    shared : bool
        Take a shared (reader) lock instead of an exclusive one.
    purpose : str
        What the holder does, written into the lock file (``"train"``, ``"sweep"``, ``"export"``).
    name : str
        The lock file's name inside ``directory`` (default :data:`LOCK_NAME`); other names
        lock something else kept in the directory (a sweep's single runs).
    """

    def __init__(self, directory: str | Path, what: str = "directory", *, shared: bool = False,
                 purpose: str = "", name: str = LOCK_NAME) -> None:  # fmt: skip
        self.directory = Path(directory)
        self.path = self.directory / name
        self.what = what
        self.shared = shared
        self.purpose = purpose
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, *, timeout: float | None = 0.0) -> DirLock:
        """Take the lock; ``timeout`` 0 (default): at once or :class:`LockedError`; None: wait for ever."""
        if self.shared and not self.directory.is_dir():
            raise DataError(f"{self.directory}: no such {self.what}")
        try:
            if not self.shared:
                self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            if self.shared and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                return self  # a read-only directory (an archive): nobody can be writing it through us
            raise output_error(self.directory, exc, f"create the {self.what}") from None
        mode = fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline is not None and time.monotonic() >= deadline:
                    holder = _describe(self.path)
                    os.close(fd)
                    where = self.directory if self.path.name == LOCK_NAME else self.path
                    raise LockedError(
                        f"{where}: this {self.what} is in use by another process ({holder}); "
                        "wait for it to finish or stop it, then try again"
                    ) from None
                time.sleep(0.05 if deadline is None else min(0.05, max(deadline - time.monotonic(), 0.0)))
            except OSError as exc:  # ENOLCK and the like: a file system without flock
                os.close(fd)
                raise output_error(self.path, exc, "lock") from None
        self._fd = fd
        if not self.shared:  # a shared holder must not overwrite the exclusive holder's record
            info = {
                "pid": os.getpid(),
                "host": platform.node(),
                "command": shlex.join(sys.argv) if sys.argv and sys.argv[0] else sys.executable,
                "started": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                "purpose": self.purpose,
            }
            with contextlib.suppress(OSError):  # the record is informative; the flock is the lock
                os.ftruncate(fd, 0)
                os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            if not self.shared:
                os.ftruncate(fd, 0)  # a released lock names no holder
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def __enter__(self) -> DirLock:
        if not self.held:
            self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _describe(path: Path) -> str:
    """The holder recorded in a lock file, in words."""
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict) or "pid" not in info:
        return "holder unknown: a reader, or one that is just starting"
    purpose = f"{info['purpose']}, " if info.get("purpose") else ""
    return (f"{purpose}pid {info.get('pid')} on host {info.get('host')}, started {info.get('started')}: "
            f"{info.get('command')}")  # fmt: skip


def directory_entries(directory: Path) -> list[str]:
    """Names in ``directory`` other than its lock file (empty when it does not exist)."""
    if not directory.is_dir():
        return []
    return sorted(p.name for p in directory.iterdir() if p.name != LOCK_NAME)
