"""Conv nets through the whole pipeline: config, CLI, run directory, TOML round trip."""

from __future__ import annotations

import numpy as np
import pytest

from analogdecor.errors import ConfigError
from analogdecor.training import TrainConfig, apply_overrides, load_run, train
from analogdecor.training.rundir import load_run_config

SMALL = {"data.n_train": 200, "data.n_test": 100, "optim.epochs": 2, "optim.batch_size": 25}
LAYERS = [{"kind": "conv2d", "channels": 4, "kernel": 3, "padding": 1}, {"kind": "maxpool", "size": 2},
          {"kind": "conv2d", "channels": 6, "kernel": 2}, {"kind": "flatten"}, {"kind": "dense", "units": 16}]  # fmt: skip


@pytest.mark.parametrize("rule", ["bp", "fa", "dfa", "np"])
def test_every_rule_trains_a_decorrelated_conv_net_and_its_run_loads(rule, tmp_path):
    over = {**SMALL, "rule": rule, "model.layers": LAYERS, "decorrelation.enabled": True, "optim.np_sigma": 0.05}
    if rule == "np":
        over.update({"optim.epochs": 1, "optim.lr": 1e-3})
    cfg = apply_overrides(TrainConfig(), over)
    res = train(cfg, tmp_path / "run", progress=False)
    assert res.status == "finished"
    assert np.isfinite(res.metrics["train_loss"]).all()
    if rule == "bp":
        assert res.metrics["test_accuracy"][-1] > 0.3  # 10 classes; chance is 0.1
    cfg2, net = load_run(tmp_path / "run")
    assert cfg2 == cfg
    x = np.random.default_rng(0).random((7, 64), dtype=np.float32)
    np.testing.assert_array_equal(net.forward(x), res.network.forward(x))
    text = (tmp_path / "run" / "config.toml").read_text()
    assert 'kind = "conv2d"' in text  # model.layers written as inline tables and read back
    assert load_run_config(tmp_path / "run")[0].model.layers == cfg.model.layers


def test_bad_architectures_fail_before_training():
    cfg = apply_overrides(TrainConfig(), {**SMALL, "model.layers": [{"kind": "conv2d", "channels": 2, "kernel": 9}]})
    with pytest.raises(ConfigError, match=r"model\.layers\[0\] \(conv2d\): kernel 9x9 is larger than its 1x8x8"):
        train(cfg, None, progress=False)
    with pytest.raises(ConfigError, match="kind"):
        apply_overrides(TrainConfig(), {"model.layers": [{"kind": "conv3d"}]})
    with pytest.raises(ConfigError, match="pick one"):
        apply_overrides(TrainConfig(), {"model.arch": "paper-convnet", "model.layers": LAYERS})
    cfg = apply_overrides(TrainConfig(), {**SMALL, "model.arch": "paper-convnet", "model.in_shape": [1, 8, 9]})
    with pytest.raises(ConfigError, match=r"model\.in_shape = \[1, 8, 9\] holds 72 values"):
        train(cfg, None, progress=False)


def test_cli_arch_paper_convnet(tmp_path, capsys):
    from analogdecor.cli import main

    rc = main(["train", "--arch", "paper-convnet", "--n-train", "100", "--n-test", "50", "--epochs", "1",
               "--batch-size", "50", "--out", str(tmp_path / "run"), "--no-progress"])  # fmt: skip
    assert rc == 0
    cfg, net = load_run(tmp_path / "run")
    assert cfg.model.arch == "paper-convnet"
    assert [tuple(layer.out_shape) for layer in net.layers][:3] == [(32, 8, 8), (32, 8, 8), (32, 4, 4)]


def test_evaluate_a_trained_conv_net_drift_and_ir_drop(tmp_path):
    """Inference physics (drift, read noise, IR drop, compensation) on a conv net's patch-reading tiles."""
    from analogdecor.data import load_dataset
    from analogdecor.inference.evaluate import EvaluateConfig, evaluate_network
    from analogdecor.inference.irdrop import IRDropConfig

    cfg = apply_overrides(TrainConfig(), {**SMALL, "data.n_train": 500, "model.layers": LAYERS,
                                          "decorrelation.enabled": True, "decorrelation.on_tile": True})  # fmt: skip
    net = train(cfg, None, progress=False).network
    ds = load_dataset("digits")
    xt, yt, xr = ds.x_test[:200], ds.y_test[:200], ds.x_train[:64]
    flat = evaluate_network(net, xt, yt, xr, EvaluateConfig(model="none", seeds=1, times=(1.0, 1e6)))
    assert flat.baseline_accuracy > 0.5
    assert np.all(flat.acc_raw == flat.baseline_accuracy)  # noise off: programming and reading are exact
    assert np.all(flat.acc_comp == flat.baseline_accuracy)
    assert set(flat.alphas[0]) == {"layers.0.W", "layers.0.R", "layers.2.W", "layers.2.R", "layers.4.W",
                                   "layers.4.R", "layers.5.W", "layers.5.R"}  # fmt: skip
    pcm = evaluate_network(net, xt, yt, xr, EvaluateConfig(model="pcm", seeds=2, times=(1.0, 86400.0 * 365),
                                                           ir_drop=IRDropConfig(enabled=True, layers=("layers.0.W",))))  # fmt: skip
    assert np.isfinite(pcm.acc_raw).all()
    assert np.isfinite(pcm.acc_comp).all()


def test_paper_convnet_sweep_spec_is_valid():
    from pathlib import Path

    from analogdecor.sweep import load_spec, plan_runs

    runs = plan_runs(load_spec(Path(__file__).parents[1] / "scripts" / "sweeps" / "paper_convnet_mnist.toml"))
    assert len(runs) == 36
