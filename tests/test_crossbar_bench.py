"""The crossbar benchmark runs and reports its figures (not a timed test: no speed is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from analogdecor.cli import main

SMALL = ["--size", "24", "--batch", "8", "--update-batch", "4", "--repeats", "2", "--update-repeats", "1",
         "--memory-size", "48"]  # fmt: skip


def test_bench_crossbar_json(capsys):
    assert main(["bench", "crossbar", *SMALL, "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    for key in ("forward_vs_matmul_ratio", "pulsed_updates_per_s", "forward_ms", "matmul_ms",
                "update_samples_per_s", "expected_pulses_per_update"):  # fmt: skip
        assert res[key] > 0, key
    assert res["size"] == 24
    assert res["bl"] == 31
    bpd = res["bytes_per_device"]
    assert set(bpd) == {"ideal", "constant", "linear", "softbounds", "exp", "pow", "exp one-sided pair"}
    assert bpd["constant"] >= 4 + 4 + 6 * 4 + 1  # w, w_read, six float32 parameters, the fault code
    assert bpd["exp one-sided pair"] > bpd["exp"]  # plus w+, w- and their lower bounds
    assert res["memory_size"] == 48
    assert res["memory_tile_bytes"] >= 48 * 48 * bpd["constant"] - 1
    assert res["mixed_update_peak_bytes"] >= 48 * 48 * 8  # at least the float64 accumulator
    assert res["pulsed_update_peak_bytes"] > 0


def test_bench_crossbar_contended_reports_both_thread_policies(capsys):
    assert main(["bench", "crossbar", *SMALL, "--memory-size", "0", "--contended", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["busy_processes"] == 1
    for prefix in ("contended_", "contended_fixed_"):
        assert res[prefix + "forward_vs_matmul_ratio"] > 0, prefix
        assert res[prefix + "forward_slowdown"] > 0, prefix
    assert res["contended_fixed_numba_threads"] == res["numba_threads"]
    assert "memory_size" not in res


def test_bench_script_prints_summary():
    script = Path(__file__).resolve().parents[1] / "scripts" / "bench_crossbar.py"
    out = subprocess.run([sys.executable, str(script), *SMALL], check=True, capture_output=True, text=True,
                         timeout=300).stdout  # fmt: skip
    assert "forward read" in out
    assert "updates/s" in out
