"""Fixtures shared by several test files."""

from __future__ import annotations

import signal

import pytest


@pytest.fixture
def ctrl_c_raises():
    """Python's own Ctrl-C handler for the test: a shell starts background jobs with SIGINT
    ignored, and Python then keeps it ignored (tests that send real SIGINTs need it)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)
