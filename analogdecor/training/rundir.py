"""Run directories: atomic writes, saving a trained network, loading it back.

Layout written by :func:`analogdecor.training.train`::

    config.toml         resolved TrainConfig + [resolved_tile] (the full TileConfig used)
    run.json            seed, package version, start/end time, wall time, status
    metrics.csv/.json   per-epoch train/test loss and accuracy
    model.npz           network state (tile states, biases, R, running means) + rule state
    conductances.npz    G+ / G- (uS) of every analogue layer, with their names
    pulses.npz          up / down pulses fired at every device (numba backend; training.pulses)
    learning_curves.png loss and accuracy per epoch
    checkpoint.npz      unfinished runs only: the rest of the training state, so that
                        resume() continues exactly (analogdecor.training.checkpoint)

Every file is written to a temporary name in the same directory and then
moved into place with ``os.replace``, so an interrupted run never leaves a
half-written file.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from analogdecor.config import from_dict, load_toml, to_dict
from analogdecor.crossbar.config import TileConfig
from analogdecor.errors import ConfigError, DataError
from analogdecor.training.config import TrainConfig
from analogdecor.training.tomlio import dumps_toml

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "build_network",
    "load_run",
    "load_run_config",
    "save_conductances",
    "save_model",
    "write_config",
]

MODEL_FILE = "model.npz"
CONFIG_FILE = "config.toml"


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and os.replace (all or nothing)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _atomic_write_with(path: str | Path, writer: Callable[[io.BytesIO], None]) -> None:
    buf = io.BytesIO()
    writer(buf)
    atomic_write_bytes(path, buf.getvalue())


def _flatten(prefix: str, value: Any, out: dict[str, np.ndarray]) -> None:
    """Nested dicts of arrays/scalars -> flat {dotted key: array}; strings are stored as 0-d str arrays."""
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif value is None:
        out[prefix + "#none"] = np.array(0)
    else:
        out[prefix] = np.asarray(value)


def _unflatten_value(arr: np.ndarray) -> Any:
    return arr.item() if arr.ndim == 0 else arr


def write_config(run_dir: Path, cfg: TrainConfig, tile_cfg: TileConfig) -> None:
    """config.toml: the TrainConfig plus a [resolved_tile] table with the full TileConfig."""
    data = to_dict(cfg)
    data["resolved_tile"] = to_dict(tile_cfg)
    atomic_write_text(run_dir / CONFIG_FILE, dumps_toml(data))


def load_run_config(run_dir: str | Path) -> tuple[TrainConfig, TileConfig]:
    """Read a run directory's config.toml: (TrainConfig, the TileConfig it resolved to)."""
    path = Path(run_dir) / CONFIG_FILE
    data = load_toml(path)
    tile_data = data.pop("resolved_tile", None)
    try:
        cfg = from_dict(TrainConfig, data)
        tile_cfg = from_dict(TileConfig, tile_data) if tile_data is not None else None
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if tile_cfg is None:
        from analogdecor.training.config import resolve_tile_config

        tile_cfg = resolve_tile_config(cfg)
    return cfg, tile_cfg


def build_network(cfg: TrainConfig, tile_cfg: TileConfig, n_features: int, n_classes: int):
    """The untrained network a config describes (same seed, same initial network)."""
    from analogdecor.networks import MLP
    from analogdecor.networks.build import architecture, input_shape
    from analogdecor.networks.build import build_network as build_layers

    m = cfg.model
    if m.layers or m.arch == "paper-convnet":
        return build_layers(
            m.layers or architecture(m.arch),
            input_shape(cfg.data.dataset, n_features, m.in_shape),
            n_classes,
            activation=m.activation,
            slope=m.slope,
            backend=cfg.backend,
            tile_config=tile_cfg,
            decorrelation=cfg.decorrelation if cfg.decorrelation.enabled else None,
            weight_scaling=m.weight_scaling,
            init=m.init,
            seed=cfg.seed,
        )
    hidden = (1000, 1000, 1000, 1000) if m.arch == "paper-mlp" else cfg.model.hidden
    widths = [n_features, *hidden, n_classes]
    return MLP.build(
        widths,
        activation=cfg.model.activation,
        slope=cfg.model.slope,
        backend=cfg.backend,
        tile_config=tile_cfg,
        decorrelation=cfg.decorrelation if cfg.decorrelation.enabled else None,
        weight_scaling=cfg.model.weight_scaling,
        init=cfg.model.init,
        seed=cfg.seed,
    )


def save_model(run_dir: Path, net: Any, rule_state: dict[str, Any]) -> None:
    """model.npz: the network's state dict (flattened) and the rule's fixed feedback matrices."""
    flat: dict[str, np.ndarray] = {}
    _flatten("net", net.state_dict(), flat)
    for i, B in enumerate(rule_state.get("feedback", [])):
        flat[f"rule.feedback.{i}"] = np.asarray(B)
    flat["meta.widths"] = np.asarray(net.widths, dtype=np.int64)
    _atomic_write_with(run_dir / MODEL_FILE, lambda fh: np.savez(fh, **flat))  # type: ignore[arg-type]


def save_conductances(run_dir: Path, net: Any) -> list[str]:
    """conductances.npz: for every analogue layer NAME the arrays NAME.g_plus and NAME.g_minus (uS)."""
    arrays: dict[str, np.ndarray] = {}
    names = []
    for name, tile in net.analog_layers():
        gp, gm = tile.conductances()
        arrays[f"{name}.g_plus"] = np.asarray(gp)
        arrays[f"{name}.g_minus"] = np.asarray(gm)
        names.append(name)
    arrays["names"] = np.asarray(names, dtype=str)
    _atomic_write_with(run_dir / "conductances.npz", lambda fh: np.savez(fh, **arrays))  # type: ignore[arg-type]
    return names


def _read_model(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise DataError(f"{path} does not exist: not a finished run directory")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable model file ({exc})") from None


def _nest(flat: dict[str, np.ndarray], prefix: str) -> dict[str, Any]:
    """Inverse of the network-state flattening below ``prefix`` (one level: tile keys may hold dots)."""
    out: dict[str, Any] = {}
    for k, v in flat.items():
        if not k.startswith(prefix):
            continue
        key = k[len(prefix) :]
        if key.endswith("#none"):
            out[key[: -len("#none")]] = None
        else:
            out[key] = _unflatten_value(v)
    return out


def load_run(run_dir: str | Path) -> tuple[TrainConfig, Any]:
    """Rebuild a trained network from its run directory: (TrainConfig, network).

    The network is rebuilt from the resolved config and its state (tile states
    via ``load_state_dict``) restored exactly, so its outputs equal the trained one's.
    """
    run_dir = Path(run_dir)
    cfg, tile_cfg = load_run_config(run_dir)
    flat = _read_model(run_dir / MODEL_FILE)
    if "meta.widths" not in flat:
        raise DataError(f"{run_dir / MODEL_FILE}: no 'meta.widths' entry; not written by analogdecor train")
    widths = [int(w) for w in flat["meta.widths"]]
    net = build_network(cfg, tile_cfg, widths[0], widths[-1])
    if net.widths != widths:
        raise DataError(f"{run_dir}: model widths {widths} do not match config.toml's {net.widths}")
    net.load_state_dict(_nest(flat, "net."))
    net.rule_state = {
        "feedback": [flat[f"rule.feedback.{i}"] for i in range(len(widths)) if f"rule.feedback.{i}" in flat]
    }
    return cfg, net


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
