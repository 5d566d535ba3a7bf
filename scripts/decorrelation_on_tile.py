"""What device noise does to a decorrelating matrix R stored on a crossbar tile.

Runs the paper's rule (arXiv 2407.10780; local ordering, norm gain) on strongly
correlated Gaussian inputs with R in float and on tiles of several device
presets: the gain g stays in the digital periphery (an output scale) and the
C term is a pulsed outer-product update (input z, error R z). Reports, on
held-out data, the mean |off-diagonal correlation| of z, the max/min variance
ratio, and mean ||z|| / mean ||x||, plus the same for the input x.

    .venv/bin/python scripts/decorrelation_on_tile.py [--dim 32] [--steps 1500] [--presets Ideal,ReRamES]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from analogdecor.backends import make_tile
from analogdecor.decorrelation import DecorrelationConfig, Decorrelator
from analogdecor.devices.registry import load_preset

DEFAULT_PRESETS = "Ideal,Idealized,GokmenVlasov,EcRam,ReRamSB,ReRamES"


def stats(z: np.ndarray, x: np.ndarray) -> tuple[float, float, float]:
    d = z.shape[1]
    c = np.corrcoef(z.T)
    off = float(np.abs(c[~np.eye(d, dtype=bool)]).mean())
    v = z.var(axis=0)
    return (
        off,
        float(v.max() / v.min()),
        float(np.linalg.norm(z, axis=1).mean() / np.linalg.norm(x, axis=1).mean()),
    )


def run(dec: Decorrelator, sample, steps: int, batch: int) -> None:
    for _ in range(steps):
        x = sample(batch)
        xc, mu = dec.center(x, train=True)
        z = dec.apply(xc)
        dec.update_mean(mu)
        dec.step(x, z)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dim", type=int, default=32)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--presets", default=DEFAULT_PRESETS)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    d = args.dim
    L = 0.3 * np.eye(d) + rng.normal(size=(d, d)) / math.sqrt(d)

    def sample(n: int) -> np.ndarray:
        return (rng.normal(size=(n, d)) @ L.T + 0.5).astype(np.float32)

    cfg = DecorrelationConfig(enabled=True, lr=args.lr, subset_fraction=1.0)
    x_test = sample(4000)
    rows = [("input x (no R)", *stats(x_test - x_test.mean(0), x_test), 0.0)]
    setups: list[tuple[str, Decorrelator]] = [("float R", Decorrelator(d, cfg))]
    for name in [s for s in args.presets.split(",") if s]:
        tile = make_tile("numba", d, d, load_preset(name), seed=args.seed)
        setups.append((f"tile: {name}", Decorrelator(d, cfg, tile=tile)))
    for label, dec in setups:
        t0 = time.perf_counter()
        run(dec, sample, args.steps, args.batch)
        z = dec.apply(dec.center(x_test, train=False)[0])
        rows.append((label, *stats(z, x_test), time.perf_counter() - t0))
    print(f"d = {d}, {args.steps} steps of batch {args.batch}, eta = {args.lr}, subset fraction 1.0")
    print("| R | mean abs off-diag corr | max/min variance | mean norm z / mean norm x | time (s) |")
    print("|---|---|---|---|---|")
    for label, off, ratio, norm, t in rows:
        print(f"| {label} | {off:.4f} | {ratio:.2f} | {norm:.3f} | {t:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
