"""Accuracy vs time on a small fitted network: flat with noise off, falling for PCM, restored by compensation."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from analogdecor.data import load_dataset
from analogdecor.decorrelation import DecorrelationConfig
from analogdecor.errors import ConfigError
from analogdecor.inference.evaluate import (
    EvaluateConfig,
    evaluate_network,
    format_table,
    format_time,
    parse_times,
    write_results,
)
from analogdecor.inference.irdrop import IRDropConfig
from analogdecor.inference.writeverify import WriteVerifyConfig
from analogdecor.networks.mlp import MLP


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def fitted_network(ds, *, decor: bool) -> MLP:
    """A [64, 10] float-backend MLP whose weights are a ridge-regression fit (about 94 % on digits).

    With ``decor`` the layer also has a decorrelation tile (R = identity), so both kinds of tile are evaluated.
    """
    net = MLP.build(
        [64, 10],
        backend="float",
        decorrelation=DecorrelationConfig(enabled=True, on_tile=True) if decor else None,
        seed=0,
    )
    X = np.hstack([ds.x_train, np.ones((len(ds.x_train), 1), np.float32)]).astype(np.float64)
    Y = np.eye(10)[ds.y_train]
    A = np.linalg.solve(X.T @ X + np.eye(65), X.T @ Y)
    net.layers[0].tile.set_weights(A[:64].T.astype(np.float32))
    net.layers[0].bias = A[64].astype(np.float32)
    return net


def run(ds, net, **kw):
    cfg = EvaluateConfig(**{"seeds": 4, **kw})
    return evaluate_network(net, ds.x_test, ds.y_test, ds.x_train[:128], cfg)


@pytest.mark.parametrize("decor", [False, True])
def test_all_noise_off_gives_a_flat_curve_at_the_trained_accuracy(digits, decor):
    net = fitted_network(digits, decor=decor)
    res = run(digits, net, model="none", seeds=2)
    assert res.baseline_accuracy > 0.9
    assert np.all(res.acc_raw == res.baseline_accuracy)
    assert np.all(res.acc_comp == res.baseline_accuracy)
    for seed_alphas in res.alphas:
        for values in seed_alphas.values():
            assert values == [1.0] * len(res.times)


def test_pcm_curve_falls_with_time_and_compensation_recovers(digits):
    net = fitted_network(digits, decor=True)
    before = net.forward(digits.x_test[:50])
    res = run(digits, net, model="pcm")
    raw = res.acc_raw.mean(axis=0)
    comp = res.acc_comp.mean(axis=0)
    assert raw[-1] < raw[0] - 0.05  # a year of drift costs accuracy without compensation
    assert np.sum(np.diff(raw) <= 0.005) >= len(raw) - 2  # monotone-ish (at most one small uptick)
    assert comp[-1] > raw[-1] + 0.05  # global drift compensation restores most of it
    assert raw[0] < res.baseline_accuracy  # programming noise already costs a little at 1 s
    for seed_alphas in res.alphas:  # drift lowers outputs more and more: alpha grows with time
        for values in seed_alphas.values():
            assert values[-1] > 1.3
            assert values[-1] > values[0]
    np.testing.assert_array_equal(net.forward(digits.x_test[:50]), before)  # the trained network is untouched


def test_reram_has_programming_noise_only_so_time_does_not_matter(digits):
    net = fitted_network(digits, decor=False)
    res = run(digits, net, model="reram")
    for k in range(1, len(res.times)):
        np.testing.assert_array_equal(res.acc_raw[:, k], res.acc_raw[:, 0])
    assert res.acc_raw.mean() < res.baseline_accuracy


def test_same_seed_same_numbers(digits):
    net = fitted_network(digits, decor=False)
    a = run(digits, net, model="pcm", seeds=2, times=(1.0, 86400.0))
    b = run(digits, net, model="pcm", seeds=2, times=(1.0, 86400.0))
    np.testing.assert_array_equal(a.acc_raw, b.acc_raw)
    np.testing.assert_array_equal(a.acc_comp, b.acc_comp)
    c = run(digits, net, model="pcm", seeds=2, times=(1.0, 86400.0), seed=1)
    assert not np.array_equal(a.acc_raw, c.acc_raw)


def test_ir_drop_switch_and_per_tile_selection(digits):
    net = fitted_network(digits, decor=True)

    def acc(**ir):
        res = run(digits, net, model="none", seeds=1, times=(1.0, 3.15e7), ir_drop=IRDropConfig(**ir))
        assert res.acc_raw[0, 0] == res.acc_raw[0, 1]  # IR drop is static: the same at every time
        # the reference readout at t = 0 already includes IR drop, so compensation does not touch it
        assert res.alphas[0]["layers.0.W"] == [1.0, 1.0]
        return res.acc_raw[0, 0], res.baseline_accuracy

    got, base = acc(enabled=False, r_wire=50.0)
    assert got == base
    both, _ = acc(enabled=True, r_wire=50.0)
    only_w, _ = acc(enabled=True, r_wire=50.0, layers=("layers.0.W",))
    only_r, _ = acc(enabled=True, r_wire=50.0, layers=("layers.0.R",))
    assert both < base
    assert only_w != base
    assert only_r != base
    assert len({both, only_w, only_r}) > 1
    with pytest.raises(ConfigError, match="no tile"):
        acc(enabled=True, layers=("layers.5.W",))


def test_write_verify_reports_smaller_residual_per_layer(digits):
    net = fitted_network(digits, decor=True)
    open_loop = run(digits, net, model="pcm", seeds=1, times=(1.0,))
    verified = run(
        digits, net, model="pcm", seeds=1, times=(1.0,),
        write_verify=WriteVerifyConfig(enabled=True, tolerance=0.01, max_iterations=20),
    )  # fmt: skip
    for layer in ("layers.0.W", "layers.0.R"):
        a, b = open_loop.write_verify[0][layer], verified.write_verify[0][layer]
        assert a["iterations"] == 1
        assert b["iterations"] > 1
        assert b["rms_error_us"] < 0.6 * a["rms_error_us"]


def test_results_files(digits, tmp_path):
    net = fitted_network(digits, decor=False)
    res = run(digits, net, model="pcm", seeds=2, times=(1.0, 3600.0))
    paths = write_results(res, tmp_path / "ev")
    assert [p.name for p in paths] == ["evaluate.csv", "evaluate.json", "evaluate.png"]
    with paths[0].open() as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["time"], r["drift_compensation"]) for r in rows] == [
        ("1s", "off"),
        ("1s", "on"),
        ("1h", "off"),
        ("1h", "on"),
    ]
    assert float(rows[2]["mean_accuracy"]) == pytest.approx(res.acc_raw[:, 1].mean())
    assert float(rows[2]["std_accuracy"]) == pytest.approx(res.acc_raw[:, 1].std(ddof=1))
    data = json.loads(paths[1].read_text())
    assert data["noise_model"]["model"] == "pcm"
    assert data["config"]["seeds"] == 2
    assert paths[2].read_bytes()[:4] == b"\x89PNG"


def test_parse_times():
    assert parse_times("1s,1h,1d,30d,1y") == (1.0, 3600.0, 86400.0, 2592000.0, 31536000.0)
    assert parse_times("0, 2.5m, 1e3") == (0.0, 150.0, 1000.0)
    assert [format_time(t) for t in parse_times("1s,1h,1d,30d,1y")] == ["1s", "1h", "1d", "30d", "1y"]
    for bad in ("1x", "", "-1s", "h"):
        with pytest.raises(ConfigError, match="time"):
            parse_times(bad)
    with pytest.raises(ConfigError, match="seeds"):
        EvaluateConfig(seeds=0)


@pytest.mark.slow
def test_network_trained_on_the_crossbar_by_the_training_loop(tmp_path):
    """End to end: analogdecor.training.train on numba tiles, then evaluate_run (about 10 s)."""
    from analogdecor.config import from_dict
    from analogdecor.inference.evaluate import evaluate_run
    from analogdecor.training import TrainConfig, train

    cfg = from_dict(
        TrainConfig,
        {"rule": "bp", "backend": "numba", "device": "Idealized", "model": {"hidden": [32]},
         "decorrelation": {"enabled": True, "lr": 0.001}, "optim": {"epochs": 3, "lr": 0.05}, "seed": 0},
    )  # fmt: skip
    train(cfg, tmp_path / "run", progress=False)
    flat, _ = evaluate_run(tmp_path / "run", EvaluateConfig(model="none", seeds=2), out_dir=tmp_path / "none")
    assert flat.baseline_accuracy > 0.8
    assert np.all(flat.acc_raw == flat.baseline_accuracy)
    assert np.all(flat.acc_comp == flat.baseline_accuracy)
    pcm, _ = evaluate_run(tmp_path / "run", EvaluateConfig(model="pcm", seeds=3), out_dir=tmp_path / "pcm")
    raw = pcm.acc_raw.mean(axis=0)
    assert raw[-1] < raw[0] - 0.03
    assert np.sum(np.diff(raw) <= 0.01) >= len(raw) - 2
    assert pcm.acc_comp.mean(axis=0)[-1] > raw[-1]


@pytest.mark.aihwkit
def test_evaluate_runs_on_aihwkit_tiles(digits):
    pytest.importorskip("aihwkit")
    from analogdecor.crossbar.config import IOConfig, TileConfig
    from analogdecor.devices.config import DeviceConfig

    dev = DeviceConfig(model="constant", dw_min=0.001, w_min=-1.0, w_max=1.0, write_noise_std=0.0)
    cfg = TileConfig(device=dev, forward=IOConfig.perfect(), backward=IOConfig.perfect())
    net = MLP.build([64, 10], backend="aihwkit", tile_config=cfg, seed=0)
    ref = fitted_network(digits, decor=False)
    W = ref.layers[0].tile.read_weights()
    net.layers[0].out_scale = float(np.abs(W).max()) / 0.5
    net.layers[0].tile.set_weights(W / np.float32(net.layers[0].out_scale))
    net.layers[0].bias = ref.layers[0].bias.copy()
    flat = run(digits, net, model="none", seeds=1, times=(1.0, 3.15e7))
    assert flat.baseline_accuracy > 0.9
    assert np.all(flat.acc_raw == flat.baseline_accuracy)
    pcm = run(digits, net, model="pcm", seeds=2, times=(1.0, 3.15e7))
    assert pcm.acc_raw[:, 1].mean() < pcm.acc_raw[:, 0].mean()


def test_drift_compensation_can_be_switched_off(digits, tmp_path):
    net = fitted_network(digits, decor=False)
    on = run(digits, net, model="pcm", seeds=2, times=(1.0, 3.15e7))
    off = run(digits, net, model="pcm", seeds=2, times=(1.0, 3.15e7), drift_compensation=False)
    assert np.isnan(off.acc_comp).all()
    assert [r["drift_compensation"] for r in off.rows()] == ["off", "off"]
    assert "drift compensation" not in format_table(off)
    assert "drift compensation" in format_table(on)
    paths = write_results(off, tmp_path / "off")
    assert json.loads(paths[1].read_text())["accuracy_drift_compensation"] is None
