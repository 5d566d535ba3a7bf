"""First-order energy and latency of a trained run on hardware (``analogdecor cost RUN_DIR``).

:func:`run_cost` reads a run directory (network, config, pulse counts) and returns
the cost of one inference (as deployed: folded, separate or digital R) and of one
training step, per layer and in total; see :mod:`analogdecor.cost.model` for the
model and :mod:`analogdecor.cost.coefficients` for the coefficient files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from analogdecor.cost.coefficients import CostCoefficients, load_coefficients
from analogdecor.cost.model import PARTS, inference_cost, training_cost
from analogdecor.deploy import DEPLOY_MODES, arrays_needed
from analogdecor.errors import DataError

__all__ = ["DEPLOY_MODES", "PARTS", "format_cost", "load_coefficients", "run_cost"]


def run_cost(run_dir: str | Path, coefficients: str | Path | CostCoefficients = "default",
             deploy: str = "separate", array_size: tuple[int, int] | None = None) -> dict[str, Any]:  # fmt: skip
    """Cost of one inference and one training step of the run in ``run_dir``.

    Also lists the physical arrays the deployed network needs (at ``array_size``, default the run's
    own ``mapping.array_rows`` / ``array_cols``); the cost itself uses the run's arrays.
    """
    from analogdecor.training.pulses import load_pulse_counts
    from analogdecor.training.rundir import load_run, load_run_config

    run_dir = Path(run_dir)
    c = coefficients if isinstance(coefficients, CostCoefficients) else load_coefficients(coefficients)
    cfg, tile_cfg = load_run_config(run_dir)
    _, net = load_run(run_dir)
    info = {}
    if (run_dir / "run.json").is_file():
        try:
            info = json.loads((run_dir / "run.json").read_text())
        except ValueError as exc:
            raise DataError(f"{run_dir / 'run.json'}: not readable JSON ({exc})") from None
    counts = load_pulse_counts(run_dir)
    steps = info.get("training_steps")
    per_step = {}
    if counts and steps:
        per_step = {
            k: float(up.sum(dtype="uint64") + down.sum(dtype="uint64")) / steps
            for k, (up, down) in counts.items()
        }
    analog = cfg.backend != "float"
    out = {
        "run": str(run_dir),
        "coefficients": c.name,
        "decorrelation": cfg.decorrelation.enabled,
        "inference": inference_cost(net, tile_cfg, c, deploy),
        "training": training_cost(
            net,
            tile_cfg,
            c,
            rule=cfg.rule,
            batch_size=cfg.optim.batch_size,
            analog=analog,
            analog_update=cfg.optim.analog_update,
            update_rank=cfg.optim.update_rank,
            pulses_per_step=per_step,
        ),
        "arrays": arrays_needed(net, tile_cfg, deploy, *(array_size or (None, None))),
        "training_steps": steps,
        "pulses_counted": bool(per_step),
    }
    return out


def _fmt(v: float, unit: str) -> str:
    return f"{v:.3g}" if v else "0"


def format_cost(result: dict[str, Any]) -> str:
    """The cost tables as text: energy in nJ per part, latency in us, per layer and in total."""
    lines = [f"run {result['run']}  (coefficients: {result['coefficients']})"]
    a = result["arrays"]
    size = "x".join("whole" if v is None else str(v) for v in a["array_size"])
    lines.append(f"arrays of {size} ({result['inference']['deploy']}): {a['total']} in all; "
                 + ", ".join(f"{k} {v['grid'][0]}x{v['grid'][1]}" for k, v in a["matrices"].items()))  # fmt: skip
    for phase, title in (("inference", "one inference (one sample)"), ("training", "one training step")):
        r = result[phase]
        extra = (
            f", deploy {r['deploy']}"
            if phase == "inference"
            else f", batch {r['batch_size']}, rule {r['rule']}"
        )
        lines.append(f"\n{title}{extra}: energy nJ by part, latency us")
        head = f"{'layer':<14}" + "".join(f"{p:>11}" for p in PARTS) + f"{'total nJ':>11}{'latency us':>12}"
        lines.append(head)
        lines.append("-" * len(head))
        for name, row in [*r["layers"].items(), ("total", r["total"])]:
            cells = "".join(f"{_fmt(row[p]['energy_J'] * 1e9, 'nJ'):>11}" for p in PARTS)
            lines.append(f"{name:<14}{cells}{_fmt(row['total']['energy_J'] * 1e9, 'nJ'):>11}"
                         f"{_fmt(row['total']['latency_s'] * 1e6, 'us'):>12}")  # fmt: skip
    if not result["pulses_counted"]:
        lines.append("\n(no pulse counts in this run: update energy not included)")
    return "\n".join(lines)
