"""The toolkit's exceptions: catch :class:`AnalogDecorError` to catch them all."""

from __future__ import annotations


class AnalogDecorError(Exception):
    """Base class of every error analogdecor raises on purpose."""


class ConfigError(AnalogDecorError, ValueError):
    """A configuration value is invalid; the message names the field and the value."""


class ShapeError(AnalogDecorError, ValueError):
    """An array argument has the wrong shape; the message names the argument."""


class DataError(AnalogDecorError, ValueError):
    """A data set is missing or malformed; the message names the file and what was expected."""


class BackendUnavailableError(AnalogDecorError, ImportError):
    """An optional backend (e.g. aihwkit) is not installed; the message says how to install it."""


class ExportFormatError(AnalogDecorError, ValueError):
    """An exported file is truncated, corrupted or of an unknown format."""


class NonFiniteError(AnalogDecorError, ValueError):
    """An array holds NaN or inf where a tile needs finite numbers (a diverging run, float32 overflow)."""


class LockedError(AnalogDecorError, RuntimeError):
    """A run or sweep directory is held by another process; the message names the holder."""


class OutputError(AnalogDecorError, OSError):
    """An output file or directory cannot be written (read-only, full disk, a file in the way)."""
