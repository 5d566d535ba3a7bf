"""Packaging habits: the core runs without torch or aihwkit, and the project files agree."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

# Run in a fresh interpreter where importing torch or aihwkit fails, as on an install without the
# extras: every core subpackage imports, the CLI parses, and a short crossbar training run learns.
WITHOUT_TORCH = textwrap.dedent(
    """
    import importlib, sys
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "aihwkit", "torchvision"):
                raise ImportError(f"{name} is blocked for this test")
            return None
    sys.meta_path.insert(0, Block())
    import analogdecor
    for mod in ("crossbar", "devices", "decorrelation", "learning", "networks", "backends", "data",
                "training", "sweep", "export", "inference", "validation", "cli"):
        importlib.import_module(f"analogdecor.{mod}")
    from analogdecor.training import TrainConfig, apply_overrides, train
    cfg = apply_overrides(TrainConfig(), {
        "rule": "np", "backend": "numba", "device": "ReRamES", "decorrelation.enabled": True,
        "optim.epochs": 2, "data.n_train": 400, "data.n_test": 200, "seed": 0,
    })
    res = train(cfg, sys.argv[1], progress=False)
    assert res.status == "finished", res.status
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "aihwkit"))
    assert not leaked, leaked
    print("acc", res.metrics["test_accuracy"][-1])
    """
)


def test_core_imports_and_trains_without_torch_or_aihwkit(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", WITHOUT_TORCH, str(tmp_path / "run")],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    accuracy = float(proc.stdout.split("acc")[-1])
    assert accuracy > 0.2  # chance is 0.1; the point is that it ran and learned something
    assert (tmp_path / "run" / "model.npz").is_file()


def test_torch_and_aihwkit_are_extras_not_core_dependencies():
    core = " ".join(PYPROJECT["project"]["dependencies"])
    assert "torch" not in core
    assert "aihwkit" not in core
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert any(dep.startswith("torch") for dep in extras["torch"])
    assert "aihwkit" in extras
    for tool in ("ruff", "mypy", "mkdocs", "torch"):
        assert any(dep.startswith(tool) for dep in extras["dev"]), tool


def test_every_dev_tool_is_pinned_in_constraints():
    pins = {
        line.split("==")[0].lower().replace("_", "-")
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line
    }
    for dep in PYPROJECT["project"]["optional-dependencies"]["dev"]:
        name = re.split(r"[\[<>=!~ ]", dep)[0].lower()
        assert name in pins, f"{name} (dev extra) has no pin in constraints.txt"


def test_license_citation_and_changelog_match_the_project():
    assert PYPROJECT["project"]["license"]["text"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    yaml = pytest.importorskip("yaml")
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["version"] == PYPROJECT["project"]["version"]
    assert cff["license"] == "MIT"
    assert any("2407.10780" in str(ref.get("url", "")) for ref in cff["references"])
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## [{PYPROJECT['project']['version']}]" in changelog
