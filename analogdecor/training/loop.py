"""The training loop: validate everything, train, evaluate per epoch, write the run directory."""

from __future__ import annotations

import datetime as _dt
import functools
import io
import json
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import numpy as np

from analogdecor import __version__
from analogdecor._signals import signals_deferred
from analogdecor.errors import ConfigError, DataError, NonFiniteError
from analogdecor.training.checkpoint import (
    CHECKPOINT_FILE,
    Checkpoint,
    config_json,
    data_digest,
    read_checkpoint,
    write_checkpoint,
)
from analogdecor.training.config import TrainConfig, resolve_tile_config
from analogdecor.training.data import augment_batch, image_shape, load_run_data
from analogdecor.training.metrics import METRIC_KEYS, metric_keys, metrics_csv, top_k_correct
from analogdecor.training.pulses import EnduranceWarning, check_endurance, save_pulse_counts
from analogdecor.training.rundir import (
    atomic_write_bytes,
    atomic_write_text,
    build_network,
    claim_run_dir,
    save_conductances,
    save_model,
    write_config,
    write_json,
)

__all__ = ["METRIC_KEYS", "TrainResult", "evaluate", "prepare", "resume", "train"]


@dataclass
class TrainResult:
    """What :func:`train` returns."""

    metrics: dict[str, list[float]]
    """Per-epoch lists: epoch, train_loss, train_accuracy, test_loss, test_accuracy, epoch_time_s; with
    more than 10 classes test_top5_accuracy; with a validation split val_loss, val_accuracy (and
    val_top5_accuracy). See :func:`analogdecor.training.metrics.metric_keys`."""
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
    if not isinstance(cfg, TrainConfig):
        raise ConfigError(f"expected a TrainConfig, got {type(cfg).__name__}")
    tile_cfg = resolve_tile_config(cfg)
    if cfg.backend == "aihwkit":
        from analogdecor.backends import make_tile

        make_tile("aihwkit", 1, 1, tile_cfg, seed=0)  # import guard + translation check, before any data
    ds = load_run_data(cfg)
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
    if cfg.data.augment:
        image_shape(cfg, ds)  # a ConfigError now, not in the first batch, for data without an image shape
    return tile_cfg, ds


@overload
def evaluate(net: Any, x: np.ndarray, y: np.ndarray, batch_size: int = ...) -> tuple[float, float]: ...
@overload
def evaluate(
    net: Any, x: np.ndarray, y: np.ndarray, batch_size: int = ..., *, top_k: int
) -> tuple[float, float, float]: ...
def evaluate(
    net: Any, x: np.ndarray, y: np.ndarray, batch_size: int = 1000, *, top_k: int | None = None
) -> tuple[float, float] | tuple[float, float, float]:
    """Mean softmax cross-entropy and accuracy of ``net`` on (x, y) in evaluation mode.

    With ``top_k``, also the top-k accuracy (:func:`~analogdecor.training.metrics.top_k_correct`),
    as a third value.
    """
    from analogdecor.learning import softmax_xent

    losses, correct, in_top = [], 0, 0
    for s in range(0, len(x), batch_size):
        logits = net.forward(x[s : s + batch_size])
        loss, _ = softmax_xent(logits, y[s : s + batch_size])
        losses.append(loss)
        correct += int(np.sum(np.argmax(logits, axis=1) == y[s : s + batch_size]))
        if top_k is not None:
            in_top += top_k_correct(logits, y[s : s + batch_size], top_k)
    loss_mean, acc = float(np.mean(np.concatenate(losses))), correct / len(x)
    return (loss_mean, acc) if top_k is None else (loss_mean, acc, in_top / len(x))


def _split_metrics(split: str, net: Any, x: np.ndarray, y: np.ndarray, batch_size: int, top5: bool) -> dict[str, float]:
    """``<split>_loss``, ``<split>_accuracy`` and (``top5``) ``<split>_top5_accuracy`` of ``net`` on (x, y)."""
    if top5:
        loss, acc, top = evaluate(net, x, y, batch_size, top_k=5)
        return {f"{split}_loss": loss, f"{split}_accuracy": acc, f"{split}_top5_accuracy": top}
    loss, acc = evaluate(net, x, y, batch_size)
    return {f"{split}_loss": loss, f"{split}_accuracy": acc}


def _refit_zca(net: Any, x: np.ndarray) -> None:
    """zca rule: refit each layer's R from the current inputs of that layer (patches of a conv), first to last."""
    x = np.asarray(x, dtype=np.float32)
    for i, layer in net.param_layers():
        layer.decor.refit_zca(layer.decor_rows(net.forward_pass(x, train=False)[i])[0])


def train(
    cfg: TrainConfig, out_dir: str | Path | None = None, *, progress: bool = True, overwrite: bool = False
) -> TrainResult:
    """Train the network ``cfg`` describes and (if ``out_dir``) write its run directory.

    Parameters
    ----------
    cfg : TrainConfig
    out_dir : path, optional
        Run directory to create; None: nothing is written. It is locked while the run
        writes it (a second writer gets :class:`~analogdecor.errors.LockedError`).
    progress : bool
        Show a tqdm progress bar on stderr.
    overwrite : bool
        Replace a run directory that already holds files (its old contents are removed
        first); without it such a directory is refused with
        :class:`~analogdecor.errors.OutputError`.

    Returns
    -------
    TrainResult
        ``metrics`` holds per-epoch lists (train_loss, train_accuracy, test_loss,
        test_accuracy, epoch_time_s); ``network`` the trained network.

    Notes
    -----
    Per batch: the rule gives per-layer (z, delta) (:func:`analogdecor.learning.compute_signals`),
    weights and biases are updated, then every decorrelating R takes one step of its own rule
    on the clean pass, all through one :class:`analogdecor.learning.UpdateRouter`. Training metrics are running
    means over the epoch's clean passes; test metrics are measured after each epoch.

    At every epoch boundary before the last, model.npz, metrics.json/.csv and (except on
    the aihwkit backend) checkpoint.npz are written, so that :func:`resume` can continue
    an interrupted run exactly.
    """
    tile_cfg, ds = prepare(cfg)
    run_dir = Path(out_dir) if out_dir is not None else None
    with claim_run_dir(run_dir, overwrite=overwrite):  # locked; refused if it holds files, unless overwrite
        return _start(cfg, tile_cfg, ds, run_dir, progress)


def _start(cfg: TrainConfig, tile_cfg: Any, ds: Any, run_dir: Path | None, progress: bool) -> TrainResult:
    started = _dt.datetime.now(_dt.UTC)
    if run_dir is not None:
        (run_dir / CHECKPOINT_FILE).unlink(missing_ok=True)  # a previous attempt's, if resume restarts
        write_config(run_dir, cfg, tile_cfg)
        write_json(run_dir / "run.json", _run_info(cfg, started, None, None, "running"))
    net = build_network(cfg, tile_cfg, ds.x_train.shape[1], ds.n_classes)
    return _fit(cfg, tile_cfg, ds, net, run_dir, progress, started=started)


def resume(run_dir: str | Path, *, progress: bool = True) -> TrainResult:
    """Continue an interrupted run from its last checkpoint to its configured number of epochs.

    The result (metrics, the final network, every file of the run directory) is bit for
    bit the one an uninterrupted run with the same config gives: checkpoint.npz holds,
    next to model.npz, the data-order and noise generators, the optimiser and the
    analogue updater's state (see :mod:`analogdecor.training.checkpoint`); the tiles'
    own noise generators are in their ``state_dict`` in model.npz. Only the epoch
    times differ.

    Parameters
    ----------
    run_dir : path
        A run directory written by :func:`train` whose run.json says ``interrupted``
        (Ctrl-C) or still ``running`` (the process was killed).
    progress : bool
        Show a tqdm progress bar on stderr.

    Raises
    ------
    ConfigError
        The run is finished or diverged (nothing to resume), it ran on the aihwkit
        backend (its clock-seeded simulator noise cannot be saved, so no exact resume
        exists), or config.toml no longer matches the checkpoint.
    DataError
        run.json or checkpoint.npz is missing or unreadable, or model.npz / the data
        set are not those the checkpoint was written with.
    """
    run_dir = Path(run_dir)
    _read_run_info(run_dir)  # a clear error for a directory that is not a run, before locking it
    with claim_run_dir(run_dir, resume=True):
        return _resume(run_dir, progress)


def _resume(run_dir: Path, progress: bool) -> TrainResult:
    from analogdecor.training.rundir import load_run, load_run_config

    info = _read_run_info(run_dir)
    cfg, tile_cfg = load_run_config(run_dir)
    status = info.get("status")
    if status in ("finished", "diverged"):
        raise ConfigError(f"{run_dir / 'run.json'}: the run is already {status}; nothing to resume")
    if status not in ("interrupted", "running", "failed"):
        raise DataError(f"{run_dir / 'run.json'}: unknown status {status!r}; cannot resume")
    if cfg.backend == "aihwkit":
        raise ConfigError(
            f"{run_dir}: runs on the aihwkit backend cannot be resumed: aihwkit seeds its simulator noise "
            "from the clock and cannot save or restore it, so a resumed run could not equal an "
            "uninterrupted one; train it again (or use backend 'numba', which resumes exactly)"
        )
    if not (run_dir / CHECKPOINT_FILE).is_file() and info.get("epochs_completed") == 0:
        # Stopped before the first epoch boundary: nothing was trained yet, so starting again is exact.
        tile_cfg, ds = prepare(cfg)
        return _start(cfg, tile_cfg, ds, run_dir, progress)
    _, ds = prepare(cfg)
    ckpt = read_checkpoint(
        run_dir, config=config_json(cfg, tile_cfg), data_sha256=data_digest(*_data_arrays(ds))
    )
    _, net = load_run(run_dir)
    started = _dt.datetime.fromisoformat(info["start_time"])
    resumed = [*info.get("resumed", []), {"time": _dt.datetime.now(_dt.UTC).isoformat(),
                                           "from_epoch": ckpt.epochs_completed}]  # fmt: skip
    extra = {"resumed": resumed}
    write_json(run_dir / "run.json", {**_run_info(cfg, started, None, None, "running"), **extra})
    return _fit(cfg, tile_cfg, ds, net, run_dir, progress, started=started, checkpoint=ckpt, extra_info=extra)


def _fit(
    cfg: TrainConfig, tile_cfg: Any, ds: Any, net: Any, run_dir: Path | None, progress: bool, *,
    started: _dt.datetime, checkpoint: Checkpoint | None = None, extra_info: dict[str, Any] | None = None,
) -> TrainResult:  # fmt: skip
    """The training loop of :func:`train`, from scratch or (``checkpoint``) from an epoch boundary."""
    from analogdecor.learning import (
        AnalogUpdater,
        UpdateRouter,
        compute_signals,
        init_rule_state,
        make_optimizer,
    )

    t0 = time.perf_counter()
    extra_info = extra_info or {}
    # Streams of the run's seed: 0 data order, 1 noise, 3 augmentation (2 is the validation split's,
    # see analogdecor.data.load_dataset); new streams leave the draws of the older ones unchanged.
    order_rng, noise_rng, _, augment_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(cfg.seed).spawn(4))
    rngs = {"order": order_rng, "noise": noise_rng}
    if cfg.data.augment:
        rngs["augment"] = augment_rng
    keys = metric_keys(ds.n_classes, ds.y_val is not None)
    top5 = "test_top5_accuracy" in keys
    rule_state = init_rule_state(cfg.rule, net, cfg.seed, cfg.model.init)
    o = cfg.optim
    optimizer = make_optimizer(o.optimizer, o.lr, beta1=o.beta1, beta2=o.beta2, eps=o.eps)
    updater = AnalogUpdater(o.analog_update, o.update_rank)
    router = UpdateRouter(optimizer, cfg.analog_lr, updater)
    metrics: dict[str, list[float]] = {k: [] for k in keys}
    wall_before = 0.0
    if checkpoint is not None:
        for name, rng in rngs.items():
            rng.bit_generator.state = checkpoint.rng_states[name]
        optimizer.load_state_dict(checkpoint.optimizer)
        updater.load_state_dict(checkpoint.updater)
        done_before = len(checkpoint.metrics["epoch"])
        # a checkpoint written before a metric existed (top-5 of a >10-class run) has NaN for its epochs
        metrics = {k: list(checkpoint.metrics.get(k, [float("nan")] * done_before)) for k in keys}
        wall_before = checkpoint.wall_time_s
    saver = None
    if run_dir is not None and cfg.backend != "aihwkit":  # aihwkit's noise cannot be checkpointed
        saver = functools.partial(
            write_checkpoint, run_dir, config=config_json(cfg, tile_cfg),
            data_sha256=data_digest(*_data_arrays(ds)), rngs=rngs,
            optimizer=optimizer, updater=updater,
        )  # fmt: skip

    n = len(ds.x_train)
    n_batches = math.ceil(n / o.batch_size)
    done = len(metrics["epoch"])
    bar = _progress(progress, o.epochs * n_batches, cfg, initial=done * n_batches)
    status = "finished"
    zca = cfg.decorrelation.enabled and cfg.decorrelation.rule == "zca"
    checkpointed = done
    endurance = _EnduranceMonitor()
    try:
        for epoch in range(done + 1, o.epochs + 1):
            te = time.perf_counter()
            if zca:
                pick = order_rng.choice(n, size=min(n, cfg.decorrelation.zca_samples), replace=False)
                _refit_zca(net, ds.x_train[pick])
            perm = order_rng.permutation(n)
            loss_sum, correct, seen = 0.0, 0, 0
            for s in range(0, n, o.batch_size):
                idx = perm[s : s + o.batch_size]
                xb, yb = ds.x_train[idx], ds.y_train[idx]
                if cfg.data.augment:
                    xb = augment_batch(cfg, ds, xb, augment_rng)
                with np.errstate(over="ignore", invalid="ignore"):  # divergence is detected just below
                    result = compute_signals(
                        cfg.rule, net, xb, yb, rule_state, sigma=o.np_sigma, rng=noise_rng,
                        passes=o.np_passes,
                    )
                batch_loss = float(np.mean(result.loss))
                if not math.isfinite(batch_loss):
                    status = "diverged"
                    break
                router.step(net, result)
                loss_sum += batch_loss * len(idx)
                correct += int(np.sum(np.argmax(result.logits, axis=1) == yb))
                seen += len(idx)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(epoch=epoch, loss=f"{loss_sum / seen:.3f}", refresh=False)
            if status == "diverged":
                break
            with np.errstate(over="ignore", invalid="ignore"):
                row = _split_metrics("test", net, ds.x_test, ds.y_test, o.eval_batch_size, top5)
                if ds.x_val is not None:
                    row.update(_split_metrics("val", net, ds.x_val, ds.y_val, o.eval_batch_size, top5))
            test_loss, test_acc = row["test_loss"], row["test_accuracy"]
            if not math.isfinite(test_loss):
                status = "diverged"
            row.update(epoch=epoch, train_loss=loss_sum / seen, train_accuracy=correct / seen,
                       epoch_time_s=time.perf_counter() - te)  # fmt: skip
            for k in keys:
                metrics[k].append(row[k])
            if bar is not None:
                bar.write(
                    f"epoch {epoch}/{o.epochs}: train loss {loss_sum / seen:.4f} acc {correct / seen:.4f} | "
                    f"test loss {test_loss:.4f} acc {test_acc:.4f}"
                    + (f" | val loss {row['val_loss']:.4f} acc {row['val_accuracy']:.4f}" if "val_loss" in row else "")
                )
            if status == "diverged":
                break
            endurance.check(net)
            if run_dir is not None and epoch < o.epochs:
                # Checkpoint at every epoch boundary: an interrupted run keeps every finished
                # epoch's metrics and the model as it was at the end of the last one, and
                # checkpoint.npz (written last) lets resume() continue it exactly.
                with signals_deferred():  # Ctrl-C and SIGTERM wait until the checkpoint's files are all written
                    _write_checkpoint(run_dir, net, rule_state, metrics)
                    if saver is not None:
                        saver(metrics=metrics, wall_time_s=wall_before + time.perf_counter() - t0)
                    checkpointed = epoch
    except NonFiniteError:  # an analogue tile met NaN/inf (inputs or updated weights): the run diverged
        status = "diverged"
    except KeyboardInterrupt:
        if run_dir is not None:
            wall = wall_before + time.perf_counter() - t0
            info = _run_info(cfg, started, _dt.datetime.now(_dt.UTC), wall, "interrupted")
            info["epochs_completed"] = checkpointed
            write_json(run_dir / "run.json", {**info, **extra_info})
        raise
    finally:
        if bar is not None:
            bar.close()
    # A diverged run keeps one entry per epoch: NaN from the epoch where it failed.
    while len(metrics["epoch"]) < o.epochs:
        metrics["epoch"].append(len(metrics["epoch"]) + 1)
        for k in keys[1:]:
            metrics[k].append(float("nan"))
    wall = wall_before + time.perf_counter() - t0
    out = TrainResult(metrics=metrics, run_dir=run_dir, network=net, config=cfg, status=status)
    net.rule_state = rule_state
    if run_dir is not None:
        _write_checkpoint(run_dir, net, rule_state, metrics)
        (run_dir / CHECKPOINT_FILE).unlink(missing_ok=True)  # only an unfinished run needs it
        out.info["analog_layers"] = save_conductances(run_dir, net)
        out.info["pulses"] = save_pulse_counts(run_dir, net)
        _plot_curves(run_dir / "learning_curves.png", metrics, cfg)
        ended = _dt.datetime.now(_dt.UTC)
        trained = sum(1 for v in metrics["train_loss"] if math.isfinite(v))
        pulses: dict[str, Any] = {"training_steps": trained * n_batches}  # the cost model's steps (pulses per step)
        if out.info["pulses"]:
            pulses["pulses"] = out.info["pulses"]
            worn = check_endurance(net, warn=False)  # the warnings were given during training
            if worn:
                pulses["endurance_exceeded"] = worn
        if ds.channel_mean is not None and ds.channel_std is not None:  # what a deployed network's inputs need
            pulses["input_normalization"] = {"channel_mean": np.asarray(ds.channel_mean).ravel().tolist(),
                                              "channel_std": np.asarray(ds.channel_std).ravel().tolist()}  # fmt: skip
        write_json(run_dir / "run.json", {**_run_info(cfg, started, ended, wall, status), **pulses, **extra_info})
    out.info["wall_time_s"] = wall
    return out


class _EnduranceMonitor:
    """Warns (EnduranceWarning) the first time a layer has a device past ``device.endurance``."""

    def __init__(self) -> None:
        self.warned: set[str] = set()

    def check(self, net: Any) -> None:
        for rec in check_endurance(net, warn=False):
            if rec["layer"] not in self.warned:
                self.warned.add(rec["layer"])
                warnings.warn(
                    f"{rec['layer']}: {rec['devices_over']} device(s) received more pulses than the preset's "
                    f"endurance ({rec['max_pulses']} > device.endurance = {rec['endurance']:g})",
                    EnduranceWarning,
                    stacklevel=3,
                )


def _data_arrays(ds: Any) -> tuple[np.ndarray, ...]:
    val = () if ds.x_val is None else (ds.x_val, ds.y_val)  # runs without a validation split: as before
    return ds.x_train, ds.y_train, ds.x_test, ds.y_test, *val


def _read_run_info(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "run.json"
    if not path.is_file():
        raise DataError(f"{path} does not exist: not a run directory written by analogdecor train")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not readable JSON ({exc})") from None


def _write_checkpoint(
    run_dir: Path, net: Any, rule_state: dict[str, Any], metrics: dict[str, list[float]]
) -> None:
    """model.npz, metrics.json and metrics.csv as of now (each written atomically)."""
    save_model(run_dir, net, rule_state)
    write_json(run_dir / "metrics.json", metrics)
    atomic_write_text(run_dir / "metrics.csv", metrics_csv(metrics))


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


def _progress(enabled: bool, total: int, cfg: TrainConfig, initial: int = 0):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    decor = "decorrelated " if cfg.decorrelation.enabled else ""
    return tqdm(
        total=total, initial=initial, desc=f"{decor}{cfg.rule} on {cfg.backend}", unit="batch", leave=True
    )


def _plot_curves(path: Path, metrics: dict[str, list[float]], cfg: TrainConfig) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    ep = metrics["epoch"]
    ax1.plot(ep, metrics["train_loss"], "o-", label="train")
    ax1.plot(ep, metrics["test_loss"], "s-", label="test")
    if "val_loss" in metrics:
        ax1.plot(ep, metrics["val_loss"], "^-", label="validation")
    ax1.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax2.plot(ep, metrics["train_accuracy"], "o-", label="train")
    ax2.plot(ep, metrics["test_accuracy"], "s-", label="test")
    if "val_accuracy" in metrics:
        ax2.plot(ep, metrics["val_accuracy"], "^-", label="validation")
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
