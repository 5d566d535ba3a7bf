"""The aihwkit backend: import guard, TileConfig translation, and AihwkitTile's Tile contract.

The guard tests run without aihwkit (they simulate its absence); the others need it and
skip cleanly when it is missing. The project's test command (``bash scripts/dev.sh test``)
installs aihwkit first, so in CI they run.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from analogdecor.crossbar.config import IOConfig, MappingConfig, TileConfig
from analogdecor.devices.config import DeviceConfig
from analogdecor.errors import BackendUnavailableError, ConfigError, ShapeError


# ------------------------------------------------------------------ without aihwkit (never skipped)
@pytest.fixture
def no_aihwkit(monkeypatch):
    """Make every ``import aihwkit`` fail, as if it were not installed."""
    monkeypatch.setitem(sys.modules, "aihwkit", None)


def test_backend_unavailable_error_says_how_to_install(no_aihwkit):
    from analogdecor.backends import make_tile
    from analogdecor.backends.aihwkit import aihwkit_available, require_aihwkit

    assert not aihwkit_available()
    with pytest.raises(BackendUnavailableError, match=r"bash scripts/dev\.sh setup.*aihwkit 1\.2\.0"):
        require_aihwkit()
    with pytest.raises(BackendUnavailableError, match="install with"):
        make_tile("aihwkit", 2, 3, TileConfig(), seed=0)
    from analogdecor.backends.aihwkit import AihwkitTile

    with pytest.raises(ImportError):  # BackendUnavailableError is an ImportError too
        AihwkitTile(2, 2, TileConfig())


def test_translation_check_and_validate_cli_without_aihwkit(no_aihwkit, capsys):
    from analogdecor.backends.aihwkit import check_translatable
    from analogdecor.cli import main

    check_translatable(TileConfig())  # pure Python: no aihwkit needed
    with pytest.raises(ConfigError, match=r"MappingConfig\.levels"):
        check_translatable(TileConfig(mapping=MappingConfig(levels=16)))
    assert main(["validate", "--preset", "GokmenVlasov", "--check", "forward"]) == 2
    assert "install with: bash scripts/dev.sh setup" in capsys.readouterr().err


def test_package_imports_never_import_aihwkit():
    code = (
        "import sys\n"
        "import analogdecor, analogdecor.backends, analogdecor.backends.aihwkit, analogdecor.validation\n"
        "import analogdecor.cli, analogdecor.cli.validate\n"
        "analogdecor.cli.build_parser()\n"
        "assert 'aihwkit' not in sys.modules, 'aihwkit imported eagerly'\n"
        "assert 'torch' not in sys.modules or True\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr


# ------------------------------------------------------------------ with aihwkit
def _aihwkit():
    return pytest.importorskip(
        "aihwkit", reason="aihwkit not installed (bash scripts/dev.sh setup builds it)"
    )


def _quiet(**kw) -> DeviceConfig:
    base = dict(dw_min=0.01, dw_min_dtod=0.0, dw_min_std=0.0, up_down_dtod=0.0, w_min=-1.0, w_max=1.0,
                w_min_dtod=0.0, w_max_dtod=0.0)  # fmt: skip
    base.update(kw)
    return DeviceConfig(**base)


@pytest.mark.aihwkit
def test_io_translation_matches_aihwkit_semantics():
    _aihwkit()
    from aihwkit.simulator.parameters.enums import BoundManagementType, NoiseManagementType, WeightNoiseType

    from analogdecor.backends.aihwkit.translate import to_rpu_config

    io = IOConfig(inp_bits=7, out_bits=9, inp_bound=2.0, inp_noise=0.01, out_noise=0.1, out_bound=20.0,
                  w_noise=0.02, w_noise_type="pcm", max_bm_passes=5)  # fmt: skip
    rpu = to_rpu_config(TileConfig(forward=io, backward=IOConfig(bound_management="none", out_bits=None)))
    f, b = rpu.forward, rpu.backward
    assert f.inp_res == pytest.approx(1 / 126)
    assert f.out_res == pytest.approx(1 / 510)
    assert f.inp_noise == pytest.approx(0.02)  # relative to inp_bound in analogdecor, absolute in aihwkit
    assert (f.out_noise, f.out_bound, f.inp_bound) == (0.1, 20.0, 2.0)
    assert f.w_noise == 0.02
    assert f.w_noise_type == WeightNoiseType.PCM_READ
    assert f.noise_management == NoiseManagementType.ABS_MAX
    assert f.bound_management == BoundManagementType.ITERATIVE
    assert f.max_bm_factor == 15
    assert b.out_res == -1.0
    assert b.bound_management == BoundManagementType.NONE
    assert to_rpu_config(TileConfig.ideal()).forward.is_perfect


@pytest.mark.aihwkit
@pytest.mark.parametrize(
    ("dev", "cls"),
    [
        (DeviceConfig(model="constant"), "ConstantStepDevice"),
        (DeviceConfig(model="constant", write_noise_std=2.0), "LinearStepDevice"),
        (DeviceConfig(model="linear", gamma_up=0.1, gamma_down=0.5), "LinearStepDevice"),
        (DeviceConfig(model="softbounds", mult_noise=False), "SoftBoundsDevice"),
        (DeviceConfig(model="exp", dw_min_std_add=0.1), "ExpStepDevice"),
        (DeviceConfig(model="pow", pow_gamma=2.0), "PowStepDevice"),
        (DeviceConfig(model="piecewise", piecewise_up=(1.5, 1.0, 0.5), piecewise_down=(0.5, 1.0, 1.5),
                      write_noise_std=1.0), "PiecewiseStepDevice"),
        (DeviceConfig(model="ideal"), "ConstantStepDevice"),
    ],
)
def test_device_translation(dev, cls):
    _aihwkit()
    from aihwkit.simulator.parameters.enums import PulseType

    from analogdecor.backends.aihwkit.translate import to_rpu_config

    rpu = to_rpu_config(TileConfig(device=dev), seed=4)
    d = rpu.device
    assert type(d).__name__ == cls
    assert (d.dw_min, d.w_min, d.w_max) == (dev.dw_min, dev.w_min, dev.w_max)
    assert d.construction_seed == 5
    if dev.model == "ideal":
        assert rpu.update.pulse_type == PulseType.NONE_WITH_DEVICE
        assert d.w_max_dtod == 0.0
    else:
        assert rpu.update.pulse_type == PulseType.STOCHASTIC_COMPRESSED
        assert (d.dw_min_dtod, d.dw_min_std, d.up_down_dtod) == (
            dev.dw_min_dtod,
            dev.dw_min_std,
            dev.up_down_dtod,
        )
    if cls == "LinearStepDevice" and dev.model == "constant":
        assert (d.gamma_up, d.gamma_down, d.gamma_up_dtod, d.write_noise_std) == (0.0, 0.0, 0.0, 2.0)
    if dev.model == "linear":
        assert (d.gamma_up, d.gamma_down) == (0.1, 0.5)
    if dev.model == "exp":
        assert (d.A_up, d.A_down, d.a, d.b, d.dw_min_std_add) == (dev.A_up, dev.A_down, dev.a, dev.b, 0.1)
    if dev.model == "pow":
        assert d.pow_gamma == 2.0
    if dev.model == "piecewise":
        assert (list(d.piecewise_up), list(d.piecewise_down), d.write_noise_std) == ([1.5, 1.0, 0.5],
                                                                                   [0.5, 1.0, 1.5], 1.0)


@pytest.mark.aihwkit
def test_settings_without_equivalent_are_named():
    _aihwkit()
    from analogdecor.backends.aihwkit import AihwkitTile

    with pytest.raises(ConfigError, match=r"MappingConfig\.levels = 8"):
        AihwkitTile(2, 2, TileConfig(mapping=MappingConfig(levels=8)))
    with pytest.raises(ConfigError, match=r"backward\.bound_management"):
        AihwkitTile(2, 2, TileConfig(backward=IOConfig(bound_management="iterative")))
    with pytest.raises(ConfigError, match=r"write_noise_std.*ideal"):
        AihwkitTile(2, 2, TileConfig.ideal().replace(device=DeviceConfig(model="ideal", write_noise_std=1.0)))


@pytest.mark.aihwkit
def test_every_preset_translates():
    _aihwkit()
    from analogdecor.backends.aihwkit import AihwkitTile
    from analogdecor.devices.registry import list_presets, load_preset

    names = list(list_presets())
    assert names
    for name in names:
        tile = AihwkitTile(3, 4, load_preset(name), seed=1)
        assert tile.forward(np.ones((2, 4), np.float32)).shape == (2, 3)


@pytest.mark.aihwkit
def test_ideal_tile_is_float32_algebra():
    _aihwkit()
    from analogdecor.backends.aihwkit import AihwkitTile

    rng = np.random.default_rng(0)
    W = rng.standard_normal((5, 7)).astype(np.float32)
    x = rng.standard_normal((4, 7)).astype(np.float32)
    d = rng.standard_normal((4, 5)).astype(np.float32)
    t = AihwkitTile(5, 7, TileConfig.ideal(), seed=0)
    t.set_weights(W)
    np.testing.assert_allclose(t.forward(x), x @ W.T, rtol=1e-5, atol=1e-6)  # BLAS order differs from numpy
    np.testing.assert_allclose(t.backward(d), d @ W, rtol=1e-5, atol=1e-6)
    t.update(x, d, 0.1)
    np.testing.assert_allclose(t.read_weights(), W - np.float32(0.1) * (d.T @ x), rtol=1e-5, atol=1e-6)
    t.update(x, d, -0.1)  # a negative rate is the update with -d
    np.testing.assert_allclose(t.read_weights(), W, rtol=1e-5, atol=1e-5)
    before = t.read_weights()
    t.update(x, d, 0.0)
    np.testing.assert_array_equal(t.read_weights(), before)
    assert t.forward(x).dtype == np.float32
    assert t.read_weights().dtype == np.float32


@pytest.mark.aihwkit
def test_bad_shapes_raise_shape_error():
    _aihwkit()
    from analogdecor.backends.aihwkit import AihwkitTile

    t = AihwkitTile(2, 3, TileConfig(), seed=0)
    with pytest.raises(ShapeError, match=r"x has shape"):
        t.forward(np.ones((1, 4)))
    with pytest.raises(ShapeError, match=r"d has shape"):
        t.backward(np.ones((1, 3)))
    with pytest.raises(ShapeError, match="samples"):
        t.update(np.ones((2, 3)), np.ones((3, 2)), 0.1)
    with pytest.raises(ShapeError, match="W has shape"):
        t.set_weights(np.ones((3, 2)))
    with pytest.raises(ShapeError):
        AihwkitTile(0, 3, TileConfig())


@pytest.mark.aihwkit
def test_set_weights_clips_to_each_devices_bounds_and_pulses_step_by_dw_min():
    _aihwkit()
    from analogdecor.backends.aihwkit import AihwkitTile

    t = AihwkitTile(3, 2, TileConfig(device=_quiet(w_min=-0.4, w_max=0.7)), seed=0)
    t.set_weights(np.array([[5.0, -5.0], [0.1, -0.1], [0.7, -0.4]]))
    np.testing.assert_allclose(t.read_weights(), [[0.7, -0.4], [0.1, -0.1], [0.7, -0.4]], atol=1e-7)
    # one up pulse on every device: lr = dw_min with |x| = |d| = 1 gives BL = 1 and p = 1
    t.set_weights(np.zeros((3, 2)))
    t.update(np.ones((1, 2)), -np.ones((1, 3)), 0.01)
    np.testing.assert_allclose(t.read_weights(), np.full((3, 2), 0.01), rtol=1e-5)


@pytest.mark.aihwkit
def test_bound_management_makes_at_most_max_bm_passes_reads():
    _aihwkit()
    from analogdecor.backends.aihwkit import AihwkitTile

    for passes in (1, 3, 5):
        io = IOConfig(out_noise=0.0, out_bits=None, inp_bits=None, out_bound=1.0, max_bm_passes=passes)
        t = AihwkitTile(1, 4, TileConfig(device=_quiet(w_min=-10.0, w_max=10.0), forward=io), seed=0)
        t.set_weights(np.full((1, 4), 10.0))
        # y = 40 saturates every pass; the last pass reads x / 2**(passes-1), clipped to 1, scaled back
        assert t.forward(np.ones((1, 4)))[0, 0] == pytest.approx(2.0 ** (passes - 1))


@pytest.mark.aihwkit
def test_state_dict_round_trip():
    _aihwkit()
    from analogdecor.backends.aihwkit import AihwkitTile

    rng = np.random.default_rng(3)
    x, d = rng.uniform(-1, 1, (8, 6)), rng.uniform(-1, 1, (8, 4))
    for dev in (DeviceConfig(model="linear", gamma_up=0.2), DeviceConfig(model="exp", write_noise_std=3.0)):
        a = AihwkitTile(4, 6, TileConfig(device=dev), seed=1)
        a.set_weights(rng.uniform(-0.3, 0.3, (4, 6)))
        a.update(x, d, 0.05)
        state = a.state_dict()
        assert all(isinstance(v, np.ndarray | int | float | str) for v in state.values())
        b = AihwkitTile(4, 6, TileConfig(device=dev), seed=99)
        b.load_state_dict(state)
        ha, hb = a.hidden_parameters(), b.hidden_parameters()
        assert ha.keys() == hb.keys()
        for k in ha:
            np.testing.assert_array_equal(ha[k], hb[k], err_msg=k)
        if dev.write_noise_std == 0:
            np.testing.assert_array_equal(a.read_weights(), b.read_weights())
    with pytest.raises(ShapeError, match="tile"):
        AihwkitTile(2, 2, TileConfig()).load_state_dict(state)


@pytest.mark.aihwkit
def test_same_seed_same_chip():
    _aihwkit()
    from analogdecor.backends.aihwkit import AihwkitTile

    h1 = AihwkitTile(5, 5, TileConfig(), seed=7).hidden_parameters()
    h2 = AihwkitTile(5, 5, TileConfig(), seed=7).hidden_parameters()
    h3 = AihwkitTile(5, 5, TileConfig(), seed=8).hidden_parameters()
    for k in ("max_bound", "min_bound", "dwmin_up", "dwmin_down"):
        np.testing.assert_array_equal(h1[k], h2[k])
    assert not np.array_equal(h1["dwmin_up"], h3["dwmin_up"])


@pytest.mark.aihwkit
def test_stuck_and_dead_devices():
    _aihwkit()
    from analogdecor.backends.aihwkit import AihwkitTile

    n = 40 * 40
    t = AihwkitTile(40, 40, TileConfig(device=DeviceConfig(stuck_fraction=0.2, dead_fraction=0.1)), seed=2)
    h = t.hidden_parameters()
    dead = (h["max_bound"] == 0) & (h["min_bound"] == 0)
    stuck = (h["max_bound"] == h["min_bound"]) & ~dead
    for frac, p in ((stuck.mean(), 0.2), (dead.mean(), 0.1)):
        assert abs(frac - p) < 5 * np.sqrt(p * (1 - p) / n)
    w_stuck = t.read_weights()[stuck]
    t.set_weights(np.full((40, 40), 0.1))
    t.update(np.ones((4, 40)), np.ones((4, 40)), 0.05)
    w = t.read_weights()
    np.testing.assert_array_equal(w[dead], 0.0)
    np.testing.assert_array_equal(w[stuck], w_stuck)  # stuck devices ignore writes and pulses
    g_plus, g_minus = t.conductances()
    np.testing.assert_array_equal(g_plus[dead], t.config.mapping.g_min)
    np.testing.assert_array_equal(g_minus[dead], t.config.mapping.g_min)


@pytest.mark.aihwkit
def test_conductances_use_the_shared_mapping():
    _aihwkit()
    from analogdecor.backends.aihwkit import AihwkitTile
    from analogdecor.crossbar.mapping import weights_to_conductances

    cfg = TileConfig(device=_quiet(), mapping=MappingConfig(g_min=1.0, g_max=26.0))
    t = AihwkitTile(3, 3, cfg, seed=0)
    W = np.array([[0.5, -0.5, 0.0], [1.0, -1.0, 0.25], [0.1, 0.2, -0.3]], np.float32)
    t.set_weights(W)
    gp, gm = t.conductances()
    ep, em = weights_to_conductances(W, 1.0, 26.0, 1.0)
    np.testing.assert_allclose(gp, ep, rtol=1e-6)
    np.testing.assert_allclose(gm, em, rtol=1e-6)
    np.testing.assert_allclose(t.weights_from_conductances(gp, gm), W, atol=1e-6)


@pytest.mark.aihwkit
def test_program_noise_has_the_configured_spread():
    _aihwkit()
    from analogdecor.backends.aihwkit import AihwkitTile

    cfg = TileConfig(device=_quiet(prog_noise_std=0.05, w_min=-2.0, w_max=2.0))
    t = AihwkitTile(60, 60, cfg, seed=0)
    t.program(np.zeros((60, 60)))
    err = t.read_weights().astype(np.float64)
    sigma = 0.05 * 2.0
    n = err.size
    assert abs(err.mean()) < 5 * sigma / np.sqrt(n)
    assert err.std() == pytest.approx(sigma, rel=5 * np.sqrt(2 / n))


@pytest.mark.aihwkit
@pytest.mark.parametrize("rule", ["bp", "fa", "dfa", "np"])
def test_every_learning_rule_trains_on_aihwkit_tiles(rule):
    _aihwkit()
    from analogdecor.decorrelation.config import DecorrelationConfig
    from analogdecor.training import DataConfig, ModelConfig, OptimConfig, TrainConfig, train

    cfg = TrainConfig(
        rule=rule, backend="aihwkit", device="GokmenVlasov", seed=0,
        decorrelation=DecorrelationConfig(enabled=True, on_tile=(rule == "bp")),
        model=ModelConfig(hidden=(16,)), data=DataConfig(dataset="digits", n_train=400, n_test=200),
        optim=OptimConfig(lr=0.1, batch_size=16, epochs=2),
    )  # fmt: skip
    res = train(cfg, None, progress=False)
    assert res.status == "finished"
    loss = np.asarray(res.metrics["test_loss"])
    assert np.all(np.isfinite(loss))
    assert all(getattr(layer.tile, "backend", None) == "aihwkit" for layer in res.network.layers)
    # chance is 0.1; seen over repeated runs: bp 0.59-0.66, fa 0.54-0.60, dfa 0.34-0.37, np 0.53-0.59
    assert res.metrics["test_accuracy"][-1] > 0.25


@pytest.mark.aihwkit
def test_one_sided_pair_is_a_one_sided_unit_cell():
    _aihwkit()
    from aihwkit.simulator.parameters.enums import PulseType

    from analogdecor.backends.aihwkit import AihwkitTile
    from analogdecor.backends.aihwkit.translate import to_rpu_config

    dev = DeviceConfig(model="exp", w_min=0.0, w_max=2.0, one_sided_pair=True, refresh_upper_thres=0.7,
                       refresh_write="exact", reset=0.3)  # fmt: skip
    rpu = to_rpu_config(TileConfig(device=dev))
    cell = rpu.device
    assert type(cell).__name__ == "OneSidedUnitCell"
    assert (cell.refresh_every, cell.refresh_upper_thres, cell.refresh_lower_thres) == (1, 0.7, 0.25)
    assert cell.refresh_forward.is_perfect
    assert cell.refresh_update.pulse_type == PulseType.NONE
    assert (cell.unit_cell_devices[0].reset, cell.unit_cell_devices[0].reset_std) == (0.0, 0.0)
    # the pulsed refresh (aihwkit's own): the forward periphery, the update's pulse trains, the reset values
    dev = dataclasses.replace(dev, refresh_write="pulsed", reset_dtod=0.02, reset_std=0.01)
    cfg = TileConfig(device=dev)
    cell = to_rpu_config(cfg).device
    assert not cell.refresh_forward.is_perfect
    assert cell.refresh_forward.out_noise == cfg.forward.out_noise
    assert cell.refresh_update.pulse_type == PulseType.STOCHASTIC_COMPRESSED
    assert cell.refresh_update.desired_bl == cfg.update.desired_bl
    single = cell.unit_cell_devices[0]
    assert (single.reset, single.reset_dtod, single.reset_std) == (0.3, 0.02, 0.01)
    with pytest.raises(ConfigError, match="one_sided_pair"):
        to_rpu_config(
            TileConfig(device=DeviceConfig(model="exp", w_min=0.0, one_sided_pair=True, write_noise_std=1.0))
        )

    t = AihwkitTile(2, 3, TileConfig(device=dev), seed=0)
    W = np.array([[0.5, -0.5, 1.0], [0.0, 0.2, -1.5]], np.float32)
    t.set_weights(W)
    np.testing.assert_allclose(t.read_weights(), W, atol=1e-7)
    h = t.hidden_parameters()
    np.testing.assert_allclose(h["hidden_weights_1"] - h["hidden_weights_0"], W, atol=1e-7)  # w = w+ - w-
    gp, gm = t.conductances()
    np.testing.assert_allclose(t.weights_from_conductances(gp, gm), W, atol=1e-6)
    assert np.all(np.minimum(gp, gm) == t.config.mapping.g_min)  # set_weights puts each weight on one device
    b = AihwkitTile(2, 3, TileConfig(device=dev), seed=4)
    b.load_state_dict(t.state_dict())
    np.testing.assert_array_equal(b.read_weights(), t.read_weights())


def test_every_config_field_has_a_translation():
    """A field added to the configs must be translated (or refused) before it can reach aihwkit."""
    import dataclasses

    from analogdecor.backends.aihwkit.translate import TRANSLATED_FIELDS, check_translatable

    for cls, known in TRANSLATED_FIELDS.items():
        assert {f.name for f in dataclasses.fields(cls)} == known, cls.__name__
    # an untranslated field with a non-default value is refused by name
    extra = dataclasses.make_dataclass(
        "X", [("new_knob", float, dataclasses.field(default=0.0))], bases=(DeviceConfig,), frozen=True
    )
    TRANSLATED_FIELDS[extra] = TRANSLATED_FIELDS[DeviceConfig]
    try:
        check_translatable(TileConfig(device=extra(new_knob=0.0)))
        with pytest.raises(ConfigError, match=r"TileConfig\.device\.new_knob = 1\.0"):
            check_translatable(TileConfig(device=extra(new_knob=1.0)))
    finally:
        del TRANSLATED_FIELDS[extra]
