"""Chip-programming export: every physical array's G+ and G- with its place, and a streamable manifest.

A folder::

    manifest.jsonl          one JSON object per line (read it line by line):
                            1. header: format, version, package version, run config, deploy mode,
                               array size, and per logical matrix its shape, grid, mapping and the
                               tile config it was trained with (device, periphery, update);
                            2. one line per array: layer, kind, grid place [row, col], row/column
                               offsets and sizes in the logical matrix, mapping (g_min, g_max,
                               w_scale), its file and that file's sha256 (and the pulse-count file);
                            3. an end line {"end": true, "arrays": N, "digital": {file, sha256}}.
    arrays/<layer>.a<r>_<c>.npy          float64 (2, rows, cols): G+ and G- in uS
    arrays/<layer>.a<r>_<c>.pulses.npy   uint64 (2, rows, cols): up and down pulses fired in training
    digital.npz             the digital parameters (biases, output scales, running means, float R)

A programming tool streams the manifest and programs array by array; every file
is checksummed, the end line holds the checksum of the manifest's other lines,
and the folder is written as a whole (into a temporary folder that then replaces
the earlier export), so a manifest with its end line means a complete export. :func:`read_chip_export`
verifies every checksum and reassembles the logical maps exactly (float64 files).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from analogdecor import __version__
from analogdecor._lock import DirLock
from analogdecor.crossbar.arrays import array_edges
from analogdecor.errors import ExportFormatError
from analogdecor.export.formats import _write_folder
from analogdecor.export.records import ConductanceExport, LayerRecord, collect_layers, digital_state
from analogdecor.training.rundir import NPZ_ERRORS

__all__ = ["CHIP_FORMAT", "export_run_chip", "read_chip_export", "write_chip_export"]

CHIP_FORMAT = "analogdecor-chip"
CHIP_VERSION = 1


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def _put(files: dict[str, bytes], name: str, data: bytes) -> str:
    """Stage one file of the export (written all together by :func:`write_chip_export`); its sha256."""
    files[name] = data
    return hashlib.sha256(data).hexdigest()


def _edges(tile: Any, shape: tuple[int, int], array_size: tuple[int | None, int | None] | None):
    """Array edges of a tile: given ``array_size``, else the tile's own grid, else its mapping."""
    if array_size is not None:
        return array_edges(shape[0], array_size[0]), array_edges(shape[1], array_size[1])
    if hasattr(tile, "row_edges"):
        return list(tile.row_edges), list(tile.col_edges)
    m = tile.config.mapping
    return array_edges(shape[0], m.array_rows), array_edges(shape[1], m.array_cols)


def write_chip_export(network: Any, out_dir: str | Path, *, meta: dict[str, Any] | None = None,
                      array_size: tuple[int | None, int | None] | None = None, pulses: bool = True) -> list[Path]:  # fmt: skip
    """Write ``network``'s arrays to ``out_dir`` (see the module notes); returns the manifest path first.

    ``array_size`` (rows, cols) re-splits every matrix into arrays of that size; by default each
    tile's own arrays (``mapping.array_rows`` / ``array_cols`` of the run; one array when unset).
    """
    out = Path(out_dir)
    files: dict[str, bytes] = {}
    tiles = dict(network.analog_layers())
    records = collect_layers(network)
    lines: list[dict[str, Any]] = []
    header = {
        "format": CHIP_FORMAT,
        "format_version": CHIP_VERSION,
        "package_version": __version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        **(meta or {}),
        "layers": [],
    }
    paths = []
    for rec in records:
        tile = tiles[rec.name]
        rows, cols = _edges(tile, rec.shape, array_size)
        header["layers"].append({**rec.meta(), "grid": [len(rows) - 1, len(cols) - 1],
                                 "row_edges": rows, "col_edges": cols})  # fmt: skip
        counts = tile.pulse_counts() if pulses and callable(getattr(tile, "pulse_counts", None)) else None
        for r in range(len(rows) - 1):
            for c in range(len(cols) - 1):
                sl = (slice(rows[r], rows[r + 1]), slice(cols[c], cols[c + 1]))
                g = np.stack([rec.g_plus[sl], rec.g_minus[sl]]).astype(np.float64)
                fname = f"arrays/{rec.name}.a{r}_{c}.npy"
                line = {
                    "layer": rec.name, "kind": rec.kind, "array": [r, c],
                    "row_offset": rows[r], "col_offset": cols[c], "rows": rows[r + 1] - rows[r],
                    "cols": cols[c + 1] - cols[c], "g_min": rec.g_min, "g_max": rec.g_max,
                    "w_scale": rec.w_scale, "file": fname, "sha256": _put(files, fname, _npy_bytes(g)),
                }  # fmt: skip
                paths.append(out / fname)
                if counts is not None:
                    pname = f"arrays/{rec.name}.a{r}_{c}.pulses.npy"
                    p = np.stack([counts[0][sl], counts[1][sl]]).astype(np.uint64)
                    line["pulses_file"] = pname
                    line["pulses_sha256"] = _put(files, pname, _npy_bytes(p))
                    paths.append(out / pname)
                lines.append(line)
    buf = io.BytesIO()
    np.savez(buf, **digital_state(network))  # type: ignore[arg-type]
    end = {"end": True, "arrays": len(lines), "digital": {"file": "digital.npz",
                                                         "sha256": _put(files, "digital.npz", buf.getvalue())}}  # fmt: skip
    paths.append(out / "digital.npz")
    body = "".join(json.dumps(x, sort_keys=True) + "\n" for x in [header, *lines])
    end["manifest_sha256"] = hashlib.sha256(body.encode()).hexdigest()  # the lines above, as written
    files["manifest.jsonl"] = (body + json.dumps(end, sort_keys=True) + "\n").encode()
    # The whole folder is replaced at once: a writer killed part-way leaves the earlier export whole.
    _write_folder(out, files, lambda p: (p / "manifest.jsonl").is_file(), "a chip export (no manifest.jsonl)")
    return [out / "manifest.jsonl", *paths]


def _read_checked(folder: Path, name: str, sha: str) -> bytes:
    path = folder / name
    if not path.is_file():
        raise ExportFormatError(f"{path}: listed in the manifest but missing")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != sha:
        raise ExportFormatError(f"{path}: checksum mismatch (file changed or corrupted)")
    return data


def _load_npy(data: bytes, where: Path) -> np.ndarray:
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ExportFormatError(f"{where}: not a readable .npy file ({exc})") from None


def read_chip_export(folder: str | Path, *, with_pulses: bool = False) -> ConductanceExport:
    """Read a chip export back: the logical (G+, G-) maps assembled from every array, checksums verified.

    With ``with_pulses`` the export's ``meta["pulses"]`` holds {layer: (up, down)} assembled the same way.
    """
    folder = Path(folder)
    path = folder / "manifest.jsonl"
    if not path.is_file():
        raise ExportFormatError(f"{path} does not exist: not a chip export")
    try:
        text = path.read_text()
        items = [json.loads(line) for line in text.splitlines() if line.strip()]
    except (OSError, ValueError) as exc:
        raise ExportFormatError(f"{path}: not a JSON-lines manifest ({exc})") from None
    if not items or items[0].get("format") != CHIP_FORMAT:
        raise ExportFormatError(f"{path}: first line is not an {CHIP_FORMAT} header")
    if not items[-1].get("end"):
        raise ExportFormatError(f"{path}: no end line (the export is incomplete)")
    header, arrays, end = items[0], items[1:-1], items[-1]
    body = text[: text.rstrip("\n").rfind("\n") + 1]  # every line before the end line
    if hashlib.sha256(body.encode()).hexdigest() != end.get("manifest_sha256"):
        raise ExportFormatError(
            f"{path}: the manifest does not match its checksum (manifest_sha256 in the end line): it was "
            "edited or corrupted after export"
        )
    if end.get("arrays") != len(arrays):
        raise ExportFormatError(
            f"{path}: end line counts {end.get('arrays')} arrays, manifest lists {len(arrays)}"
        )
    maps: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    pulses: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    metas = {m["name"]: m for m in header.get("layers", [])}
    for name, m in metas.items():
        shape = tuple(int(s) for s in m["shape"])
        maps[name] = (np.full(shape, np.nan), np.full(shape, np.nan))
        pulses[name] = (np.zeros(shape, np.uint64), np.zeros(shape, np.uint64))
    for a in arrays:
        if a.get("layer") not in maps:
            raise ExportFormatError(f"{path}: array of unknown layer {a.get('layer')!r}")
        g = _load_npy(_read_checked(folder, a["file"], a["sha256"]), folder / a["file"])
        if g.shape != (2, a["rows"], a["cols"]):
            raise ExportFormatError(
                f"{folder / a['file']}: shape {g.shape}, manifest says (2, {a['rows']}, {a['cols']})"
            )
        sl = (
            slice(a["row_offset"], a["row_offset"] + a["rows"]),
            slice(a["col_offset"], a["col_offset"] + a["cols"]),
        )
        maps[a["layer"]][0][sl] = g[0]
        maps[a["layer"]][1][sl] = g[1]
        if with_pulses and "pulses_file" in a:
            p = _load_npy(
                _read_checked(folder, a["pulses_file"], a["pulses_sha256"]), folder / a["pulses_file"]
            )
            pulses[a["layer"]][0][sl] = p[0]
            pulses[a["layer"]][1][sl] = p[1]
    layers = []
    for name, (gp, gm) in maps.items():
        if np.isnan(gp).any():
            raise ExportFormatError(f"{path}: layer {name!r} is not fully covered by its arrays")
        m = metas[name]
        layers.append(LayerRecord.from_meta(m, gp, gm, where=str(path)))
    d = end["digital"]
    data = _read_checked(folder, d["file"], d["sha256"])
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            digital = {k: npz[k] for k in npz.files}
    except NPZ_ERRORS as exc:
        raise ExportFormatError(f"{folder / d['file']}: not readable ({exc})") from None
    meta = {k: v for k, v in header.items() if k != "layers"}
    if with_pulses:
        meta["pulses"] = pulses
    return ConductanceExport(layers=layers, meta=meta, digital=digital)


def export_run_chip(run_dir: str | Path, out: str | Path | None = None, *, deploy: str | None = None,
                    array_size: tuple[int | None, int | None] | None = None, force: bool = False) -> list[Path]:  # fmt: skip
    """``analogdecor export RUN_DIR --format chip [--deploy MODE] [--array-size RxC]``.

    ``deploy`` (:mod:`analogdecor.deploy`): folded exports W R (a network without R; its run_config
    says so, so that import rebuilds it), digital exports W only with R among the digital
    parameters, separate (or None) the tiles as trained. Default folder RUN_DIR/export/chip[-MODE].
    Only a ``finished`` run is exported unless ``force`` (as :func:`analogdecor.export.export_run`).
    """
    from analogdecor.config import to_dict, with_overrides
    from analogdecor.deploy import deploy_network
    from analogdecor.export.api import _run_meta
    from analogdecor.training import load_run
    from analogdecor.training.rundir import check_run_status, load_run_config

    run_dir = Path(run_dir)
    with DirLock(run_dir, "run directory", shared=True, purpose="export").acquire():
        check_run_status(run_dir, force=force, action="export")
        cfg, network = load_run(run_dir)
        _, tile_cfg = load_run_config(run_dir)
        meta = _run_meta(run_dir, cfg)
    meta["deploy"] = deploy or "as trained"
    if deploy is not None:
        network = deploy_network(network, deploy, backend=cfg.backend, tile_config=tile_cfg,
                                 weight_scaling=cfg.model.weight_scaling, seed=cfg.seed)  # fmt: skip
        if deploy == "folded" and cfg.decorrelation.enabled:
            meta["run_config"] = to_dict(with_overrides(cfg, {"decorrelation.enabled": False}))
        elif deploy == "digital" and cfg.decorrelation.enabled:
            meta["run_config"] = to_dict(with_overrides(cfg, {"decorrelation.on_tile": False}))
    if out is None:
        out = run_dir / "export" / (f"chip-{deploy}" if deploy else "chip")
    meta["array_size"] = list(array_size) if array_size is not None else None
    return write_chip_export(network, out, meta=meta, array_size=array_size, pulses=deploy != "folded")
