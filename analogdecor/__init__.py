"""analogdecor: emulated analogue in-memory-computing crossbars and decorrelated learning.

Layout: :mod:`analogdecor.devices` (device models and presets),
:mod:`analogdecor.crossbar` (the numba crossbar emulator),
:mod:`analogdecor.decorrelation` (decorrelation rules and layers),
:mod:`analogdecor.learning` (learning rules: BP, FA, DFA, NP),
:mod:`analogdecor.networks` (MLPs), :mod:`analogdecor.backends` (float, numba crossbar, aihwkit),
:mod:`analogdecor.data`, :mod:`analogdecor.training`, :mod:`analogdecor.sweep`,
:mod:`analogdecor.export`, :mod:`analogdecor.inference`.
"""

from __future__ import annotations

__version__ = "0.1.0"
