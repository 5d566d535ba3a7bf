"""False-alarm rate and power of ``analogdecor validate``, measured on the unchanged emulator.

Runs the harness many times with different seeds (new inputs, new chips, new noise) on both
backends and pools every elementary statistic per check family. Under a correct emulator each
statistic is a |z| (t tests converted to the normal quantile of their p-value), so the
fraction of tests beyond 2, 3 and 4 must match the normal tails (4.6e-2, 2.7e-3, 6.3e-5); a
harness whose standard errors are too small shows heavier tails, and its family-wise false-alarm
rate exceeds alpha. Each run is also judged at the run's Bonferroni z* (alpha = 1e-3).
With ``--power F`` the numba tile's every weight change is scaled by F (a wrong emulator) and
the script reports how often a run fails instead.

    PYTHONPATH=$PWD python scripts/validate_false_alarms.py --presets Idealized,EcRam --runs 20
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import numpy as np
from scipy import stats

from analogdecor.backends import make_tile
from analogdecor.validation import Sizes, run_validation
from analogdecor.validation.report import make_rows

NOMINAL = {t: float(2 * stats.norm.sf(t)) for t in (2.0, 3.0, 4.0)}


class ScaledTile:
    """The numba tile with every update's weight change scaled by ``factor`` (a wrong emulator)."""

    def __init__(self, out_size, in_size, config, seed, factor):
        self.inner = make_tile("numba", out_size, in_size, config, seed=seed)
        self.factor = factor

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def update(self, x, d, lr):
        w0 = self.inner.hidden_weights()
        self.inner.update(x, d, lr)
        self.inner.set_weights(w0 + self.factor * (self.inner.hidden_weights() - w0))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", default="Idealized,EcRam,GokmenVlasov")
    p.add_argument("--checks", default="forward,update,pulses,response,random")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--random", type=int, default=1, help="random configurations per family per run")
    p.add_argument("--power", type=float, default=None, help="scale the numba tile's updates by this factor")
    p.add_argument("--alpha", type=float, default=1e-3)
    args = p.parse_args()
    presets = [s for s in args.presets.split(",") if s]
    checks = tuple(s for s in args.checks.split(",") if s)
    factories = None
    if args.power is not None:
        factories = (
            lambda o, i, c, s: ScaledTile(o, i, c, s, args.power),
            lambda o, i, c, s: make_tile("aihwkit", o, i, c, seed=s),
        )
    zs: dict[str, list[float]] = defaultdict(list)
    fails: dict[str, int] = defaultdict(int)
    runs_failed = 0
    t0 = time.time()
    for run in range(args.runs):
        res = run_validation(presets, checks=checks, sizes=Sizes(), seed=1000 + run, random=args.random,
                             factories=factories, alpha=args.alpha)  # fmt: skip
        rows, _ = make_rows(res.comparisons, args.alpha)
        for c, r in zip(res.comparisons, rows, strict=True):
            fam = c.check.split(":")[0].split(" ")[0]
            zs[fam] += [float(v) for v in np.ravel(c.z)]
            fails[fam] += not r.passed
        runs_failed += not res.passed
        print(f"run {run + 1}/{args.runs}: {'pass' if res.passed else 'FAIL'} "
              f"({sum(not r.passed for r in rows)} rows failed; {time.time() - t0:.0f} s)", flush=True)  # fmt: skip
        what = f"power at factor {args.power}" if args.power is not None else "false alarms"
        print(f"{what}: presets {', '.join(presets)}; checks {', '.join(checks)}; {run + 1} runs; "
              f"{runs_failed} runs failed at family-wise alpha = {args.alpha}")  # fmt: skip
        print("| family | tests | P(z>2) | P(z>3) | P(z>4) | max z | rows failed |")
        print("|---|---|---|---|---|---|---|")
        print(f"| (normal) | | {NOMINAL[2.0]:.2e} | {NOMINAL[3.0]:.2e} | {NOMINAL[4.0]:.2e} | | |")
        for fam, v in sorted(zs.items()):
            a = np.array(v)
            tails = " | ".join(f"{(a > t).mean():.2e}" for t in (2.0, 3.0, 4.0))
            print(f"| {fam} | {a.size} | {tails} | {a.max():.2f} | {fails[fam]} |", flush=True)


if __name__ == "__main__":
    main()
