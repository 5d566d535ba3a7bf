"""The sweep engine on a real 2-worker Dask cluster, with the instant toy target (tests/sweep_toy.py).

Covers: every run completes and lands in the table; an interrupted sweep keeps
what finished and the re-run does not redo it; a failing run is recorded
without stopping the others and is retried on the next invocation; records are
never half-written; plots and the summary come out.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
from sweep_toy import ToyTarget, toy_accuracy

from analogdecor.sweep import parse_spec, run_sweep
from analogdecor.sweep.results import atomic_write_text, build_table, summarise_metrics
from analogdecor.sweep.runner import WORKER_ENV

pytestmark = pytest.mark.timeout(180)

SPEC = {
    "sweep": {"name": "toy", "seeds": [0, 1], "metric": "test_accuracy"},
    "base": {"levels": 4},
    "axes": {"noise": [0.0, 0.5, 1.0], "decor": [False, True]},
}


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """One 2-worker local cluster for the module (also exercises run_sweep's scheduler= path)."""
    from dask.distributed import LocalCluster

    counter = tmp_path_factory.mktemp("counter")
    env = {**WORKER_ENV, "TOY_COUNTER_DIR": str(counter)}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                      env=env, silence_logs=40) as cluster:
        yield cluster.scheduler_address, counter


def executed(counter: Path) -> list[dict]:
    """Runs that really executed on the workers (each appends a line)."""
    lines = []
    for f in sorted(counter.glob("*.log")):
        lines += [json.loads(x) for x in f.read_text().splitlines()]
    return lines


def read_csv(path: Path) -> list[dict]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_sweep_completes_table_summary_plots(tmp_path, scheduler):
    address, counter = scheduler
    for f in counter.glob("*.log"):
        f.unlink()
    report = run_sweep(parse_spec(SPEC), tmp_path / "sw", scheduler=address, progress=False, target=ToyTarget())
    assert report.n_planned == 12
    assert len(report.finished) == 12
    assert not report.failed
    assert not report.skipped
    assert len(executed(counter)) == 12
    rows = read_csv(tmp_path / "sw" / "results.csv")
    assert len(rows) == 12
    assert list(rows[0])[:5] == ["run_id", "status", "noise", "decor", "seed"]
    for row in rows:
        assert row["status"] == "ok"
        cfg_acc = toy_accuracy(type("C", (), {"noise": float(row["noise"]), "decor": row["decor"] == "True",
                                              "levels": 4, "seed": int(row["seed"])})())
        assert float(row["final_test_accuracy"]) == pytest.approx(cfg_acc)
        assert float(row["best_test_accuracy"]) == pytest.approx(cfg_acc)
        assert float(row["best_train_loss"]) == pytest.approx(1.0 - cfg_acc / 2)  # losses: best is the min
        assert row["epochs"] == "2"
        assert float(row["wall_time_s"]) >= 0
        assert (tmp_path / "sw" / row["run_dir"] / "model.txt").is_file()
    summary = read_csv(tmp_path / "sw" / "summary.csv")
    assert len(summary) == 6
    for row in summary:
        assert row["n_seeds"] == "2"
        # mean over seeds 0 and 1 of the known accuracy: seed adds 0.01 * seed
        base = 1.0 - 0.3 * float(row["noise"]) + (0.1 if row["decor"] == "True" else 0.0) + 0.004
        assert float(row["mean_test_accuracy"]) == pytest.approx(base + 0.005)
        assert float(row["std_test_accuracy"]) == pytest.approx(0.01 / 2**0.5)
    names = sorted(p.name for p in report.plots)
    assert "test_accuracy_vs_noise.png" in names
    assert "test_accuracy_vs_decor.png" in names
    assert "heatmap_test_accuracy_noise_x_decor.png" in names
    for p in report.plots:
        assert p.stat().st_size > 0

    # the same command again: nothing re-runs
    again = run_sweep(parse_spec(SPEC), tmp_path / "sw", scheduler=address, progress=False, target=ToyTarget())
    assert len(again.skipped) == 12
    assert not again.finished
    assert len(executed(counter)) == 12


def test_interrupted_sweep_resumes_without_redoing_finished_runs(tmp_path, monkeypatch):
    # run_sweep's own 2-worker local cluster: on Ctrl-C it is shut down, runs in flight die
    counter = tmp_path / "counter"
    counter.mkdir()
    monkeypatch.setenv("TOY_COUNTER_DIR", str(counter))
    spec = parse_spec({**SPEC, "base": {"levels": 4, "sleep": 0.2}})
    seen = []

    def ctrl_c_after_four(record):
        seen.append(record["run_id"])
        if len(seen) == 4:
            raise KeyboardInterrupt  # what Ctrl-C raises in the client's loop

    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, tmp_path / "sw", workers=2, progress=False, target=ToyTarget(),
                  on_record=ctrl_c_after_four)
    finished = {}
    for d in (tmp_path / "sw" / "runs").iterdir():
        rec = d / "result.json"
        if rec.exists() and json.loads(rec.read_text())["status"] == "ok":
            finished[d.name] = (rec.stat().st_mtime_ns, rec.read_text())
    assert set(seen) <= set(finished)  # everything the client saw is on disk
    assert 4 <= len(finished) < 12
    # the table written on interruption already has the finished rows
    rows = read_csv(tmp_path / "sw" / "results.csv")
    assert sum(r["status"] == "ok" for r in rows) == len(finished)
    assert {r["status"] for r in rows} <= {"ok", "pending"}

    n_before = len(executed(counter))
    report = run_sweep(spec, tmp_path / "sw", workers=2, progress=False, target=ToyTarget(), plots=False)
    assert set(report.skipped) == set(finished)
    assert len(report.finished) == 12 - len(finished)
    # finished runs were neither re-executed nor rewritten
    assert len(executed(counter)) - n_before == 12 - len(finished)
    for rid, (mtime, text) in finished.items():
        rec = tmp_path / "sw" / "runs" / rid / "result.json"
        assert rec.stat().st_mtime_ns == mtime
        assert rec.read_text() == text
    assert all(r["status"] == "ok" for r in read_csv(tmp_path / "sw" / "results.csv"))


def test_finished_run_redone_when_its_resolved_config_changed(tmp_path, scheduler):
    address, _ = scheduler
    spec = parse_spec({"sweep": {"mode": "list"}, "runs": [{"noise": 0.1}, {"noise": 0.2}]})
    first = run_sweep(spec, tmp_path / "sw", scheduler=address, progress=False, target=ToyTarget(), plots=False)
    rid = first.finished[0]
    rec_path = tmp_path / "sw" / "runs" / rid / "result.json"
    record = json.loads(rec_path.read_text())
    record["config"]["levels"] = 7  # as if made when the default of levels was 7
    rec_path.write_text(json.dumps(record))
    again = run_sweep(spec, tmp_path / "sw", scheduler=address, progress=False, target=ToyTarget(), plots=False)
    assert again.changed == {rid: "levels: 7 -> 0"}
    assert again.finished == [rid]
    assert again.skipped == [first.finished[1]]
    assert "1 redone (config changed, e.g. levels: 7 -> 0)" in str(again)
    assert json.loads(rec_path.read_text())["config"]["levels"] == 0


def test_failing_run_is_recorded_and_retried(tmp_path, scheduler):
    address, _ = scheduler
    spec = {**SPEC, "sweep": {**SPEC["sweep"], "mode": "list", "seeds": [0]},
            "axes": {}, "runs": [{"noise": 0.1}, {"noise": 0.2, "fail": True}, {"noise": 0.3}]}
    spec.pop("axes")
    report = run_sweep(parse_spec(spec), tmp_path / "sw", scheduler=address, progress=False, target=ToyTarget())
    assert len(report.finished) == 2
    assert len(report.failed) == 1
    rows = {r["noise"]: r for r in read_csv(tmp_path / "sw" / "results.csv")}
    assert rows["0.2"]["status"] == "failed"
    assert rows["0.2"]["error"] == "RuntimeError: toy run asked to fail (noise=0.2)"
    assert rows["0.1"]["status"] == rows["0.3"]["status"] == "ok"
    run_dir = tmp_path / "sw" / rows["0.2"]["run_dir"]
    record = json.loads((run_dir / "result.json").read_text())
    assert "Traceback" in record["traceback"]
    assert "toy run asked to fail" in (run_dir / "error.txt").read_text()
    # the next invocation retries only the failed run (which fails again: same config)
    again = run_sweep(parse_spec(spec), tmp_path / "sw", scheduler=address, progress=False, target=ToyTarget())
    assert len(again.skipped) == 2
    assert again.failed == [rows["0.2"]["run_id"]]


def test_killed_worker_is_recorded_and_loses_nothing(tmp_path):
    """A run that kills its worker process: recorded as failed (KilledWorker), the others finish."""
    import dask
    from dask.distributed import LocalCluster

    spec = {"sweep": {"mode": "list"}, "base": {"levels": 4},
            "runs": [{"noise": 0.1}, {"noise": 0.2, "crash": True}, {"noise": 0.3}, {"noise": 0.4}]}
    # allowed-failures = 0: the scheduler gives up on a task after the first worker it kills.
    # run_sweep keeps one run per worker thread in flight, so the dying worker takes no other run.
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=50
    ) as cluster:
        report = run_sweep(parse_spec(spec), tmp_path / "sw", scheduler=cluster.scheduler_address,
                           progress=False, target=ToyTarget(), plots=False)
    assert len(report.finished) == 3
    assert len(report.failed) == 1
    rows = {r["noise"]: r for r in read_csv(tmp_path / "sw" / "results.csv")}
    assert rows["0.2"]["status"] == "failed"
    assert rows["0.2"]["error"].startswith("KilledWorker")
    assert all(rows[n]["status"] == "ok" for n in ("0.1", "0.3", "0.4"))


def test_random_sweep_scatter_plots(tmp_path, scheduler):
    address, _ = scheduler
    spec = parse_spec({"sweep": {"mode": "random", "n_samples": 5, "seeds": [0, 1], "sample_seed": 1},
                       "axes": {"noise": {"uniform": [0.0, 1.0]}, "levels": {"randint": [1, 9]}}})
    report = run_sweep(spec, tmp_path / "sw", scheduler=address, progress=False, target=ToyTarget())
    assert len(report.finished) == 10
    names = sorted(p.name for p in report.plots)
    # scatter plots against each drawn setting; no heat maps of continuous draws
    assert names == ["summary.csv", "test_accuracy_vs_levels.png", "test_accuracy_vs_noise.png"]
    rows = read_csv(tmp_path / "sw" / "results.csv")
    assert all(0.0 <= float(r["noise"]) <= 1.0 and 1 <= int(r["levels"]) <= 9 for r in rows)


def test_max_runs_leaves_the_rest_pending(tmp_path, scheduler):
    address, _ = scheduler
    report = run_sweep(parse_spec(SPEC), tmp_path / "sw", scheduler=address, progress=False,
                       target=ToyTarget(), max_runs=5, plots=False)
    assert len(report.finished) == 5
    assert len(report.not_run) == 7
    rows = read_csv(tmp_path / "sw" / "results.csv")
    assert [r["status"] for r in rows].count("pending") == 7


def test_atomic_write_never_leaves_partial_files(tmp_path, monkeypatch):
    target = tmp_path / "result.json"
    atomic_write_text(target, "old")

    def disk_full(_fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)  # the write fails after the bytes went to the temp file
    with pytest.raises(OSError, match="No space left"):
        atomic_write_text(target, "new " * 1000)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # no temp file left behind


def test_summarise_and_table_from_records(tmp_path):
    assert summarise_metrics({"test_accuracy": [0.5, 0.9, 0.8], "train_loss": [2.0, 0.5, 0.7]}) == {
        "final_test_accuracy": 0.8, "best_test_accuracy": 0.9, "final_train_loss": 0.7, "best_train_loss": 0.5}
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "result.json").write_text("{ half a rec")  # not ours: treated as never run
    cols, rows = build_table([("a", {"noise": 0.1}), ("b", {"noise": 0.2})], tmp_path, ["noise"])
    assert [r["status"] for r in rows] == ["pending", "pending"]
    assert cols[:3] == ["run_id", "status", "noise"]
