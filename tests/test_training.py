"""Training: config validation before any work, the run directory, load_run, the CLI, learning."""

from __future__ import annotations

import json
import tomllib

import numpy as np
import pytest

from analogdecor.cli import main
from analogdecor.config import from_dict, to_dict
from analogdecor.errors import ConfigError
from analogdecor.training import (
    TrainConfig,
    apply_overrides,
    load_run,
    load_train_config,
    resolve_tile_config,
    train,
)
from analogdecor.training.tomlio import dumps_toml

SMALL = {"model.hidden": [16], "optim.epochs": 2, "data.n_train": 300, "data.n_test": 100}


def small(**over) -> TrainConfig:
    return apply_overrides(TrainConfig(), {**SMALL, **over})


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("override", "match"),
    [
        ({"rule": "hebb"}, "rule"),
        ({"decorrelation.lr": -1e-3}, r"DecorrelationConfig\.lr"),
        ({"optim.lr": -0.1}, r"OptimConfig\.lr"),
        ({"optim.epochs": 0}, r"OptimConfig\.epochs"),
        ({"backend": "gpu"}, "backend"),
        ({"data.dataset": "imagenet"}, "dataset"),
        ({"model.hidden": [0]}, r"hidden\[0\]"),
        ({"optim.not_a_field": 1}, "not_a_field"),
        (
            {"decorrelation.on_tile": True, "decorrelation.rule": "copi", "decorrelation.enabled": True},
            "on_tile",
        ),
        ({"optim.optimizer": "adam", "backend": "numba"}, "analog_lr"),
    ],
)
def test_bad_configs_fail_with_errors_naming_the_field(override, match):
    with pytest.raises(ConfigError, match=match):
        from_dict(TrainConfig, to_dict(apply_overrides(TrainConfig(), override)))


def test_data_mismatch_and_unknown_tile_paths_fail_before_training(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match="in_features = 784"):
        train(small(**{"model.in_features": 784}), out, progress=False)
    with pytest.raises(ConfigError, match="out_features = 7"):
        train(small(**{"model.out_features": 7}), out, progress=False)
    with pytest.raises(ConfigError, match="no_such_field"):
        train(small(**{"tile.device.no_such_field": 1.0}), out, progress=False)
    with pytest.raises(ConfigError, match="batch_size"):
        train(small(**{"optim.batch_size": 5000}), out, progress=False)
    assert not out.exists()


def test_tile_overrides_resolve_on_the_preset():
    cfg = small(**{"tile.device.dw_min_std": 0.5, "tile.mapping.levels": 32}, device="ReRamES")
    assert cfg.tile == {"device.dw_min_std": 0.5, "mapping.levels": 32}
    tc = resolve_tile_config(cfg)
    assert tc.device.dw_min_std == 0.5
    assert tc.mapping.levels == 32
    with pytest.raises(ConfigError):
        resolve_tile_config(small(device="NoSuchDevice"))


def test_toml_writer_round_trips_the_config():
    cfg = small(**{"tile.forward.out_bits": 6, "decorrelation.enabled": True, "data.data_dir": "/x y"})
    text = dumps_toml(to_dict(cfg))
    assert from_dict(TrainConfig, tomllib.loads(text)) == cfg


# ----------------------------------------------------------------------------- run directory
def test_run_directory_is_complete_and_loads_back_exactly(tmp_path):
    cfg = small(rule="fa", **{"decorrelation.enabled": True, "tile.mapping.g_max": 40.0})
    res = train(cfg, tmp_path / "run", progress=False)
    run = tmp_path / "run"
    for name in ("config.toml", "run.json", "metrics.csv", "metrics.json", "model.npz", "conductances.npz",
                 "learning_curves.png"):  # fmt: skip
        assert (run / name).is_file(), name
    assert not list(run.glob(".*tmp"))
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("train_loss", "test_loss", "test_accuracy", "train_accuracy"):
        assert len(metrics[key]) == 2
    info = json.loads((run / "run.json").read_text())
    assert info["seed"] == 0
    assert info["version"]
    assert info["status"] == "finished"
    assert (run / "metrics.csv").read_text().splitlines()[0].startswith("epoch,train_loss")
    saved = tomllib.loads((run / "config.toml").read_text())
    assert saved["resolved_tile"]["mapping"]["g_max"] == 40.0
    with np.load(run / "conductances.npz") as npz:
        assert list(npz["names"]) == ["layers.0.W", "layers.1.W"]
        assert npz["layers.0.W.g_plus"].shape == (16, 64)
        assert npz["layers.0.W.g_plus"].max() <= 40.0 + 1e-9
    cfg2, net = load_run(run)
    assert cfg2 == cfg
    x = np.random.default_rng(0).random((20, 64), dtype=np.float32)
    np.testing.assert_array_equal(net.forward(x), res.network.forward(x))
    assert len(net.rule_state["feedback"]) == 2
    assert load_train_config(run / "config.toml") == cfg


def test_interrupted_run_keeps_every_finished_epoch(tmp_path, monkeypatch):
    """Ctrl-C in epoch 3 of 4: the run directory holds epochs 1-2 and the model as it was after epoch 2."""
    from analogdecor.training import loop

    real_evaluate, calls = loop.evaluate, []

    def evaluate_then_interrupt(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_evaluate(*args, **kwargs)

    cfg = small(rule="bp", backend="numba", **{"optim.epochs": 4})
    monkeypatch.setattr(loop, "evaluate", evaluate_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "cut", progress=False)
    monkeypatch.setattr(loop, "evaluate", real_evaluate)

    info = json.loads((tmp_path / "cut" / "run.json").read_text())
    assert (info["status"], info["epochs_completed"]) == ("interrupted", 2)
    metrics = json.loads((tmp_path / "cut" / "metrics.json").read_text())
    assert metrics["epoch"] == [1, 2]
    assert len((tmp_path / "cut" / "metrics.csv").read_text().splitlines()) == 3
    two_epochs = train(small(rule="bp", backend="numba"), None, progress=False)
    assert metrics["test_accuracy"] == two_epochs.metrics["test_accuracy"]
    _, net = load_run(tmp_path / "cut")
    x = np.random.default_rng(1).random((20, 64), dtype=np.float32)
    np.testing.assert_array_equal(net.forward(x), two_epochs.network.forward(x))


def test_same_seed_same_run_bit_for_bit():
    a = train(small(rule="np"), None, progress=False)
    b = train(small(rule="np"), None, progress=False)
    c = train(small(rule="np", seed=1), None, progress=False)
    assert a.metrics["train_loss"] == b.metrics["train_loss"]
    assert a.metrics["train_loss"] != c.metrics["train_loss"]


def test_divergence_is_recorded_not_raised(tmp_path):
    res = train(small(**{"optim.lr": 1e6}), tmp_path / "d", progress=False)
    assert res.status == "diverged"
    assert len(res.metrics["test_loss"]) == 2
    assert np.isnan(res.metrics["test_loss"][-1])
    assert json.loads((tmp_path / "d" / "run.json").read_text())["status"] == "diverged"


# ----------------------------------------------------------------------------- learning
def test_every_rule_learns_digits_on_the_float_backend():
    for rule in ("bp", "fa", "dfa", "np"):
        res = train(small(rule=rule, **{"optim.epochs": 3, "data.n_train": None, "model.hidden": [100]}), None,
                    progress=False)  # fmt: skip
        assert res.metrics["test_accuracy"][-1] > 0.6, rule
        assert res.metrics["train_loss"][-1] < res.metrics["train_loss"][0], rule


def test_decorrelated_np_beats_plain_np_on_digits():
    accs = {}
    for decor in (False, True):
        over = {
            "decorrelation.enabled": decor,
            "optim.epochs": 3,
            "data.n_train": None,
            "model.hidden": [100],
        }
        runs = [train(small(rule="np", seed=s, **over), None, progress=False) for s in (0, 1)]
        accs[decor] = np.mean([r.metrics["test_accuracy"][-1] for r in runs])
        accs[(decor, "loss")] = np.mean([r.metrics["train_loss"][-1] for r in runs])
    assert accs[True] > accs[False] + 0.03
    assert accs[(True, "loss")] < accs[(False, "loss")]


# ----------------------------------------------------------------------------- CLI
def test_cli_train_with_overrides_writes_the_run(tmp_path, capsys):
    cfg_file = tmp_path / "base.toml"
    cfg_file.write_text('rule = "dfa"\n[optim]\nepochs = 1\n[data]\nn_train = 200\nn_test = 50\n')
    out = tmp_path / "cli"
    rc = main(["train", str(cfg_file), "--rule", "np", "--decorrelation", "on", "--decor-lr", "0.002",
               "--hidden", "12", "--seed", "3", "--set", "optim.np_sigma=0.1", "--tile", "forward.out_bits=6",
               "--out", str(out), "--no-progress"])  # fmt: skip
    assert rc == 0
    assert "test accuracy" in capsys.readouterr().out
    cfg, _ = load_run(out)
    assert (cfg.rule, cfg.seed, cfg.decorrelation.enabled, cfg.decorrelation.lr) == ("np", 3, True, 0.002)
    assert cfg.model.hidden == (12,)
    assert cfg.optim.np_sigma == 0.1
    assert cfg.optim.epochs == 1
    assert cfg.tile == {"forward.out_bits": 6}


def test_cli_reports_bad_settings_without_a_traceback(tmp_path, capsys):
    assert main(["train", "--set", "optim.lr=-1", "--out", str(tmp_path / "x")]) == 2
    assert "OptimConfig.lr" in capsys.readouterr().err
    assert main(["train", "--widths", "784,100,10", "--out", str(tmp_path / "y"), "--no-progress"]) == 2
    assert "in_features = 784" in capsys.readouterr().err
    assert main(["train", "--set", "nonsense", "--out", str(tmp_path / "z")]) == 2
    assert not (tmp_path / "x").exists()
    assert not (tmp_path / "y").exists()


def test_cli_print_config_shows_the_resolved_tile(capsys):
    assert main(["train", "--device", "ReRamES", "--print-config"]) == 0
    data = tomllib.loads(capsys.readouterr().out)
    assert data["device"] == "ReRamES"
    assert data["resolved_tile"]["device"]["model"] == "exp"


def test_numba_run_with_r_on_a_tile_reloads_bit_for_bit(tmp_path):
    cfg = small(backend="numba", device="ReRamES", rule="np",
                **{"decorrelation.enabled": True, "decorrelation.on_tile": True, "optim.epochs": 1})  # fmt: skip
    res = train(cfg, tmp_path / "n", progress=False)
    with np.load(tmp_path / "n" / "conductances.npz") as npz:
        assert list(npz["names"]) == ["layers.0.R", "layers.0.W", "layers.1.R", "layers.1.W"]
        assert npz["layers.0.R.g_plus"].shape == (64, 64)
        assert npz["layers.0.W.g_minus"].min() >= 0.0
    _, net = load_run(tmp_path / "n")
    x = np.random.default_rng(1).random((30, 64), dtype=np.float32)
    # noisy reads: the reloaded network continues the same random streams, so equal bit for bit
    np.testing.assert_array_equal(net.forward(x), res.network.forward(x))


@pytest.mark.parametrize("rule", ["ahmad", "copi", "kappa", "zca"])
@pytest.mark.parametrize("ordering", ["local", "global"])
def test_every_decorrelation_rule_trains(rule, ordering):
    cfg = small(**{"decorrelation.enabled": True, "decorrelation.rule": rule, "decorrelation.ordering": ordering,
                   "data.n_train": None, "optim.epochs": 2})  # fmt: skip
    res = train(cfg, None, progress=False)
    assert res.status == "finished"
    assert res.metrics["test_accuracy"][-1] > 0.5
    R = res.network.layers[0].decor.matrix()
    assert not np.allclose(R, np.eye(64))  # R has moved (or been refitted)


def test_paper_settings_reach_the_training_loop():
    """model.init, optim.np_passes and decorrelation.mean_gradient each change a trained run
    (the loop passes them on), and the paper's settings together train."""
    paper = {"optim.optimizer": "adam", "optim.lr": 1e-3, "model.init": "torch", "optim.np_passes": "stacked",
             "optim.np_sigma": 1e-3, "decorrelation.enabled": True, "decorrelation.lr": 1e-3, "optim.epochs": 1}  # fmt: skip

    def weights(**over):
        res = train(small(**{**paper, **over}), None, progress=False)
        assert res.status == "finished"
        return res.network.layers[0].tile.read_weights()

    base = weights(rule="np")
    assert not np.array_equal(base, weights(rule="np", **{"optim.np_passes": "separate"}))
    assert not np.array_equal(base, weights(rule="np", **{"model.init": "he"}))
    bp = weights(rule="bp")
    assert not np.array_equal(bp, weights(rule="bp", **{"decorrelation.mean_gradient": False}))
