"""``analogdecor validate`` on conv nets: the conv-read rows and the training-conv row (numba against aihwkit).

conv-read reads images through analogdecor's ``Conv2dLayer`` on numba tiles and through aihwkit's
``AnalogConv2d`` (the same weights and periphery) and compares the errors against the ideal convolution
over tiles; a wrong patch layout and a noisier read must fail it. The training-conv row trains :data:`~analogdecor.validation.CONV_TRAINING` (a 4-channel 3x3 conv net on the 1x8x8
digits, ``model.layers``) on both backends with the same statistics as the MLP's training row. Its power:
the same row comparing the numba emulator with the float backend (a different machine) must fail.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from analogdecor.errors import ConfigError
from analogdecor.validation import CONV_TRAINING, Sizes, TrainingSpec, format_table, make_rows, run_validation
from analogdecor.validation.training_check import training_comparisons, training_curves

TINY = dataclasses.replace(CONV_TRAINING, seeds=3, epochs=1)


def _aihwkit() -> None:
    pytest.importorskip("aihwkit", reason="aihwkit not installed (bash scripts/dev.sh setup builds it)")


def test_the_conv_spec_is_a_conv_net():
    model = CONV_TRAINING.model()
    assert [s.kind for s in model.layers] == ["conv2d", "maxpool"]
    assert CONV_TRAINING.check == "training-conv"
    assert TrainingSpec().model().layers == ()  # the MLP row is unchanged
    with pytest.raises(ConfigError, match=r"TrainingSpec\.epochs"):
        dataclasses.replace(CONV_TRAINING, epochs=0)


@pytest.mark.aihwkit
@pytest.mark.slow
def test_conv_training_row_passes_numba_against_aihwkit():
    _aihwkit()
    result = run_validation(["GokmenVlasov"], checks=("training-conv",), conv_training=TINY)
    assert [r.check for r in result.rows] == [
        "training-conv: final test accuracy",
        "training-conv: test loss per epoch",
    ]
    curves = result.training_curves["GokmenVlasov (training-conv)"]
    for backend in ("numba", "aihwkit"):
        acc = np.array([c["test_accuracy"][-1] for c in curves[backend]])
        assert len(acc) == TINY.seeds
        assert np.all(acc > 0.2)  # better than chance (0.1) after one epoch on digits
    assert result.passed, format_table(result.rows, zc=result.z_critical)


class ReversedConvTile:
    """A wrong emulator: the numba tile whose every pulsed update goes the wrong way (factor -1)."""

    def __init__(self, inner, factor=-1.0):
        self.inner, self.factor = inner, factor

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def _scaled(self, apply):
        w0 = self.inner.hidden_weights()
        apply()
        self.inner.set_weights(w0 + self.factor * (self.inner.hidden_weights() - w0))

    def update(self, *args, **kwargs):
        self._scaled(lambda: self.inner.update(*args, **kwargs))

    def apply_accumulator(self, *args, **kwargs):
        self._scaled(lambda: self.inner.apply_accumulator(*args, **kwargs))


@pytest.mark.slow
def test_conv_training_row_detects_a_wrong_conv_tile(monkeypatch):
    """A numba run whose conv tile (fan-in 1x3x3) updates the wrong way, against the correct numba run
    (in aihwkit's place, so this needs no aihwkit): the row must fail."""
    from analogdecor.networks import build

    spec = dataclasses.replace(CONV_TRAINING, seeds=10)  # 2 epochs as validate runs it, more seeds
    right = training_curves("GokmenVlasov", "numba", spec)
    real = build.make_tile

    def make_tile(backend, out_size, in_size, *args, **kwargs):
        tile = real(backend, out_size, in_size, *args, **kwargs)
        return ReversedConvTile(tile) if in_size == 9 else tile

    monkeypatch.setattr(build, "make_tile", make_tile)
    wrong = training_curves("GokmenVlasov", "numba", spec)
    rows, _ = make_rows(training_comparisons("GokmenVlasov", wrong, right, spec), alpha=1e-3)
    assert not all(r.passed for r in rows), format_table(rows)


@pytest.mark.aihwkit
def test_cli_names_the_conv_epochs(capsys):
    _aihwkit()
    from analogdecor.cli import main

    rc = main(["validate", "--preset", "GokmenVlasov", "--check", "training-conv", "--conv-epochs", "0",
               "--out", "-"])  # fmt: skip
    assert rc == 2
    assert "--conv-epochs" in capsys.readouterr().err


SMALL = Sizes(out_size=6, in_size=6, forward_trials=400, tiles=16)


@pytest.mark.aihwkit
@pytest.mark.parametrize("preset", ["GokmenVlasov", "Ideal"])
def test_conv_read_agrees_with_aihwkits_conv2d(preset):
    _aihwkit()
    result = run_validation([preset], checks=("conv-read",), sizes=SMALL, alpha=1e-6)
    assert [r.check for r in result.rows] == ["conv read: mean error", "conv read: mean sq. error"]
    assert result.passed, format_table(result.rows, zc=result.z_critical)


class NoisierTile:
    """A wrong emulator: the numba tile with extra output noise (std 0.05) on every read."""

    def __init__(self, out_size, in_size, config, seed):
        from analogdecor.backends import make_tile

        self.inner = make_tile("numba", out_size, in_size, config, seed=seed)
        self.rng = np.random.default_rng(seed)

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def forward(self, x):
        y = self.inner.forward(x)
        return (y + self.rng.normal(0.0, 0.05, y.shape)).astype(np.float32)


@pytest.mark.aihwkit
def test_conv_read_catches_a_noisier_read_and_a_wrong_patch_layout(monkeypatch):
    _aihwkit()
    from analogdecor.backends import make_tile
    from analogdecor.networks import conv

    def numba(o, i, cfg, seed):
        return make_tile("numba", o, i, cfg, seed=seed)

    def aihwkit(o, i, cfg, seed):
        return make_tile("aihwkit", o, i, cfg, seed=seed)

    noisy = run_validation(["GokmenVlasov"], factories=(NoisierTile, aihwkit), checks=("conv-read",), sizes=SMALL)
    assert "conv read: mean sq. error" in {r.check for r in noisy.rows if not r.passed}

    real = conv.im2col

    def swapped(x, kernel, stride, padding):  # kernel rows and columns exchanged in every patch
        p = real(x, kernel, stride, padding)
        return np.ascontiguousarray(p.reshape(len(p), -1, kernel, kernel).transpose(0, 1, 3, 2).reshape(len(p), -1))

    monkeypatch.setattr(conv, "im2col", swapped)
    wrong = run_validation(["Ideal"], factories=(numba, aihwkit), checks=("conv-read",), sizes=SMALL)
    assert not wrong.passed
