"""Export a trained network's conductance maps, and rebuild a network from an export."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

import numpy as np

from analogdecor import __version__
from analogdecor.errors import ExportFormatError
from analogdecor.export.formats import SUFFIX, _check_format, read_export, write_export
from analogdecor.export.records import ConductanceExport, collect_layers, digital_state

__all__ = ["build_export", "export_network", "export_run", "import_network", "load_into"]


def build_export(network: Any, *, meta: dict[str, Any] | None = None) -> ConductanceExport:
    """Collect every analogue layer's conductances and the digital state of ``network``.

    Parameters
    ----------
    network : object
        Anything with ``analog_layers()`` and ``state_dict()`` (e.g. :class:`analogdecor.networks.mlp.MLP`).
    meta : dict, optional
        Run metadata to record (seed, device_preset, run_config, ...); the package
        version and the creation time are added.
    """
    info = {
        "package_version": __version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        **(meta or {}),
    }
    return ConductanceExport(layers=collect_layers(network), meta=info, digital=digital_state(network))


def export_network(
    network: Any, path: str | Path, fmt: str = "npz", *, meta: dict[str, Any] | None = None
) -> list[Path]:
    """Write ``network``'s conductance maps to ``path`` in format ``fmt`` (npz, hdf5, csv, png)."""
    return write_export(build_export(network, meta=meta), path, fmt)


def _run_meta(run_dir: Path, cfg: Any) -> dict[str, Any]:
    import json

    from analogdecor.config import to_dict

    meta: dict[str, Any] = {"run_dir": str(run_dir), "run_config": to_dict(cfg)}
    run_json = run_dir / "run.json"
    if run_json.is_file():
        try:
            record = json.loads(run_json.read_text())
        except json.JSONDecodeError:
            record = {}
        for key in ("seed", "device", "device_preset"):
            if key in record:
                meta[key] = record[key]
        for key in (
            "version",
            "package_version",
        ):  # the version that trained; package_version is the exporter's
            if key in record:
                meta["trained_with_version"] = record[key]
    run_cfg = meta["run_config"]
    if "seed" not in meta and isinstance(run_cfg, dict) and "seed" in run_cfg:
        meta["seed"] = run_cfg["seed"]
    if "device_preset" not in meta and isinstance(run_cfg, dict):
        for key in ("device", "device_preset", "preset"):
            if isinstance(run_cfg.get(key), str):
                meta["device_preset"] = run_cfg[key]
                break
    return meta


def export_run(
    run_dir: str | Path, fmt: str = "npz", out: str | Path | None = None, *, force: bool = False
) -> list[Path]:
    """Export a training run directory (``analogdecor export RUN_DIR --format FMT``).

    The network is loaded with :func:`analogdecor.training.load_run`; the output
    defaults to ``RUN_DIR/export/conductances.npz`` / ``.h5`` or the folders
    ``RUN_DIR/export/csv`` / ``png``. Only a ``finished`` run is exported
    (``force=True`` accepts a diverged, interrupted or unfinished one with a warning);
    the run directory is held under a shared lock meanwhile, so that no training
    process rewrites it while it is read.
    """
    from analogdecor._lock import DirLock
    from analogdecor.training import load_run
    from analogdecor.training.rundir import check_run_status

    run_dir = Path(run_dir)
    fmt = _check_format(fmt)
    with DirLock(run_dir, "run directory", shared=True, purpose="export").acquire():
        check_run_status(run_dir, force=force, action="export")
        cfg, network = load_run(run_dir)
        if out is None:
            out = run_dir / "export" / (f"conductances{SUFFIX[fmt]}" if SUFFIX.get(fmt) else fmt)
        return export_network(network, out, fmt, meta=_run_meta(run_dir, cfg))


def load_into(network: Any, exp: ConductanceExport) -> Any:
    """Write an export into a network of the same architecture (digital state, then tile weights).

    Each tile gets the weights w = (G+ - G-) / (g_max - g_min) * w_scale by an
    exact write (``set_weights``, no programming noise); the digital parameters
    (biases, output scales, running means, float R) are restored exactly.
    """
    tiles = dict(network.analog_layers())
    names = [rec.name for rec in exp.layers]
    if sorted(tiles) != sorted(names):
        raise ExportFormatError(
            f"export has layers {names} but the network has {sorted(tiles)}: rebuild the network from the "
            "export's run_config"
        )
    if exp.digital:
        state = network.state_dict()
        unknown = sorted(set(exp.digital) - set(state))
        if unknown:
            raise ExportFormatError(f"export has digital parameters the network lacks: {unknown}")
        for key, value in exp.digital.items():
            if np.shape(value) != np.shape(state[key]):
                raise ExportFormatError(
                    f"digital parameter {key!r} has shape {np.shape(value)}, network {np.shape(state[key])}"
                )
            state[key] = value
        network.load_state_dict(state)
    for rec in exp.layers:
        tile = tiles[rec.name]
        if rec.shape != (tile.out_size, tile.in_size):
            raise ExportFormatError(
                f"layer {rec.name!r}: export is {rec.shape}, network tile is {(tile.out_size, tile.in_size)}"
            )
        tile.set_weights(rec.weights().astype(np.float32))
    return network


def import_network(path: str | Path, fmt: str | None = None, *, network: Any = None) -> Any:
    """Rebuild a network from an export (npz, hdf5, csv, or a chip export folder).

    Parameters
    ----------
    path : path
        The export file (npz, h5) or CSV folder.
    network : object, optional
        A network of the right architecture to load into; by default one is built
        from the export's ``run_config`` (a TrainConfig), the tiles' TileConfig and
        the layer shapes with :func:`analogdecor.training.build_network`.
    """
    if fmt == "chip" or (fmt is None and (Path(path) / "manifest.jsonl").is_file()):
        from analogdecor.export.chip import read_chip_export

        exp = read_chip_export(path)
    else:
        exp = read_export(path, fmt)
    if network is None:
        network = _build_from_export(exp, path)
    return load_into(network, exp)


def _build_from_export(exp: ConductanceExport, path: str | Path) -> Any:
    """The untrained network of the export's run_config, tile config and layer shapes."""
    from analogdecor.config import from_dict
    from analogdecor.crossbar.config import TileConfig
    from analogdecor.errors import ConfigError
    from analogdecor.training import TrainConfig, build_network

    run_cfg = exp.meta.get("run_config")
    if not isinstance(run_cfg, dict):
        raise ExportFormatError(f"{path}: the export has no run_config; pass network= to load into")
    weights = [rec for rec in exp.layers if rec.kind == "weight"]
    if not weights:
        raise ExportFormatError(f"{path}: the export has no weight layers")
    try:
        cfg = from_dict(TrainConfig, run_cfg)
        tile_cfg = from_dict(TileConfig, weights[0].tile_config)
    except ConfigError as exc:
        raise ExportFormatError(f"{path}: run_config or tile_config cannot be read ({exc})") from None
    in_shape = weights[0].geometry.get("in_shape")  # a conv net: its first tile reads patches
    n_features = int(np.prod(in_shape)) if in_shape else weights[0].shape[1]
    return build_network(cfg, tile_cfg, n_features, weights[-1].shape[0])
