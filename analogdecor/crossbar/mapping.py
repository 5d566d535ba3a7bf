"""Weight <-> conductance mapping of a differential pair (pure, invertible functions).

Each weight is stored as G+ - G- in microsiemens, both within [g_min, g_max]:

    w >= 0:  G+ = g_min + (w / w_scale) (g_max - g_min),  G- = g_min
    w <  0:  G+ = g_min,  G- = g_min + (|w| / w_scale) (g_max - g_min)
    w = (G+ - G-) / (g_max - g_min) * w_scale

With ``levels`` >= 2 each conductance takes one of ``levels`` equally spaced
values in [g_min, g_max]; in weight units that is a grid of step
w_scale / (levels - 1) (:func:`level_step`). Export and inference code use these
functions; the tile applies the same grid to its weights (kernel
``snap_to_levels``).
"""

from __future__ import annotations

import numpy as np

from analogdecor.errors import ConfigError, ShapeError

__all__ = ["conductances_to_weights", "level_step", "quantise_conductances", "weights_to_conductances"]


def _check_range(g_min: float, g_max: float, w_scale: float) -> None:
    if not (np.isfinite(g_min) and np.isfinite(g_max) and 0 <= g_min < g_max):
        raise ConfigError(f"g_min = {g_min!r}, g_max = {g_max!r}: need 0 <= g_min < g_max (finite, uS)")
    if not (np.isfinite(w_scale) and w_scale > 0):
        raise ConfigError(f"w_scale = {w_scale!r}: must be a finite number > 0")


def level_step(w_scale: float, levels: int) -> float:
    """Weight step between adjacent conductance levels (0.0 for continuous, ``levels == 0``)."""
    if levels == 0:
        return 0.0
    if levels < 2:
        raise ConfigError(f"levels = {levels!r}: needs 0 (continuous) or >= 2")
    return float(w_scale) / (levels - 1)


def quantise_conductances(g: np.ndarray, g_min: float, g_max: float, levels: int) -> np.ndarray:
    """Snap conductances to the nearest of ``levels`` equally spaced values in [g_min, g_max]."""
    g = np.asarray(g, dtype=np.float64)
    if levels == 0:
        return g.copy()
    step = (g_max - g_min) / (levels - 1)
    k = np.clip(np.rint((g - g_min) / step), 0, levels - 1)
    return g_min + k * step


def weights_to_conductances(
    w: np.ndarray, g_min: float, g_max: float, w_scale: float, levels: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Map weights to the differential pair (G+, G-) in microsiemens.

    Parameters
    ----------
    w
        Weights (any shape); |w| must not exceed ``w_scale``.
    g_min, g_max
        Conductance range of one device (uS).
    w_scale
        The weight that maps onto g_max - g_min.
    levels
        0: continuous; otherwise snap both conductances to ``levels`` levels.

    Returns
    -------
    g_plus, g_minus : float64 arrays of ``w``'s shape.
    """
    _check_range(g_min, g_max, w_scale)
    w = np.asarray(w, dtype=np.float64)
    if not np.all(np.isfinite(w)):
        raise ConfigError("w: contains NaN or inf; conductances must be finite")
    over = np.abs(w) > w_scale * (1 + 1e-6)
    if over.any():
        raise ConfigError(
            f"w: {int(over.sum())} weight(s) exceed w_scale = {w_scale!r} (max |w| = {np.abs(w).max()!r}); "
            "raise w_scale or clip the weights"
        )
    span = (g_max - g_min) / w_scale
    g_plus = g_min + np.clip(w, 0.0, w_scale) * span
    g_minus = g_min + np.clip(-w, 0.0, w_scale) * span
    if levels:
        g_plus = quantise_conductances(g_plus, g_min, g_max, levels)
        g_minus = quantise_conductances(g_minus, g_min, g_max, levels)
    return g_plus, g_minus


def conductances_to_weights(
    g_plus: np.ndarray, g_minus: np.ndarray, g_min: float, g_max: float, w_scale: float
) -> np.ndarray:
    """Inverse of :func:`weights_to_conductances`: w = (G+ - G-) / (g_max - g_min) * w_scale."""
    _check_range(g_min, g_max, w_scale)
    g_plus = np.asarray(g_plus, dtype=np.float64)
    g_minus = np.asarray(g_minus, dtype=np.float64)
    if g_plus.shape != g_minus.shape:
        raise ShapeError(f"g_plus has shape {g_plus.shape} but g_minus has shape {g_minus.shape}")
    return (g_plus - g_minus) / (g_max - g_min) * w_scale
