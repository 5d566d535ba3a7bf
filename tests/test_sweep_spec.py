"""Sweep specs: parsing, expansion (grid/random/list), complete validation with errors naming the setting."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
from sweep_toy import Inner, ToyConfig, ToyTarget

from analogdecor.errors import ConfigError
from analogdecor.sweep import load_spec, parse_spec, plan_runs, run_id
from analogdecor.sweep.spec import config_change, config_identity, plain_config

TOY = ToyTarget()


def plan(data):
    return plan_runs(parse_spec(data), TOY)


def test_grid_expands_every_combination_with_seeds():
    runs = plan({"sweep": {"seeds": [0, 1]}, "base": {"levels": 4},
                 "axes": {"noise": [0.0, 0.5, 1.0], "decor": [False, True]}})
    assert len(runs) == 12
    points = [r.overrides for r in runs]
    want = [{"noise": n, "decor": d, "seed": s} for n in (0.0, 0.5, 1.0) for d in (False, True) for s in (0, 1)]
    assert points == want
    assert [r.config.noise for r in runs] == [p["noise"] for p in want]
    assert len({r.run_id for r in runs}) == 12


def test_dotted_nested_tables_and_grid_kinds():
    # unquoted dotted keys arrive as nested tables from TOML; distributions are leaves
    runs = plan({"axes": {"inner": {"gain": {"linspace": [0.0, 1.0, 3]}}, "levels": {"range": [2, 8, 3]}}})
    assert [(r.overrides["inner.gain"], r.overrides["levels"]) for r in runs] == [
        (g, lv) for g in (0.0, 0.5, 1.0) for lv in (2, 5)
    ]
    runs = plan({"axes": {"noise": {"geomspace": [0.01, 1.0, 3]}}})
    assert [r.overrides["noise"] for r in runs] == pytest.approx([0.01, 0.1, 1.0])


def test_random_mode_is_seeded_and_crosses_seed_axis():
    spec = {"sweep": {"mode": "random", "n_samples": 5, "sample_seed": 3},
            "axes": {"noise": {"loguniform": [1e-3, 1.0]}, "levels": {"randint": [2, 4]},
                     "decor": [False, True], "seed": [0, 1]}}
    runs = plan(spec)
    assert len(runs) == 10
    again = plan(spec)
    assert [r.run_id for r in runs] == [r.run_id for r in again]
    for r in runs:
        assert 1e-3 <= r.overrides["noise"] <= 1.0
        assert r.overrides["levels"] in (2, 3, 4)
        assert isinstance(r.overrides["levels"], int)
    # each draw is repeated for both seeds with identical settings
    for a, b in zip(runs[::2], runs[1::2], strict=True):
        assert {k: v for k, v in a.overrides.items() if k != "seed"} == {
            k: v for k, v in b.overrides.items() if k != "seed"}
        assert (a.overrides["seed"], b.overrides["seed"]) == (0, 1)
    other = plan({**spec, "sweep": {**spec["sweep"], "sample_seed": 4}})
    assert [r.overrides for r in other] != [r.overrides for r in runs]


def test_list_mode():
    runs = plan({"sweep": {"mode": "list", "seeds": [0, 1]},
                 "runs": [{"noise": 0.1}, {"noise": 0.2, "levels": 8}, {"inner": {"gain": 2.0}}]})
    assert [r.overrides for r in runs] == [
        {"noise": 0.1, "seed": 0}, {"noise": 0.1, "seed": 1},
        {"noise": 0.2, "levels": 8, "seed": 0}, {"noise": 0.2, "levels": 8, "seed": 1},
        {"inner.gain": 2.0, "seed": 0}, {"inner.gain": 2.0, "seed": 1}]
    assert runs[2].config.levels == 8


def test_run_ids_are_stable_and_follow_the_base():
    a = plan({"axes": {"noise": [0.1, 0.2]}})
    b = plan({"axes": {"noise": [0.2, 0.1]}})
    assert {r.run_id for r in a} == {r.run_id for r in b}
    assert run_id(a[0].config) == a[0].run_id
    c = plan({"base": {"levels": 4}, "axes": {"noise": [0.1, 0.2]}})
    assert not {r.run_id for r in a} & {r.run_id for r in c}
    # the same settings spelt differently (a default given explicitly, [base] vs an axis): same ids
    d = plan({"base": {"levels": 0, "inner": {"gain": 1.0}}, "axes": {"noise": [0.1, 0.2]}})
    assert [r.run_id for r in d] == [r.run_id for r in a]
    e = plan({"sweep": {"mode": "list"}, "runs": [{"noise": 0.1, "levels": 4}]})
    assert e[0].run_id == c[0].run_id


@dataclass(frozen=True)
class ToyConfigV2(ToyConfig):
    """The toy config after an upgrade that added a field (with its default)."""

    momentum: float = 0.0


def test_identity_ignores_new_fields_at_their_default():
    old = ToyConfig(noise=0.3, levels=4, inner=Inner(gain=2.0))
    new = ToyConfigV2(noise=0.3, levels=4, inner=Inner(gain=2.0))
    assert config_identity(old) == {"noise": 0.3, "levels": 4, "inner": {"gain": 2.0}}
    assert run_id(new) == run_id(old)
    assert run_id(ToyConfigV2(noise=0.3, levels=4, inner=Inner(gain=2.0), momentum=0.9)) != run_id(old)


def test_config_change_ignores_added_fields_only():
    old = plain_config(ToyConfig(noise=0.3, levels=4))
    assert old["inner"] == {"gain": 1.0}
    assert config_change(old, ToyConfig(noise=0.3, levels=4)) is None
    assert config_change(old, ToyConfigV2(noise=0.3, levels=4)) is None  # momentum is new: ignored
    assert config_change(old, ToyConfig(noise=0.3, levels=8)) == "levels: 4 -> 8"
    assert config_change(old, ToyConfig(noise=0.3, levels=4, inner=Inner(gain=2.0))) == "inner.gain: 1.0 -> 2.0"
    assert config_change({**old, "colour": "red"}, ToyConfig(noise=0.3, levels=4)) == "colour no longer exists"
    assert config_change(None, ToyConfig()) is None  # records without a stored config


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"axes": {"nosie": [0.1]}}, r"run 0 \{'nosie': 0.1\}: unknown setting 'nosie': ToyConfig has no field 'nosie'; known: noise,"),
        ({"axes": {"inner.gian": [0.1]}}, r"unknown setting 'inner.gian'.*no field 'gian'"),
        ({"axes": {"levels": [4, "many"]}}, r"run 1 \{'levels': 'many'\}: levels = 'many': expected an integer"),
        ({"axes": {"noise": []}}, r"axes.noise: empty axis"),
        ({"axes": {"noise": {"linspace": [0, 1, 0]}}}, r"linspace = \[0, 1, 0\]: expected \[start, stop, count\]"),
        ({"axes": {"levels": {"range": [5, 2]}}}, r"levels.*range = \[5, 2\]: expands to no values"),
        ({"axes": {"noise": [0.1, 0.1]}}, r"axes.noise = \[0.1, 0.1\]: values repeat"),
        ({"axes": {"noise": {"uniform": [0, 1]}}}, r"uniform is a distribution, only for mode = 'random'"),
        ({"axes": {"noise": {"normal": [0, 1]}}}, r"unknown setting 'noise.normal': ToyConfig.noise has no sub-fields"),
        ({"axes": {"noise": -1.0}}, r"axes.noise = -1.0: expected a list"),
        ({"axes": {"noise": [-0.5]}}, r"run 0 \{'noise': -0.5\}: ToyConfig.noise = -0.5: must be >= 0"),
        ({"axes": {}}, r"axes: no axis given"),
        ({"axis": {"noise": [1.0]}}, r"unknown table\(s\) 'axis'"),
        ({"sweep": {"mdoe": "grid"}, "axes": {"noise": [1.0]}}, r"sweep: unknown field\(s\) 'mdoe'"),
        ({"sweep": {"mode": "random"}, "axes": {"noise": [1.0]}}, r"n_samples: required when mode = 'random'"),
        ({"sweep": {"mode": "list"}}, r"runs: mode = 'list' needs at least one"),
        ({"sweep": {"seeds": []}, "axes": {"noise": [1.0]}}, r"seeds = \[\]: give at least one seed"),
        ({"sweep": {"seeds": [1]}, "axes": {"seed": [1, 2]}}, r"seed is swept twice"),
        ({"base": {"levles": 3}, "axes": {"noise": [1.0]}}, r"base: .*unknown field\(s\) 'levles'"),
        ({"axes": {"levels": [3, 3.0]}}, r"values repeat|resolves to the same configuration"),
        ({"sweep": {"mode": "list"}, "runs": [{"noise": 0.1}, {"noise": 0.1}]},
         r"runs\[1\] resolves to the same configuration as \{'noise': 0.1\}"),
    ],
)
def test_bad_specs_name_the_problem(data, match):
    with pytest.raises(ConfigError, match=match):
        plan(data)


def test_combination_checked_not_only_single_values():
    # each value is valid alone; the combination is refused by the config's own validation
    with pytest.raises(ConfigError, match=r"run 1 \{'levels': 0, 'decor': True\}: .*decor needs levels"):
        plan({"axes": {"levels": [0, 4], "decor": [False, True]}})


def test_load_spec_names_file_and_reads_base_file(tmp_path):
    (tmp_path / "base.toml").write_text("levels = 6\n")
    (tmp_path / "s.toml").write_text('[sweep]\nbase = "base.toml"\n[axes]\nnoise = [0.0, 1.0]\n')
    runs = plan_runs(load_spec(tmp_path / "s.toml"), TOY)
    assert [r.config.levels for r in runs] == [6, 6]
    (tmp_path / "bad.toml").write_text("[axes]\nnoise = [0.0, \n")
    with pytest.raises(ConfigError, match=r"bad.toml: not valid TOML"):
        load_spec(tmp_path / "bad.toml")
    (tmp_path / "bad2.toml").write_text("[axes]\nnoise = []\n")
    with pytest.raises(ConfigError, match=r"bad2.toml: axes.noise: empty axis"):
        load_spec(tmp_path / "bad2.toml")
    assert not math.isnan(runs[0].config.noise)


def test_base_overrides_apply_before_the_axes():
    from dataclasses import replace

    spec = parse_spec({"base": {"levels": 4}, "axes": {"noise": [0.1, 0.2]}})
    plain = plan_runs(spec, TOY)
    runs = plan_runs(replace(spec, base_overrides={"levels": 8, "inner.gain": 3.0}), TOY)
    assert [(r.config.levels, r.config.inner.gain, r.config.noise) for r in runs] == [(8, 3.0, 0.1), (8, 3.0, 0.2)]
    assert not {r.run_id for r in runs} & {r.run_id for r in plain}
    with pytest.raises(ConfigError, match=r"base overrides \{'levles': 8\}: unknown setting 'levles'"):
        plan_runs(replace(spec, base_overrides={"levles": 8}), TOY)
