"""`analogdecor export` and `analogdecor evaluate` on a run directory; evaluation settings as sweep axes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from run_fixtures import write_ridge_run

from analogdecor.cli import main
from analogdecor.data import load_dataset
from analogdecor.errors import ConfigError
from analogdecor.export import import_network, read_export
from analogdecor.inference.sweep_target import EvaluationTarget
from analogdecor.training import load_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run directory (numba crossbar, decorrelation tiles) holding a ridge-fitted digits classifier."""
    return write_ridge_run(tmp_path_factory.mktemp("run"), decorrelation_tiles=True)


def test_export_cli_all_formats_and_import(run_dir, tmp_path, capsys):
    _, net = load_run(run_dir)
    x = load_dataset("digits").x_test[:40]
    for fmt, out in (("npz", "c.npz"), ("hdf5", "c.h5"), ("csv", "csv"), ("png", "png")):
        assert main(["export", str(run_dir), "--format", fmt, "--out", str(tmp_path / out)]) == 0
    printed = capsys.readouterr().out
    assert "layers.0.R.png" in printed
    for out in ("c.npz", "c.h5", "csv"):
        exp = read_export(tmp_path / out)
        assert exp.meta["seed"] == 1
        assert exp.meta["run_config"]["backend"] == "numba"
        back = import_network(tmp_path / out)
        # the tiles read with their periphery (noise, ADC): compare noise-free views of the weights
        for (_, a), (_, b) in zip(net.analog_layers(), back.analog_layers(), strict=True):
            np.testing.assert_array_equal(a.read_weights(), b.read_weights())
        np.testing.assert_array_equal(back.fold().forward(x), net.fold().forward(x))
    assert main(["export", str(run_dir)]) == 0  # default location
    assert (run_dir / "export" / "conductances.npz").is_file()


def test_export_cli_bad_run_dir_is_a_clean_error(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nope")]) == 2
    assert "error" in capsys.readouterr().err


def test_evaluate_cli_writes_table_and_plot(run_dir, tmp_path, capsys):
    out = tmp_path / "ev"
    rc = main(["evaluate", str(run_dir), "--times", "1s,1d,1y", "--model", "pcm", "--seeds", "2",
               "--n-test", "200", "--out", str(out), "--quiet"])  # fmt: skip
    assert rc == 0
    text = capsys.readouterr().out
    assert "| 1y |" in text
    data = json.loads((out / "evaluate.json").read_text())
    raw = np.array(data["accuracy_no_compensation"])
    assert raw.shape == (2, 3)
    assert raw.mean(axis=0)[-1] < data["baseline_accuracy"]
    assert (out / "evaluate.png").is_file()
    assert (out / "evaluate.csv").read_text().count("\n") == 1 + 3 * 2


def test_evaluate_cli_rejects_bad_settings(run_dir, capsys):
    assert main(["evaluate", str(run_dir), "--times", "1 fortnight"]) == 2
    assert "time" in capsys.readouterr().err
    assert main(["evaluate", str(run_dir), "--model", "unobtainium"]) == 2
    assert "unknown inference noise model" in capsys.readouterr().err


def test_evaluation_settings_are_sweep_axes(run_dir, tmp_path):
    from analogdecor.sweep import parse_spec, plan_runs

    spec = parse_spec({
        "sweep": {"seeds": [0, 1]},
        "base": {"run_dir": str(run_dir), "evaluate": {"times": [1.0, 86400.0], "seeds": 1, "n_test": 100}},
        "axes": {"evaluate.model": ["none", "pcm"], "evaluate.ir_drop.enabled": [False, True]},
    })  # fmt: skip
    target = EvaluationTarget()
    runs = plan_runs(spec, target)
    assert len(runs) == 8
    assert {r.config.evaluate.seed for r in runs} == {0, 1}
    pcm = next(r for r in runs if r.config.evaluate.model == "pcm" and not r.config.evaluate.ir_drop.enabled)
    outcome = target.run(pcm.config, tmp_path / "one")
    assert len(outcome.metrics["test_accuracy"]) == 2
    assert (tmp_path / "one" / "evaluate.csv").is_file()
    with pytest.raises(ConfigError, match="evaluate"):
        target.configure(target.base_config(spec.base), {"evaluate.bogus": 1})
    with pytest.raises(ConfigError, match="unknown inference noise model"):
        target.configure(target.base_config(spec.base), {"evaluate.model": "nope"})
