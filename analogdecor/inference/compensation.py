"""Global drift compensation: one output scale per tile, measured on a reference input.

Chips (and aihwkit's ``GlobalDriftCompensation``) read a fixed reference input
right after programming and again at inference time t; the ratio of the mean
absolute outputs rescales every later output of that tile digitally::

    alpha(t) = mean |Y_ref(0)| / mean |Y_ref(t)|,     y(t) <- alpha(t) y(t)

For pure power-law drift with one exponent nu, Y(t) = Y(0) ((t + t0) / t0)^(-nu)
and alpha restores the output scale exactly; with per-device exponents it
restores the mean scale.
"""

from __future__ import annotations

import numpy as np

__all__ = ["drift_compensation_scale"]

_MIN_READOUT = 1e-12


def drift_compensation_scale(y_ref0: np.ndarray, y_ref_t: np.ndarray) -> float:
    """alpha = mean |y_ref0| / mean |y_ref_t| (1.0 when the time-zero readout is zero).

    Parameters
    ----------
    y_ref0 : ndarray
        Outputs of the tile for the reference input right after programming.
    y_ref_t : ndarray
        Outputs of the same tile for the same input at time t.
    """
    y0 = np.asarray(y_ref0, dtype=np.float64)
    yt = np.asarray(y_ref_t, dtype=np.float64)
    if y0.shape != yt.shape:
        raise ValueError(
            f"y_ref0 {y0.shape} and y_ref_t {yt.shape}: reference readouts must have equal shapes"
        )
    r0 = float(np.mean(np.abs(y0))) if y0.size else 0.0
    rt = float(np.mean(np.abs(yt))) if yt.size else 0.0
    if r0 <= _MIN_READOUT:
        return 1.0
    return r0 / max(rt, _MIN_READOUT)
