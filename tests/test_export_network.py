"""Export a network, import it back: same outputs (exact with noise off), for every readable format."""

from __future__ import annotations

import numpy as np
import pytest

from analogdecor.config import to_dict
from analogdecor.crossbar.config import IOConfig, TileConfig
from analogdecor.decorrelation import DecorrelationConfig
from analogdecor.devices.config import DeviceConfig
from analogdecor.errors import ExportFormatError
from analogdecor.export import (
    READABLE_FORMATS,
    build_export,
    export_network,
    import_network,
    load_into,
    read_export,
)
from analogdecor.training import ModelConfig, TrainConfig, build_network

TARGET = {"npz": "net.npz", "hdf5": "net.h5", "csv": "netcsv"}


def quiet_tile_config() -> TileConfig:
    """A pulsed ReRAM-like device with device-to-device spread but no read/write noise."""
    dev = DeviceConfig(model="softbounds", dw_min=0.002, w_min=-0.75, w_max=1.25, write_noise_std=0.0)
    return TileConfig(device=dev, forward=IOConfig.perfect(), backward=IOConfig.perfect())


def trained_like(backend: str, seed: int = 3):
    """A [20, 12, 5] network with decorrelation tiles whose state is far from its initial one."""
    cfg = TrainConfig(
        backend=backend,
        model=ModelConfig(hidden=(12,)),
        decorrelation=DecorrelationConfig(enabled=True, on_tile=True),
        seed=seed,
    )
    tile_cfg = quiet_tile_config()
    net = build_network(cfg, tile_cfg, 20, 5)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((64, 20)).astype(np.float32)
    for i, layer in enumerate(net.layers):  # a few pulsed updates and new digital state
        for _ in range(3):
            z = rng.standard_normal((8, layer.in_size)).astype(np.float32)
            d = rng.standard_normal((8, layer.out_size)).astype(np.float32)
            layer.tile.update(z, d, 0.05)
            layer.decor.tile.update(z, rng.standard_normal((8, layer.in_size)).astype(np.float32), 0.02)
        layer.bias = rng.standard_normal(layer.out_size).astype(np.float32)
        layer.decor.mu = rng.standard_normal(layer.in_size) * 0.1
        layer.decor.scale = 1.7 + i
    return cfg, tile_cfg, net, x


AIHWKIT = pytest.param("aihwkit", marks=pytest.mark.aihwkit)


@pytest.mark.parametrize("backend", ["numba", "float", AIHWKIT])
@pytest.mark.parametrize("fmt", READABLE_FORMATS)
def test_round_trip_gives_identical_outputs(tmp_path, backend, fmt):
    if backend == "aihwkit":
        pytest.importorskip("aihwkit")
    cfg, _tile_cfg, net, x = trained_like(backend)
    meta = {"run_config": to_dict(cfg), "seed": cfg.seed, "device_preset": "test"}
    export_network(net, tmp_path / TARGET[fmt], fmt, meta=meta)
    back = import_network(tmp_path / TARGET[fmt])
    np.testing.assert_array_equal(back.forward(x), net.forward(x))
    for (na, ta), (nb, tb) in zip(net.analog_layers(), back.analog_layers(), strict=True):
        assert na == nb
        np.testing.assert_array_equal(ta.read_weights(), tb.read_weights())
    exp = read_export(tmp_path / TARGET[fmt])
    assert {r.name for r in exp.layers} == {"layers.0.R", "layers.0.W", "layers.1.R", "layers.1.W"}
    assert exp.layer("layers.0.R").kind == "decorrelation"
    assert exp.meta["package_version"]
    assert exp.meta["seed"] == 3


def test_export_contains_what_the_issue_lists():
    _cfg, tile_cfg, net, _ = trained_like("numba")
    exp = build_export(net, meta={"seed": 3, "device_preset": "test"})
    rec = exp.layer("layers.1.W")
    tile = dict(net.analog_layers())["layers.1.W"]
    assert rec.shape == (5, 12)
    assert rec.w_scale == tile.w_scale
    assert (rec.g_min, rec.g_max) == (tile_cfg.mapping.g_min, tile_cfg.mapping.g_max)
    assert rec.tile_config["device"]["model"] == "softbounds"
    assert (rec.g_plus >= rec.g_min).all()
    assert (rec.g_plus <= rec.g_max).all()
    np.testing.assert_allclose(rec.weights(), tile.read_weights(), rtol=0, atol=1e-7)
    assert "layers.1.bias" in exp.digital
    assert "layers.1.decor.scale" in exp.digital


def test_load_into_wrong_architecture_is_a_clear_error(tmp_path):
    _, _, net, _ = trained_like("float")
    export_network(net, tmp_path / "a.npz", "npz")
    other = build_network(TrainConfig(model=ModelConfig(hidden=(7,))), quiet_tile_config(), 20, 5)
    with pytest.raises(ExportFormatError, match="network has"):
        load_into(other, read_export(tmp_path / "a.npz"))
    with pytest.raises(ExportFormatError, match="no run_config"):
        import_network(tmp_path / "a.npz")


@pytest.mark.parametrize("fmt", READABLE_FORMATS)
def test_conv_net_round_trip_is_exact_and_describes_its_kernels(tmp_path, fmt):
    """A conv tile's map is (C_out, C_in k k); the kernel shape and layout travel in the metadata."""
    from analogdecor.networks.spec import LayerSpec

    cfg = TrainConfig(
        backend="numba",
        model=ModelConfig(
            layers=(LayerSpec("conv2d", channels=3, kernel=3, padding=1, stride=2), LayerSpec("maxpool"), LayerSpec("flatten"))
        ),
        decorrelation=DecorrelationConfig(enabled=True, on_tile=True),
        seed=4,
    )
    net = build_network(cfg, quiet_tile_config(), 64, 5)  # digits: 1x8x8
    rng = np.random.default_rng(0)
    conv = net.layers[0]
    conv.tile.update(rng.standard_normal((8, 9)).astype(np.float32), rng.standard_normal((8, 3)).astype(np.float32), 0.05)
    conv.bias = rng.standard_normal(3).astype(np.float32)
    conv.decor.mu = rng.standard_normal(9) * 0.1
    x = rng.random((6, 64), dtype=np.float32)
    export_network(net, tmp_path / TARGET[fmt], fmt, meta={"run_config": to_dict(cfg), "seed": 4})
    back = import_network(tmp_path / TARGET[fmt])
    np.testing.assert_array_equal(back.forward(x), net.forward(x))
    exp = read_export(tmp_path / TARGET[fmt])
    w = exp.layer("layers.0.W")
    assert w.shape == (3, 9)
    assert w.geometry["kernel_shape"] == [3, 1, 3, 3]
    assert w.geometry["in_shape"] == [1, 8, 8]
    assert (w.geometry["stride"], w.geometry["padding"]) == (2, 1)
    np.testing.assert_array_equal(
        w.weights().astype(np.float32).reshape(w.geometry["kernel_shape"])[:, 0],  # as load_into writes it
        net.layers[0].tile.read_weights().reshape(3, 3, 3),
    )
    assert exp.layer("layers.0.R").shape == (9, 9)
    assert exp.layer("layers.3.W").geometry == {}  # dense layers have none
