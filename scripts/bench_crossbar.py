#!/usr/bin/env python
"""Benchmark the crossbar emulator (same as ``analogdecor bench crossbar``; ``--json`` for one JSON object).

    .venv/bin/python scripts/bench_crossbar.py            # summary
    .venv/bin/python scripts/bench_crossbar.py --json     # forward_vs_matmul_ratio, pulsed_updates_per_s, ...
"""

from __future__ import annotations

import sys

from analogdecor.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "crossbar", *sys.argv[1:]]))
