"""``analogdecor bench training`` runs on a tiny size and reports its figures (no speed is asserted)."""

from __future__ import annotations

import json

import pytest

from analogdecor.cli import main
from analogdecor.errors import ConfigError
from analogdecor.training.bench import SYSTEMS, TrainingBenchConfig, bench_training, format_training_report

TINY = ["--dataset", "digits", "--n-train", "96", "--hidden", "8", "--batch", "32", "--rounds", "1"]


def _aihwkit_present() -> bool:
    try:
        import aihwkit.nn  # noqa: F401
    except Exception:
        return False
    return True


def test_bench_training_json_names_the_issue_keys(capsys):
    assert main(["bench", "training", *TINY, "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    for name in ("torch_float", "analogdecor_float", "numba_per_sample", "numba_mixed"):
        assert res[f"{name}_s_per_epoch"] > 0, name
        assert len(res[f"{name}_s_per_epoch_all"]) == 1
    assert res["numba_mixed_vs_float_ratio"] > 0
    assert res["network"] == "64-8-10"
    assert res["n_train"] == 96
    if _aihwkit_present():
        assert res["numba_mixed_vs_aihwkit_speedup"] > 0
        assert res["numba_per_sample_vs_aihwkit_speedup"] > 0
    else:
        assert "aihwkit" not in res["systems"]
        assert any("aihwkit" in n for n in res["notes"])


def test_bench_training_loaded_reports_slowdowns():
    cfg = TrainingBenchConfig(dataset="digits", n_train=64, hidden=8, batch=32, rounds=1, warmup_batches=1,
                              systems=("torch_float", "numba_mixed"), loaded=True, busy=1)  # fmt: skip
    res = bench_training(cfg)
    for name in ("torch_float", "numba_mixed"):
        assert res[f"{name}_loaded_slowdown"] > 0
    assert res["busy_processes"] == 1
    text = format_training_report(res)
    assert "slow-down" in text
    assert "numba_mixed" in text


def test_missing_mnist_falls_back_to_digits(tmp_path):
    cfg = TrainingBenchConfig(data_dir=str(tmp_path), n_train=40, hidden=4, batch=20, rounds=1, warmup_batches=0,
                              systems=("analogdecor_float",))  # fmt: skip
    res = bench_training(cfg)
    assert res["dataset"] == "digits"
    assert any("fell back to digits" in n for n in res["notes"])


@pytest.mark.parametrize(("field", "value"), [("rounds", 0), ("systems", ("tensorflow",)), ("lr", -1.0)])
def test_bad_settings_name_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        TrainingBenchConfig(**{field: value})
    assert "numba_mixed" in SYSTEMS


def test_torch_modules_on_analogdecor_run_beside_aihwkits():
    pytest.importorskip("torch")
    cfg = TrainingBenchConfig(dataset="digits", n_train=256, hidden=16, batch=32, rounds=1, warmup_batches=1,
                              systems=("analogdecor_torch", "numba_mixed"))  # fmt: skip
    res = bench_training(cfg)
    assert res["analogdecor_torch_s_per_epoch"] > 0
    assert "analogdecor_torch" in format_training_report(res)
