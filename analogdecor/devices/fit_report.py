"""The fit report of ``analogdecor devices fit``: a PNG and a goodness-of-fit table, and the preset TOML."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from analogdecor.config import to_dict
from analogdecor.devices.fit import FitError, FitResult

__all__ = ["format_table", "plot_report", "preset_toml"]


def format_table(results: dict[str, FitResult | FitError], chosen: str) -> str:
    """Goodness of fit per family, one line each; the chosen one marked with '*'."""
    lines = [f"{'family':<11} {'RMSE':>10} {'R^2':>7} {'BIC':>12} {'k':>5}  (n pulses used)"]
    for fam, res in results.items():
        mark = "*" if fam == chosen else " "
        if isinstance(res, FitError):
            lines.append(f"{fam:<10}{mark} not fitted: {res}")
            continue
        g = res.gof
        lines.append(f"{fam:<10}{mark} {g['rmse']:>10.4g} {g['r2']:>7.3f} {g['bic']:>12.1f} {int(g['k']):>5}  "
                     f"({int(g['n'])})")  # fmt: skip
    return "\n".join(lines)


def plot_report(path: str | Path, meas, weights: list[np.ndarray], result: FitResult,
                results: dict[str, FitResult | FitError], w_scale: float, n_show: int = 4) -> Path:  # fmt: skip
    """PNG: measured and fitted pulse responses (a few devices, their first cycle, and the mean over all
    devices and cycles), the per-device parameters, and the goodness of fit per family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    ax = axes[0, 0]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, name in enumerate(meas.devices[:n_show]):
        c = colors[i % len(colors)]
        trains = [k for k, tr in enumerate(meas.trains) if tr.device == name]
        first_cycle = meas.trains[trains[0]].cycle
        offset = 0
        for k in trains:
            tr = meas.trains[k]
            if tr.cycle != first_cycle:
                continue
            w = weights[k]
            x = offset + np.arange(len(w))
            ax.plot(x, w, ".", ms=2.5, color=c, label=f"{name} measured" if offset == 0 else None)
            ax.plot(x, result.predict_train(i, w[0], tr.polarity > 0, len(w) - 1), "-", lw=1.2, color=c,
                    label=f"{name} fitted" if offset == 0 else None)  # fmt: skip
            offset += len(w) - 1
    ax.set(xlabel="pulse (up train, then down train; first cycle)", ylabel="weight (read)",
           title=f"measured (dots) vs fitted '{result.family}' (lines)")  # fmt: skip
    ax.legend(fontsize=7, ncol=2)

    ax = axes[0, 1]  # mean over devices and cycles, per polarity, aligned by pulse index
    for pol, label in ((1, "up"), (-1, "down")):
        ks = [k for k, tr in enumerate(meas.trains) if tr.polarity == pol]
        n = min(len(weights[k]) for k in ks)
        dev_index = {name: i for i, name in enumerate(meas.devices)}
        measured = np.mean([weights[k][:n] for k in ks], axis=0)
        fitted = np.mean([result.predict_train(dev_index[meas.trains[k].device], weights[k][0], pol > 0, n - 1)
                          for k in ks], axis=0)  # fmt: skip
        x = np.arange(n) + (0 if pol > 0 else n)
        ax.plot(x, measured, "o", ms=3, label=f"{label}: measured mean")
        ax.plot(x, fitted, "-", lw=1.5, label=f"{label}: fitted mean")
    ax.set(xlabel="pulse (up trains, then down trains)", ylabel="weight, mean over devices and cycles",
           title=f"mean response ({len(meas.devices)} devices)")  # fmt: skip
    ax.legend(fontsize=8)

    ax = axes[1, 0]
    per = result.per_device
    names = [k for k in ("scale_up", "scale_down", "b_min", "b_max", "gamma_up", "gamma_down") if k in per]
    data = [per[k] / per[k].mean() if per[k].mean() != 0 else per[k] for k in names]
    ax.boxplot(data, showmeans=True)
    for j, v in enumerate(data, start=1):
        ax.plot(np.full(v.size, j) + np.linspace(-0.15, 0.15, v.size), v, ".", ms=4, color="k", alpha=0.6)
    ax.set_xticks(range(1, len(names) + 1), names, fontsize=8)
    ax.set(ylabel="per-device value / mean", title="device-to-device spread of the fitted parameters")

    ax = axes[1, 1]
    ax.axis("off")
    cfg = result.config
    text = "goodness of fit per family\n\n" + format_table(results, result.family)
    text += (f"\n\nfitted '{result.family}': dw_min {cfg.dw_min:.4g}, up_down {cfg.up_down:.3g}, "
             f"dw_min_dtod {cfg.dw_min_dtod:.3g}\nw_min {cfg.w_min:.3g} (dtod {cfg.w_min_dtod:.3g}), "
             f"w_max {cfg.w_max:.3g} (dtod {cfg.w_max_dtod:.3g})\n"
             f"dw_min_std {cfg.dw_min_std:.3g}, write_noise_std {cfg.write_noise_std:.3g} "
             f"(weights: w = {w_scale:g} at g_max)")  # fmt: skip
    ax.text(0.0, 1.0, text, va="top", family="monospace", fontsize=7.5, wrap=True)
    fig.suptitle(f"{meas.path.name}: fit report", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def preset_toml(name: str, tile_config, result: FitResult, results, meas, *, criterion: str) -> str:
    """The preset file: a ``[source]`` table naming the data and its digest, then the tile config."""
    from analogdecor.training.tomlio import dumps_toml

    g = result.gof
    source = {
        "name": name,
        "summary": f"'{result.family}' device fitted to {meas.path.name} ({len(meas.devices)} devices)",
        "citation": f"measurements {meas.path.name}, fitted by analogdecor devices fit",
        "fit": (f"family {result.family} ({criterion}); RMSE {g['rmse']:.4g}, R^2 {g['r2']:.3f}, BIC {g['bic']:.1f} "
                f"over {int(g['n'])} pulses"),
        "notes": "per family: " + "; ".join(
            f"{k} BIC {v.gof['bic']:.1f}" if isinstance(v, FitResult) else f"{k} not fitted"
            for k, v in results.items()),
        "data": str(meas.path),
        "sha256": meas.sha256,
    }  # fmt: skip
    header = (f"# {name}: fitted by `analogdecor devices fit` from {meas.path} (sha256 {meas.sha256[:12]}...).\n"
              "# Format: see device_models/README.md; `analogdecor devices show PATH` documents every field.\n")
    return header + dumps_toml({"source": source, **to_dict(tile_config)})


def fit_measurements(csv_path, model: str = "auto", *, out=None, report=None, g_min: float = 0.0,
                     g_max: float = 25.0, w_scale: float = 1.0, nodes: int = 9, base=None):  # fmt: skip
    """The whole of ``analogdecor devices fit``: read, fit every family, choose, write preset and report.

    Parameters
    ----------
    csv_path
        Measurement file (format: :mod:`analogdecor.devices.measurements`).
    model
        A family name, or ``auto`` (lowest BIC; see :mod:`analogdecor.devices.fit`).
    out, report
        Where to write the preset TOML and the PNG report (None: not written). The preset's
        name is ``out``'s file name without ``.toml``.
    g_min, g_max, w_scale
        The mapping: conductance range (uS) and the weight it maps onto (``[mapping]`` of the preset).
    nodes
        Nodes of the piecewise table.
    base
        TileConfig whose periphery and update settings the preset takes (default: TileConfig()).

    Returns
    -------
    (chosen FitResult, all results by family, the preset's TileConfig)
    """
    from analogdecor.crossbar.config import MappingConfig, TileConfig
    from analogdecor.devices.fit import FAMILIES, choose, fit_all, prepare
    from analogdecor.devices.measurements import read_measurements
    from analogdecor.errors import ConfigError

    if model != "auto" and model not in FAMILIES:
        raise ConfigError(f"--model {model!r}: choose from {', '.join(FAMILIES)} or auto")
    mapping = MappingConfig(g_min=g_min, g_max=g_max, w_scale=w_scale)  # validates the range
    base = base if base is not None else TileConfig()
    meas = read_measurements(csv_path)
    weights = meas.weights(g_min, g_max, w_scale)
    kwargs = dict(base=base.device, nodes=nodes, w_scale=w_scale)
    data, sigma = prepare(meas, weights, **kwargs)
    results = fit_all(data, path=meas.path, write_noise=sigma, **kwargs)
    chosen = choose(results, model, meas.path)
    tile = base.replace(device=chosen.config, mapping=mapping)
    criterion = "chosen by lowest BIC" if model == "auto" else "requested"
    if out is not None:
        out = Path(out)
        if out.suffix != ".toml":
            raise ConfigError(f"--out {out}: a preset file must end in .toml")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(preset_toml(out.stem, tile, chosen, results, meas, criterion=criterion))
    if report is not None:
        plot_report(report, meas, weights, chosen, results, w_scale)
    return chosen, results, tile
