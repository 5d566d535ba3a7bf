"""IR drop: the first-order line-resistance model of a crossbar read.

Layout assumed (one tile, ``out`` x ``in`` differential pairs): input line j
(one per input, a word line) is driven with voltage v_j at the end next to
output 0 and runs across outputs i = 0 .. out-1; at position i it feeds both
devices of pair (i, j), G+_ij and G-_ij. Output lines (two per output, one for
G+ and one for G-) run across inputs j = 0 .. in-1 and end in virtual-ground
sense amplifiers after input in-1. Every wire segment between two neighbouring
cells (and between the last cell and the driver / sense amplifier) has
resistance ``r_wire`` (ohm).

First-order model (currents of the ideal read drive the wire drops; the drops
then reduce the voltage across each cell)::

    input-line drop   d_ij = r sum_{k<=i} sum_{m>=k} (G+_mj + G-_mj) v_j = r D_ij v_j
    output-line rise  u±_ij = r sum_{k>=j} sum_{m<=k} G±_im v_m
    output current    I_i = sum_j [ G+_ij (v_j - d_ij - u+_ij) - G-_ij (v_j - d_ij - u-_ij) ]

The network is linear in v, so the read equals an ideal read of *effective*
conductances (still per device, in uS)::

    G±eff_ij = G±_ij (1 - r D_ij) - r G±_ij E±_ij,   E±_ij = sum_{k>=j} sum_{l<=k} G±_il

(the second term moves the output-line drop, a sum over inputs, onto the
device that causes it: sum_j G_ij u_ij = r sum_m v_m G_im E_im). Outputs far
from the drivers (large i) and inputs far from the sense amplifiers (small j)
lose the most. r G is dimensionless with G in siemens (uS * 1e-6). The model is
accurate while r D and r E are small (a few per cent); it is the small-r_wire
expansion of the exact resistive network, which the tests solve by nodal analysis.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from analogdecor.config import check_nonneg
from analogdecor.errors import ShapeError

__all__ = ["IRDropConfig", "ir_drop_arrays", "ir_drop_conductances", "ir_drop_factors"]

US = 1e-6
"""Siemens per microsiemens."""


@dataclass(frozen=True)
class IRDropConfig:
    """IR-drop settings of an evaluation (switchable per tile)."""

    enabled: bool = False
    """Apply the first-order line-resistance model to the forward read."""
    r_wire: float = 1.0
    """Wire resistance of one segment between neighbouring cells (ohm)."""
    layers: tuple[str, ...] = ()
    """Names of the analogue layers (tiles) to apply it to; empty: all of them."""

    def __post_init__(self) -> None:
        check_nonneg(self, "r_wire")

    def applies_to(self, layer: str) -> bool:
        """Whether the tile named ``layer`` reads with IR drop."""
        return self.enabled and self.r_wire > 0 and (not self.layers or layer in self.layers)


def _check_pair(g_plus: np.ndarray, g_minus: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    gp = np.asarray(g_plus, dtype=np.float64)
    gm = np.asarray(g_minus, dtype=np.float64)
    if gp.ndim != 2 or gp.shape != gm.shape:
        raise ShapeError(
            f"g_plus {gp.shape} and g_minus {gm.shape}: need two 2-D arrays (out, in) of equal shape"
        )
    return gp, gm


def ir_drop_factors(g_plus: np.ndarray, g_minus: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The wire-drop sums D, E+ and E- of the first-order model (siemens; multiply by r_wire).

    Returns
    -------
    D, E_plus, E_minus : ndarray, shape (out, in)
        D_ij = sum_{k<=i} sum_{m>=k} (G+_mj + G-_mj);  E±_ij = sum_{k>=j} sum_{l<=k} G±_il.
    """
    gp, gm = _check_pair(g_plus, g_minus)
    gt = (gp + gm) * US
    # current through input-line segment k of line j: sum over cells m >= k (reverse cumsum over outputs)
    seg_in = np.cumsum(gt[::-1, :], axis=0)[::-1, :]
    d = np.cumsum(seg_in, axis=0)
    e = []
    for g in (gp, gm):
        seg_out = np.cumsum(g * US, axis=1)  # current through output-line segment k: cells l <= k
        e.append(np.cumsum(seg_out[:, ::-1], axis=1)[:, ::-1])
    return d, e[0], e[1]


def ir_drop_conductances(
    g_plus: np.ndarray, g_minus: np.ndarray, r_wire: float
) -> tuple[np.ndarray, np.ndarray]:
    """Effective conductances (uS) whose ideal read equals the read with first-order IR drop.

    Parameters
    ----------
    g_plus, g_minus : ndarray, shape (out, in)
        Device conductances in microsiemens.
    r_wire : float
        Resistance of one wire segment (ohm); 0 returns exact copies.

    Returns
    -------
    g_plus_eff, g_minus_eff : ndarray
        G±eff = G± (1 - r D) - r G± E± (see the module docstring). Map them back
        to weights with the tile's mapping as for any conductances.
    """
    gp, gm = _check_pair(g_plus, g_minus)
    if not np.isfinite(r_wire) or r_wire < 0:
        raise ValueError(f"r_wire = {r_wire!r}: must be a finite resistance >= 0 ohm")
    if r_wire == 0:
        return gp.copy(), gm.copy()
    d, e_plus, e_minus = ir_drop_factors(gp, gm)
    keep_plus = 1.0 - r_wire * (d + e_plus)
    keep_minus = 1.0 - r_wire * (d + e_minus)
    worst = min(float(keep_plus.min()), float(keep_minus.min()))
    if worst < 0:
        raise ValueError(
            f"r_wire = {r_wire!r} ohm: the first-order IR-drop correction exceeds 100 % on a "
            f"{gp.shape[0]} x {gp.shape[1]} tile (smallest factor {worst:.3g}); the model is only valid "
            "for small wire drops: use a smaller r_wire or smaller tiles"
        )
    return gp * keep_plus, gm * keep_minus


def ir_drop_arrays(
    g_plus: np.ndarray, g_minus: np.ndarray, r_wire: float, row_edges: list[int], col_edges: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`ir_drop_conductances` applied to every physical array of a tile on its own.

    A tile split over arrays (:class:`analogdecor.crossbar.arrays.ArrayTile`) has its own drivers and
    sense amplifiers per array, so the wires, and the drops along them, end at each array's border.
    ``row_edges`` / ``col_edges`` are the arrays' start offsets plus the size ([0, a, 2a, ..., n]).
    """
    gp, gm = _check_pair(g_plus, g_minus)
    out_p, out_m = gp.copy(), gm.copy()
    for r0, r1 in itertools.pairwise(row_edges):
        for c0, c1 in itertools.pairwise(col_edges):
            sl = (slice(r0, r1), slice(c0, c1))
            out_p[sl], out_m[sl] = ir_drop_conductances(gp[sl], gm[sl], r_wire)
    return out_p, out_m
