"""``analogdecor bench training --arch paper-convnet``: every system trains the paper's conv net (tiny sizes)."""

from __future__ import annotations

import json

import pytest

from analogdecor.cli import main
from analogdecor.errors import ConfigError
from analogdecor.training.bench import ARCHS, TrainingBenchConfig, bench_training, format_training_report

TINY = ["--dataset", "digits", "--n-train", "32", "--batch", "16", "--rounds", "1"]


def _aihwkit_present() -> bool:
    try:
        import aihwkit.nn  # noqa: F401
    except Exception:
        return False
    return True


def test_paper_convnet_on_every_system(capsys):
    pytest.importorskip("torch")
    assert main(["bench", "training", "--arch", "paper-convnet", *TINY, "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["network"] == "paper-convnet 1x8x8->10"  # digits: 8x8 images, pooled twice to 64x2x2
    assert res["config"]["arch"] == "paper-convnet"
    expected = ["torch_float", "analogdecor_torch", "analogdecor_float", "numba_per_sample", "numba_mixed"]
    if _aihwkit_present():
        expected.append("aihwkit")
    else:
        assert any("aihwkit" in n for n in res["notes"])
    for name in expected:
        assert res[f"{name}_s_per_epoch"] > 0, name
    assert "paper-convnet" in format_training_report(res)


def test_the_torch_twins_are_the_paper_convnet():
    torch = pytest.importorskip("torch")
    from analogdecor.networks.bench import paper_convnet_torch
    from analogdecor.networks.build import architecture, build_network

    model = paper_convnet_torch((1, 28, 28), 10)
    net = build_network(architecture("paper-convnet"), (1, 28, 28), 10)
    ours = [(int(layer.tile.out_size), int(layer.tile.in_size)) for _, layer in net.param_layers()]
    theirs = [(p.shape[0], int(p[0].numel())) for n, p in model.named_parameters() if n.endswith("weight")]
    assert theirs == ours
    assert tuple(model(torch.zeros(2, 1, 28, 28)).shape) == (2, 10)


def test_mlp_stays_the_default():
    assert TrainingBenchConfig().arch == "mlp"
    assert ARCHS == ("mlp", "paper-convnet")


def test_unknown_arch_and_non_image_data_are_refused():
    with pytest.raises(ConfigError, match="arch"):
        TrainingBenchConfig(arch="resnet")
    cfg = TrainingBenchConfig(arch="paper-convnet", dataset="synthetic", n_train=16, batch=16, rounds=1,
                              warmup_batches=0, systems=("analogdecor_float",))  # fmt: skip
    with pytest.raises(ConfigError, match="needs images"):
        bench_training(cfg)


def test_cli_choices_match_the_library():
    import argparse

    from analogdecor.cli import bench as cli_bench

    parser = argparse.ArgumentParser()
    cli_bench.register(parser.add_subparsers())
    training = parser.parse_args(["bench", "training"])
    assert training.arch == "mlp"
    with pytest.raises(SystemExit):
        parser.parse_args(["bench", "training", "--arch", "resnet"])
