"""Deployment of a decorrelated network (folded / separate / digital) and the chip-programming export."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from analogdecor.cli import main
from analogdecor.crossbar.config import TileConfig
from analogdecor.decorrelation import DecorrelationConfig
from analogdecor.deploy import arrays_needed, deploy_network
from analogdecor.errors import ConfigError, ExportFormatError
from analogdecor.export import import_network
from analogdecor.export.chip import export_run_chip, read_chip_export
from analogdecor.networks import MLP
from analogdecor.training import TrainConfig, apply_overrides, load_run, train
from analogdecor.training.rundir import load_run_config

RUN = {"model.hidden": [16], "optim.epochs": 1, "data.n_train": 200, "data.n_test": 60, "backend": "numba",
       "device": "ReRamSB", "rule": "np", "decorrelation.enabled": True, "decorrelation.on_tile": True,
       "tile.mapping.array_rows": 12, "tile.mapping.array_cols": 40}  # fmt: skip


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("deploy") / "run"
    train(apply_overrides(TrainConfig(), RUN), path, progress=False)
    return path


def _mlp(decor_on_tile: bool, backend="numba", cfg=None):
    decor = DecorrelationConfig(enabled=True, on_tile=decor_on_tile)
    return MLP.build(
        [784, 100, 10], backend=backend, tile_config=cfg or TileConfig(), decorrelation=decor, seed=0
    )


def test_arrays_needed_at_256x256():
    net = _mlp(True)
    cfg = TileConfig()
    sep = arrays_needed(net, cfg, "separate", 256, 256)
    assert sep["matrices"]["layers.0.R"]["grid"] == (4, 4)  # 784 x 784
    assert sep["matrices"]["layers.0.W"]["grid"] == (1, 4)  # 100 x 784
    assert sep["total"] == 16 + 4 + 1 + 1
    assert arrays_needed(net, cfg, "folded", 256, 256)["total"] == 4 + 1
    assert arrays_needed(net, cfg, "digital", 256, 256)["total"] == 4 + 1
    assert arrays_needed(net, cfg, "folded")["total"] == 2  # the run's mapping: one array per matrix
    with pytest.raises(ConfigError, match="deploy = 'fused'"):
        arrays_needed(net, cfg, "fused")


def test_folded_deployment_equals_fold_and_digital_keeps_r():
    net = _mlp(True, cfg=TileConfig.ideal())
    rng = np.random.default_rng(0)
    for layer in net.layers:
        layer.decor.mu = rng.normal(size=layer.decor.dim)
        layer.decor.tile.set_weights(np.eye(layer.decor.dim, dtype=np.float32) + 0.01 * rng.standard_normal(
            (layer.decor.dim,) * 2).astype(np.float32))  # fmt: skip
    x = rng.random((5, 784), dtype=np.float32)
    ref = net.fold().forward(x)
    folded = deploy_network(net, "folded", backend="float", tile_config=TileConfig.ideal())
    np.testing.assert_array_equal(folded.forward(x), ref)  # float tiles: exactly fold()
    on_arrays = deploy_network(net, "folded", backend="numba", tile_config=TileConfig.ideal())
    assert [n for n, _ in on_arrays.analog_layers()] == ["layers.0.W", "layers.1.W"]
    np.testing.assert_allclose(on_arrays.forward(x), ref, rtol=1e-4, atol=1e-4)
    digital = deploy_network(net, "digital", backend="numba", tile_config=TileConfig.ideal())
    assert [n for n, _ in digital.analog_layers()] == ["layers.0.W", "layers.1.W"]
    np.testing.assert_array_equal(digital.layers[0].decor.matrix(), net.layers[0].decor.matrix())
    np.testing.assert_allclose(digital.forward(x), net.forward(x), rtol=1e-4, atol=1e-4)
    assert len(net.analog_layers()) == 4  # the input network is left as it was


def test_separate_programs_a_float_r_onto_arrays():
    net = _mlp(False, cfg=TileConfig.ideal())
    rng = np.random.default_rng(1)
    for layer in net.layers:
        layer.decor.load_state_dict({"mu": rng.normal(size=layer.decor.dim),
                                     "R": np.eye(layer.decor.dim) + 0.01 * rng.standard_normal((layer.decor.dim,) * 2)})  # fmt: skip
    sep = deploy_network(net, "separate", backend="numba", tile_config=TileConfig.ideal())
    assert [n for n, _ in sep.analog_layers()] == ["layers.0.R", "layers.0.W", "layers.1.R", "layers.1.W"]
    np.testing.assert_allclose(
        sep.layers[0].decor.matrix(), net.layers[0].decor.matrix(), rtol=1e-5, atol=1e-6
    )
    x = rng.random((4, 784), dtype=np.float32)
    np.testing.assert_allclose(sep.forward(x), net.forward(x), rtol=1e-4, atol=1e-4)
    with pytest.raises(ConfigError, match="deploy = 'fused'"):
        deploy_network(net, "fused", backend="numba", tile_config=TileConfig())


def test_chip_export_round_trip_exact(run_dir, tmp_path):
    _, net = load_run(run_dir)
    paths = export_run_chip(run_dir, tmp_path / "chip")
    lines = [json.loads(s) for s in paths[0].read_text().splitlines()]
    assert lines[0]["format"] == "analogdecor-chip"
    assert lines[-1]["end"] is True
    arrays = lines[1:-1]
    assert (
        len(arrays) == 12 + 4 + 2 + 1
    )  # 12 x 40 arrays: R0 64x64 on 6x2, W0 16x64 on 2x2, R1 16x16 on 2x1, W1
    first = arrays[0]
    assert (first["layer"], first["array"], first["row_offset"], first["col_offset"]) == (
        "layers.0.R",
        [0, 0],
        0,
        0,
    )
    assert (
        lines[0]["layers"][0]["tile_config"]["mapping"]["array_rows"] == 12
    )  # trained mapping and periphery
    exp = read_chip_export(tmp_path / "chip", with_pulses=True)
    tiles = dict(net.analog_layers())
    for rec in exp.layers:
        gp, gm = tiles[rec.name].conductances()
        np.testing.assert_array_equal(rec.g_plus, gp)  # float64 files: exact
        np.testing.assert_array_equal(rec.g_minus, gm)
        up, down = tiles[rec.name].pulse_counts()
        np.testing.assert_array_equal(exp.meta["pulses"][rec.name][0], up)
        np.testing.assert_array_equal(exp.meta["pulses"][rec.name][1], down)
    again = import_network(tmp_path / "chip")
    for name, tile in again.analog_layers():
        # an import writes the weights exactly into the rebuilt chip (same seed, same devices), where write
        # noise had read some of them beyond their device's bounds, clipped as any exact write is
        ref = copy.deepcopy(tiles[name])
        ref.set_weights(tiles[name].read_weights())
        np.testing.assert_allclose(tile.read_weights(), ref.read_weights(), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(again.layers[0].bias, net.layers[0].bias)


def test_chip_export_detects_damage(run_dir, tmp_path):
    paths = export_run_chip(run_dir, tmp_path / "c")
    npy = next(p for p in paths if p.suffix == ".npy")
    data = bytearray(npy.read_bytes())
    data[-1] ^= 0xFF
    npy.write_bytes(bytes(data))
    with pytest.raises(ExportFormatError, match="checksum mismatch"):
        read_chip_export(tmp_path / "c")
    export_run_chip(run_dir, tmp_path / "d")
    manifest = tmp_path / "d" / "manifest.jsonl"
    manifest.write_text("\n".join(manifest.read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(ExportFormatError, match="no end line"):
        read_chip_export(tmp_path / "d")


def test_folded_network_exports_and_reimports(run_dir, tmp_path):
    cfg, net = load_run(run_dir)
    export_run_chip(run_dir, tmp_path / "f", deploy="folded", array_size=(8, 32))
    exp = read_chip_export(tmp_path / "f")
    assert [r.name for r in exp.layers] == ["layers.0.W", "layers.1.W"]
    _, tile_cfg = load_run_config(run_dir)
    deployed = deploy_network(net, "folded", backend="numba", tile_config=tile_cfg,
                              weight_scaling=cfg.model.weight_scaling, seed=cfg.seed)  # fmt: skip
    for rec, (name, tile) in zip(exp.layers, deployed.analog_layers(), strict=True):
        assert rec.name == name
        np.testing.assert_array_equal(rec.g_plus, tile.conductances()[0])  # the deployed arrays, exactly
    folded = import_network(tmp_path / "f")
    assert not folded.decorrelated
    np.testing.assert_array_equal(folded.layers[0].bias, deployed.layers[0].bias)
    w_eff = net.fold().layers[0].tile.read_weights()
    got = folded.layers[0].tile.read_weights() * np.float32(folded.layers[0].out_scale)
    close = np.isclose(got, w_eff, rtol=1e-5, atol=1e-6)
    assert close.mean() > 0.95  # W R as fold() computes it, on devices ...
    assert np.all(
        np.abs(got[~close]) < np.abs(w_eff[~close])
    )  # ... but for weights clipped to a device's range


def test_cli_export_chip_and_evaluate_deploy(run_dir, tmp_path, capsys):
    assert (
        main(
            [
                "export",
                str(run_dir),
                "--format",
                "chip",
                "--array-size",
                "256x256",
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 0
    )
    assert "(4 arrays)" in capsys.readouterr().out
    assert main(["export", str(run_dir), "--format", "chip", "--array-size", "0x5"]) == 2
    assert "--array-size" in capsys.readouterr().err
    for mode in ("folded", "separate", "digital"):
        rc = main(["evaluate", str(run_dir), "--deploy", mode, "--model", "pcm", "--seeds", "1", "--times", "1s,1d",
                   "--n-test", "40", "--quiet", "--out", str(tmp_path / mode)])  # fmt: skip
        assert rc == 0
        out = capsys.readouterr().out
        assert f"deploy {mode}:" in out
        data = json.loads((tmp_path / mode / "evaluate.json").read_text())
        assert data["deployment"]["deploy"] == mode
    assert (
        data["deployment"]["arrays"]["total"] == 4 + 1
    )  # digital: W only; W0 16 x 64 on 12 x 40 arrays: 2 x 2


def test_deploy_choices_the_run_cannot_honour_are_errors():
    from analogdecor.inference.evaluate import EvaluateConfig

    net = _mlp(False)
    net.layers[0].decor.matrix = None  # a decorrelation without a linear R has no fold
    with pytest.raises(ConfigError, match="deploy = 'folded': layer 0's decorrelation has no linear fold"):
        deploy_network(net, "folded", backend="numba", tile_config=TileConfig())
    with pytest.raises(ConfigError, match=r"EvaluateConfig\.deploy = 'fold'"):
        EvaluateConfig(deploy="fold")
