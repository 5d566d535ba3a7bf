"""`analogdecor train` works for every rule x decorrelation x backend combination.

Each run is tiny (digits subset, one hidden layer, 5 epochs) so the whole matrix stays fast;
what is checked is that the command completes, writes the run directory the README promises,
and that the run learned (test accuracy above 0.4; chance is 0.1), so a combination
that silently trains nothing fails here.
"""

from __future__ import annotations

import json

import pytest

from analogdecor.cli import main
from analogdecor.training import load_run

RULES = ("bp", "fa", "dfa", "np")
BACKENDS = ("float", "numba", "aihwkit")
LEARNED = 0.4  # chance is 0.1; the weakest combination (plain NP) reached 0.575 here
RUN_FILES = ("config.toml", "run.json", "metrics.csv", "metrics.json", "model.npz", "conductances.npz",
             "learning_curves.png")  # fmt: skip


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("decorrelation", ["on", "off"])
@pytest.mark.parametrize("rule", RULES)
def test_every_combination_trains_and_writes_its_run(tmp_path, rule, decorrelation, backend):
    if backend == "aihwkit":
        pytest.importorskip("aihwkit")
    out = tmp_path / f"{rule}-{decorrelation}-{backend}"
    argv = ["train", "--rule", rule, "--decorrelation", decorrelation, "--backend", backend,
            "--device", "GokmenVlasov", "--dataset", "digits", "--n-train", "1000", "--n-test", "200",
            "--hidden", "32", "--epochs", "5", "--seed", "0", "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    for name in RUN_FILES:
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("train_loss", "test_loss", "test_accuracy"):
        assert len(metrics[key]) == 5, key
    assert metrics["test_accuracy"][-1] > LEARNED
    cfg, net = load_run(out)
    assert (cfg.rule, cfg.backend, cfg.decorrelation.enabled) == (rule, backend, decorrelation == "on")
    if backend != "float":
        assert len(net.analog_layers()) == 2  # one crossbar tile per weight layer (R stays digital)


@pytest.mark.parametrize("backend", ["float", "numba"])
def test_anp_trains_from_the_command_line(tmp_path, backend):
    """Activity-based node perturbation (its updates are smaller than NP's: a larger lr)."""
    out = tmp_path / f"anp-{backend}"
    argv = ["train", "--rule", "anp", "--decorrelation", "on", "--backend", backend, "--device", "GokmenVlasov",
            "--dataset", "digits", "--n-train", "1000", "--n-test", "200", "--hidden", "32", "--epochs", "5",
            "--lr", "0.3", "--seed", "0", "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test_accuracy"][-1] > LEARNED
    cfg, _ = load_run(out)
    assert cfg.rule == "anp"
