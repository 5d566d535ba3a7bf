"""Resuming interrupted runs: the result equals an uninterrupted run bit for bit."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest

from analogdecor.cli import main
from analogdecor.errors import ConfigError, DataError
from analogdecor.training import TrainConfig, apply_overrides, load_run, loop, resume, train

SMALL = {
    "model.hidden": [16],
    "optim.epochs": 4,
    "data.n_train": 300,
    "data.n_test": 100,
    "optim.batch_size": 50,
}
EXACT_KEYS = ("epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy")  # not epoch_time_s


def small(**over) -> TrainConfig:
    return apply_overrides(TrainConfig(), {**SMALL, **over})


pytestmark = pytest.mark.usefixtures("ctrl_c_raises")


def ctrl_c_on_call(monkeypatch, name: str, n: int, run, *, after: bool = False) -> None:
    """Run ``run()`` with Ctrl-C on the ``n``-th call of ``loop.<name>``; it must end in KeyboardInterrupt.

    ``after=False``: the call raises KeyboardInterrupt instead of running (Ctrl-C during it).
    ``after=True``: the call runs, then a real SIGINT is sent to this process.
    """
    real, calls = getattr(loop, name), []

    def wrapped(*args, **kwargs):
        calls.append(1)
        if len(calls) == n and not after:
            raise KeyboardInterrupt
        out = real(*args, **kwargs)
        if len(calls) == n:
            os.kill(os.getpid(), signal.SIGINT)
        return out

    monkeypatch.setattr(loop, name, wrapped)
    with pytest.raises(KeyboardInterrupt):
        run()
    monkeypatch.setattr(loop, name, real)


def interrupt_in_epoch(monkeypatch, cfg: TrainConfig, run_dir, epoch: int = 3) -> None:
    """Train ``cfg`` into ``run_dir`` and press Ctrl-C during the test evaluation of ``epoch``."""
    ctrl_c_on_call(monkeypatch, "evaluate", epoch, lambda: train(cfg, run_dir, progress=False))


def npz_arrays(path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def assert_same_run(resumed, reference, resumed_dir, reference_dir) -> None:
    """Metrics, outputs (fresh and reloaded networks) and the saved model/conductances are identical."""
    for key in EXACT_KEYS:
        assert resumed.metrics[key] == reference.metrics[key], key
    saved = json.loads((resumed_dir / "metrics.json").read_text())
    for key in EXACT_KEYS:
        assert saved[key] == reference.metrics[key], key
    x = np.random.default_rng(7).random((40, 64), dtype=np.float32)
    np.testing.assert_array_equal(resumed.network.forward(x), reference.network.forward(x))
    _, net_a = load_run(resumed_dir)
    _, net_b = load_run(reference_dir)
    np.testing.assert_array_equal(net_a.forward(x), net_b.forward(x))
    names = ["model.npz", "conductances.npz"]
    if (reference_dir / "pulses.npz").is_file():  # numba runs: the pulse counters continue exactly too
        names.append("pulses.npz")
    for name in names:
        a, b = npz_arrays(resumed_dir / name), npz_arrays(reference_dir / name)
        assert sorted(a) == sorted(b), name
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=f"{name}: {k}")


CASES = {
    "float-bp-decor": dict(rule="bp", backend="float", **{"decorrelation.enabled": True}),
    "float-np-decor": dict(rule="np", backend="float", **{"decorrelation.enabled": True}),
    "float-bp-decor-adam": dict(
        rule="bp",
        backend="float",
        **{"decorrelation.enabled": True, "optim.optimizer": "adam", "optim.lr": 1e-3},
    ),
    "float-bp-zca": dict(
        rule="bp", backend="float", **{"decorrelation.enabled": True, "decorrelation.rule": "zca"}
    ),
    "numba-bp-decor": dict(rule="bp", backend="numba", **{"decorrelation.enabled": True}),
    "numba-np-decor": dict(
        rule="np", backend="numba", **{"decorrelation.enabled": True, "optim.np_sigma": 0.05}
    ),
    # R on its own tile, trained by the default 'mixed' analogue update (digital accumulators per device)
    "numba-np-R-tile-mixed": dict(
        rule="np", backend="numba", **{"decorrelation.enabled": True, "decorrelation.on_tile": True}
    ),
    # every tile split over physical arrays (each array's own random streams and pulse counters)
    "numba-np-arrays": dict(
        rule="np",
        backend="numba",
        **{
            "decorrelation.enabled": True,
            "decorrelation.on_tile": True,
            "tile.mapping.array_rows": 12,
            "tile.mapping.array_cols": 20,
        },
    ),
    # conv nets (digits read as 1x8x8): R on patches, on its own tile, mixed updates of patch rows
    "numba-conv-bp-R-tile-mixed": dict(
        rule="bp",
        backend="numba",
        **{
            "decorrelation.enabled": True,
            "decorrelation.on_tile": True,
            "model.layers": [{"kind": "conv2d", "channels": 4, "padding": 1}, {"kind": "maxpool"}, {"kind": "flatten"}],
        },
    ),
    "float-conv-fa-decor": dict(
        rule="fa",
        backend="float",
        **{
            "decorrelation.enabled": True,
            "model.layers": [
                {"kind": "conv2d", "channels": 6, "stride": 2},
                {"kind": "avgpool", "size": 3, "stride": 1},
                {"kind": "flatten"},
                {"kind": "dense", "units": 12},
            ],
        },
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_resumed_run_equals_an_uninterrupted_run_bit_for_bit(case, tmp_path, monkeypatch):
    cfg = small(**CASES[case])
    if cfg.backend == "numba":
        assert cfg.optim.analog_update == "mixed"  # the default: accumulators must be checkpointed
    reference = train(cfg, tmp_path / "whole", progress=False)
    interrupt_in_epoch(monkeypatch, cfg, tmp_path / "cut")
    info = json.loads((tmp_path / "cut" / "run.json").read_text())
    assert (info["status"], info["epochs_completed"]) == ("interrupted", 2)
    assert (tmp_path / "cut" / "checkpoint.npz").is_file()

    resumed = resume(tmp_path / "cut", progress=False)
    assert resumed.status == "finished"
    assert_same_run(resumed, reference, tmp_path / "cut", tmp_path / "whole")
    info = json.loads((tmp_path / "cut" / "run.json").read_text())
    assert info["status"] == "finished"
    assert [r["from_epoch"] for r in info["resumed"]] == [2]
    assert not (tmp_path / "cut" / "checkpoint.npz").exists()  # a finished run needs none


def test_a_run_interrupted_twice_resumes_twice(tmp_path, monkeypatch):
    cfg = small(rule="np", backend="numba", **{"decorrelation.enabled": True, "optim.epochs": 4})
    reference = train(cfg, tmp_path / "whole", progress=False)
    interrupt_in_epoch(monkeypatch, cfg, tmp_path / "cut", epoch=2)  # stops in epoch 2: one epoch kept

    # the resumed run's second epoch is epoch 3
    ctrl_c_on_call(monkeypatch, "evaluate", 2, lambda: resume(tmp_path / "cut", progress=False))
    assert json.loads((tmp_path / "cut" / "run.json").read_text())["epochs_completed"] == 2
    resumed = resume(tmp_path / "cut", progress=False)
    assert_same_run(resumed, reference, tmp_path / "cut", tmp_path / "whole")
    info = json.loads((tmp_path / "cut" / "run.json").read_text())
    assert [r["from_epoch"] for r in info["resumed"]] == [1, 2]


def test_interrupted_before_the_first_epoch_boundary_starts_again(tmp_path, monkeypatch):
    cfg = small(rule="bp", **{"optim.epochs": 2})
    reference = train(cfg, None, progress=False)
    interrupt_in_epoch(monkeypatch, cfg, tmp_path / "cut", epoch=1)
    assert json.loads((tmp_path / "cut" / "run.json").read_text())["epochs_completed"] == 0
    assert not (tmp_path / "cut" / "checkpoint.npz").exists()
    resumed = resume(tmp_path / "cut", progress=False)
    for key in EXACT_KEYS:
        assert resumed.metrics[key] == reference.metrics[key], key


def test_resume_errors_name_the_problem(tmp_path, monkeypatch):
    cfg = small(rule="bp", **{"optim.epochs": 3})
    train(cfg, tmp_path / "done", progress=False)
    with pytest.raises(ConfigError, match="already finished; nothing to resume"):
        resume(tmp_path / "done", progress=False)

    interrupt_in_epoch(monkeypatch, cfg, tmp_path / "cut", epoch=3)
    ckpt = tmp_path / "cut" / "checkpoint.npz"
    saved = ckpt.read_bytes()
    ckpt.unlink()
    with pytest.raises(DataError, match=r"checkpoint\.npz does not exist"):
        resume(tmp_path / "cut", progress=False)
    ckpt.write_bytes(saved)

    config = tmp_path / "cut" / "config.toml"
    text = config.read_text()
    config.write_text(text.replace("\nbatch_size = 50\n", "\nbatch_size = 60\n", 1))
    with pytest.raises(ConfigError, match=r"config\.toml does not match .*optim\.batch_size"):
        resume(tmp_path / "cut", progress=False)
    config.write_text(text)

    model = tmp_path / "cut" / "model.npz"
    (tmp_path / "done" / "model.npz").replace(model)  # a model of another epoch
    with pytest.raises(DataError, match=r"model\.npz is not the model"):
        resume(tmp_path / "cut", progress=False)

    with pytest.raises(DataError, match=r"run\.json does not exist"):
        resume(tmp_path / "nowhere", progress=False)


def test_aihwkit_runs_refuse_to_resume(tmp_path, monkeypatch):
    cfg = small(rule="bp", backend="numba", **{"optim.epochs": 3})
    interrupt_in_epoch(monkeypatch, cfg, tmp_path / "cut", epoch=3)
    config = tmp_path / "cut" / "config.toml"
    config.write_text(config.read_text().replace('backend = "numba"', 'backend = "aihwkit"', 1))
    with pytest.raises(ConfigError, match="aihwkit backend cannot be resumed"):
        resume(tmp_path / "cut", progress=False)


def test_cli_resume_and_its_exit_codes(tmp_path, monkeypatch, capsys):
    cfg = small(rule="np", backend="numba", **{"decorrelation.enabled": True})
    reference = train(cfg, tmp_path / "whole", progress=False)
    interrupt_in_epoch(monkeypatch, cfg, tmp_path / "cut")
    assert main(["train", "--resume", str(tmp_path / "cut"), "--epochs", "9"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path / "cut"), "--no-progress"]) == 0
    assert "finished: test accuracy" in capsys.readouterr().out
    _, net = load_run(tmp_path / "cut")
    x = np.random.default_rng(3).random((10, 64), dtype=np.float32)
    np.testing.assert_array_equal(net.forward(x), reference.network.forward(x))
    assert main(["train", "--resume", str(tmp_path / "cut"), "--no-progress"]) == 2
    assert "already finished; nothing to resume" in capsys.readouterr().err


def test_ctrl_c_while_checkpointing_waits_for_the_checkpoint(tmp_path, monkeypatch):
    """SIGINT arriving between model.npz and checkpoint.npz is held until both are written."""
    cfg = small(rule="np", backend="numba", **{"decorrelation.enabled": True, "optim.epochs": 3})
    reference = train(cfg, tmp_path / "whole", progress=False)
    # the checkpoint after epoch 2: model.npz is new, checkpoint.npz not yet written
    ctrl_c_on_call(
        monkeypatch, "save_model", 2, lambda: train(cfg, tmp_path / "cut", progress=False), after=True
    )
    info = json.loads((tmp_path / "cut" / "run.json").read_text())
    assert (info["status"], info["epochs_completed"]) == ("interrupted", 2)
    resumed = resume(tmp_path / "cut", progress=False)
    assert_same_run(resumed, reference, tmp_path / "cut", tmp_path / "whole")
