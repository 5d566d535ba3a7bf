"""The harness's statistics and table logic (pure NumPy; no aihwkit needed).

The standard errors are checked against their definition by simulation: over many
independent repetitions, the spread of an estimator must equal its reported se.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats as sps

from analogdecor.validation.checks import Comparison
from analogdecor.validation.report import format_table, make_rows, rows_to_json
from analogdecor.validation.stats import (
    chi2_homogeneity_z,
    cov_se,
    float32_floor,
    mean_se,
    paired_mean_diff,
    paired_t_z,
    var_se,
    z_critical,
    z_scores,
)


def test_z_critical_is_bonferroni_normal_quantile():
    assert z_critical(0.05, 1) == pytest.approx(1.959964, abs=1e-6)
    # alpha / (2 M) in each tail
    assert z_critical(1e-3, 500) == pytest.approx(sps.norm.isf(1e-3 / 1000), rel=1e-12)
    assert z_critical(1e-3, 10_000) > z_critical(1e-3, 100)
    with pytest.raises(ValueError, match="alpha"):
        z_critical(0.0, 3)


@pytest.mark.parametrize("estimator", ["mean", "var", "cov"])
def test_standard_errors_match_the_spread_of_the_estimator(estimator):
    rng = np.random.default_rng(0)
    reps, n = 2000, 200
    # skewed, correlated data (exponential + shared component) so the asymptotics are exercised
    shared = rng.exponential(1.0, (reps, n))
    x = shared + rng.exponential(0.5, (reps, n))
    y = 0.5 * shared + rng.normal(0, 1, (reps, n))
    if estimator == "mean":
        est, se = mean_se(x, axis=1)
    elif estimator == "var":
        est, se = var_se(x, axis=1)
    else:
        est, se = cov_se(x, y, axis=1)
    # the mean reported se agrees with the observed spread of the estimates within 10 %
    assert np.mean(se) == pytest.approx(np.std(est, ddof=1), rel=0.1)


def test_var_se_of_a_normal_sample_is_sigma2_sqrt_2_over_n():
    x = np.random.default_rng(1).normal(0.0, 3.0, 200_000)
    s2, se = var_se(x)
    assert s2 == pytest.approx(9.0, rel=0.01)
    assert se == pytest.approx(9.0 * np.sqrt(2 / x.size), rel=0.02)


def test_paired_mean_diff_and_z_scores():
    a = np.array([1.0, 2.0, 3.0, 4.0])
    b = a - 0.5 + np.array([0.1, -0.1, 0.1, -0.1])
    m, se = paired_mean_diff(a, b)
    assert m == pytest.approx(0.5)
    assert se == pytest.approx(np.std([0.4, 0.6, 0.4, 0.6], ddof=1) / 2)
    assert z_scores(np.array([1.0]), np.array([0.5]))[0] == pytest.approx(2.0)
    # deterministic statistics: equal within the floor -> 0, beyond it -> inf
    assert z_scores(np.array([1e-9]), np.array([0.0]), 1e-8)[0] == 0.0
    assert np.isinf(z_scores(np.array([1e-6]), np.array([0.0]), 1e-8)[0])
    assert float32_floor(1.0, 1.0) == pytest.approx(2 * 64 * np.finfo(np.float32).eps)


def test_chi2_homogeneity_separates_equal_from_different_distributions():
    rng = np.random.default_rng(2)
    same = [chi2_homogeneity_z(rng.binomial(8, 0.3, 400), rng.binomial(8, 0.3, 400)) for _ in range(200)]
    # under the null |z| exceeds the two-sided 1 % quantile about 1 % of the time
    assert np.mean(np.array(same) > sps.norm.isf(0.005)) < 0.04
    # a binomial with the same mean but BL 9 instead of 8 (variance 20 % larger... on 4000 samples)
    diff = chi2_homogeneity_z(rng.binomial(4, 0.6, 4000), rng.binomial(12, 0.2, 4000))
    assert diff > 5
    assert chi2_homogeneity_z(np.full(50, 3), np.full(50, 3)) == 0.0


def test_paired_t_z_uses_student_t():
    a = np.array([0.50, 0.52, 0.49])
    b = a - np.array([0.011, 0.009, 0.010])
    z = paired_t_z(a, b)
    d = a - b
    t = d.mean() / (d.std(ddof=1) / np.sqrt(3))
    p = 2 * sps.t.sf(t, df=2)
    assert z == pytest.approx(sps.norm.isf(p / 2))
    assert paired_t_z(a, a) == 0.0
    with pytest.raises(ValueError, match="at least 2"):
        paired_t_z(a[:1], b[:1])


def _cmp(check, z, diff=None, se=None, floor=0.0):
    return Comparison(check, "P", 1.0, 1.0, np.atleast_1d(np.asarray(z, float)), diff, se, "", floor)


def test_make_rows_pass_fail_and_json_keys():
    comps = [
        _cmp("scalar ok", 1.0, diff=0.1, se=0.1),
        _cmp("scalar bad", 100.0, diff=10.0, se=0.1),
        _cmp("per device", [0.5, 1.0, 2.0]),
        _cmp("per device bad", [0.5, 99.0]),
    ]
    rows, zc = make_rows(comps, alpha=1e-3)
    assert zc == pytest.approx(z_critical(1e-3, 1 + 1 + 3 + 2))
    assert [r.passed for r in rows] == [True, False, True, False]
    assert rows[0].tolerance == pytest.approx(zc * 0.1)
    assert rows[0].statistic == pytest.approx(0.1)
    assert rows[2].statistic == pytest.approx(2.0)
    assert rows[2].tolerance == pytest.approx(zc)
    data = json.loads(rows_to_json(rows))
    assert isinstance(data, list)
    assert len(data) == 4
    for obj in data:
        assert {"check", "preset", "statistic", "tolerance", "passed"} <= set(obj)
    table = format_table(rows, zc=zc)
    assert "FAIL" in table
    assert "2 failed" in table
