"""Every Python example in README.md and in the documentation (docs/**/*.md) runs as written.

Each ```python block is executed on its own, in a fresh working directory, so an example that
stops working fails this test. Blocks fenced ```bash, ```text or ```pycon are not run.

Examples that continue a session the page sets up just before them (they read
``runs/np-decor``, trained and exported by the commands shown above them, or run the
36-run worked sweep) are listed in DEPENDS_ON_EARLIER_COMMANDS and are not run here:
the CLI tests exercise the same calls on small runs. Examples that use aihwkit or torch are
skipped where those are not installed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").rglob("*.md"))]
DEPENDS_ON_EARLIER_COMMANDS = ("runs/np-decor", "scripts/sweeps/noise_vs_levels.toml")


def _examples(path: Path) -> list[tuple[str, str]]:
    text = path.read_text()
    out = []
    for match in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M):
        line = text.count("\n", 0, match.start()) + 1
        out.append((f"{path.relative_to(ROOT)}:{line}", match.group(1)))
    return out


EXAMPLES = [example for page in PAGES for example in _examples(page)]


def test_the_docs_have_python_examples():
    assert len(EXAMPLES) >= 10
    assert any(where.startswith("README.md") for where, _ in EXAMPLES)


@pytest.mark.parametrize(("where", "code"), EXAMPLES, ids=[where for where, _ in EXAMPLES])
def test_doc_example_runs(where, code, tmp_path, monkeypatch):
    if any(dep in code for dep in DEPENDS_ON_EARLIER_COMMANDS):
        pytest.skip(f"{where} continues from the commands above it (reads {DEPENDS_ON_EARLIER_COMMANDS})")
    if "aihwkit" in code:
        pytest.importorskip("aihwkit.simulator.tiles")
    torch = None
    if re.search(r"^\s*(import torch|from torch|from analogdecor.torch)", code, re.M):
        torch = pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    threads = torch.get_num_threads() if torch else 0
    if torch:
        torch.set_num_threads(1)  # small models: on a busy machine a thread pool costs more than the work
    try:
        exec(compile(code, where, "exec"), {"__name__": "doc_example"})
    finally:
        if torch:
            torch.set_num_threads(threads)
