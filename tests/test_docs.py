"""The documentation site builds strictly, and every command has its page."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from analogdecor.cli import SUBCOMMANDS

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_command_has_a_page_with_its_help(command):
    page = ROOT / "docs" / "commands" / f"{command}.md"
    assert page.is_file(), f"docs/commands/{command}.md is missing"
    assert f"<!-- analogdecor-help: {command} -->" in page.read_text()


def test_readme_is_a_front_door():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 260, f"README.md has {len(lines)} lines: move details to docs/"


def test_mkdocs_build_is_strict_and_clean(tmp_path):
    """A broken link, a missing page or anchor, or a bad mkdocstrings reference fails the build."""
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    pytest.importorskip("mkdocstrings")
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": path}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert (tmp_path / "site" / "index.html").is_file()
    # pages added under docs/ without a nav entry still appear in the navigation (scripts/mkdocs_autonav.py)
    html = (tmp_path / "site" / "index.html").read_text()
    for page in sorted((ROOT / "docs").rglob("*.md")):
        rel = page.relative_to(ROOT / "docs").with_suffix("").as_posix()
        if rel != "index":
            assert f'href="{rel}/"' in html, f"docs/{rel}.md is not in the navigation"


def test_an_undocumented_public_function_is_reported(monkeypatch):
    """The docs hook warns (and so fails the strict build) about API entries without a docstring."""
    import importlib.util
    import types

    spec = importlib.util.spec_from_file_location("mkdocs_autonav", ROOT / "scripts" / "mkdocs_autonav.py")
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    fake = types.ModuleType("fake_api")

    def documented():
        """Has one."""

    def bare():
        pass

    fake.documented, fake.bare, fake.__all__ = documented, bare, ["documented", "bare"]
    monkeypatch.setitem(sys.modules, "fake_api", fake)
    assert hook._undocumented("fake_api") == ["fake_api.bare"]
    assert hook._undocumented("analogdecor.crossbar") == []
