"""Every Python example in README.md runs as written.

Examples that continue a session the README sets up just before them (they read
``runs/np-decor``, trained and exported by the commands shown above them, or run the
36-run worked sweep) are listed in DEPENDS_ON_EARLIER_COMMANDS and are not run here:
the CLI tests exercise the same calls on small runs. Everything else is executed in a
fresh working directory, so a README example that stops working fails this test.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
DEPENDS_ON_EARLIER_COMMANDS = ("runs/np-decor", "scripts/sweeps/noise_vs_levels.toml")


def _examples() -> list[tuple[int, str]]:
    text = README.read_text()
    out = []
    for match in re.finditer(r"```python\n(.*?)```", text, re.S):
        line = text.count("\n", 0, match.start()) + 1
        out.append((line, match.group(1)))
    return out


EXAMPLES = _examples()


def test_the_readme_has_python_examples():
    assert len(EXAMPLES) >= 5


@pytest.mark.parametrize(("line", "code"), EXAMPLES, ids=[f"README.md:{line}" for line, _ in EXAMPLES])
def test_readme_example_runs(line, code, tmp_path, monkeypatch):
    if any(dep in code for dep in DEPENDS_ON_EARLIER_COMMANDS):
        pytest.skip(f"README.md:{line} continues from the commands above it (reads {DEPENDS_ON_EARLIER_COMMANDS})")
    if "aihwkit" in code:
        pytest.importorskip("aihwkit")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    exec(compile(code, f"README.md:{line}", "exec"), {"__name__": "readme_example"})
