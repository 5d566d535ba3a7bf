"""`analogdecor devices fit`: measurement files, round trips through the tile, the CLI and its errors.

Round trip: pulse responses simulated from a known device through analogdecor's own tile, pulse by
pulse, are fitted back with the same family. The checks compare with the devices the tile actually
drew (same seed), so sampling of 10 devices does not enter the tolerances:

- each device's fitted mean step curve lies within CURVE_TOL of its true curve (RMS over the
  central 80 % of its range as far as the device visited it, relative to its mean true step),
  and within CURVE_MEAN_TOL on average over the devices;
- the aggregate figures (dw_min, up_down, dw_min_dtod, bounds) equal those the same aggregation
  gives for the true per-device values within the stated tolerances; the cycle-to-cycle and write
  noise within NOISE_TOL of the source.
"""

from __future__ import annotations

import dataclasses
import hashlib
import warnings

import numpy as np
import pytest
from reference import ref_step

from analogdecor.cli import main
from analogdecor.crossbar import MappingConfig, Tile, TileConfig
from analogdecor.devices import DeviceConfig, load_preset, preset_info
from analogdecor.devices.fit import FitError, choose, fit_all, fit_family, prepare, pulse_data
from analogdecor.devices.measurements import read_measurements, simulate_measurements, write_measurements
from analogdecor.errors import DataError

CURVE_TOL = 0.2
"""RMS deviation of a device's fitted mean step from its true one, relative to its mean true step
(worst device and direction; 0.13 was the worst seen, SoftBounds with write noise)."""
CURVE_MEAN_TOL = 0.07
"""The same, averaged over devices and directions (0.05 the worst seen)."""
NOISE_TOL = 0.15
"""Relative error allowed on dw_min_std and write_noise_std."""
SCALE_TOL = 0.05
"""Relative error of dw_min against the aggregate of the true devices; absolute on dw_min_dtod."""
UP_DOWN_TOL = 0.06
"""Absolute error of up_down against the aggregate of the true devices."""
BOUND_TOL = 0.03
"""Absolute error (weight units; range about 1.6) of each hard bound (the devices reach them)."""
SOFT_BOUND_TOL = 0.12
"""The same for bounds extrapolated from the curve (SoftBounds, PowStep: the step vanishes there)."""

COMMON = dict(dw_min_dtod=0.2, up_down_dtod=0.05, w_min=-0.8, w_max=0.8, w_min_dtod=0.08, w_max_dtod=0.08,
              dw_min_std=0.3)  # fmt: skip
SOURCES = {
    "constant": DeviceConfig(model="constant", dw_min=0.03, up_down=0.1, **COMMON),
    "linear": DeviceConfig(model="linear", dw_min=0.03, gamma_up=0.5, gamma_down=0.3, gamma_up_dtod=0.05,
                           gamma_down_dtod=0.05, **COMMON),
    "softbounds": DeviceConfig(model="softbounds", dw_min=0.04, write_noise_std=0.5, **COMMON),
    "exp": DeviceConfig(model="exp", dw_min=0.02, a=-0.5, b=-0.5, gamma_up=5, gamma_down=5, A_up=-1.18445,
                        A_down=-0.081404, up_down=0.26, **COMMON),
    "pow": DeviceConfig(model="pow", dw_min=0.1, pow_gamma=1.5, pow_up_down=0.2, pow_gamma_dtod=0.1,
                        pow_up_down_dtod=0.05, **COMMON),
    "piecewise": DeviceConfig(model="piecewise", dw_min=0.03, piecewise_up=(1.6, 1.3, 1.0, 0.6, 0.2),
                              piecewise_down=(0.3, 0.7, 1.0, 1.2, 1.5), write_noise_std=0.5, **COMMON),
}  # fmt: skip
N_DEV, N_CYC, N_PULSES, SEED = 10, 3, 90, 3


def _simulate(tmp_path, dev, name="m.csv"):
    rows = simulate_measurements(TileConfig(device=dev), N_DEV, N_CYC, N_PULSES, seed=SEED)
    path = tmp_path / name
    write_measurements(path, rows, "simulated")
    truth = Tile(N_DEV, 1, TileConfig(device=dev, mapping=MappingConfig(w_scale=1.0)), seed=SEED).device_arrays
    return path, truth


def _true_step(dev, arrays, i, w, up):
    quiet = dataclasses.replace(dev, dw_min_std=0.0)
    p = {k: float(v[i, 0]) for k, v in arrays.as_dict().items()}
    return np.array([abs(ref_step(dev.model, float(x), up, p, quiet, None) - float(x)) for x in w])


@pytest.mark.parametrize("family", list(SOURCES))
def test_round_trip_through_the_tile_recovers_the_device(tmp_path, family):
    dev = SOURCES[family]
    path, truth = _simulate(tmp_path, dev)
    meas = read_measurements(path)
    data, sigma = prepare(meas, meas.weights(0.0, 25.0, 1.0))
    fit = fit_family(family, data, path=path, base=dev, write_noise=sigma)
    rms = []
    for i in range(N_DEV):
        lo, hi = float(truth.b_min[i, 0]), float(truth.b_max[i, 0])
        lo, hi = max(lo + 0.1 * (hi - lo), data[i].lo), min(hi - 0.1 * (hi - lo), data[i].hi)  # visited
        grid = np.linspace(lo, hi, 25)
        for up in (True, False):
            want = _true_step(dev, truth, i, grid, up)
            got = fit.step_fn(i, grid, np.full(grid.size, up))
            rms.append(np.sqrt(np.mean((got - want) ** 2)) / want.mean())
    assert max(rms) < CURVE_TOL, (family, np.round(rms, 3))
    assert np.mean(rms) < CURVE_MEAN_TOL, (family, np.round(rms, 3))
    cfg = fit.config
    assert cfg.model == family
    assert abs(cfg.dw_min_std / dev.dw_min_std - 1) < NOISE_TOL, cfg.dw_min_std
    if dev.write_noise_std > 0:
        assert abs(cfg.write_noise_std * cfg.dw_min / (dev.write_noise_std * dev.dw_min) - 1) < NOISE_TOL
    else:
        assert cfg.write_noise_std * cfg.dw_min < 0.1 * dev.dw_min
    tol = SOFT_BOUND_TOL if family in ("softbounds", "pow") else BOUND_TOL
    np.testing.assert_allclose(fit.per_device["b_max"], truth.b_max[:, 0], atol=tol)
    np.testing.assert_allclose(fit.per_device["b_min"], truth.b_min[:, 0], atol=tol)
    if family != "piecewise":  # the piecewise table carries the scale in its own normalisation
        from analogdecor.devices.fit import _to_config

        per_true = {"scale_up": truth.scale_up[:, 0].astype(float), "scale_down": truth.scale_down[:, 0].astype(float),
                    "b_min": truth.b_min[:, 0].astype(float), "b_max": truth.b_max[:, 0].astype(float)}  # fmt: skip
        if family in ("linear", "pow"):
            per_true.update({k: fit.per_device[k] for k in ("gamma_up", "gamma_down")})
        agg = _to_config(family, per_true, {}, (0.0, 0.0), dev)
        assert abs(cfg.dw_min / agg.dw_min - 1) < SCALE_TOL
        assert abs(cfg.up_down - agg.up_down) < UP_DOWN_TOL
        assert abs(cfg.dw_min_dtod - agg.dw_min_dtod) < SCALE_TOL
        assert abs(cfg.w_max - agg.w_max) < tol
        assert abs(cfg.w_min - agg.w_min) < tol
    if family == "linear":
        assert cfg.gamma_up == pytest.approx(dev.gamma_up, abs=0.1)
        assert cfg.gamma_down == pytest.approx(dev.gamma_down, abs=0.1)
    if family == "pow":
        assert cfg.pow_gamma == pytest.approx(dev.pow_gamma, rel=0.15)
        assert cfg.pow_up_down == pytest.approx(dev.pow_up_down, abs=0.1)
    if family == "exp":
        assert (cfg.A_up, cfg.A_down) == pytest.approx((dev.A_up, dev.A_down), abs=0.1)
        assert (cfg.gamma_up, cfg.gamma_down) == pytest.approx((dev.gamma_up, dev.gamma_down), rel=0.15)
    if family == "piecewise":  # 9 fitted nodes against the 5-node source table, interpolated
        from reference import ref_piecewise

        nodes = np.linspace(-1.0, 1.0, len(cfg.piecewise_up))
        ratio = dev.piecewise_up[2] / cfg.piecewise_up[len(cfg.piecewise_up) // 2]  # both normalised mid-range
        for fitted_table, source in ((cfg.piecewise_up, dev.piecewise_up), (cfg.piecewise_down, dev.piecewise_down)):
            want = [ref_piecewise(source, x, -1.0, 1.0) for x in nodes[1:-1]]  # end nodes see few pulses
            np.testing.assert_allclose(np.array(fitted_table[1:-1]) * ratio, want, atol=0.15)


def test_auto_picks_the_simplest_family_on_constant_data_and_warns_about_poor_fits(tmp_path):
    path, _ = _simulate(tmp_path, SOURCES["constant"])
    meas = read_measurements(path)
    data = pulse_data(meas, meas.weights(0.0, 25.0, 1.0))
    results = fit_all(data, path=path)
    assert isinstance(results["softbounds"], FitError)  # constant steps do not shrink towards a bound
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert choose(results, "auto", path).family == "constant"
    path, _ = _simulate(tmp_path, SOURCES["exp"], "exp.csv")
    meas = read_measurements(path)
    results = fit_all(pulse_data(meas, meas.weights(0.0, 25.0, 1.0)), path=path)
    with pytest.warns(UserWarning, match=r"exp\.csv: family 'constant' is a poor fit.*BIC"):
        choose(results, "constant", path)


def _csv(tmp_path, text, name="bad.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


HEADER = "device,cycle,pulse,polarity,conductance_uS\n"


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("device,cycle,pulse,conductance_uS\nd0,0,0,1.0\n", r"bad\.csv: missing column\(s\) polarity"),
        (HEADER + "d0,0,0,up,1\nd0,0,2,up,2\n", r"bad\.csv, line 3: device 'd0', cycle 0, up train pulse indices"),
        (HEADER + "d0,0,0,up,1\nd0,0,1,up,2\nd0,0,0,up,2\n", r"device 'd0'.*non-monotone.*0 after 1"),
        (HEADER + "d7,1,1,down,1\n", r"line 2: device 'd7', cycle 1, down train must start at pulse 0"),
        (HEADER + "d0,0,0,sideways,1\n", r"line 2 \(device 'd0'\): polarity 'sideways'"),
        (HEADER + "d0,0,zero,up,1\n", r"line 2 \(device 'd0'\): cycle and pulse must be integers"),
        (HEADER + "d0,0,0,up,nan\n", r"device 'd0'\): conductance nan is not finite"),
    ],
)
def test_bad_measurement_files_are_errors_naming_file_device_and_problem(tmp_path, text, match):
    with pytest.raises(DataError, match=match):
        read_measurements(_csv(tmp_path, text))


def test_out_of_range_conductance_and_too_few_pulses_name_the_device(tmp_path):
    meas = read_measurements(_csv(tmp_path, HEADER + "d0,0,0,up,1\nd0,0,1,up,30\n"))
    with pytest.raises(DataError, match=r"device 'd0', cycle 0, up train, pulse 1: conductance 30.0 uS lies outside"):
        meas.weights(0.0, 25.0, 1.0)
    rows = "".join(f"d1,0,{k},up,{1 + k}\n" for k in range(20)) + "".join(f"d1,0,{k},down,{20 - k}\n" for k in range(3))
    meas = read_measurements(_csv(tmp_path, HEADER + rows, "few.csv"))
    with pytest.raises(FitError, match=r"few\.csv: device 'd1': only 2 usable down pulses.*'constant' needs"):
        fit_family("constant", pulse_data(meas, meas.weights(0.0, 25.0, 1.0)), path=meas.path)
    with pytest.raises(DataError, match=r"nothing\.csv does not exist"):
        read_measurements(tmp_path / "nothing.csv")


def test_cli_fits_the_bundled_example_and_the_preset_loads_by_path(tmp_path, capsys):
    from analogdecor.devices.registry import preset_dir

    csv_path = preset_dir() / "measurements" / "example_simulated.csv"
    assert csv_path.read_text().startswith("# SIMULATED DATA")
    out = tmp_path / "MyDevice.toml"
    assert main(["devices", "fit", str(csv_path), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "family 'exp' (lowest BIC)" in text  # the family the example was simulated from
    for fam in ("constant", "linear", "softbounds", "exp", "pow", "piecewise"):
        assert fam in text
    assert out.with_suffix(".png").stat().st_size > 10_000
    info = preset_info(str(out))
    assert info.source.sha256 == hashlib.sha256(csv_path.read_bytes()).hexdigest()
    assert info.source.data == str(csv_path)
    cfg = load_preset(str(out))
    assert cfg.device.model == "exp"
    assert (cfg.mapping.g_min, cfg.mapping.g_max, cfg.mapping.w_scale) == (0.0, 25.0, 1.0)
    assert abs(cfg.device.dw_min / 0.025 - 1) < 0.15  # the example's source device (scripts/make_example_...)
    assert main(["devices", "show", str(out)]) == 0
    assert "example_simulated.csv" in capsys.readouterr().out
    assert main(["devices", "fit", str(tmp_path / "none.csv"), "--out", str(out)]) == 2
    assert "none.csv does not exist" in capsys.readouterr().err


def _write_preset(path, tile_config, summary):
    from analogdecor.config import to_dict
    from analogdecor.training.tomlio import dumps_toml

    path.write_text(dumps_toml({"source": {"name": path.stem, "summary": summary}, **to_dict(tile_config)}))
    return path


@pytest.mark.slow
def test_the_fitted_preset_trains_like_the_device_the_data_came_from(tmp_path):
    """Decorrelated NP on digits, 5 seeds each: the fitted example preset reaches the accuracy of the
    known device the example was simulated from, within the seed spread (|difference of means| below
    twice the pooled std of one run, or 0.02), and both learn (accuracy > 0.6; chance is 0.1)."""
    import json

    from analogdecor.devices.fit_report import fit_measurements
    from analogdecor.devices.measurements import EXAMPLE_SOURCE
    from analogdecor.devices.registry import preset_dir

    fitted = tmp_path / "Fitted.toml"
    _, _, fitted_cfg = fit_measurements(preset_dir() / "measurements" / "example_simulated.csv", out=fitted)
    source = _write_preset(tmp_path / "Source.toml", fitted_cfg.replace(device=EXAMPLE_SOURCE), "the known device")
    acc = {}
    for preset in (source, fitted):
        acc[preset.stem] = []
        for seed in range(5):
            out = tmp_path / f"{preset.stem}-{seed}"
            argv = ["train", "--rule", "np", "--decorrelation", "on", "--backend", "numba", "--device", str(preset), "--dataset", "digits",
                    "--n-train", "1000", "--n-test", "300", "--hidden", "32", "--epochs", "5", "--seed", str(seed),
                    "--out", str(out), "--no-progress"]  # fmt: skip
            assert main(argv) == 0
            acc[preset.stem].append(json.loads((out / "metrics.json").read_text())["test_accuracy"][-1])
    a, b = np.array(acc["Source"]), np.array(acc["Fitted"])
    pooled = np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)
    assert min(a.mean(), b.mean()) > 0.6, acc
    assert abs(a.mean() - b.mean()) < max(2 * pooled, 0.02), acc


@pytest.fixture(scope="module")
def fitted_piecewise(tmp_path_factory):
    """The bundled example fitted with the piecewise family (a preset file)."""
    from analogdecor.devices.fit_report import fit_measurements
    from analogdecor.devices.registry import preset_dir

    out = tmp_path_factory.mktemp("fitted") / "Pw.toml"
    fit_measurements(preset_dir() / "measurements" / "example_simulated.csv", "piecewise", out=out, nodes=7)
    return out


def test_a_fitted_preset_path_takes_sweep_style_overrides(fitted_piecewise):
    from analogdecor.training.config import TrainConfig, resolve_tile_config

    cfg = resolve_tile_config(TrainConfig(device=str(fitted_piecewise), tile={"device.dw_min_std": 0.5}))
    assert (cfg.device.model, cfg.device.dw_min_std, len(cfg.device.piecewise_up)) == ("piecewise", 0.5, 7)


@pytest.mark.aihwkit
def test_validate_takes_a_fitted_preset_path(fitted_piecewise):
    pytest.importorskip("aihwkit")
    from analogdecor.validation import Sizes, format_table, run_validation

    sizes = Sizes(out_size=6, in_size=6, forward_trials=200, update_trials=200, replicas=48)
    result = run_validation([str(fitted_piecewise)], checks=("update", "response"), sizes=sizes)
    assert {r.preset for r in result.rows} == {str(fitted_piecewise)}
    assert result.passed, "\n" + format_table([r for r in result.rows if not r.passed], zc=result.z_critical)
