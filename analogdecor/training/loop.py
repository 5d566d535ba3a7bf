"""The training loop: validate everything, train, evaluate per epoch, write the run directory."""

from __future__ import annotations

import csv
import datetime as _dt
import io
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analogdecor import __version__
from analogdecor.backends import is_analog
from analogdecor.errors import ConfigError
from analogdecor.training.config import TrainConfig, resolve_tile_config
from analogdecor.training.rundir import (
    atomic_write_bytes,
    atomic_write_text,
    build_network,
    save_conductances,
    save_model,
    write_config,
    write_json,
)

__all__ = ["TrainResult", "evaluate", "prepare", "train"]

METRIC_KEYS = ("epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "epoch_time_s")


@dataclass
class TrainResult:
    """What :func:`train` returns."""

    metrics: dict[str, list[float]]
    """Per-epoch lists: epoch, train_loss, train_accuracy, test_loss, test_accuracy, epoch_time_s."""
    run_dir: Path | None
    network: Any
    config: TrainConfig
    status: str = "finished"
    """finished, or diverged (a non-finite loss stopped training; later epochs are NaN). An
    interrupted run (Ctrl-C) raises KeyboardInterrupt after marking run.json ``interrupted``; its
    run directory keeps the metrics and the model of every epoch finished before."""
    info: dict[str, Any] = field(default_factory=dict)


def prepare(cfg: TrainConfig):
    """Validate a config against its data and devices before any training.

    Returns (tile_config, dataset). Raises ConfigError for an unknown preset or
    tile override, and for model sizes that do not match the data.
    """
    from analogdecor.data import load_dataset

    if not isinstance(cfg, TrainConfig):
        raise ConfigError(f"expected a TrainConfig, got {type(cfg).__name__}")
    tile_cfg = resolve_tile_config(cfg)
    if cfg.backend == "aihwkit":
        from analogdecor.backends import make_tile

        make_tile("aihwkit", 1, 1, tile_cfg, seed=0)  # import guard + translation check, before any data
    ds = load_dataset(
        cfg.data.dataset, cfg.data.data_dir, seed=cfg.seed, n_train=cfg.data.n_train, n_test=cfg.data.n_test
    )
    n_features = ds.x_train.shape[1]
    if cfg.model.in_features is not None and cfg.model.in_features != n_features:
        raise ConfigError(
            f"model.in_features = {cfg.model.in_features} but data set {ds.name!r} has {n_features} features "
            "per sample: fix the widths or drop in_features"
        )
    if cfg.model.out_features is not None and cfg.model.out_features != ds.n_classes:
        raise ConfigError(
            f"model.out_features = {cfg.model.out_features} but data set {ds.name!r} has {ds.n_classes} classes"
        )
    if cfg.optim.batch_size > len(ds.x_train):
        raise ConfigError(
            f"optim.batch_size = {cfg.optim.batch_size} exceeds the {len(ds.x_train)} training samples"
        )
    return tile_cfg, ds


def evaluate(net: Any, x: np.ndarray, y: np.ndarray, batch_size: int = 1000) -> tuple[float, float]:
    """Mean softmax cross-entropy and accuracy of ``net`` on (x, y) in evaluation mode."""
    from analogdecor.learning import softmax_xent

    losses, correct = [], 0
    for s in range(0, len(x), batch_size):
        logits = net.forward(x[s : s + batch_size])
        loss, _ = softmax_xent(logits, y[s : s + batch_size])
        losses.append(loss)
        correct += int(np.sum(np.argmax(logits, axis=1) == y[s : s + batch_size]))
    return float(np.mean(np.concatenate(losses))), correct / len(x)


def _refit_zca(net: Any, x: np.ndarray) -> None:
    """zca rule: refit each layer's R from the current inputs of that layer, first to last."""
    h = np.asarray(x, dtype=np.float32)
    for layer_i, layer in enumerate(net.layers):
        layer.decor.refit_zca(h)
        h = net.forward_pass(x, train=False)[layer_i].h


def train(cfg: TrainConfig, out_dir: str | Path | None = None, *, progress: bool = True) -> TrainResult:
    """Train the network ``cfg`` describes and (if ``out_dir``) write its run directory.

    Parameters
    ----------
    cfg : TrainConfig
    out_dir : path, optional
        Run directory to create (or overwrite file by file). None: nothing is written.
    progress : bool
        Show a tqdm progress bar on stderr.

    Returns
    -------
    TrainResult
        ``metrics`` holds per-epoch lists (train_loss, train_accuracy, test_loss,
        test_accuracy, epoch_time_s); ``network`` the trained network.

    Notes
    -----
    Per batch: the rule gives per-layer (z, delta) (:func:`analogdecor.learning.compute_signals`),
    weights and biases are updated (:func:`analogdecor.learning.apply_updates`), then every
    decorrelating R takes one step of its own rule on the clean pass
    (:func:`analogdecor.learning.decorrelation_step`). Training metrics are running
    means over the epoch's clean passes; test metrics are measured after each epoch.
    """
    from analogdecor.learning import (
        AnalogUpdater,
        apply_updates,
        compute_signals,
        decorrelation_step,
        init_rule_state,
        make_optimizer,
    )

    tile_cfg, ds = prepare(cfg)
    run_dir = Path(out_dir) if out_dir is not None else None
    started = _dt.datetime.now(_dt.UTC)
    t0 = time.perf_counter()
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_config(run_dir, cfg, tile_cfg)
        write_json(run_dir / "run.json", _run_info(cfg, started, None, None, "running"))

    ss = np.random.SeedSequence(cfg.seed)
    order_rng, noise_rng = (np.random.default_rng(s) for s in ss.spawn(2))
    net = build_network(cfg, tile_cfg, ds.x_train.shape[1], ds.n_classes)
    rule_state = init_rule_state(cfg.rule, net, cfg.seed)
    o = cfg.optim
    optimizer = make_optimizer(o.optimizer, o.lr, beta1=o.beta1, beta2=o.beta2, eps=o.eps)
    updater = AnalogUpdater(o.analog_update, o.update_rank)
    for i, layer in enumerate(net.layers):
        if layer.decor is not None and layer.decor.tile is not None and is_analog(layer.decor.tile):
            layer.decor.updater, layer.decor.updater_key = updater, f"layers.{i}.R"

    metrics: dict[str, list[float]] = {k: [] for k in METRIC_KEYS}
    n = len(ds.x_train)
    n_batches = math.ceil(n / o.batch_size)
    bar = _progress(progress, o.epochs * n_batches, cfg)
    status = "finished"
    zca = cfg.decorrelation.enabled and cfg.decorrelation.rule == "zca"
    try:
        for epoch in range(1, o.epochs + 1):
            te = time.perf_counter()
            if zca:
                pick = order_rng.choice(n, size=min(n, cfg.decorrelation.zca_samples), replace=False)
                _refit_zca(net, ds.x_train[pick])
            perm = order_rng.permutation(n)
            loss_sum, correct, seen = 0.0, 0, 0
            for s in range(0, n, o.batch_size):
                idx = perm[s : s + o.batch_size]
                xb, yb = ds.x_train[idx], ds.y_train[idx]
                with np.errstate(over="ignore", invalid="ignore"):  # divergence is detected just below
                    result = compute_signals(
                        cfg.rule, net, xb, yb, rule_state, sigma=o.np_sigma, rng=noise_rng
                    )
                batch_loss = float(np.mean(result.loss))
                if not math.isfinite(batch_loss):
                    status = "diverged"
                    break
                apply_updates(net, result, optimizer, cfg.analog_lr, updater)
                decorrelation_step(net, result)
                loss_sum += batch_loss * len(idx)
                correct += int(np.sum(np.argmax(result.logits, axis=1) == yb))
                seen += len(idx)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(epoch=epoch, loss=f"{loss_sum / seen:.3f}", refresh=False)
            if status == "diverged":
                break
            with np.errstate(over="ignore", invalid="ignore"):
                test_loss, test_acc = evaluate(net, ds.x_test, ds.y_test, o.eval_batch_size)
            if not math.isfinite(test_loss):
                status = "diverged"
            metrics["epoch"].append(epoch)
            metrics["train_loss"].append(loss_sum / seen)
            metrics["train_accuracy"].append(correct / seen)
            metrics["test_loss"].append(test_loss)
            metrics["test_accuracy"].append(test_acc)
            metrics["epoch_time_s"].append(time.perf_counter() - te)
            if bar is not None:
                bar.write(
                    f"epoch {epoch}/{o.epochs}: train loss {loss_sum / seen:.4f} acc {correct / seen:.4f} | "
                    f"test loss {test_loss:.4f} acc {test_acc:.4f}"
                )
            if status == "diverged":
                break
            if run_dir is not None and epoch < o.epochs:
                # Checkpoint at every epoch boundary: an interrupted run keeps every finished
                # epoch's metrics and the model as it was at the end of the last one.
                _write_checkpoint(run_dir, net, rule_state, metrics)
    except KeyboardInterrupt:
        if run_dir is not None:
            wall = time.perf_counter() - t0
            info = _run_info(cfg, started, _dt.datetime.now(_dt.UTC), wall, "interrupted")
            info["epochs_completed"] = len(metrics["epoch"])
            write_json(run_dir / "run.json", info)
        raise
    finally:
        if bar is not None:
            bar.close()
    # A diverged run keeps one entry per epoch: NaN from the epoch where it failed.
    while len(metrics["epoch"]) < o.epochs:
        metrics["epoch"].append(len(metrics["epoch"]) + 1)
        for k in METRIC_KEYS[1:]:
            metrics[k].append(float("nan"))
    wall = time.perf_counter() - t0
    out = TrainResult(metrics=metrics, run_dir=run_dir, network=net, config=cfg, status=status)
    net.rule_state = rule_state
    if run_dir is not None:
        _write_checkpoint(run_dir, net, rule_state, metrics)
        out.info["analog_layers"] = save_conductances(run_dir, net)
        _plot_curves(run_dir / "learning_curves.png", metrics, cfg)
        ended = _dt.datetime.now(_dt.UTC)
        write_json(run_dir / "run.json", _run_info(cfg, started, ended, wall, status))
    out.info["wall_time_s"] = wall
    return out


def _write_checkpoint(run_dir: Path, net: Any, rule_state: dict[str, Any], metrics: dict[str, list[float]]) -> None:
    """model.npz, metrics.json and metrics.csv as of now (each written atomically)."""
    save_model(run_dir, net, rule_state)
    write_json(run_dir / "metrics.json", metrics)
    atomic_write_text(run_dir / "metrics.csv", _metrics_csv(metrics))


def _run_info(cfg: TrainConfig, started, ended, wall, status: str) -> dict[str, Any]:
    return {
        "seed": cfg.seed,
        "package": "analogdecor",
        "version": __version__,
        "rule": cfg.rule,
        "backend": cfg.backend,
        "device": cfg.device,
        "decorrelation": cfg.decorrelation.enabled,
        "status": status,
        "start_time": started.isoformat(),
        "end_time": ended.isoformat() if ended else None,
        "wall_time_s": wall,
    }


def _metrics_csv(metrics: dict[str, list[float]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(METRIC_KEYS)
    for row in zip(*(metrics[k] for k in METRIC_KEYS), strict=True):
        w.writerow([repr(v) if isinstance(v, float) else v for v in row])
    return buf.getvalue()


def _progress(enabled: bool, total: int, cfg: TrainConfig):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    decor = "decorrelated " if cfg.decorrelation.enabled else ""
    return tqdm(total=total, desc=f"{decor}{cfg.rule} on {cfg.backend}", unit="batch", leave=True)


def _plot_curves(path: Path, metrics: dict[str, list[float]], cfg: TrainConfig) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    ep = metrics["epoch"]
    ax1.plot(ep, metrics["train_loss"], "o-", label="train")
    ax1.plot(ep, metrics["test_loss"], "s-", label="test")
    ax1.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax2.plot(ep, metrics["train_accuracy"], "o-", label="train")
    ax2.plot(ep, metrics["test_accuracy"], "s-", label="test")
    ax2.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax1, ax2):
        ax.legend()
        ax.grid(alpha=0.3)
    decor = "decorrelated " if cfg.decorrelation.enabled else ""
    fig.suptitle(
        f"{decor}{cfg.rule.upper()} on {cfg.backend} ({cfg.device if cfg.backend != 'float' else 'float'}), "
        f"{cfg.data.dataset}, seed {cfg.seed}"
    )
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
