"""The crossbar benchmark runs and reports its figures (not a timed test: no speed is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from analogdecor.cli import main

SMALL = ["--size", "24", "--batch", "8", "--update-batch", "4", "--repeats", "2", "--update-repeats", "1"]


def test_bench_crossbar_json(capsys):
    assert main(["bench", "crossbar", *SMALL, "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    for key in ("forward_vs_matmul_ratio", "pulsed_updates_per_s", "forward_ms", "matmul_ms",
                "update_samples_per_s", "expected_pulses_per_update"):  # fmt: skip
        assert res[key] > 0, key
    assert res["size"] == 24
    assert res["bl"] == 31


def test_bench_script_prints_summary():
    script = Path(__file__).resolve().parents[1] / "scripts" / "bench_crossbar.py"
    out = subprocess.run([sys.executable, str(script), *SMALL], check=True, capture_output=True, text=True,
                         timeout=300).stdout  # fmt: skip
    assert "forward read" in out
    assert "updates/s" in out
