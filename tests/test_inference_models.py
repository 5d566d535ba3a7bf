"""Inference noise models: statistics against the published formulas (written out here independently)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analogdecor.errors import ConfigError
from analogdecor.inference import (
    PCM_COEFFICIENTS,
    RERAM_COEFFICIENTS,
    GenericNoise,
    NoNoise,
    PCMLikeNoise,
    ReRAMNoise,
    get_noise_model,
    model_files,
)

N = 40_000


# ---- the formulas from the notes (Nandakumar et al. 2019; Wan et al. 2022), typed in again
def pcm_prog_sigma(G):
    g = G / 25.0
    return 0.26348 + 1.9650 * g - 1.1731 * g**2


def pcm_nu_mean_std(G):
    g = max(G / 25.0, 1e-7)
    mu = min(max(-0.0155 * math.log(g) + 0.0244, 0.049), 0.1)
    sd = min(max(-0.0125 * math.log(g) - 0.0059, 0.008), 0.045)
    return mu, sd


def pcm_read_sigma_rel(G_prog, t):
    g = G_prog / 25.0
    q = min(0.0088 / g**0.65, 0.2)
    return q * math.sqrt(math.log((t + 20.0 + 250e-9) / (2 * 250e-9)))


def reram_prog_sigma(G):
    g = G / 40.0
    return 0.348 + 16.030 * g - 43.853 * g**2 + 45.393 * g**3 - 16.815 * g**4


@pytest.mark.parametrize("G", [5.0, 10.0, 17.5, 25.0])
def test_pcm_programming_noise_per_band(G):
    model = PCMLikeNoise()
    state = model.program(np.full(N, G), np.random.default_rng(1))
    err = state.g_prog - G
    sigma = pcm_prog_sigma(G)
    assert abs(err.mean()) < 4 * sigma / math.sqrt(N)
    assert err.std() == pytest.approx(sigma, rel=0.03)


@pytest.mark.parametrize("G", [4.0, 12.0, 24.0, 36.0])
def test_reram_programming_noise_per_band(G):
    model = ReRAMNoise()
    state = model.program(np.full(N, G), np.random.default_rng(2))
    err = state.g_prog - G
    sigma = reram_prog_sigma(G)
    assert abs(err.mean()) < 4 * sigma / math.sqrt(N)
    assert err.std() == pytest.approx(sigma, rel=0.03)
    # no drift, no read noise: reads at any time equal the programmed state
    assert np.array_equal(model.at_time(state, 3.15e7, np.random.default_rng(0)), state.g_prog)


@pytest.mark.parametrize("G", [2.5, 5.0, 12.5, 25.0])
def test_pcm_drift_exponent_distribution(G):
    model = PCMLikeNoise()
    nu = model.drift_exponents(np.full(N, G), np.random.default_rng(3))
    mu, sd = pcm_nu_mean_std(G)
    # nu = |N(mu, sd)|; mu/sd > 2.5 in these bands, so folding moves mean and std by < 0.5 %
    assert nu.mean() == pytest.approx(mu, rel=0.01)
    assert nu.std() == pytest.approx(sd, rel=0.04)
    assert (nu >= 0).all()


def test_pcm_drift_is_power_law_of_each_devices_exponent():
    model = PCMLikeNoise(read_scale=0.0)
    state = model.program(np.linspace(1, 25, 500), np.random.default_rng(4))
    for t in (1.0, 3600.0, 3.15e7):
        g_t = model.at_time(state, t, np.random.default_rng(5))
        expected = state.g_prog * ((t + 20.0) / 20.0) ** (-state.nu)
        np.testing.assert_allclose(g_t, expected, rtol=1e-12)
        nu_back = -np.log(g_t / state.g_prog) / math.log((t + 20.0) / 20.0)
        np.testing.assert_allclose(nu_back, state.nu, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("G", [5.0, 20.0])
def test_pcm_read_noise_grows_with_time_as_formula(G):
    model = PCMLikeNoise(prog_scale=0.0, drift_scale=0.0)
    state = model.program(np.full(N, G), np.random.default_rng(6))
    stds = []
    for t in (0.0, 1.0, 86400.0, 3.15e7):
        g_t = model.at_time(state, t, np.random.default_rng(7))
        rel = (g_t - G) / G
        expected = pcm_read_sigma_rel(G, t)
        assert rel.std() == pytest.approx(expected, rel=0.03)
        assert abs(rel.mean()) < 4 * expected / math.sqrt(N)
        stds.append(rel.std())
    assert stds == sorted(stds)


def test_read_noise_is_redrawn_each_read_but_programming_is_not():
    model = PCMLikeNoise()
    state = model.program(np.full(1000, 10.0), np.random.default_rng(8))
    rng = np.random.default_rng(9)
    a, b = model.at_time(state, 60.0, rng), model.at_time(state, 60.0, rng)
    assert not np.array_equal(a, b)
    assert np.corrcoef(a, b)[0, 1] > 0.5  # share programming error and drift


def test_same_seed_same_result_bit_for_bit():
    g = np.random.default_rng(0).uniform(0, 25, (20, 30))
    m = PCMLikeNoise()
    a = m.apply(g, 3600.0, np.random.default_rng(11))
    b = m.apply(g, 3600.0, np.random.default_rng(11))
    assert np.array_equal(a, b)
    assert a.shape == g.shape


def test_conductances_never_negative():
    m = PCMLikeNoise()
    out = m.apply(np.zeros(10_000), 3.15e7, np.random.default_rng(12))
    assert (out >= 0).all()
    assert out.mean() > 0  # programming noise at 0 uS is clipped, so the mean moves up


def test_no_noise_is_identity():
    g = np.random.default_rng(0).uniform(0, 25, (7, 3))
    m = NoNoise()
    assert np.array_equal(m.apply(g, 3.15e7, np.random.default_rng(0)), g)


def test_shipped_files_match_builtin_coefficients():
    files = model_files()
    assert {"pcm", "reram", "custom"} <= set(files)
    pcm = GenericNoise.from_file(files["pcm"]).coeffs
    reram = GenericNoise.from_file(files["reram"]).coeffs
    for got, want in ((pcm, PCM_COEFFICIENTS), (reram, RERAM_COEFFICIENTS)):
        for name in ("g_max", "prog_coeffs", "drift_mean_coeffs", "drift_mean_clip", "drift_std_coeffs",
                     "drift_std_clip", "read_q_coeff", "read_q_exponent", "read_q_max", "t0", "t_read"):  # fmt: skip
            assert getattr(got, name) == pytest.approx(getattr(want, name)), name
    for path in files.values():  # every shipped file loads, names its source and produces sane numbers
        model = GenericNoise.from_file(path)
        assert model.coeffs.source
        out = model.apply(np.linspace(0, model.g_max, 50), 3600.0, np.random.default_rng(0))
        assert np.isfinite(out).all()


def test_generic_file_reproduces_pcm_class_bit_for_bit():
    g = np.random.default_rng(1).uniform(0, 25, 300)
    a = GenericNoise.from_file(model_files()["pcm"]).apply(g, 86400.0, np.random.default_rng(3))
    b = PCMLikeNoise().apply(g, 86400.0, np.random.default_rng(3))
    assert np.array_equal(a, b)


def test_custom_file_drift_follows_its_coefficients(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(
        '[model]\nname = "mine"\nsource = "test"\ng_max = 10.0\nprog_coeffs = [0.0]\n'
        "drift_mean_coeffs = [0.0, 0.05]\ndrift_mean_clip = [0.0, 1.0]\n"
    )
    model = get_noise_model(path)
    state = model.program(np.full(100, 5.0), np.random.default_rng(0))
    np.testing.assert_allclose(state.nu, 0.05)
    g = model.at_time(state, 980.0, np.random.default_rng(0))
    np.testing.assert_allclose(g, 5.0 * 50.0 ** (-0.05))


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[other]\n", "needs a \\[model\\] table"),
        ("[model]\ng_max = -1.0\n", "g_max"),
        ("[model]\nbogus = 1\n", "bogus"),
        ("[model]\ndrift_mean_clip = [0.2, 0.1]\n", "drift_mean_clip"),
        ("[model\n", "not valid TOML"),
    ],
)
def test_bad_coefficient_files_name_the_problem(tmp_path, text, match):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        GenericNoise.from_file(path)


def test_registry_names():
    assert isinstance(get_noise_model("pcm"), PCMLikeNoise)
    assert isinstance(get_noise_model("reram"), ReRAMNoise)
    assert isinstance(get_noise_model("none"), NoNoise)
    assert get_noise_model("custom").name == "custom"
    with pytest.raises(ConfigError, match="unknown inference noise model"):
        get_noise_model("nope")


def test_negative_time_is_rejected():
    m = PCMLikeNoise()
    with pytest.raises(ValueError, match="time after programming"):
        m.apply(np.ones(3), -1.0, np.random.default_rng(0))


def test_a_new_model_overrides_one_hook_and_keeps_the_template():
    from analogdecor.inference import InferenceNoiseModel

    class LinearDrift(InferenceNoiseModel):
        """A made-up device whose conductance falls linearly, 1 % per hour, from t0 on."""

        def drift(self, g_prog, nu, t):
            return g_prog * (1 - 0.01 * t / 3600.0)

    m = LinearDrift(g_max=10.0)
    g = np.array([0.0, 5.0, 10.0])
    np.testing.assert_allclose(m.apply(g, 7200.0, np.random.default_rng(0)), g * 0.98)
    assert (m.apply(g, 3600.0 * 200, np.random.default_rng(0)) == 0).all()  # clipped at 0 uS by the template
