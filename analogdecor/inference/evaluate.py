"""Accuracy of a trained network after programming it onto devices, as a function of time.

For every analogue tile of the network (weight tiles and decorrelation tiles):

1. target conductances (G+, G-) from the tile's mapping (``tile.conductances()``);
2. programming with the noise model (optionally write-verify), per seed;
3. at each time t after programming: drift and read noise (:mod:`.models`),
   optionally IR drop in the read (:mod:`.irdrop`), back to weights through the
   mapping w = (G+ - G-) / (g_max - g_min) w_scale, written exactly into a copy
   of the network (whose tiles keep their own read periphery);
4. test accuracy without and with global drift compensation
   (:mod:`.compensation`): one digital scale per tile, alpha = mean|y_ref(0)| /
   mean|y_ref(t)|, from a fixed reference batch (the tile's inputs for
   ``n_ref`` training samples in the trained network) read at t = 0 and at t.

Mean and spread over seeds (each seed: new programming, drift and read noise)
go into a table (CSV, JSON) and a plot.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analogdecor.config import check_choice, check_int, to_dict
from analogdecor.crossbar.mapping import conductances_to_weights
from analogdecor.deploy import DEPLOY_MODES, arrays_needed, deploy_network
from analogdecor.errors import ConfigError
from analogdecor.inference.compensation import drift_compensation_scale
from analogdecor.inference.irdrop import IRDropConfig, ir_drop_arrays, ir_drop_conductances
from analogdecor.inference.models import InferenceNoiseModel, get_noise_model
from analogdecor.inference.writeverify import WriteVerifyConfig, write_verify
from analogdecor.networks.keys import ParamKey

__all__ = [
    "EvaluateConfig",
    "EvaluationResult",
    "evaluate_network",
    "evaluate_run",
    "format_time",
    "parse_times",
    "resolve_noise_model",
    "write_results",
]

_UNITS = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "y": 365.0 * 86400.0}


def parse_times(text: str | list | tuple) -> tuple[float, ...]:
    """Parse ``"1s,1h,1d,30d,1y"`` (units s, m/min, h, d, w, y; plain numbers are seconds)."""
    items = text.split(",") if isinstance(text, str) else list(text)
    out = []
    for item in items:
        if isinstance(item, int | float) and not isinstance(item, bool):
            value = float(item)
        else:
            m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-z]*)\s*", str(item))
            if not m or m.group(2) not in ("", *_UNITS):
                raise ConfigError(f"time {item!r}: write a number with a unit s, m, h, d, w or y (e.g. 30d)")
            value = float(m.group(1)) * (_UNITS[m.group(2)] if m.group(2) else 1.0)
        if not np.isfinite(value) or value < 0:
            raise ConfigError(f"time {item!r}: must be >= 0")
        out.append(value)
    if not out:
        raise ConfigError("times: give at least one time after programming")
    return tuple(out)


def format_time(seconds: float) -> str:
    """Short label: 1s, 1h, 1d, 30d, 1y (largest unit that divides evenly, else seconds)."""
    for unit in ("y", "d", "h", "m", "s"):
        n = seconds / _UNITS[unit]
        if n >= 1 and abs(n - round(n)) < 1e-9:
            return f"{round(n)}{unit}"
    return f"{seconds:g}s"


NOISE_BACKENDS = ("analogdecor", "aihwkit")
"""Implementations of the inference noise models (``EvaluateConfig.noise_backend``)."""


def resolve_noise_model(name: str, noise_backend: str = "analogdecor") -> InferenceNoiseModel:
    """The noise model ``name`` as implemented by ``noise_backend`` ("analogdecor" or "aihwkit").

    "aihwkit" wraps IBM aihwkit's own models (:func:`~.aihwkit_noise.aihwkit_noise_model`; pcm and
    reram only) and raises BackendUnavailableError when aihwkit is not installed.
    """
    if noise_backend == "aihwkit":
        from analogdecor.inference.aihwkit_noise import aihwkit_noise_model

        return aihwkit_noise_model(name)
    if noise_backend != "analogdecor":
        raise ConfigError(f"noise_backend = {noise_backend!r}: choose one of {', '.join(NOISE_BACKENDS)}")
    return get_noise_model(name)


@dataclass(frozen=True)
class EvaluateConfig:
    """Settings of an accuracy-vs-time evaluation (usable as sweep axes: ``model``, ``ir_drop.r_wire``, ...)."""

    model: str = "pcm"
    """Inference noise model: none, pcm, reram, a name in device_models/inference, or a .toml path."""
    noise_backend: str = "analogdecor"
    """Implementation of the noise model: "analogdecor" (:mod:`.models`) or "aihwkit" (IBM aihwkit's own
    PCMLikeNoiseModel / ReRamWan2022NoiseModel through :mod:`.aihwkit_noise`; models pcm and reram only)."""
    times: tuple[float, ...] = (1.0, 3600.0, 86400.0, 30 * 86400.0, 365 * 86400.0)
    """Times after programming (s, counted from t0 = 20 s after the programming pulse)."""
    seeds: int = 3
    """Number of noise seeds (independent programming, drift and read noise)."""
    seed: int = 0
    """Base seed; seed k of the evaluation uses SeedSequence([seed, k])."""
    n_ref: int = 256
    """Reference batch for drift compensation (first n_ref training samples)."""
    n_test: int | None = None
    """Evaluate on the first n_test test samples (None: all)."""
    drift_compensation: bool = True
    """Also report the accuracy with global drift compensation (False: the uncompensated column only)."""
    deploy: str | None = None
    """How a decorrelated network goes on the chip (:mod:`analogdecor.deploy`): "folded" (W R and the bias
    correction programmed, R costs nothing), "separate" (R on its own arrays, as trained) or "digital" (R in
    digital periphery); None: as trained."""
    write_verify: WriteVerifyConfig = field(default_factory=WriteVerifyConfig)
    ir_drop: IRDropConfig = field(default_factory=IRDropConfig)

    def __post_init__(self) -> None:
        check_choice(self, "noise_backend", NOISE_BACKENDS)
        check_choice(self, "deploy", (None, *DEPLOY_MODES))
        check_int(self, "seeds", minimum=1)
        check_int(self, "seed", minimum=0)
        check_int(self, "n_ref", minimum=1)
        check_int(self, "n_test", minimum=1, allow_none=True)
        if not self.times:
            raise ConfigError("EvaluateConfig.times: give at least one time")
        for t in self.times:
            if not np.isfinite(t) or t < 0:
                raise ConfigError(f"EvaluateConfig.times = {self.times!r}: times must be >= 0 seconds")


@dataclass
class EvaluationResult:
    """Accuracies [seed, time] without and with drift compensation, plus context."""

    times: tuple[float, ...]
    acc_raw: np.ndarray
    acc_comp: np.ndarray
    """NaN everywhere when the evaluation ran without drift compensation."""
    baseline_accuracy: float
    """Accuracy of the trained network read as trained (no inference noise)."""
    write_verify: list[dict[str, Any]]
    """Per seed and layer: the programming report (residual error per layer)."""
    alphas: list[dict[str, list[float]]]
    """Per seed: layer -> drift-compensation scale at each time."""
    config: EvaluateConfig
    model_description: dict[str, Any]
    deployment: dict[str, Any] = field(default_factory=dict)
    """evaluate_run: the deploy mode and the arrays it takes (:func:`analogdecor.deploy.arrays_needed`)."""

    @property
    def compensated(self) -> bool:
        """Whether the compensated column was computed."""
        return self.config.drift_compensation

    def _columns(self) -> list[tuple[str, np.ndarray]]:
        cols = [("off", self.acc_raw)]
        if self.compensated:
            cols.append(("on", self.acc_comp))
        return cols

    def rows(self) -> list[dict[str, Any]]:
        """One table row per (time, compensation): mean and spread over seeds."""
        rows = []
        for k, t in enumerate(self.times):
            for comp, acc in self._columns():
                a = acc[:, k]
                rows.append({
                    "model": self.model_description.get("model", ""),
                    "time_s": t,
                    "time": format_time(t),
                    "drift_compensation": comp,
                    "mean_accuracy": float(a.mean()),
                    "std_accuracy": float(a.std(ddof=1)) if a.size > 1 else 0.0,
                    "min_accuracy": float(a.min()),
                    "max_accuracy": float(a.max()),
                    "n_seeds": int(a.size),
                })  # fmt: skip
        return rows

    def to_json(self) -> dict[str, Any]:
        return {
            "config": to_dict(self.config),
            "noise_model": self.model_description,
            "baseline_accuracy": self.baseline_accuracy,
            "times": list(self.times),
            "accuracy_no_compensation": self.acc_raw.tolist(),
            "accuracy_drift_compensation": self.acc_comp.tolist() if self.compensated else None,
            "write_verify": self.write_verify,
            "drift_compensation_scales": self.alphas,
            "table": self.rows(),
            "deployment": self.deployment,
        }


# --------------------------------------------------------------------------- network plumbing
def _digital_scale_slot(network: Any, name: str) -> tuple[Any, str]:
    """(object, attribute) of the digital output scale after tile ``name`` (a ``ParamKey`` name)."""
    if not hasattr(network, "digital_scale"):
        raise ConfigError(f"drift compensation: cannot find the digital output scale of tile {name!r}")
    try:
        return network.digital_scale(ParamKey.parse(name))
    except ConfigError as exc:
        raise ConfigError(f"drift compensation: cannot find the digital output scale of tile {name!r} ({exc})") from None


def _tile_inputs(network: Any, x: np.ndarray) -> dict[str, np.ndarray]:
    """The input each analogue tile sees for the batch ``x`` (evaluation mode)."""
    return network.tile_inputs(x)


def _accuracy(network: Any, x: np.ndarray, y: np.ndarray, batch: int = 2000) -> float:
    correct = 0
    for s in range(0, len(x), batch):
        correct += int(np.sum(network.predict(x[s : s + batch]) == y[s : s + batch]))
    return correct / len(x)


def _read_into(net, targets, states, model, t, rng, ir):
    """Write the weights that tiles programmed as ``states`` hold at time ``t`` into ``net``."""
    for tgt, (name, tile) in zip(targets, net.analog_layers(), strict=True):
        sp, sm = states[name]
        gp, gm = model.at_time(sp, t, rng), model.at_time(sm, t, rng)
        if ir.applies_to(name):
            if hasattr(tile, "row_edges"):  # physical arrays: the wires end at every array's border
                gp, gm = ir_drop_arrays(gp, gm, ir.r_wire, tile.row_edges, tile.col_edges)
            else:
                gp, gm = ir_drop_conductances(gp, gm, ir.r_wire)
        w = conductances_to_weights(gp, gm, tgt.g_min, tgt.g_max, tgt.w_scale)
        tile.set_weights(w.astype(np.float32))


# --------------------------------------------------------------------------- evaluation
def evaluate_network(
    network: Any,
    x_test: np.ndarray,
    y_test: np.ndarray,
    x_ref: np.ndarray,
    config: EvaluateConfig | None = None,
    *,
    model: InferenceNoiseModel | None = None,
    progress: Any = None,
) -> EvaluationResult:
    """Accuracy vs time after programming ``network`` (left unchanged) onto devices.

    Parameters
    ----------
    network : MLP-like
        ``analog_layers()``, ``forward_pass``, ``predict``, ``layers[i].out_scale``
        (and ``layers[i].decor.scale`` for decorrelation tiles).
    x_test, y_test : ndarray
        Test data.
    x_ref : ndarray
        Reference batch for drift compensation.
    config : EvaluateConfig
    model : InferenceNoiseModel, optional
        Overrides ``config.model``.
    progress : callable, optional
        Called with a message after every (seed, time).
    """
    cfg = config or EvaluateConfig()
    model = model or resolve_noise_model(cfg.model, cfg.noise_backend)
    from analogdecor.export.records import collect_layers

    # every read below starts from this snapshot, so all accuracies (the as-trained baseline included)
    # see the same draws of the tiles' own periphery noise and differ only by the device physics
    network = copy.deepcopy(network)
    targets = collect_layers(network)
    unknown = sorted(set(cfg.ir_drop.layers) - {t.name for t in targets})
    if unknown:
        raise ConfigError(
            f"IRDropConfig.layers = {list(cfg.ir_drop.layers)!r}: no tile(s) {unknown} in this network; "
            f"tiles: {', '.join(t.name for t in targets)}"
        )
    ref_inputs = _tile_inputs(copy.deepcopy(network), np.asarray(x_ref, dtype=np.float32))
    baseline = _accuracy(copy.deepcopy(network), x_test, y_test)
    nt = len(cfg.times)
    acc_raw = np.zeros((cfg.seeds, nt))
    acc_comp = np.full((cfg.seeds, nt), np.nan)
    reports: list[dict[str, Any]] = []
    alphas: list[dict[str, list[float]]] = []
    for s in range(cfg.seeds):
        prog_rng, read_rng = (
            np.random.default_rng(c) for c in np.random.SeedSequence([cfg.seed, s]).spawn(2)
        )
        states, rep = {}, {}
        for tgt in targets:
            sp, rp = write_verify(tgt.g_plus, model, prog_rng, cfg.write_verify)
            sm, rm = write_verify(tgt.g_minus, model, prog_rng, cfg.write_verify)
            states[tgt.name] = (sp, sm)
            n = tgt.g_plus.size
            rep[tgt.name] = {
                "iterations": max(rp.iterations, rm.iterations),
                "rms_error_us": float(np.sqrt((rp.rms_error_us**2 + rm.rms_error_us**2) / 2)),
                "max_error_us": max(rp.max_error_us, rm.max_error_us),
                "fraction_within": (rp.fraction_within + rm.fraction_within) / 2 if n else 1.0,
                "tolerance_us": rp.tolerance_us,
            }
        reports.append(rep)
        # reference readouts at t = 0 (right after programming) for drift compensation
        y_ref0 = {}
        if cfg.drift_compensation:
            net0 = copy.deepcopy(network)
            _read_into(net0, targets, states, model, 0.0, read_rng, cfg.ir_drop)
            tiles0 = dict(net0.analog_layers())
            y_ref0 = {name: tiles0[name].forward(x) for name, x in ref_inputs.items()}
        seed_alphas: dict[str, list[float]] = {name: [] for name in ref_inputs}
        for k, t in enumerate(cfg.times):
            net = copy.deepcopy(network)
            _read_into(net, targets, states, model, t, read_rng, cfg.ir_drop)
            # compensated copy and reference probe start from the same periphery-noise state as ``net``,
            # so raw and compensated accuracies differ by the compensation, not by the read-noise draw
            comp, probe = copy.deepcopy(net), dict(copy.deepcopy(net).analog_layers())
            acc_raw[s, k] = _accuracy(net, x_test, y_test)
            if not cfg.drift_compensation:
                if progress is not None:
                    progress(f"seed {s} t={format_time(t)}: {acc_raw[s, k]:.4f}")
                continue
            for name, x in ref_inputs.items():
                alpha = drift_compensation_scale(y_ref0[name], probe[name].forward(x))
                obj, attr = _digital_scale_slot(comp, name)
                setattr(obj, attr, getattr(obj, attr) * alpha)
                seed_alphas[name].append(alpha)
            acc_comp[s, k] = _accuracy(comp, x_test, y_test)
            if progress is not None:
                progress(
                    f"seed {s} t={format_time(t)}: {acc_raw[s, k]:.4f} / compensated {acc_comp[s, k]:.4f}"
                )
        alphas.append(seed_alphas)
    return EvaluationResult(
        times=tuple(cfg.times),
        acc_raw=acc_raw,
        acc_comp=acc_comp,
        baseline_accuracy=baseline,
        write_verify=reports,
        alphas=alphas,
        config=cfg,
        model_description=model.describe(),
    )


# --------------------------------------------------------------------------- outputs
def write_results(result: EvaluationResult, out_dir: str | Path) -> list[Path]:
    """evaluate.csv (table), evaluate.json (everything) and evaluate.png (plot) in ``out_dir``."""
    import csv
    import io

    from analogdecor._lock import output_error
    from analogdecor.training.rundir import atomic_write_bytes, atomic_write_text, write_json

    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(out_dir, exc, "create") from None
    rows = result.rows()
    csv_path = out_dir / "evaluate.csv"
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(csv_path, buf.getvalue())  # each file all or nothing
    json_path = out_dir / "evaluate.json"
    write_json(json_path, result.to_json())  # strict JSON: NaN written as null
    png_path = out_dir / "evaluate.png"
    png = io.BytesIO()
    _plot(result, png)
    atomic_write_bytes(png_path, png.getvalue())
    return [csv_path, json_path, png_path]


def _plot(result: EvaluationResult, path: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.maximum(np.asarray(result.times), 0.1)
    fig, ax = plt.subplots(figsize=(6, 4))
    labels = {"off": "no compensation", "on": "global drift compensation"}
    for comp, acc in result._columns():
        label = labels[comp]
        sd = acc.std(axis=0, ddof=1) if acc.shape[0] > 1 else np.zeros(acc.shape[1])
        ax.errorbar(t, acc.mean(axis=0), yerr=sd, marker="o", capsize=3, label=label)
    ax.axhline(result.baseline_accuracy, color="gray", ls="--", label="as trained")
    ax.set_xscale("log")
    ax.set_xticks(t)
    ax.set_xticklabels([format_time(x) for x in result.times])
    ax.set_xlabel("time after programming")
    ax.set_ylabel("test accuracy")
    ax.set_title(
        f"{result.model_description.get('model', '')}: mean +- std over {result.acc_raw.shape[0]} seeds"
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)


def format_table(result: EvaluationResult) -> str:
    """Markdown table: time | no compensation | drift compensation (mean +- std)."""
    heads = {"off": "accuracy, no compensation", "on": "accuracy, drift compensation"}
    cols = [c for c, _ in result._columns()]
    lines = ["| time | " + " | ".join(heads[c] for c in cols) + " |", "|---" * (1 + len(cols)) + "|"]
    rows = result.rows()
    for k in range(0, len(rows), len(cols)):
        cells = [f"{r['mean_accuracy']:.4f} +- {r['std_accuracy']:.4f}" for r in rows[k : k + len(cols)]]
        lines.append(f"| {rows[k]['time']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def evaluate_run(
    run_dir: str | Path,
    config: EvaluateConfig | None = None,
    *,
    out_dir: str | Path | None = None,
    progress: Any = None,
    force: bool = False,
) -> tuple[EvaluationResult, list[Path]]:
    """``analogdecor evaluate RUN_DIR``: load the run and its data, evaluate, write RUN_DIR/evaluate/.

    The run must be ``finished`` (:func:`analogdecor.training.rundir.check_run_status`;
    ``force=True`` accepts a diverged, interrupted or unfinished run with a warning), and
    it is read under a shared lock, so that no training process rewrites it meanwhile.
    """
    from analogdecor._lock import DirLock
    from analogdecor.training import load_run
    from analogdecor.training.data import load_run_data
    from analogdecor.training.rundir import check_run_status, load_run_config

    run_dir = Path(run_dir)
    cfg = config or EvaluateConfig()
    with DirLock(run_dir, "run directory", shared=True, purpose="evaluate").acquire():
        check_run_status(run_dir, force=force, action="evaluate")
        train_cfg, network = load_run(run_dir)
        _, tile_cfg = load_run_config(run_dir)
    deployment: dict[str, Any] = {"deploy": cfg.deploy or "as trained"}
    if cfg.deploy is not None:
        deployment["arrays"] = arrays_needed(network, tile_cfg, cfg.deploy)
        network = deploy_network(network, cfg.deploy, backend=train_cfg.backend, tile_config=tile_cfg,
                                 weight_scaling=train_cfg.model.weight_scaling, seed=train_cfg.seed)  # fmt: skip
    data = load_run_data(train_cfg)  # as the run saw it: its subsets, validation split and normalisation
    x_test, y_test = data.x_test, data.y_test
    if cfg.n_test is not None:
        x_test, y_test = x_test[: cfg.n_test], y_test[: cfg.n_test]
    result = evaluate_network(network, x_test, y_test, data.x_train[: cfg.n_ref], cfg, progress=progress)
    result.deployment = deployment
    paths = write_results(result, out_dir if out_dir is not None else run_dir / "evaluate")
    return result, paths
