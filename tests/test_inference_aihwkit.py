"""aihwkit's inference noise models behind analogdecor's hooks, and their cross-validation.

- the adapters reproduce aihwkit's conductance-level functions exactly (same torch seed)
  and are reproducible from the NumPy seed without touching torch's global generator;
- the validation rows pass for analogdecor's true models and catch deliberately wrong
  ones (programming noise 20 % too large; drift-exponent mean 20 % too large; read noise
  20 % too large);
- ``analogdecor evaluate --noise-backend aihwkit`` runs on a small run directory.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

pytest.importorskip("aihwkit")

import torch

from analogdecor.cli import main
from analogdecor.errors import ConfigError
from analogdecor.inference.aihwkit_noise import (
    AihwkitPCMNoise,
    AihwkitReRAMNoise,
    aihwkit_noise_model,
)
from analogdecor.inference.evaluate import EvaluateConfig, resolve_noise_model
from analogdecor.inference.models import PCM_COEFFICIENTS, PCMLikeNoise, ProgrammedConductances
from analogdecor.validation import InferenceSpec, inference_checks, make_rows, run_validation

pytestmark = pytest.mark.aihwkit

SPEC = InferenceSpec(devices=4000, models=("pcm",))


def _failed(model, spec=SPEC):
    """Checks of the PCM rows with ``model`` as analogdecor's side: the failed rows' names."""
    rows, _ = make_rows(inference_checks("pcm", model, AihwkitPCMNoise(), spec, seed=3), alpha=1e-3)
    return {r.check for r in rows if not r.passed}, rows


# ---------------------------------------------------------------------------------- adapter
def test_adapter_calls_aihwkit_with_a_seed_from_the_numpy_generator():
    from aihwkit.inference.noise.pcm import PCMLikeNoiseModel

    g = np.linspace(0.0, 25.0, 64)
    model = AihwkitPCMNoise()
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    state = model.program(g, np.random.default_rng(5))
    assert torch.equal(torch.rand(1), before)  # torch's global generator untouched
    again = model.program(g, np.random.default_rng(5))
    np.testing.assert_array_equal(state.g_prog, again.g_prog)
    np.testing.assert_array_equal(state.nu, again.nu)
    # the same numbers as aihwkit itself under the seed the adapter drew
    rng = np.random.default_rng(5)
    seed_prog, seed_nu = (int(rng.integers(2**63 - 1)) for _ in range(2))
    ref = PCMLikeNoiseModel(g_max=25.0)
    torch.manual_seed(seed_prog)
    expect = ref.apply_programming_noise_to_conductance(torch.from_numpy(g.copy()))
    np.testing.assert_array_equal(state.g_prog, expect.numpy())
    torch.manual_seed(seed_nu)
    np.testing.assert_array_equal(
        state.nu, ref.generate_drift_coefficients(torch.from_numpy(g.copy())).numpy()
    )


def test_pcm_hooks_follow_the_published_equations():
    model = AihwkitPCMNoise()
    g_prog = np.array([0.0, 5.0, 12.5, 25.0])
    nu = np.array([0.1, 0.05, 0.07, 0.049])
    t = 86400.0
    drifted = model.drift(g_prog, nu, t)
    np.testing.assert_allclose(drifted, g_prog * ((t + 20.0) / 20.0) ** (-nu), rtol=1e-12)
    np.testing.assert_array_equal(model.drift(g_prog, nu, 0.0), g_prog)
    # read noise on the drifted conductances: residual / (|G(t)| Q f(t)) is standard normal
    n = 20000
    gp = np.full(n, 10.0)
    gd = model.drift(gp, np.full(n, 0.06), t)
    read = model.read_noise(gd, gp, t, np.random.default_rng(0))
    q = min(0.0088 / (10.0 / 25.0) ** 0.65, 0.2)
    f = np.sqrt(np.log((t + 20.0 + 250e-9) / (2 * 250e-9)))
    xi = (read - gd) / (gd * q * f)
    assert abs(xi.mean()) < 4 / np.sqrt(n)
    assert abs(xi.std() - 1) < 4 / np.sqrt(2 * n)
    # at_time is one aihwkit call: the same distribution as drift then read noise
    full = model.at_time(ProgrammedConductances(gp, np.full(n, 0.06)), t, np.random.default_rng(1))
    assert abs(full.std() - read.std()) < 4 * read.std() / np.sqrt(n)


def test_reram_adapter_keeps_aihwkits_fixed_times():
    model = AihwkitReRAMNoise()
    assert model.g_max == 40.0
    assert model.times == (1.0, 86400.0, 172800.0)
    state = model.program(np.full(2000, 16.0), np.random.default_rng(0))
    np.testing.assert_array_equal(state.nu, 16.0)  # aihwkit's drift parameter is the target
    np.testing.assert_array_equal(model.at_time(state, 0.0, np.random.default_rng(1)), state.g_prog)
    day = model.at_time(state, 86400.0, np.random.default_rng(1))
    g = 0.4  # 1-day polynomial of Wan et al. as coded in aihwkit
    sigma = 0.701 + 22.086 * g - 50.773 * g**2 + 47.095 * g**3 - 16.458 * g**4
    assert abs(day.std() - sigma) < 5 * sigma / np.sqrt(2 * 2000)
    with pytest.raises(ConfigError, match="only defined at t = 1s, 1d, 2d"):
        model.at_time(state, 3600.0, np.random.default_rng(1))


def test_backend_selection_and_errors():
    assert isinstance(resolve_noise_model("pcm", "aihwkit"), AihwkitPCMNoise)
    assert isinstance(aihwkit_noise_model("reram"), AihwkitReRAMNoise)
    assert isinstance(resolve_noise_model("pcm"), PCMLikeNoise)
    with pytest.raises(ConfigError, match="aihwkit has counterparts of pcm, reram only"):
        resolve_noise_model("custom", "aihwkit")
    with pytest.raises(ConfigError, match="noise_backend"):
        EvaluateConfig(noise_backend="spice")
    with pytest.raises(ConfigError, match="prog_noise_scale"):
        AihwkitPCMNoise(prog_noise_scale=-1.0)


def test_missing_aihwkit_is_a_clean_error(monkeypatch, run_dir, capsys):
    from analogdecor.errors import BackendUnavailableError

    monkeypatch.setitem(sys.modules, "aihwkit", None)  # as if aihwkit were not installed
    with pytest.raises(BackendUnavailableError, match=r"scripts/dev\.sh setup"):
        resolve_noise_model("pcm", "aihwkit")
    assert main(["evaluate", str(run_dir), "--noise-backend", "aihwkit", "--seeds", "1", "--quiet"]) == 2
    assert "aihwkit" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- validation rows
def test_rows_pass_for_the_true_models():
    rows, _ = make_rows(inference_checks("pcm", PCMLikeNoise(), AihwkitPCMNoise(), SPEC, seed=3), alpha=1e-3)
    assert len(rows) == 4 * (2 + 2 + 2 + 1)
    assert all(r.passed for r in rows), [r for r in rows if not r.passed]
    assert all(r.tolerance > 0 for r in rows if "@ 0 uS" not in r.check)


def test_programming_noise_20_percent_too_large_is_caught():
    failed, _ = _failed(PCMLikeNoise(prog_scale=1.2))
    assert any(c.startswith("inference: programmed G spread") for c in failed), failed
    assert not any("drift exponent" in c or "read noise" in c for c in failed), failed


def test_drift_exponent_mean_20_percent_too_large_is_caught():
    c = PCM_COEFFICIENTS
    wrong = PCMLikeNoise(
        drift_mean_coeffs=tuple(1.2 * v for v in c.drift_mean_coeffs),
        drift_mean_clip=tuple(1.2 * v for v in c.drift_mean_clip),
    )
    failed, _ = _failed(wrong)
    assert any(c.startswith("inference: drift exponent nu mean") for c in failed), failed
    assert any(c.startswith("inference: G(t=86400 s) mean") for c in failed), failed
    assert not any("programmed" in c for c in failed), failed


def test_read_noise_20_percent_too_large_is_caught():
    failed, _ = _failed(PCMLikeNoise(read_scale=1.2))
    assert any(c.startswith("inference: read noise") for c in failed), failed
    assert not any("programmed" in c or "drift exponent" in c for c in failed), failed


def test_run_validation_includes_the_inference_rows():
    spec = InferenceSpec(devices=2000)
    result = run_validation([], checks=("inference",), inference=spec)
    assert result.passed
    presets = {r.preset for r in result.rows}
    assert presets == {"noise:pcm", "noise:reram"}
    assert sum(r.preset == "noise:reram" for r in result.rows) == 4 * 2  # programming rows only


def test_validate_cli_inference_rows_in_json(tmp_path, capsys):
    out = tmp_path / "v.json"
    rc = main(["validate", "--check", "inference", "--inference-devices", "2000", "--out", str(out)])
    assert rc == 0
    rows = json.loads(out.read_text())
    assert {"check", "preset", "statistic", "tolerance", "passed"} <= set(rows[0])
    assert any(r["check"].startswith("inference: G(t=86400 s)") for r in rows)
    assert "noise:pcm" in capsys.readouterr().out


# ---------------------------------------------------------------------------------- evaluate CLI
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run directory with a ridge-fitted digits classifier on a numba tile."""
    from run_fixtures import write_ridge_run

    return write_ridge_run(tmp_path_factory.mktemp("run"), decorrelation_tiles=False)


def test_evaluate_cli_with_aihwkit_noise_backend(run_dir, tmp_path, capsys):
    out = tmp_path / "ev"
    common = [
        "evaluate",
        str(run_dir),
        "--seeds",
        "2",
        "--n-test",
        "200",
        "--quiet",
        "--noise-backend",
        "aihwkit",
    ]
    args = [*common, "--times", "1s,1d,1y", "--model", "pcm"]
    assert main([*args, "--out", str(out)]) == 0
    assert "noise backend: aihwkit" in capsys.readouterr().out
    data = json.loads((out / "evaluate.json").read_text())
    assert data["noise_model"]["aihwkit_class"] == "PCMLikeNoiseModel"
    assert data["config"]["noise_backend"] == "aihwkit"
    raw = np.array(data["accuracy_no_compensation"])
    assert raw.shape == (2, 3)
    assert raw.mean(axis=0)[-1] < data["baseline_accuracy"]  # a year of drift costs accuracy
    # reproducible from the seed
    assert main([*args, "--out", str(tmp_path / "again")]) == 0
    again = json.loads((tmp_path / "again" / "evaluate.json").read_text())
    assert again["accuracy_no_compensation"] == data["accuracy_no_compensation"]
    # ReRAM through aihwkit: only its fixed times; others are a clean error (exit 2)
    assert main([*common, "--times", "1s,1d,2d", "--model", "reram", "--out", str(tmp_path / "reram")]) == 0
    assert main([*common, "--times", "1s,1h", "--model", "reram", "--out", str(tmp_path / "bad")]) == 2
    assert "only defined at" in capsys.readouterr().err
