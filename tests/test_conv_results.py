"""scripts/conv_results.py: the conv sweep's table and curves from run directories."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "conv_results.py"


@pytest.fixture(scope="module")
def conv_results():
    spec = importlib.util.spec_from_file_location("conv_results", SCRIPT)
    assert spec is not None
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


def _run(root: Path, name: str, rule: str, decor: bool, seed: int, acc: list[float], status="finished", lr=0.01):
    d = root / "runs" / name
    d.mkdir(parents=True)
    (d / "run.json").write_text(json.dumps({"rule": rule, "backend": "float", "decorrelation": decor, "seed": seed,
                                            "device": "ReRamES", "status": status, "wall_time_s": 10.0}))  # fmt: skip
    (d / "config.toml").write_text(f"[optim]\nlr = {lr}\n")
    rows = "\n".join(f"{i + 1},{a}" for i, a in enumerate(acc))
    (d / "metrics.csv").write_text("epoch,test_accuracy\n" + rows + "\n")


def test_table_gives_mean_and_std_over_seeds_and_counts_diverged_runs(conv_results, tmp_path):
    _run(tmp_path, "a", "bp", False, 0, [0.5, 0.7])
    _run(tmp_path, "b", "bp", False, 1, [0.5, 0.9])
    _run(tmp_path, "c", "bp", True, 0, [0.4, float("nan")], status="diverged")
    _run(tmp_path, "d", "np", False, 0, [0.1], lr=3e-4)
    _run(tmp_path, "e", "fa", False, 0, [0.2], status="running")  # unfinished: left out
    runs = conv_results.load_runs(tmp_path)
    assert len(runs) == 4
    table = conv_results.table(runs)
    assert "| BP | 0.01 | float | 0.800 ± 0.100 (n=2) | diverged (1 of 1) |" in table
    assert "| NP | 0.0003 | float | 0.100 ± 0.000 (n=1) | not run |" in table
    assert "FA" not in table
    conv_results.plot(runs, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 0
    assert conv_results.main([str(tmp_path / "empty")]) == 1
