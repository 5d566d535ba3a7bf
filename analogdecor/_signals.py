"""Holding Ctrl-C (SIGINT) and SIGTERM back while files that belong together are written."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any, Literal

__all__ = ["signals_deferred"]


@contextlib.contextmanager
def signals_deferred(then: Literal["handler", "interrupt"] = "handler") -> Iterator[None]:
    """Hold back SIGINT and SIGTERM until the block ends, then act on those that came.

    ``then="handler"`` (training checkpoints): each signal that came goes to the handler it
    would have met (Python's Ctrl-C handler and the CLI's SIGTERM handler raise
    KeyboardInterrupt); a SIGTERM under the default disposition is sent again and ends the
    process once the block is done; ignored signals stay ignored.
    ``then="interrupt"`` (sweep tables): KeyboardInterrupt once, whatever the handlers, unless an
    exception is already being handled. Only in the main thread (elsewhere signals cannot be
    handled): there the block runs as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous: dict[int, Any] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(sig)
        if then == "handler" and (handler is None or handler is signal.SIG_IGN):
            continue
        previous[sig] = signal.signal(sig, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        for held, handler in previous.items():
            signal.signal(held, handler)
    if not caught:
        return
    if then == "interrupt":
        if sys.exc_info()[0] is None:
            raise KeyboardInterrupt
        return
    for signum in dict.fromkeys(caught):
        handler = previous[signum]
        if callable(handler):
            handler(signum, None)
        elif handler == signal.SIG_DFL:
            os.kill(os.getpid(), signum)
