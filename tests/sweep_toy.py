"""A toy sweep target for the sweep engine's tests: instant "training" with a known result.

It has the same three methods as analogdecor.sweep.target.TrainingTarget, over a
small config, so specs, resuming and failure handling can be tested without
depending on training speed. Importable by Dask workers (tests/ is on their path).
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from analogdecor.config import check_int, check_nonneg, from_dict, with_overrides
from analogdecor.errors import ConfigError
from analogdecor.sweep.target import RunOutcome


@dataclass(frozen=True)
class Inner:
    gain: float = 1.0


@dataclass(frozen=True)
class ToyConfig:
    noise: float = 0.0
    levels: int = 0
    decor: bool = False
    inner: Inner = field(default_factory=Inner)
    fail: bool = False
    crash: bool = False
    sleep: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        check_nonneg(self, "noise")
        check_int(self, "levels", minimum=0)
        if self.decor and self.levels == 0:
            raise ConfigError("ToyConfig.decor needs levels > 0")


def toy_accuracy(cfg: ToyConfig) -> float:
    """The toy's known 'final accuracy'."""
    return 1.0 - 0.3 * cfg.noise + (0.1 if cfg.decor else 0.0) + 0.001 * cfg.levels + 0.01 * cfg.seed


class ToyTarget:
    def base_config(self, table):
        return from_dict(ToyConfig, table)

    def configure(self, base, overrides):
        return with_overrides(base, overrides)

    def run(self, cfg, out_dir: Path):
        if cfg.sleep:
            time.sleep(cfg.sleep)
        if cfg.crash:  # the worker process dies, as under the OOM killer or kill -9
            os.kill(os.getpid(), signal.SIGKILL)
        if cfg.fail:
            raise RuntimeError(f"toy run asked to fail (noise={cfg.noise})")
        # a counter outside the sweep directory proves which runs really executed
        counter = os.environ.get("TOY_COUNTER_DIR")
        if counter:
            with open(Path(counter) / f"{os.getpid()}.log", "a") as fh:
                fh.write(json.dumps({"noise": cfg.noise, "levels": cfg.levels, "decor": cfg.decor,
                                     "seed": cfg.seed}) + "\n")
        (out_dir / "model.txt").write_text("trained\n")
        acc = toy_accuracy(cfg)
        return RunOutcome(metrics={"epoch": [1, 2], "test_accuracy": [acc - 0.2, acc],
                                   "train_loss": [1.0, 1.0 - acc / 2], "epoch_time_s": [0.1, 0.1]})


class ThreadsTarget(ToyTarget):
    """The toy, reporting the numba and BLAS thread counts the run saw (metrics numba_threads, blas_threads)."""

    def run(self, cfg, out_dir: Path):
        import numba
        from threadpoolctl import threadpool_info

        outcome = super().run(cfg, out_dir)
        blas = [p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"]
        outcome.metrics["numba_threads"] = [numba.get_num_threads()] * 2
        outcome.metrics["blas_threads"] = [max(blas, default=0)] * 2
        return outcome
