"""Device physics as aihwkit 1.2.0 computes it, with hand-computed values (regressions of issue 12).

Each number here is worked out from aihwkit's C++ source (src/rpucuda), not
from analogdecor's own formulas, so a test fails whenever the emulator departs
from aihwkit's equations.
"""

from __future__ import annotations

import numpy as np
import pytest

from analogdecor.crossbar import Tile, TileConfig
from analogdecor.crossbar.config import UpdateConfig
from analogdecor.devices.arrays import draw_device_arrays
from analogdecor.devices.config import DeviceConfig


def _pow(**kw) -> DeviceConfig:
    base = dict(model="pow", dw_min=1e-3, dw_min_dtod=0.0, dw_min_std=0.0, up_down_dtod=0.0, w_min=-1.0,
                w_max=1.0, w_min_dtod=0.0, w_max_dtod=0.0, pow_gamma_dtod=0.0, pow_up_down_dtod=0.0)  # fmt: skip
    return DeviceConfig(**{**base, **kw})


@pytest.mark.parametrize(
    ("beta", "up", "down"),
    [(0.3, 0.5, 0.35), (-0.3, 0.35, 0.5), (0.0, 0.5, 0.5),
     (1.5, 0.5, 0.25)],  # 1 - 1.5 < 0: aihwkit takes |.| (analogdecor used to clip it to 0)
)  # fmt: skip
def test_powstep_up_down_is_a_one_sided_bias_on_the_exponents(beta, up, down):
    """aihwkit PowStepRPUDevice::populate: gamma_up = gamma (min(beta, 0) + gain + r),
    gamma_down = gamma (-max(beta, 0) + gain - r), |.| of both (enforce_consistency)."""
    arrays, _ = draw_device_arrays(_pow(pow_gamma=0.5, pow_up_down=beta), (3, 4), np.random.default_rng(0))
    np.testing.assert_allclose(arrays.shape_up, up, rtol=1e-6)
    np.testing.assert_allclose(arrays.shape_down, down, rtol=1e-6)


def test_powstep_exponent_spreads_follow_aihwkit():
    """gain = 1 + pow_gamma_dtod xi is shared by both directions, r = pow_up_down_dtod xi enters with
    opposite signs: the mean of the two exponents is pow_gamma gain, their half-difference pow_gamma r."""
    cfg = _pow(pow_gamma=2.0, pow_gamma_dtod=0.2, pow_up_down_dtod=0.1)
    arrays, _ = draw_device_arrays(cfg, (200, 200), np.random.default_rng(1))
    mean = (arrays.shape_up.astype(np.float64) + arrays.shape_down) / 2
    half = (arrays.shape_up.astype(np.float64) - arrays.shape_down) / 2
    assert mean.mean() == pytest.approx(2.0, abs=0.01)
    assert mean.std() == pytest.approx(0.4, rel=0.02)
    assert half.mean() == pytest.approx(0.0, abs=0.01)
    assert half.std() == pytest.approx(0.2, rel=0.02)
    assert np.corrcoef(mean.ravel(), half.ravel())[0, 1] == pytest.approx(0.0, abs=0.03)


@pytest.mark.parametrize(("beta", "expected_up", "expected_down"), [
    (0.3, 1e-3 * 0.5**0.5, 1e-3 * 0.5**0.35),    # the case: up 7.07e-4 as in aihwkit
    (-0.3, 1e-3 * 0.5**0.35, 1e-3 * 0.5**0.5),
])  # fmt: skip
def test_powstep_single_pulse_at_zero_matches_aihwkit(beta, expected_up, expected_down):
    """One deterministic pulse from w = 0 (bounds -1, 1): step = dw_min 0.5**gamma_dir."""
    dev = _pow(pow_gamma=0.5, pow_up_down=beta)
    cfg = TileConfig(device=dev, update=UpdateConfig(pulse_type="deterministic"))
    g = dev.weight_granularity  # lr = g with |x| = |d| = 1 gives k = 1: BL = 1, one pulse
    for sign, expected in ((-1.0, expected_up), (1.0, -expected_down)):
        tile = Tile(1, 1, cfg, seed=0)
        tile.update(np.ones((1, 1), np.float32), np.full((1, 1), sign, np.float32), g)
        assert float(tile.hidden_weights()[0, 0]) == pytest.approx(expected, rel=1e-5)


def test_update_management_off_with_bl_management_on_is_refused():
    """aihwkit forces update management on with BL management (PulsedUpdateMetaParameter::initialize);
    honouring the flag shrank unbalanced updates to 18 % of aihwkit's. The combination is refused."""
    from analogdecor.config import from_dict
    from analogdecor.errors import ConfigError

    with pytest.raises(ConfigError, match=r"update_management = False with update_bl_management = True"):
        UpdateConfig(update_management=False, update_bl_management=True)
    with pytest.raises(ConfigError, match="update_management"):
        from_dict(TileConfig, {"update": {"update_management": False}})
    UpdateConfig(update_management=False, update_bl_management=False)  # both off: aihwkit's calculateBlAB
    UpdateConfig(update_management=True, update_bl_management=False)


def test_unbalanced_update_delivers_the_requested_mean_with_management_on():
    """With |x| << |d| the balanced probabilities still give E[n_ij] g = lr |x_j d_i| (aihwkit)."""
    dev = DeviceConfig(model="constant", dw_min=1e-3, dw_min_dtod=0.0, dw_min_std=0.0, up_down_dtod=0.0,
                       w_min=-1.0, w_max=1.0, w_min_dtod=0.0, w_max_dtod=0.0)  # fmt: skip
    tile = Tile(64, 64, TileConfig(device=dev), seed=3)
    x = np.full((1, 64), 0.05, np.float32)
    d = np.full((1, 64), -2.0, np.float32)
    lr = 0.1  # k = 10 pulses expected per device, BL 10
    for _ in range(20):
        tile.update(x, d, lr)
    mean = float(tile.hidden_weights().mean())
    assert mean == pytest.approx(20 * lr * 0.05 * 2.0, rel=0.02)
