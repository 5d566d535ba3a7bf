"""Sweeps of real training runs (float backend, tiny MLP, 200 digits, 1 epoch) on 2-worker local clusters.

The issue's acceptance test: at least 12 runs complete on a 2-worker local
cluster; an interrupted sweep resumes without redoing finished runs; a
deliberately failing run is recorded without losing the rest; bad specs give
clear errors. The engine's finer behaviour is covered by test_sweep_engine.py.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analogdecor.cli import main
from analogdecor.errors import ConfigError
from analogdecor.sweep import load_spec, parse_spec, plan_runs, run_sweep

pytestmark = pytest.mark.timeout(300)

BASE = {
    "rule": "bp",
    "backend": "float",
    "model": {"hidden": [8]},
    "data": {"dataset": "digits", "n_train": 200, "n_test": 100},
    "optim": {"epochs": 1, "batch_size": 20},
}
SPEC = {
    "sweep": {"name": "tiny", "seeds": [0, 1, 2], "metric": "test_accuracy"},
    "base": BASE,
    "axes": {"optim.lr": [0.05, 0.2], "decorrelation.enabled": [False, True]},
}


def read_csv(path: Path) -> list[dict]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def ok_records(sweep_dir: Path) -> dict[str, tuple[int, str]]:
    out = {}
    for rec in (sweep_dir / "runs").glob("*/result.json"):
        if json.loads(rec.read_text())["status"] == "ok":
            out[rec.parent.name] = (rec.stat().st_mtime_ns, rec.read_text())
    return out


def test_twelve_runs_interrupted_then_resumed(tmp_path):
    spec = parse_spec(SPEC)
    sweep_dir = tmp_path / "sw"
    seen = []

    def ctrl_c_after_five(record):
        seen.append(record["run_id"])
        if len(seen) == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, sweep_dir, workers=2, progress=False, on_record=ctrl_c_after_five)
    before = ok_records(sweep_dir)
    assert set(seen) <= set(before)
    assert 5 <= len(before) < 12
    # every finished run has its own training run directory
    for rid in before:
        assert (sweep_dir / "runs" / rid / "metrics.json").is_file()
        assert (sweep_dir / "runs" / rid / "config.toml").is_file()

    report = run_sweep(spec, sweep_dir, workers=2, progress=False)
    assert report.n_planned == 12
    assert set(report.skipped) == set(before)
    assert len(report.finished) == 12 - len(before)
    assert not report.failed
    for rid, (mtime, text) in before.items():  # not redone, not rewritten
        rec = sweep_dir / "runs" / rid / "result.json"
        assert rec.stat().st_mtime_ns == mtime
        assert rec.read_text() == text

    rows = read_csv(sweep_dir / "results.csv")
    assert len(rows) == 12
    assert {r["status"] for r in rows} == {"ok"}
    assert {(r["optim.lr"], r["decorrelation.enabled"], r["seed"]) for r in rows} == {
        (lr, d, s) for lr in ("0.05", "0.2") for d in ("False", "True") for s in ("0", "1", "2")}
    for row in rows:
        metrics = json.loads((sweep_dir / row["run_dir"] / "metrics.json").read_text())
        assert float(row["final_test_accuracy"]) == pytest.approx(metrics["test_accuracy"][-1])
        assert 0.0 <= float(row["final_test_accuracy"]) <= 1.0
        assert float(row["wall_time_s"]) > 0
    # same seed, same run: the run's recorded config matches the plan
    plan = json.loads((sweep_dir / "plan.json").read_text())
    assert [r["run_id"] for r in plan["runs"]] == [r["run_id"] for r in rows]
    assert (sweep_dir / "plots" / "heatmap_test_accuracy_optim.lr_x_decorrelation.enabled.png").is_file()


def test_failing_run_recorded_others_kept(tmp_path):
    # n_train = 5000 passes config validation (it is a positive integer) but digits has only
    # 1437 training samples: the run fails when it loads its data, at run time
    spec = parse_spec({"sweep": {"mode": "list"}, "base": BASE,
                       "runs": [{"seed": 0}, {"seed": 1, "data.n_train": 5000}, {"seed": 2}]})
    report = run_sweep(spec, tmp_path / "sw", workers=2, progress=False, plots=False)
    assert len(report.finished) == 2
    assert len(report.failed) == 1
    rows = {r["seed"]: r for r in read_csv(tmp_path / "sw" / "results.csv")}
    assert rows["1"]["status"] == "failed"
    assert rows["1"]["error"].startswith("ConfigError: n_train = 5000: only 1437 samples are available")
    assert rows["0"]["status"] == rows["2"]["status"] == "ok"
    assert float(rows["0"]["final_test_accuracy"]) > 0


@pytest.mark.parametrize(
    ("axes", "match"),
    [
        ({"optim.lrr": [0.1]}, r"unknown setting 'optim.lrr': OptimConfig has no field 'lrr'"),
        ({"optim.lr": [0.1, "fast"]}, r"optim.lr = 'fast': expected a number"),
        ({"optim.lr": []}, r"axes.optim.lr.*empty axis|axes.'optim.lr': empty axis"),
        ({"tile.device.dw_min_sd": [0.1]}, r"tile.*unknown setting 'device.dw_min_sd'.*no field 'dw_min_sd'"),
        ({"rule": ["np", "sgd"]}, r"rule = 'sgd': must be one of"),
    ],
)
def test_bad_training_specs(axes, match):
    with pytest.raises(ConfigError, match=match):
        plan_runs(parse_spec({"base": BASE, "axes": axes}))


def test_unknown_metric_is_caught_before_running():
    with pytest.raises(ConfigError, match=r"sweep.metric = 'test_acc': the runs report test_accuracy, test_loss"):
        plan_runs(parse_spec({"sweep": {"metric": "test_acc"}, "base": BASE, "axes": {"seed": [0]}}))


def test_cli_check_and_errors(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text(
        '[sweep]\nseeds = [0, 1]\n[base]\nbackend = "float"\n[base.data]\nn_train = 100\n'
        '[axes]\n"optim.lr" = [0.05, 0.1]\n"tile.mapping.levels" = [0, 16]\n'
    )
    assert main(["sweep", str(spec), "--check", "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "valid; 8 runs (grid over optim.lr, tile.mapping.levels)" in out
    assert out.count("[to run]") == 8
    assert main(["sweep", str(spec), "--check", "--set", "optim.epochs=2", "--set", "tile.forward.out_bits=6"]) == 0
    assert "valid; 8 runs" in capsys.readouterr().out
    assert main(["sweep", str(spec), "--check", "--set", "optim.epochz=2"]) == 2
    assert "unknown setting 'optim.epochz'" in capsys.readouterr().err
    spec.write_text("[axes]\n\"optim.lr\" = []\n")
    assert main(["sweep", str(spec), "--check"]) == 2
    err = capsys.readouterr().err
    assert "analogdecor sweep: error:" in err
    assert "empty axis" in err
    assert str(spec) in err


@pytest.mark.slow
def test_cli_ctrl_c_then_resume(tmp_path):
    """The real thing: Ctrl-C (SIGINT to the process group) mid-sweep, then the same command again."""
    spec = tmp_path / "s.toml"
    spec.write_text(
        '[sweep]\nseeds = [0, 1, 2, 3, 4, 5]\n'
        '[base]\nbackend = "float"\n[base.model]\nhidden = [8]\n'
        '[base.data]\nn_train = 200\nn_test = 100\n[base.optim]\nepochs = 2\nbatch_size = 10\n'
        '[axes]\n"decorrelation.enabled" = [false, true]\n'
    )
    out = tmp_path / "o"
    cmd = [sys.executable, "-c", "import sys; from analogdecor.cli import main; sys.exit(main())", "sweep", str(spec), "--workers", "2", "--out", str(out),
           "--no-progress", "--no-plots"]
    # its own process group, so that the interrupt can go to the whole group as Ctrl-C in a terminal does
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (out / "runs").is_dir() and len(ok_records(out)) >= 3:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)  # client, nannies and workers alike
    _, err = proc.communicate(timeout=60)
    before = ok_records(out)
    if proc.returncode == 0:
        pytest.skip("the sweep finished before the interrupt arrived")
    assert proc.returncode == 130, err
    assert "analogdecor sweep: interrupted" in err
    assert "Traceback" not in err  # the workers ignore SIGINT: the client alone shuts the cluster down
    assert 3 <= len(before) < 12
    rows = read_csv(out / "results.csv")  # written on the way out, with the finished rows
    assert sum(r["status"] == "ok" for r in rows) == len(before)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env={**os.environ})
    assert done.returncode == 0, done.stderr
    assert f"{len(before)} done earlier (skipped), {12 - len(before)} finished, 0 failed" in done.stderr
    for rid, (mtime, text) in before.items():
        rec = out / "runs" / rid / "result.json"
        assert rec.stat().st_mtime_ns == mtime
        assert rec.read_text() == text


def test_example_spec_is_valid():
    path = Path(__file__).parents[1] / "scripts" / "sweeps" / "noise_vs_levels.toml"
    runs = plan_runs(load_spec(path))
    assert len(runs) >= 12


def test_cli_evaluation_sweep_over_a_trained_run(tmp_path, capsys):
    """[sweep] target = "evaluate": inference settings as axes over one trained run (inference's target)."""
    from analogdecor.config import from_dict
    from analogdecor.training import TrainConfig, train

    run_dir = tmp_path / "trained"
    train(from_dict(TrainConfig, {**BASE, "data": {"dataset": "digits", "n_train": 100, "n_test": 50}}),
          run_dir, progress=False)
    spec = tmp_path / "eval.toml"
    spec.write_text(
        f'[sweep]\ntarget = "evaluate"\nmode = "list"\n[base]\nrun_dir = "{run_dir}"\n'
        '[base.evaluate]\ntimes = [1.0, 86400.0]\nseeds = 1\nn_test = 50\n'
        '[[runs]]\n"evaluate.model" = "none"\n[[runs]]\n"evaluate.model" = "pcm"\n'
    )
    out = tmp_path / "o"
    assert main(["sweep", str(spec), "--workers", "2", "--out", str(out), "--no-progress"]) == 0
    rows = read_csv(out / "results.csv")
    assert [r["evaluate.model"] for r in rows] == ["none", "pcm"]
    assert {r["status"] for r in rows} == {"ok"}
    for row in rows:
        assert (out / row["run_dir"] / "evaluate.csv").is_file()
        assert 0.0 <= float(row["final_test_accuracy"]) <= 1.0
    assert "2 finished, 0 failed" in capsys.readouterr().err
