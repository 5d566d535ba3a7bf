"""A training run on physical arrays: pulse counts in the run directory, run.json, endurance warnings."""

from __future__ import annotations

import json

import numpy as np
import pytest

from analogdecor.crossbar.arrays import ArrayTile
from analogdecor.training import TrainConfig, apply_overrides, load_run, train
from analogdecor.training.pulses import EnduranceWarning, load_pulse_counts, network_pulse_counts

SMALL = {"model.hidden": [16], "optim.epochs": 1, "data.n_train": 200, "data.n_test": 100, "backend": "numba",
         "device": "ReRamSB", "rule": "np", "decorrelation.enabled": True, "decorrelation.on_tile": True,
         "tile.mapping.array_rows": 12, "tile.mapping.array_cols": 40}  # fmt: skip


@pytest.fixture(scope="module")
def arrays_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("run") / "arrays"
    res = train(apply_overrides(TrainConfig(), SMALL), run, progress=False)
    return run, res


def test_arrays_train_save_and_reload_exactly(arrays_run):
    run, res = arrays_run
    tiles = dict(res.network.analog_layers())
    assert isinstance(tiles["layers.0.W"], ArrayTile)
    assert tiles["layers.0.W"].grid == (2, 2)  # 16 x 64
    assert isinstance(tiles["layers.0.R"], ArrayTile)
    assert tiles["layers.0.R"].grid == (6, 2)  # 64 x 64
    assert type(tiles["layers.1.W"]).__name__ == "Tile"  # 10 x 16 fits one array
    _, net = load_run(run)
    x = np.random.default_rng(0).random((20, 64), dtype=np.float32)
    np.testing.assert_array_equal(
        net.forward(x), res.network.forward(x)
    )  # noisy reads continue the same streams
    with np.load(run / "conductances.npz") as npz:
        assert npz["layers.0.R.g_plus"].shape == (64, 64)


def test_pulse_counts_saved_and_summarised(arrays_run):
    run, res = arrays_run
    saved = load_pulse_counts(run)
    live = network_pulse_counts(res.network)
    assert list(saved) == ["layers.0.R", "layers.0.W", "layers.1.R", "layers.1.W"]
    for name, (up, down) in live.items():
        assert saved[name][0].dtype == np.uint64
        np.testing.assert_array_equal(saved[name][0], up)
        np.testing.assert_array_equal(saved[name][1], down)
    info = json.loads((run / "run.json").read_text())
    summary = info["pulses"]["layers.0.W"]
    total = live["layers.0.W"][0] + live["layers.0.W"][1]
    assert summary["total"]["max"] == int(total.max()) > 0
    assert summary["total"]["mean"] == pytest.approx(float(total.mean()))
    assert summary["total"]["p99"] == pytest.approx(float(np.percentile(total, 99)))
    assert summary["up"]["sum"] + summary["down"]["sum"] == summary["total"]["sum"]


def test_training_warns_past_the_endurance(tmp_path):
    cfg = apply_overrides(TrainConfig(), {**SMALL, "tile.device.endurance": 3.0})
    with pytest.warns(EnduranceWarning, match=r"layers\.\d\.[RW]: \d+ device\(s\) received more pulses"):
        train(cfg, tmp_path / "e", progress=False)
    worn = json.loads((tmp_path / "e" / "run.json").read_text())["endurance_exceeded"]
    assert {w["layer"] for w in worn} >= {"layers.0.W"}
    assert all(w["max_pulses"] > 3 and w["devices_over"] > 0 for w in worn)


def test_preset_endurance_needs_its_source(tmp_path, monkeypatch):
    from analogdecor.devices import DeviceConfig
    from analogdecor.devices.registry import preset_info
    from analogdecor.errors import ConfigError

    text = (preset_info("ReRamSB").path).read_text()
    (tmp_path / "ReRamSB.toml").write_text(
        "\n".join(ln for ln in text.splitlines() if not ln.startswith("endurance_source"))
    )
    monkeypatch.setenv("ANALOGDECOR_DEVICE_MODELS", str(tmp_path))
    with pytest.raises(ConfigError, match=r"device\.endurance = 1000000\.0 needs source\.endurance_source"):
        preset_info("ReRamSB")
    with pytest.raises(ConfigError, match=r"DeviceConfig\.endurance"):
        DeviceConfig(endurance=-1.0)
