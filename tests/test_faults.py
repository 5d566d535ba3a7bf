"""Nothing lost, nothing silently wrong (issue 9): one test per fault a hostile test found.

Each test here failed on the code before the fix it covers: divergence on analogue backends,
run and sweep directories without locks or overwrite protection, exports that were neither
checksummed nor atomic, impossible conductances accepted, an IDX file shadowing its .gz.
"""

from __future__ import annotations

import gzip
import json
import os
import resource
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from analogdecor._lock import LOCK_NAME
from analogdecor.cli import main
from analogdecor.config import from_dict
from analogdecor.errors import DataError, ExportFormatError, LockedError, OutputError
from analogdecor.export import read_export, write_export
from analogdecor.export.records import ConductanceExport, LayerRecord, file_digest, seal_header
from analogdecor.training import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
TARGET = {"npz": "c.npz", "hdf5": "c.h5", "csv": "csvdir"}

DIVERGING = {  # numba crossbar, decorrelated NP with a learning rate far too high: diverges in epoch 2
    "rule": "np", "backend": "numba", "device": "GokmenVlasov", "seed": 0,
    "decorrelation": {"enabled": True}, "data": {"dataset": "digits", "n_train": 128, "n_test": 50},
    "optim": {"lr": 100.0, "epochs": 2, "batch_size": 32}, "model": {"hidden": [32]},
}  # fmt: skip
SMALL = {  # float backend, one quick epoch
    "rule": "bp", "backend": "float", "seed": 0, "data": {"dataset": "digits", "n_train": 64, "n_test": 32},
    "optim": {"epochs": 1, "batch_size": 32}, "model": {"hidden": [8]},
}  # fmt: skip


def _hold_lock(directory: Path, name: str = LOCK_NAME) -> subprocess.Popen:
    """Another process that holds ``directory``'s lock until killed (prints 'held' once it does)."""
    code = textwrap.dedent(f"""
        import sys, time
        from analogdecor._lock import DirLock
        DirLock({str(directory)!r}, "directory", purpose="holder-test", name={name!r}).acquire()
        print("held", flush=True)
        time.sleep(600)
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    return proc


# --------------------------------------------------------------------------- 1. divergence on analogue tiles
def test_divergence_on_numba_backend_is_recorded_as_diverged_in_run_and_sweep(tmp_path):
    """Was: a raw ValueError (x contains N non-finite values), run.json left 'running', no metrics, and
    a sweep record 'failed' that every rerun retried."""
    from analogdecor.sweep.runner import DONE, execute_run
    from analogdecor.sweep.spec import PlannedRun
    from analogdecor.sweep.target import TrainingTarget

    cfg = from_dict(TrainConfig, DIVERGING)
    run = PlannedRun(run_id="div", overrides={}, config=cfg)
    record = execute_run(run, str(tmp_path), "attempt-1", TrainingTarget())
    assert record["status"] == "diverged"
    assert record["status"] in DONE
    run_dir = tmp_path / "runs" / "div"
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "diverged"
    metrics = json.loads((run_dir / "metrics.json").read_text())  # strict JSON: NaN is written as null
    assert len(metrics["test_loss"]) == 2
    assert metrics["test_loss"][-1] is None
    assert "NaN" not in (run_dir / "metrics.json").read_text()
    assert (run_dir / "model.npz").is_file()


# --------------------------------------------------------------------------- 2. run directories
def test_train_refuses_a_non_empty_run_directory_and_overwrite_clears_it(tmp_path, capsys):
    cfg = from_dict(TrainConfig, SMALL)
    out = tmp_path / "run"
    train(cfg, out, progress=False)
    (out / "export").mkdir()
    (out / "export" / "conductances.npz").write_bytes(b"old network's export")

    def files():
        return {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != LOCK_NAME}

    before = files()
    with pytest.raises(OutputError, match=r"not empty.*--overwrite"):
        train(cfg, out, progress=False)
    assert files() == before  # untouched
    rc = main(["train", "--rule", "bp", "--backend", "float", "--dataset", "digits", "--epochs", "1",
               "--n-train", "64", "--hidden", "8", "--out", str(out), "--no-progress"])  # fmt: skip
    assert rc == 2
    assert "--overwrite" in capsys.readouterr().err
    res = train(cfg, out, progress=False, overwrite=True)
    assert res.status == "finished"
    assert not (out / "export").exists()  # the old run's export is gone with it


def test_a_second_writer_is_refused_with_the_holder_named(tmp_path):
    out = tmp_path / "run"
    holder = _hold_lock(out)
    try:
        with pytest.raises(LockedError, match=f"holder-test, pid {holder.pid} on host "):
            train(from_dict(TrainConfig, SMALL), out, progress=False)
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # nothing written
    finally:
        holder.kill()
        holder.wait()
    # the holder died without releasing: the OS dropped its lock, nothing stale is left
    assert train(from_dict(TrainConfig, SMALL), out, progress=False).status == "finished"


def test_a_run_that_cannot_write_is_marked_failed_with_a_clear_error(tmp_path, monkeypatch, capsys):
    """Was: a raw OSError traceback, and run.json left 'running' for ever."""
    import errno

    from analogdecor.training import rundir

    real = rundir._atomic_write

    def full_disk(path, data):
        if path.name == "conductances.npz":  # the disk fills up at the end of training
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data)

    monkeypatch.setattr(rundir, "_atomic_write", full_disk)
    with pytest.raises(OutputError, match=r"conductances\.npz: the disk is full"):
        train(from_dict(TrainConfig, SMALL), tmp_path / "run", progress=False)
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["status"] == "failed"
    assert "disk is full" in info["error"]
    (tmp_path / "afile").write_text("")
    rc = main(["train", "--rule", "bp", "--backend", "float", "--dataset", "digits", "--epochs", "1",
               "--n-train", "64", "--hidden", "8", "--out", str(tmp_path / "afile" / "run"), "--no-progress"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2
    assert "a file is in the way" in err
    assert "Traceback" not in err


# --------------------------------------------------------------------------- 3. sweep directories
def _toy_spec(tmp_path):
    from analogdecor.sweep import parse_spec

    sys.path.insert(0, str(Path(__file__).parent))
    return parse_spec({"sweep": {"name": "toy", "seeds": [0]}, "base": {"levels": 4}, "axes": {"noise": [0.0]}},
                      source=tmp_path / "toy.toml")  # fmt: skip


def test_two_sweeps_into_one_directory_the_second_is_refused(tmp_path):
    from sweep_toy import ToyTarget

    from analogdecor.sweep import run_sweep

    spec = _toy_spec(tmp_path)
    sweep_dir = tmp_path / "sweep"
    holder = _hold_lock(sweep_dir)
    try:
        with pytest.raises(LockedError, match=f"sweep directory is in use .*pid {holder.pid}"):
            run_sweep(spec, sweep_dir, workers=1, progress=False, plots=False, target=ToyTarget())
        assert not (sweep_dir / "runs").exists()
    finally:
        holder.kill()
        holder.wait()


def test_a_run_still_executing_elsewhere_is_waited_for_not_deleted(tmp_path):
    """An orphaned attempt (its client was stopped; it still runs on a --scheduler worker) holds the
    run's lock; the new attempt waits for it and takes its record instead of deleting its files."""
    from sweep_toy import ToyTarget

    from analogdecor.sweep.results import write_result
    from analogdecor.sweep.runner import execute_run, run_lock
    from analogdecor.sweep.spec import plain_config, plan_runs

    spec = _toy_spec(tmp_path)
    run = plan_runs(spec, ToyTarget())[0]
    run_dir = tmp_path / "runs" / run.run_id
    run_dir.mkdir(parents=True)
    (run_dir / "model.npz").write_text("the orphan's files")
    orphan = run_lock(tmp_path, run.run_id).acquire()
    out: dict = {}
    worker = threading.Thread(
        target=lambda: out.setdefault("r", execute_run(run, str(tmp_path), "new", ToyTarget()))
    )
    worker.start()
    time.sleep(1.0)
    assert worker.is_alive()
    assert (run_dir / "model.npz").is_file()
    write_result(run_dir, {"run_id": run.run_id, "attempt": "orphan", "status": "ok",
                           "config": plain_config(run.config)})  # fmt: skip
    orphan.release()
    worker.join(30)
    assert out["r"]["attempt"] == "orphan"
    assert (run_dir / "model.npz").is_file()


# --------------------------------------------------------------------------- 4. checksums
def _export(tmp_path) -> ConductanceExport:
    rng = np.random.default_rng(0)
    layers = [LayerRecord(name=f"layers.{i}.W", g_plus=rng.uniform(0.1, 25, shape), g_minus=rng.uniform(0.1, 25, shape),
                          g_min=0.1, g_max=25.0, w_scale=0.6, backend="Tile", tile_config={"device": {"model": "exp"}})
              for i, shape in enumerate([(6, 5), (3, 6)])]  # fmt: skip
    return ConductanceExport(
        layers=layers,
        meta={"seed": 3, "run_config": {"seed": 3}},
        digital={"layers.0.bias": rng.standard_normal(6).astype(np.float32)},
    )


def _same(a: ConductanceExport, b: ConductanceExport) -> bool:
    return (all(np.array_equal(x.g_plus, y.g_plus) and np.array_equal(x.g_minus, y.g_minus)
                and (x.g_min, x.g_max, x.w_scale) == (y.g_min, y.g_max, y.w_scale)
                for x, y in zip(a.layers, b.layers, strict=True))
            and all(np.array_equal(a.digital[k], b.digital[k]) for k in a.digital))  # fmt: skip


@pytest.mark.parametrize("fmt", ["hdf5", "npz"])
def test_no_single_byte_flip_changes_an_import_silently(tmp_path, fmt):
    """Was (HDF5): 58 of 60 flips undetected, 19 of them changed the imported network."""
    pytest.importorskip("h5py")
    exp = _export(tmp_path)
    path = tmp_path / TARGET[fmt]
    write_export(exp, path, fmt)
    good = path.read_bytes()
    silent = []
    for pos in np.linspace(0, len(good) - 1, 120).astype(int):
        bad = bytearray(good)
        bad[pos] ^= 0xFF
        path.write_bytes(bytes(bad))
        try:
            back = read_export(path, fmt)
        except ExportFormatError:
            continue
        if not _same(exp, back):
            silent.append(int(pos))
    assert silent == []


def test_csv_layer_file_edits_are_detected(tmp_path):
    exp = _export(tmp_path)
    folder = tmp_path / "csvdir"
    write_export(exp, folder, "csv")
    f = folder / "layers.0.W.csv"
    lines = f.read_text().splitlines(keepends=True)
    row = lines[3].split(",")
    row[2] = repr(float(row[2]) + 1e-6)  # a tiny, plausible change of one conductance
    f.write_text("".join([*lines[:3], ",".join(row), *lines[4:]]))
    with pytest.raises(ExportFormatError, match="digest"):
        read_export(folder)


# --------------------------------------------------------------------------- 5. impossible conductances
def _reseal(folder: Path, edit_layer=None, edit_manifest=None) -> None:
    """Edit a CSV export and recompute every digest, as a tool that rewrites files would."""
    manifest = json.loads((folder / "manifest.json").read_text())
    lm = manifest["layers"][0]
    path = folder / lm["file"]
    if edit_layer is not None:
        lines = path.read_text().splitlines()
        path.write_text("\r\n".join([lines[0], *edit_layer(lines[1:])]) + "\r\n")
        lm["file_sha256"] = file_digest(path.read_bytes())
        back = np.array(
            [[float(v) for v in line.split(",")[2:4]] for line in path.read_text().splitlines()[1:]]
        )
        from analogdecor.export.records import array_digest

        manifest["checksums"][f"{lm['name']}/g_plus"] = array_digest(back[:, 0].reshape(lm["shape"]))
        manifest["checksums"][f"{lm['name']}/g_minus"] = array_digest(back[:, 1].reshape(lm["shape"]))
    if edit_manifest is not None:
        edit_manifest(manifest)
    (folder / "manifest.json").write_text(json.dumps(seal_header(manifest)))


def _set_first(value: str):
    def edit(rows):
        r = rows[0].split(",")
        r[2] = value
        return [",".join(r), *rows[1:]]

    return edit


@pytest.mark.parametrize(
    ("edit_layer", "edit_manifest", "message"),
    [
        (_set_first("-5.0"), None, "outside the mapping's range"),
        (_set_first("1000000.0"), None, "outside the mapping's range"),
        (None, lambda m: m["layers"][0].update(g_max=50.0), "disagree with"),
        (None, lambda m: m["layers"][0].update(w_scale=1.2), "disagree with"),
    ],
    ids=["negative G+", "1e6 uS", "edited g_max", "edited w_scale"],
)
def test_csv_import_checks_physics_even_with_recomputed_digests(tmp_path, edit_layer, edit_manifest, message):
    exp = _export(tmp_path)
    folder = tmp_path / "csvdir"
    write_export(exp, folder, "csv")
    _reseal(folder, edit_layer, edit_manifest)
    with pytest.raises(ExportFormatError, match=message):
        read_export(folder)


def test_csv_manifest_edit_without_resealing_is_detected(tmp_path):
    folder = tmp_path / "csvdir"
    write_export(_export(tmp_path), folder, "csv")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["layers"][0]["g_max"] = 50.0
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ExportFormatError, match="header_sha256"):
        read_export(folder)


# --------------------------------------------------------------------------- 6. IDX shadowing
def test_plain_idx_file_beside_a_differing_gz_is_an_error_naming_both(tmp_path):
    from analogdecor.data.idx import find_idx_files, write_idx

    rng = np.random.default_rng(0)
    for split, n in (("train", 20), ("t10k", 10)):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 255, (n, 4, 4), dtype=np.uint8))
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", np.arange(n, dtype=np.uint8) % 10)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(20, dtype=np.uint8))  # differs from the .gz
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte, train-labels-idx1-ubyte\.gz"):
        find_idx_files(tmp_path)
    assert gzip.decompress((tmp_path / "train-labels-idx1-ubyte.gz").read_bytes())  # left as it was


# --------------------------------------------------------------------------- 7. atomic exports
@pytest.mark.parametrize("fmt", ["npz", "hdf5", "csv"])
def test_an_export_killed_mid_write_leaves_the_earlier_export_intact(tmp_path, fmt):
    """Was: the earlier export replaced by a truncated, unreadable file (HDF5: the writer crashed)."""
    if fmt == "hdf5":
        pytest.importorskip("h5py")
    exp = _export(tmp_path)
    path = tmp_path / TARGET[fmt]
    write_export(exp, path, fmt)
    rng = np.random.default_rng(1)  # random values: the file cannot compress below the size limit
    bigger = ConductanceExport(layers=[LayerRecord(**{**vars(exp.layers[0]), "g_plus": rng.uniform(1, 2, (200, 100)),
                                                      "g_minus": rng.uniform(1, 2, (200, 100))})],
                               meta=exp.meta, digital=exp.digital)  # fmt: skip
    big = tmp_path / f"big.{fmt}"
    write_export(bigger, big, fmt)
    code = textwrap.dedent(f"""
        import resource
        from analogdecor.export import read_export, write_export
        exp = read_export({str(big)!r}, {fmt!r})
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))  # ulimit -f: the write dies part-way
        write_export(exp, {str(path)!r}, {fmt!r})
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_CORE, (0, 0)))  # fmt: skip
    assert proc.returncode != 0  # the writer did not get through
    assert _same(exp, read_export(path, fmt))  # the earlier export, whole


# --------------------------------------------------------------------------- siblings: the chip export
def test_chip_export_manifest_edits_are_detected_and_rewrites_are_whole(tmp_path):
    """The chip export checksummed its array files but not the manifest that places and scales them:
    an edited w_scale, offset or g_max imported silently. Rewriting an export replaced it file by file."""
    from analogdecor.crossbar.config import TileConfig
    from analogdecor.export.chip import read_chip_export, write_chip_export
    from analogdecor.networks import MLP

    net = MLP.build([16, 8, 4], backend="numba", tile_config=TileConfig(), seed=0)
    folder = tmp_path / "chip"
    write_chip_export(net, folder)
    manifest = folder / "manifest.jsonl"
    lines = manifest.read_text().splitlines()
    line = json.loads(lines[1])
    line["w_scale"] *= 2  # every weight of this array doubles on import
    manifest.write_text("\n".join([lines[0], json.dumps(line, sort_keys=True), *lines[2:]]) + "\n")
    with pytest.raises(ExportFormatError, match="manifest_sha256"):
        read_chip_export(folder)
    write_chip_export(net, folder)  # over the damaged one: replaced as a whole, stale files gone
    assert read_chip_export(folder).layers[0].shape == (8, 16)
    assert not [p for p in tmp_path.iterdir() if p.name != "chip"]  # no temporary folder left behind


# --------------------------------------------------------------------------- poor: clear errors
@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.pop("config_json"), "lacks config_json"),
        (lambda s: s.update(config_json="{not json"), "not valid JSON"),
        (lambda s: s.update(config_json='{"device": {"no_such_field": 1}}'), "not a valid TileConfig"),
    ],
    ids=["missing", "not JSON", "unknown field"],
)
def test_tile_from_state_dict_with_a_bad_config_is_a_data_error(edit, message):
    """Was: a bare KeyError or JSONDecodeError."""
    from analogdecor.crossbar.tile import Tile

    state = Tile(3, 4, seed=0).state_dict()
    edit(state)
    with pytest.raises(DataError, match=message):
        Tile.from_state_dict(state)


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_damaged_model_or_checkpoint_is_a_data_error(tmp_path, damage):
    """Was: zipfile.BadZipFile (or zlib.error) from load_run and resume."""
    from analogdecor.training import load_run, resume

    out = tmp_path / "run"
    cfg = from_dict(TrainConfig, {**SMALL, "optim": {"epochs": 2, "batch_size": 32}})
    train(cfg, out, progress=False)
    for name in ("model.npz",):
        data = bytearray((out / name).read_bytes())
        if damage == "truncate":
            data = data[: len(data) // 2]
        else:
            data[len(data) // 3] ^= 0xFF
        (out / name).write_bytes(bytes(data))
    with pytest.raises(DataError):
        load_run(out)
    info = json.loads((out / "run.json").read_text())
    (out / "run.json").write_text(json.dumps({**info, "status": "interrupted", "epochs_completed": 1}))
    (out / "checkpoint.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DataError):
        resume(out, progress=False)


@pytest.mark.parametrize("status", ["diverged", "running", "interrupted", "failed"])
def test_export_and_evaluate_refuse_unfinished_runs_unless_forced(tmp_path, status, capsys):
    from analogdecor.export import export_run

    out = tmp_path / "run"
    train(from_dict(TrainConfig, SMALL), out, progress=False)
    info = json.loads((out / "run.json").read_text())
    (out / "run.json").write_text(json.dumps({**info, "status": status}))
    with pytest.raises(DataError, match=r"refusing to export.*--force"):
        export_run(out)
    assert main(["evaluate", str(out), "--model", "none", "--seeds", "1", "--times", "1s", "--quiet"]) == 2
    assert "refusing to evaluate" in capsys.readouterr().err
    with pytest.warns(UserWarning, match=status):
        export_run(out, force=True)


def test_labels_outside_the_classes_are_an_error(tmp_path):
    """Was: one stray label 200 in an IDX directory silently made 201 classes."""
    from analogdecor.data import load_dataset
    from analogdecor.data.idx import write_idx

    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("t10k", 20)):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte", rng.integers(0, 255, (n, 4, 4), dtype=np.uint8))
        labels = (np.arange(n) % 10).astype(np.uint8)
        if split == "t10k":
            labels[3] = 200
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte", labels)
    with pytest.raises(DataError, match="never occur in the training labels"):
        load_dataset("idx", tmp_path)
    with pytest.raises(DataError, match="labels go up to 200 but the data set 'idx' has 10 classes"):
        load_dataset("idx", tmp_path, n_classes=10)


def test_scheduler_address_errors_are_clear(tmp_path):
    """Was: a raw OSError / ValueError traceback from dask.distributed."""
    from analogdecor.errors import ConfigError
    from analogdecor.sweep.runner import _connect

    with pytest.raises(ConfigError, match="scheduler = 'not an address'"):
        _connect("not an address")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"seed": 2**70}, "seed"),
        ({"optim": {"lr": 1e300}}, "lr"),
        ({"tile": {"forward.out_bits": 2000}}, "out_bits"),
        ({"tile": {"update.desired_bl": 10**9}}, "desired_bl"),
        ({"tile": {"mapping.levels": 2**70}}, "levels"),
        ({"tile": {"device.dw_min": 1e-300}}, "dw_min"),
    ],
    ids=["seed", "lr", "out_bits", "desired_bl", "levels", "dw_min"],
)
def test_settings_that_cannot_run_are_refused_up_front(overrides, field):
    """Each was accepted and then failed (or diverged) inside the kernels or when the run was saved."""
    from analogdecor.errors import ConfigError
    from analogdecor.training.config import resolve_tile_config

    with pytest.raises(ConfigError, match=field):
        resolve_tile_config(from_dict(TrainConfig, {**SMALL, "backend": "numba", **overrides}))


def test_a_finished_sweep_run_whose_files_are_gone_runs_again(tmp_path):
    """Was: a record saying 'ok' was trusted although its run directory had lost model.npz."""
    from analogdecor.sweep.results import write_result
    from analogdecor.sweep.runner import execute_run
    from analogdecor.sweep.spec import PlannedRun, plain_config
    from analogdecor.sweep.target import TrainingTarget

    cfg = from_dict(TrainConfig, SMALL)
    run = PlannedRun(run_id="lost", overrides={}, config=cfg)
    run_dir = tmp_path / "runs" / "lost"
    run_dir.mkdir(parents=True)
    write_result(run_dir, {"run_id": "lost", "attempt": "old", "status": "ok", "config": plain_config(cfg)})
    record = execute_run(run, str(tmp_path), "new", TrainingTarget())
    assert record["attempt"] == "new"
    assert record["status"] == "ok"
    assert (run_dir / "model.npz").is_file()
