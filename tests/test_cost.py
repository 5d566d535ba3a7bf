"""The cost model: coefficient files, parts that add up to totals, decorrelation on vs off."""

from __future__ import annotations

import json
import math

import pytest

from analogdecor.cli import main
from analogdecor.config import load_toml
from analogdecor.cost import PARTS, load_coefficients, run_cost
from analogdecor.cost.coefficients import FIELDS, cost_dir, parse_coefficients
from analogdecor.cost.model import MatrixSpec, _read, _zero
from analogdecor.crossbar.config import IOConfig
from analogdecor.errors import ConfigError
from analogdecor.training import TrainConfig, apply_overrides, train

RUN = {"model.hidden": [16], "optim.epochs": 1, "data.n_train": 200, "data.n_test": 50, "backend": "numba",
       "device": "ReRamSB", "rule": "np", "tile.mapping.array_rows": 12, "tile.mapping.array_cols": 40}  # fmt: skip


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("cost")
    on = {**RUN, "decorrelation.enabled": True, "decorrelation.on_tile": True}
    train(apply_overrides(TrainConfig(), on), base / "on", progress=False)
    train(apply_overrides(TrainConfig(), RUN), base / "off", progress=False)
    return base / "on", base / "off"


def test_default_coefficients_have_units_and_sources():
    c = load_coefficients("default")
    for name, (units, _) in FIELDS.items():
        assert c.values[name].units == units
        assert c.values[name].source.strip()


def _bad(edit):
    data = load_toml(cost_dir() / "default.toml")
    edit(data)
    return parse_coefficients(data, "bad.toml")


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d: d["adc_fom"].pop("units"), r"bad\.toml: adc_fom\.units is missing"),
        (lambda d: d["adc_fom"].update(units="fJ"), r"adc_fom\.units = 'fJ': must be 'J'"),
        (lambda d: d.pop("pulse_energy"), "missing coefficient pulse_energy"),
        (lambda d: d["read_time"].update(value=-1.0), r"read_time\.value = -1\.0"),
        (lambda d: d["read_time"].update(source=" "), r"read_time\.source must say"),
        (lambda d: d.update(bogus={"value": 1}), "unknown coefficient"),
        (lambda d: d["adc_share"].update(value=2.5), r"adc_share\.value = 2\.5: must be an integer"),
        (lambda d: d.pop("source"), r"missing \[source\]"),
    ],
)
def test_bad_coefficient_files_name_the_field(edit, match):
    with pytest.raises(ConfigError, match=match):
        _bad(edit)


def test_unknown_coefficient_file_is_an_error():
    with pytest.raises(ConfigError, match="unknown cost coefficients 'nope'"):
        load_coefficients("nope")


def test_one_read_counts_conversions_per_array():
    """A forward read of a 300 x 200 matrix on a 2 x 2 grid: 2 x 200 DAC and 2 x 300 ADC conversions."""
    c = load_coefficients("default")
    io = IOConfig(inp_bits=6, out_bits=8)
    m = MatrixSpec("m", 300, 200, True, (2, 2), g_sum_uS=1000.0, forward=io, backward=io, array_rows=256)
    row = _zero()
    _read(row, m, c, 3)
    assert row["dac"]["ops"] == 3 * 2 * 200
    assert row["adc"]["ops"] == 3 * 2 * 300
    assert row["dac"]["energy_J"] == pytest.approx(3 * 400 * c.dac_energy_per_level * 2**6)
    assert row["adc"]["energy_J"] == pytest.approx(3 * 600 * c.adc_fom * 2**8)
    assert row["mvm"]["energy_J"] == pytest.approx(3 * c.read_voltage**2 * c.read_time * 1000e-6)
    assert row["digital"]["ops"] == 3 * 300  # partial sums of the two column blocks
    back = _zero()
    _read(back, m, c, 1, transposed=True)
    assert back["dac"]["ops"] == 2 * 300
    assert back["adc"]["ops"] == 2 * 200


def _check_sums(table):
    for row in [*table["layers"].values(), table["total"]]:
        for k in ("energy_J", "latency_s", "ops"):
            assert row["total"][k] == pytest.approx(sum(row[p][k] for p in PARTS), rel=1e-12)
    for p in PARTS:
        assert table["total"][p]["energy_J"] == pytest.approx(
            sum(r[p]["energy_J"] for r in table["layers"].values())
        )


def test_totals_add_up_and_decorrelation_has_a_cost(runs):
    on, off = (run_cost(r) for r in runs)
    for res in (on, off):
        for phase in ("inference", "training"):
            _check_sums(res[phase])
        assert res["pulses_counted"]
        assert res["training"]["total"]["update"]["energy_J"] > 0
    assert "layers.0.R" in on["training"]["layers"]
    assert "layers.0.R" not in off["training"]["layers"]
    r_cost = on["training"]["layers"]["layers.0.R"]["total"]["energy_J"]
    assert r_cost > 0
    assert on["training"]["layers"]["layers.0.R"]["update"]["ops"] > 0  # R's pulses, from the counters
    folded = run_cost(runs[0], deploy="folded")["inference"]
    assert folded["layers"]["layers.0.R"]["total"]["energy_J"] == 0.0  # R costs nothing once folded
    digital = run_cost(runs[0], deploy="digital")["inference"]["layers"]["layers.0.R"]
    assert digital["digital"]["ops"] == 64 * 64 + 64
    assert digital["mvm"]["energy_J"] == 0.0


def test_cli_cost_json_and_comparison(runs, capsys):
    assert main(["cost", str(runs[0]), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert math.isclose(res["inference"]["total"]["total"]["energy_J"],
                        sum(res["inference"]["total"][p]["energy_J"] for p in PARTS))  # fmt: skip
    assert main(["cost", str(runs[0]), str(runs[1])]) == 0
    out = capsys.readouterr().out
    assert "layers.0.R" in out
    assert "relative to the last run" in out
    assert main(["cost", str(runs[0]), "--coefficients", "nope"]) == 2


def test_digital_r_update_is_counted_in_its_o_k_d2_form():
    """R's digital update costs 2 k d^2 MACs (Z^T (Z R) on the k subset rows), never a d^3 product:
    doubling the subset adds exactly 2 (k2 - k1) d^2 digital operations."""
    from analogdecor.crossbar.config import TileConfig
    from analogdecor.decorrelation import DecorrelationConfig
    from analogdecor.networks.build import LayerSpec, build_network

    c = load_coefficients("default")

    def r_ops(fraction):
        dcfg = DecorrelationConfig(enabled=True, subset_fraction=fraction)
        net = build_network([LayerSpec("dense", units=30)], (40,), 5, decorrelation=dcfg, seed=0)
        from analogdecor.cost.model import training_cost

        t = training_cost(net, TileConfig.ideal(), c, rule="bp", batch_size=64, analog=False)
        return [t["layers"][f"layers.{i}.R"]["digital"]["ops"] for i in (0, 1)]

    small, large = r_ops(0.1), r_ops(0.5)  # k = floor(f 64) + 1: 7 and 33 rows
    assert [b - a for a, b in zip(small, large, strict=True)] == [2 * 26 * 40 * 40, 2 * 26 * 30 * 30]
