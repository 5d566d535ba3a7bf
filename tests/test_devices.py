"""Preset registry, every preset exercised on a tile, and the ``analogdecor devices`` command."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from analogdecor.cli import main
from analogdecor.crossbar import Tile, TileConfig
from analogdecor.crossbar.config import IOConfig, MappingConfig, UpdateConfig
from analogdecor.devices import DeviceConfig, list_presets, load_preset, preset_info
from analogdecor.devices.registry import PresetSource, field_docs, preset_dir
from analogdecor.errors import ConfigError

EXPECTED = {"Ideal", "Idealized", "GokmenVlasov", "ReRamES", "ReRamSB", "Capacitor", "EcRam", "EcRamMO", "PCM"}


def test_the_nine_presets_are_listed():
    assert set(list_presets()) == EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_preset_builds_and_trains_a_tile(name):
    info = preset_info(name)
    assert info.source.citation
    assert info.path.name == f"{name}.toml"
    cfg = info.config
    rng = np.random.default_rng(0)
    tile = Tile(12, 10, cfg, seed=1)
    lo = max(cfg.device.effective_w_min, -0.3)
    tile.set_weights(rng.uniform(lo, 0.3, (12, 10)))
    x = rng.uniform(0, 1, (16, 10)).astype(np.float32)
    target = rng.uniform(-0.2, 0.2, (10, 12)).astype(np.float32)
    y0 = tile.forward(x)
    err0 = np.mean((y0 - x @ target) ** 2)
    # PCM's first pulses on a fresh device are ~28 dw_min (ExpStep y_up at w = 0): it needs a smaller lr
    lr = 0.02 if name == "PCM" else 0.1
    for _ in range(30):  # plain SGD on a linear regression, through the analogue tile
        y = tile.forward(x)
        tile.backward(y)
        tile.update(x, (y - x @ target) / x.shape[0], lr)
    err = np.mean((tile.forward(x) - x @ target) ** 2)
    w = tile.read_weights()
    assert np.isfinite(w).all()
    arr = tile.device_arrays
    assert np.all(tile.hidden_weights() <= arr.b_max)
    assert np.all(tile.hidden_weights() >= arr.b_min)
    assert err < err0, (err, err0)
    tile.program(w)
    g_plus, g_minus = tile.conductances()
    assert g_plus.min() >= cfg.mapping.g_min
    assert max(g_plus.max(), g_minus.max()) <= cfg.mapping.g_max


def test_ideal_preset_is_the_ideal_config_and_training_periphery_is_aihwkits():
    assert load_preset("Ideal") == TileConfig.ideal()
    fwd = load_preset("ReRamES").forward
    assert (fwd.out_bound, fwd.out_noise, fwd.inp_bits, fwd.out_bits) == (20.0, 0.1, 7, 9)
    assert fwd.inp_step == pytest.approx(1 / 63)  # aihwkit inp_res 1/126 over [-1, 1]
    assert fwd.out_step == pytest.approx(2 * 20 / 510)  # aihwkit out_res 1/510 over [-20, 20]
    assert load_preset("ReRamES").device.write_noise_std == 75.0


def test_names_are_case_insensitive_and_unknown_names_list_the_known():
    assert load_preset("reramsb") == load_preset("ReRamSB")
    with pytest.raises(ConfigError, match=r"unknown device preset 'ReRAM'.*GokmenVlasov"):
        load_preset("ReRAM")


def _write(tmp_path, name, text):
    (tmp_path / f"{name}.toml").write_text(text)


def test_bad_preset_files_are_errors_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("ANALOGDECOR_DEVICE_MODELS", str(tmp_path))
    _write(tmp_path, "Good", '[source]\nname = "Good"\ncitation = "x"\n[device]\nmodel = "constant"\n')
    _write(tmp_path, "Typo", '[source]\nname = "Typo"\n[device]\ndw_mni = 0.1\n')
    _write(tmp_path, "Bad", '[source]\nname = "Bad"\n[device]\nw_min = 1.0\nw_max = -1.0\n')
    _write(tmp_path, "Other", '[source]\nname = "Wrong"\n[device]\n')
    _write(tmp_path, "NoSource", "[device]\n")
    _write(tmp_path, "Broken", "[device\n")
    assert preset_dir() == tmp_path
    assert set(list_presets()) == {"Good", "Typo", "Bad", "Other", "NoSource", "Broken"}
    assert load_preset("good").device.model == "constant"
    with pytest.raises(ConfigError, match=r"Typo\.toml.*dw_mni"):
        load_preset("Typo")
    with pytest.raises(ConfigError, match=r"Bad\.toml.*w_min"):
        load_preset("Bad")
    with pytest.raises(ConfigError, match=r"Other\.toml.*file name"):
        load_preset("Other")
    with pytest.raises(ConfigError, match=r"NoSource\.toml.*\[source\]"):
        load_preset("NoSource")
    with pytest.raises(ConfigError, match=r"Broken\.toml.*not valid TOML"):
        load_preset("Broken")


def test_a_preset_file_path_loads_like_a_name(tmp_path):
    path = tmp_path / "Mine.toml"
    path.write_text('[source]\nname = "Mine"\ndata = "m.csv"\nsha256 = "ab"\n[device]\nmodel = "piecewise"\n'
                    'piecewise_up = [1.0, 0.5]\npiecewise_down = [0.5, 1.0]\n')
    info = preset_info(str(path))
    assert (info.name, info.source.data, info.config.device.piecewise_down) == ("Mine", "m.csv", (0.5, 1.0))
    assert load_preset(path) == info.config
    with pytest.raises(ConfigError, match=r"Missing\.toml does not exist"):
        load_preset(str(tmp_path / "Missing.toml"))


def test_env_var_must_name_a_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("ANALOGDECOR_DEVICE_MODELS", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="ANALOGDECOR_DEVICE_MODELS"):
        list_presets()


@pytest.mark.parametrize("cls", [DeviceConfig, IOConfig, UpdateConfig, MappingConfig, PresetSource])
def test_every_parameter_has_a_sentence(cls):
    docs = field_docs(cls)
    missing = [f.name for f in dataclasses.fields(cls) if not docs.get(f.name)]
    assert not missing


def test_cli_devices_list_and_show(capsys):
    assert main(["devices", "list"]) == 0
    out = capsys.readouterr().out
    for name in EXPECTED:
        assert name in out
    assert main(["devices", "show", "capacitor"]) == 0
    out = capsys.readouterr().out
    assert "Li et al." in out
    assert "gamma_up = 0.05" in out
    assert "relative slope" in out.lower()
    assert main(["devices", "show", "EcRam", "--toml"]) == 0
    assert capsys.readouterr().out == preset_info("EcRam").path.read_text()
    assert main(["devices", "show", "nope"]) == 2
    assert "known presets" in capsys.readouterr().err
