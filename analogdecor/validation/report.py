"""Rows of the cross-validation table: statistic, tolerance, pass/fail; text table and JSON.

:func:`make_rows` turns :class:`~analogdecor.validation.checks.Comparison` objects
into :class:`Row` objects once the whole run is known, because the Bonferroni
critical value depends on the total number M of elementary tests:
``z* = Phi^-1(1 - alpha / (2 M))``.

- A comparison with one test (a scalar statistic such as a mean error) gives
  ``statistic = |a - b|`` and ``tolerance = z* se + floor`` (``floor``: float32 rounding
  of statistics that are deterministic given the inputs, :data:`~analogdecor.validation.stats.FLOAT32_FLOOR`).
- A comparison with many tests (one per device, per pair, per checkpoint) gives
  ``statistic = max |z|`` and ``tolerance = z*``.

``passed`` is ``statistic <= tolerance``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from analogdecor.validation.checks import Comparison
from analogdecor.validation.stats import z_critical

__all__ = ["Row", "format_table", "make_rows", "rows_to_json"]


@dataclass(frozen=True)
class Row:
    """One line of the validation table (``--json`` prints these as objects)."""

    check: str
    preset: str
    statistic: float
    tolerance: float
    passed: bool
    a: float
    b: float
    n_tests: int
    kind: str
    """``"abs"``: statistic = |a - b|, tolerance = z* se; ``"max_z"``: statistic = max |z|, tolerance = z*."""
    detail: str = ""


def make_rows(comparisons: Sequence[Comparison], alpha: float) -> tuple[list[Row], float]:
    """Rows for ``comparisons`` at family-wise error ``alpha`` (Bonferroni over all elementary tests).

    Returns the rows and the critical value z*.
    """
    m = sum(c.n_tests for c in comparisons)
    zc = z_critical(alpha, m)
    rows = []
    for c in comparisons:
        z = np.asarray(c.z, dtype=np.float64)
        if c.n_tests == 1 and c.se is not None and c.diff is not None:
            # statistic in the units of a and b: |a - b| against z* se (+ the float32 floor); for a t test
            # over tiles, the t quantile of the same per-test error
            crit = zc if c.df is None else float(stats.t.isf(alpha / (2 * max(m, 1)), c.df))
            tol = crit * c.se + c.floor
            stat = c.diff
            rows.append(Row(c.check, c.preset, float(stat), float(tol), bool(stat <= tol), c.a, c.b, 1, "abs",
                            c.detail))  # fmt: skip
        else:
            stat = float(np.max(z)) if z.size else 0.0
            rows.append(
                Row(c.check, c.preset, stat, zc, bool(stat <= zc), c.a, c.b, c.n_tests, "max_z", c.detail)
            )
    return rows, zc


def _fmt(v: float) -> str:
    if not np.isfinite(v):
        return str(v)
    if v == 0:
        return "0"
    if 1e-3 <= abs(v) < 1e4:
        return f"{v:.4g}"
    return f"{v:.3e}"


def format_table(
    rows: Sequence[Row], names: tuple[str, str] = ("numba", "aihwkit"), zc: float | None = None
) -> str:
    """A fixed-width text table of ``rows``."""
    head = ["preset", "check", names[0], names[1], "statistic", "tolerance", "result"]
    body = [
        [r.preset, r.check, _fmt(r.a), _fmt(r.b), ("z " if r.kind == "max_z" else "") + _fmt(r.statistic),
         ("z* " if r.kind == "max_z" else "") + _fmt(r.tolerance), "pass" if r.passed else "FAIL"]
        for r in rows
    ]  # fmt: skip
    widths = [max(len(h), *(len(line[i]) for line in body)) if body else len(h) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in body]
    n_fail = sum(not r.passed for r in rows)
    tail = f"{len(rows)} rows, {n_fail} failed"
    if zc is not None:
        tail += f"; Bonferroni z* = {zc:.3f} over {sum(r.n_tests for r in rows)} elementary tests"
    lines.append(tail)
    return "\n".join(lines)


def rows_to_json(rows: Sequence[Row]) -> str:
    """The rows as a JSON list of objects (keys check, preset, statistic, tolerance, passed, ...)."""

    def clean(v: object) -> object:
        if isinstance(v, float) and not np.isfinite(v):
            return str(v)
        return v

    return json.dumps([{k: clean(v) for k, v in asdict(r).items()} for r in rows], indent=1)
