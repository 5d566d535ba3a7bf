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
half-written file. A process that writes a run directory holds its lock
(:class:`analogdecor._lock.DirLock`, file ``.analogdecor.lock``) throughout; a
second writer is refused with an error naming the holder, and a directory that
already holds files is only written into when the caller asks to overwrite it
(its old contents are removed first) or resumes it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import io
import json
import os
import shutil
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from analogdecor._lock import DirLock, directory_entries, output_error
from analogdecor.config import from_dict, load_toml, to_dict
from analogdecor.crossbar.config import TileConfig
from analogdecor.errors import ConfigError, DataError, OutputError
from analogdecor.training.config import TrainConfig
from analogdecor.training.tomlio import dumps_toml

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "build_network",
    "check_run_status",
    "claim_run_dir",
    "load_run",
    "load_run_config",
    "save_conductances",
    "save_model",
    "write_config",
]

#: What reading a damaged .npz can raise (a truncated zip, a corrupted deflate stream, a bad header).
NPZ_ERRORS: tuple[type[BaseException], ...] = (
    OSError, ValueError, EOFError, KeyError, IndexError, RuntimeError, struct.error, zipfile.BadZipFile,
    zipfile.LargeZipFile, zlib.error,
)  # RuntimeError covers zipfile's NotImplementedError for a compression method flipped by corruption

MODEL_FILE = "model.npz"
CONFIG_FILE = "config.toml"


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and os.replace (all or nothing).

    The data is fsync'ed before the rename, so after a crash ``path`` holds either the
    old or the new content, never a mix. Raises :class:`OutputError` (naming the path and
    the reason: read-only, disk full, a file in the way) when it cannot be written.
    """
    path = Path(path)
    try:
        _atomic_write(path, data)
    except OSError as exc:
        raise output_error(path, exc) from None


def _atomic_write(path: Path, data: bytes) -> None:
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
    with contextlib.suppress(OSError):  # make the rename itself durable (not possible everywhere)
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


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
    except NPZ_ERRORS as exc:
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
    try:
        net.load_state_dict(_nest(flat, "net."))
    except (KeyError, ValueError, TypeError, IndexError) as exc:  # entries missing, wrong shapes, bad values
        raise DataError(
            f"{run_dir / MODEL_FILE}: the network state is incomplete or malformed ({type(exc).__name__}: {exc})"
        ) from None
    net.rule_state = {
        "feedback": [flat[f"rule.feedback.{i}"] for i in range(len(widths)) if f"rule.feedback.{i}" in flat]
    }
    return cfg, net


def write_json(path: Path, data: Any) -> None:
    """``data`` as strict JSON (NaN and inf become ``null``, which every JSON reader accepts), atomically."""
    atomic_write_text(path, json_dumps(data, indent=2) + "\n")


def json_dumps(data: Any, **kwargs: Any) -> str:
    """json.dumps of plain data with NumPy values and paths; non-finite floats become ``null``.

    Python's json writes NaN as a bare ``NaN``, which is not JSON: other tools (jq, browsers,
    pandas with a strict parser) reject the whole file.
    """
    kwargs.setdefault("default", _json_default)
    return json.dumps(_finite(data), allow_nan=False, **kwargs)


def _finite(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        obj = obj.tolist()
    elif isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


# --------------------------------------------------------------------------- claiming a run directory
RUN_STATUSES = ("running", "finished", "diverged", "interrupted", "failed")


@contextlib.contextmanager
def claim_run_dir(run_dir: Path | None, *, overwrite: bool = False, resume: bool = False) -> Iterator[None]:
    """Hold ``run_dir``'s writer lock for the block; mark run.json ``failed`` if the block raises.

    Parameters
    ----------
    run_dir : Path or None
        The run directory (created if missing). None: nothing is claimed.
    overwrite : bool
        A directory that holds files is refused (:class:`OutputError`) unless this is
        set; then its old contents (earlier exports, evaluations, checkpoints) are
        removed first, so nothing of the old run can be mistaken for the new one's.
    resume : bool
        Continue the run the directory holds (no emptiness check).

    Raises
    ------
    LockedError
        Another process writes (or reads) the directory; the message names it.
    OutputError
        The directory holds files and neither ``overwrite`` nor ``resume`` was given, or
        it cannot be created or written.

    Notes
    -----
    An exception inside the block (other than Ctrl-C, which training records as
    ``interrupted`` itself) sets run.json's status to ``failed`` with the error, so a run
    that stopped on an error never stays ``running``. (Files that cannot be written raise
    :class:`OutputError` naming the path from :func:`atomic_write_bytes`.)
    """
    if run_dir is None:
        yield
        return
    if run_dir.exists() and not run_dir.is_dir():
        raise OutputError(f"{run_dir} is a file, not a directory: choose another output directory")
    lock = DirLock(run_dir, "run directory", purpose="train").acquire()
    try:
        entries = directory_entries(run_dir)
        if entries and not resume:
            if not overwrite:
                raise OutputError(
                    f"{run_dir} is not empty ({_describe_run(run_dir, entries)}): pass --overwrite "
                    "(overwrite=True) to replace it, --resume to continue an interrupted run, or choose "
                    "another output directory"
                )
            for name in entries:
                _remove(run_dir / name)
        try:
            yield
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            _mark_failed(run_dir, exc)
            raise
    finally:
        lock.release()


def _remove(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except OSError as exc:
        raise output_error(path, exc, "remove") from None


def _describe_run(run_dir: Path, entries: list[str]) -> str:
    try:
        status = json.loads((run_dir / "run.json").read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        status = None
    shown = ", ".join(entries[:4]) + (", ..." if len(entries) > 4 else "")
    return f"a run whose status is {status!r}: {shown}" if status else f"holds {shown}"


def _mark_failed(run_dir: Path, exc: BaseException) -> None:
    """Best effort: run.json says ``failed`` with the error (it may itself be unwritable)."""
    path = run_dir / "run.json"
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    if not isinstance(info, dict) or info.get("status") != "running":
        return
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    info.update(status="failed", error=f"{type(exc).__name__}: {message}".rstrip(": "),
                end_time=_dt.datetime.now(_dt.UTC).isoformat())  # fmt: skip
    with contextlib.suppress(OSError, OutputError):
        write_json(path, info)


def check_run_status(run_dir: str | Path, *, force: bool = False, action: str = "use") -> str:
    """The status in ``run_dir``'s run.json; a :class:`DataError` unless it is ``finished`` (or ``force``).

    A run that diverged, is still running, was interrupted or failed holds a network
    that is not the trained result; exporting or evaluating it would hand on numbers
    that look like results. With ``force`` such a run is accepted with a
    ``UserWarning`` that says what it is.
    """
    import warnings

    run_dir = Path(run_dir)
    path = run_dir / "run.json"
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path} does not exist: not a run directory written by analogdecor train") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not readable JSON ({exc})") from None
    status = info.get("status") if isinstance(info, dict) else None
    if status == "finished":
        return status
    what = {
        "diverged": "diverged (a non-finite loss stopped training; its network is not a trained one)",
        "running": "still running, or its process was killed (resume it with analogdecor train --resume)",
        "interrupted": "interrupted (resume it with analogdecor train --resume)",
        "failed": f"failed ({info.get('error', 'see run.json')})",
    }.get(str(status), f"of unknown status {status!r}")
    message = f"{run_dir}: the run is {what}"
    if not force:
        raise DataError(f"{message}; refusing to {action} it (pass --force / force=True to {action} it anyway)")
    warnings.warn(f"{message}; {action} it anyway because of --force", UserWarning, stacklevel=2)
    return str(status)
