"""checkpoint.npz: the training state beyond model.npz, so that an interrupted run resumes exactly.

model.npz holds the network (every tile's ``state_dict`` with its noise generator,
biases, R, running means, R-tile scales) and the rule's feedback matrices. A run
that continues from it must also continue every other stream and accumulator
exactly where it stopped; checkpoint.npz holds those:

``meta.*``
    format, epochs completed, the resolved config (TrainConfig + TileConfig as JSON),
    SHA-256 digests of model.npz and of the data set, the wall time spent so far.
``metrics.*``
    the per-epoch lists of every finished epoch.
``rng.order``, ``rng.noise``
    ``bit_generator.state`` (JSON) of the data-order and noise Generators of
    :func:`analogdecor.training.train`.
``optim.*``, ``updater.*``
    the optimiser's state (Adam's moments and step counts; SGD has none) and the
    analogue updater's per-device digital accumulators (``mixed`` mode).

It is written last at each epoch boundary, after model.npz, so the digest of
model.npz it records ties the two files together: a resume refuses a pair that
does not belong together instead of silently mixing epochs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from analogdecor.config import from_dict, to_dict
from analogdecor.crossbar.config import TileConfig
from analogdecor.errors import ConfigError, DataError
from analogdecor.training.config import TrainConfig
from analogdecor.training.rundir import MODEL_FILE, NPZ_ERRORS, _atomic_write_with

__all__ = ["CHECKPOINT_FILE", "Checkpoint", "data_digest", "read_checkpoint", "write_checkpoint"]

CHECKPOINT_FILE = "checkpoint.npz"
FORMAT = "analogdecor-checkpoint/1"


@dataclass
class Checkpoint:
    """What :func:`read_checkpoint` returns (all of it already checked against the run directory)."""

    epochs_completed: int
    metrics: dict[str, list[float]]
    rng_states: dict[str, dict[str, Any]]
    """``bit_generator.state`` of each named Generator ("order", "noise")."""
    optimizer: dict[str, np.ndarray]
    updater: dict[str, np.ndarray]
    wall_time_s: float


def config_json(cfg: TrainConfig, tile_cfg: TileConfig) -> str:
    """The resolved configuration of a run as canonical JSON (what a resume must match)."""
    return json.dumps({"train": to_dict(cfg), "resolved_tile": to_dict(tile_cfg)}, sort_keys=True)


def data_digest(*arrays: np.ndarray) -> str:
    """SHA-256 over the dtypes, shapes and bytes of ``arrays`` (the data set a run trains on)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.data)
    return h.hexdigest()


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_checkpoint(
    run_dir: Path, *, config: str, data_sha256: str, metrics: dict[str, list[float]],
    rngs: dict[str, np.random.Generator], optimizer: Any, updater: Any, wall_time_s: float,
) -> None:  # fmt: skip
    """Write checkpoint.npz atomically; call it after model.npz of the same epoch is in place.

    Parameters
    ----------
    config : str
        :func:`config_json` of the run.
    data_sha256 : str
        :func:`data_digest` of the training and test arrays.
    rngs : dict of Generator
        Every Generator the training loop draws from, by name.
    optimizer, updater
        Objects with ``state_dict()`` (the digital optimiser; the AnalogUpdater).
    """
    flat: dict[str, Any] = {
        "meta.format": np.str_(FORMAT),
        "meta.epochs_completed": np.int64(len(metrics["epoch"])),
        "meta.config": np.str_(config),
        "meta.data_sha256": np.str_(data_sha256),
        "meta.model_sha256": np.str_(_file_digest(run_dir / MODEL_FILE)),
        "meta.wall_time_s": np.float64(wall_time_s),
    }
    for key, values in metrics.items():
        flat[f"metrics.{key}"] = np.asarray(values, dtype=np.int64 if key == "epoch" else np.float64)
    for name, rng in rngs.items():
        flat[f"rng.{name}"] = np.str_(json.dumps(rng.bit_generator.state))
    for key, arr in optimizer.state_dict().items():
        flat[f"optim.{key}"] = np.asarray(arr)
    for key, arr in updater.state_dict().items():
        flat[f"updater.{key}"] = np.asarray(arr)
    _atomic_write_with(run_dir / CHECKPOINT_FILE, lambda fh: np.savez(fh, **flat))  # type: ignore[arg-type]


def read_checkpoint(run_dir: Path, *, config: str, data_sha256: str) -> Checkpoint:
    """Read checkpoint.npz and check that it belongs to this run directory's config, data and model.npz.

    Raises
    ------
    DataError
        checkpoint.npz missing or unreadable, the data set differs from the one
        the run started with, or model.npz is not the one the checkpoint was written with.
    ConfigError
        config.toml does not match the config the checkpoint was written with
        (the message names the differing fields).
    """
    path = run_dir / CHECKPOINT_FILE
    if not path.is_file():
        raise DataError(f"{path} does not exist: this run directory has no checkpoint to resume from")
    try:
        with np.load(path, allow_pickle=False) as npz:
            flat = {k: npz[k] for k in npz.files}
    except NPZ_ERRORS as exc:
        raise DataError(f"{path}: not a readable checkpoint ({exc})") from None
    if str(flat.get("meta.format", "")) != FORMAT:
        raise DataError(f"{path}: not an analogdecor checkpoint (expected format {FORMAT!r})")
    needed = ("meta.config", "meta.data_sha256", "meta.model_sha256", "meta.epochs_completed", "meta.wall_time_s")
    if missing := [k for k in needed if k not in flat]:
        raise DataError(f"{path}: damaged checkpoint, entries missing: {', '.join(missing)}")
    saved = _current_form(str(flat["meta.config"]))
    if saved != config:
        diff = _differing_keys(json.loads(saved), json.loads(config))
        raise ConfigError(
            f"{run_dir / 'config.toml'} does not match the config {path} was written with "
            f"(differs in: {', '.join(diff)}); a resumed run must keep its config"
        )
    if str(flat["meta.data_sha256"]) != data_sha256:
        raise DataError(
            f"{path}: the data set loaded now differs from the one this run was trained on "
            "(the data files changed?); it cannot be resumed exactly"
        )
    model = run_dir / MODEL_FILE
    if not model.is_file() or _file_digest(model) != str(flat["meta.model_sha256"]):
        raise DataError(
            f"{model} is not the model {path} was written with (the run was stopped while "
            "checkpointing, or a file was replaced); it cannot be resumed exactly"
        )

    def section(prefix: str) -> dict[str, np.ndarray]:
        return {k[len(prefix) :]: v for k, v in flat.items() if k.startswith(prefix)}

    metrics = {k: v.tolist() for k, v in section("metrics.").items()}
    return Checkpoint(
        epochs_completed=int(flat["meta.epochs_completed"]),
        metrics=metrics,
        rng_states={k: json.loads(str(v)) for k, v in section("rng.").items()},
        optimizer=section("optim."),
        updater=section("updater."),
        wall_time_s=float(flat["meta.wall_time_s"]),
    )


def _current_form(saved: str) -> str:
    """A saved :func:`config_json` as the current config classes write it.

    Fields added to TrainConfig or TileConfig after a checkpoint was written are absent
    from its JSON; read back through the classes they take their defaults, which
    reproduce the behaviour of the time. Unreadable JSON is returned unchanged (the
    caller then reports the difference).
    """
    try:
        data = json.loads(saved)
        return json.dumps({"train": to_dict(from_dict(TrainConfig, data["train"])),
                           "resolved_tile": to_dict(from_dict(TileConfig, data["resolved_tile"]))},
                          sort_keys=True)  # fmt: skip
    except (ConfigError, KeyError, TypeError, ValueError):
        return saved


def _differing_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted paths where two nested dicts differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b)):
            p = f"{prefix}.{k}" if prefix else str(k)
            out += _differing_keys(a.get(k), b.get(k), p) if k in a and k in b else [p]
        return out
    return [] if a == b else [prefix]
