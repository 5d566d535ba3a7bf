"""The ``analogdecor`` command line: thin parsers that call library functions.

Each sub-command lives in its own module of this package and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to a callable
taking the parsed namespace and returning an exit code. Modules import their
heavy dependencies inside ``func`` so that ``analogdecor --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
from typing import Any

from analogdecor import __version__
from analogdecor.errors import AnalogDecorError

# Order = order in --help. Each name is a module of analogdecor.cli.
SUBCOMMANDS: tuple[str, ...] = ("train", "devices", "validate", "sweep", "export", "evaluate", "cost", "bench")
THREADED: frozenset[str] = frozenset({"train", "evaluate", "bench"})
"""Sub-commands run with thread counts from $ANALOGDECOR_THREADS (default: the cores free at start)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="analogdecor",
        description="Emulated analogue crossbars and decorrelated learning rules.",
    )
    parser.add_argument("--version", action="version", version=f"analogdecor {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"analogdecor.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"analogdecor.cli.{name}":
                continue  # sub-command not part of this build
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    previous = _sigterm_as_interrupt()
    try:
        if args.command not in THREADED:
            return int(args.func(args) or 0)
        from analogdecor.threads import configured

        with configured():
            return int(args.func(args) or 0)
    except AnalogDecorError as exc:
        print(f"analogdecor {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the environment (a path, the disk, the network), not a bug: no traceback
        print(f"analogdecor {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"analogdecor {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _sigterm_as_interrupt() -> Any:
    """Treat SIGTERM (kill, a batch system's time limit) like Ctrl-C for the command's duration.

    Training then marks its run ``interrupted`` (resumable) and a sweep writes its table, as
    on Ctrl-C, instead of dying mid-way. Returns the previous handler (None off the main thread).
    """
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
