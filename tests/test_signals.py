"""Signals during a checkpoint write: held back until the files are complete, then acted on."""

from __future__ import annotations

import os
import signal

import pytest

from analogdecor._signals import signals_deferred

pytestmark = pytest.mark.usefixtures("ctrl_c_raises")


def test_sigterm_waits_for_the_block_then_reaches_its_handler():
    seen: list[str] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append("handler"))
    try:
        with signals_deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)
            seen.append("block finished")
        assert seen == ["block finished", "handler"]  # once, after the block
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL  # the handler is back
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupted_block(done: list[bool]) -> None:
    with signals_deferred():
        os.kill(os.getpid(), signal.SIGINT)
        done.append(True)


def test_ctrl_c_in_the_block_raises_keyboard_interrupt_after_it():
    done: list[bool] = []
    with pytest.raises(KeyboardInterrupt):
        _interrupted_block(done)
    assert done == [True]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ignored_signals_stay_ignored():
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        with signals_deferred():
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGTERM)
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, previous)


def _terminated_sweep_block(seen: list[str]) -> None:
    with signals_deferred("interrupt"):
        os.kill(os.getpid(), signal.SIGTERM)
        seen.append("block finished")


def test_interrupt_mode_raises_keyboard_interrupt_whatever_the_handler():
    """The sweep's mode: a held SIGTERM ends in KeyboardInterrupt after the block, not in its handler."""
    seen: list[str] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append("handler"))
    try:
        with pytest.raises(KeyboardInterrupt):
            _terminated_sweep_block(seen)
        assert seen == ["block finished"]
    finally:
        signal.signal(signal.SIGTERM, previous)
