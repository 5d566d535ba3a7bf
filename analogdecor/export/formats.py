"""File formats of a conductance export: npz, HDF5, CSV (readable back) and PNG (pictures).

- **npz** (one file): arrays ``<layer>/g_plus``, ``<layer>/g_minus``,
  ``digital/<key>``; the header (JSON) in ``__header__``. No pickles.
- **HDF5** (one file): one group per layer (datasets ``g_plus``, ``g_minus``;
  attributes ``shape``, ``g_min``, ``g_max``, ``w_scale``, ``kind``, ``backend``,
  ``tile_config`` as JSON), a group ``digital``, and the run metadata as root
  attributes (``format``, ``package_version``, ``seed``, ``device_preset``,
  ``run_config`` as JSON, ...).
- **CSV** (a folder): ``<layer>.csv`` per layer with the header
  ``row,col,g_plus_uS,g_minus_uS,weight`` and one device pair per line in
  row-major order (row = output, col = input), so a chip-programming tool can
  stream it row by row; ``manifest.json`` holds the header and ``digital.npz``
  the digital parameters. Values are written with 17 significant digits, so
  the float64 conductances read back exactly.
- **PNG** (a folder): per layer, heat maps of G+ and G- and a histogram of
  both. Not readable back.

Integrity: the header records a SHA-256 digest of every array (``checksums``) and
of itself (``header_sha256``); the CSV manifest also records the digest of each
layer file and of ``digital.npz``. Every reader verifies them all, checks every
conductance against the mapping's [g_min, g_max] and (CSV) the weight column
against (G+ - G-), and turns truncated, corrupted or edited files into
:class:`~analogdecor.errors.ExportFormatError` naming the file.

Atomicity: npz and HDF5 files are built in memory and moved into place with
``os.replace`` after an fsync; CSV and PNG folders are written into a temporary
sibling folder that then takes the old folder's place. A writer killed part-way
leaves the earlier export as it was (plus, at worst, a hidden ``.*.tmp`` file or
folder beside it).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from analogdecor._lock import output_error
from analogdecor.errors import ExportFormatError, OutputError
from analogdecor.export.records import (
    FILE_KEYS,
    ConductanceExport,
    LayerRecord,
    check_header,
    decode_json,
    file_digest,
    seal_header,
    verify_array,
)
from analogdecor.training.rundir import NPZ_ERRORS, atomic_write_bytes

__all__ = ["FORMATS", "READABLE_FORMATS", "read_export", "write_export"]

FORMATS: tuple[str, ...] = ("npz", "hdf5", "csv", "png")
READABLE_FORMATS: tuple[str, ...] = ("npz", "hdf5", "csv")
CSV_HEADER = ("row", "col", "g_plus_uS", "g_minus_uS", "weight")


def _safe(name: str) -> str:
    """File-system-safe version of a layer name."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


# --------------------------------------------------------------------------- npz
def write_npz(exp: ConductanceExport, path: Path) -> list[Path]:
    arrays: dict[str, np.ndarray] = {"__header__": np.array(json.dumps(seal_header(exp.header())))}
    for rec in exp.layers:
        arrays[f"{rec.name}/g_plus"] = rec.g_plus
        arrays[f"{rec.name}/g_minus"] = rec.g_minus
    for key, value in exp.digital.items():
        arrays[f"digital/{key}"] = np.asarray(value)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]  # numpy stubs: keyword arrays
    atomic_write_bytes(path, buf.getvalue())
    return [path]


def read_npz(path: Path) -> ConductanceExport:
    where = str(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            files = set(data.files)
            if "__header__" not in files:
                raise ExportFormatError(
                    f"{where}: not an analogdecor conductance export (no __header__ entry)"
                )
            header = check_header(decode_json(data["__header__"].item(), where), where)
            layers = []
            for meta in header["layers"]:
                name = meta.get("name") if isinstance(meta, dict) else None
                keys = (f"{name}/g_plus", f"{name}/g_minus")
                if name is None or not all(k in files for k in keys):
                    raise ExportFormatError(f"{where}: conductance maps of layer {name!r} are missing")
                gp, gm = (verify_array(header, k, data[k], where) for k in keys)
                layers.append(LayerRecord.from_meta(meta, gp, gm, where=where))
            digital = {}
            for key in header.get("digital_keys", []):
                if f"digital/{key}" not in files:
                    raise ExportFormatError(f"{where}: digital parameter {key!r} is missing")
                digital[key] = verify_array(header, f"digital/{key}", data[f"digital/{key}"], where)
    except ExportFormatError:
        raise
    except NPZ_ERRORS as exc:
        raise ExportFormatError(
            f"{where}: truncated or corrupted npz file ({type(exc).__name__}: {exc})"
        ) from None
    return ConductanceExport(layers=layers, meta=_meta(header), digital=digital)


def _meta(header: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in header.items() if k not in FILE_KEYS}


# --------------------------------------------------------------------------- hdf5
def _attr_value(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value)
    if value is None:
        return "null"
    return value


def write_hdf5(exp: ConductanceExport, path: Path) -> list[Path]:
    """The whole header (JSON, with its checksums) is the root attribute ``header``; the other
    attributes repeat its values for people and tools that browse the file, and import checks
    that they agree with it."""
    import h5py

    header = seal_header(exp.header())
    buf = io.BytesIO()
    with h5py.File(buf, "w") as fh:
        fh.attrs["header"] = json.dumps(header)
        for key, value in header.items():
            if key in FILE_KEYS:
                continue
            fh.attrs[key] = _attr_value(value)
        fh.attrs["layer_names"] = json.dumps([rec.name for rec in exp.layers])
        for rec in exp.layers:
            grp = fh.create_group(rec.name)
            grp.create_dataset("g_plus", data=rec.g_plus)
            grp.create_dataset("g_minus", data=rec.g_minus)
            for key, value in rec.meta().items():
                grp.attrs[key] = _attr_value(value)
        dig = fh.create_group("digital")
        for key, value in exp.digital.items():
            dig.create_dataset(key, data=np.asarray(value))
    atomic_write_bytes(path, buf.getvalue())
    return [path]


def _attr(value: Any) -> Any:
    value = value.decode() if isinstance(value, bytes) else value
    return value.item() if isinstance(value, np.generic) else value


def read_hdf5(path: Path) -> ConductanceExport:
    import h5py

    where = str(path)
    try:
        with h5py.File(path, "r") as fh:
            if "header" not in fh.attrs:
                raise ExportFormatError(
                    f"{where}: not an analogdecor conductance export of format version 2 or later "
                    "(no 'header' attribute)"
                )
            header = check_header(decode_json(_attr(fh.attrs["header"]), where), where)
            layers = []
            for lm in header["layers"]:
                name = lm.get("name") if isinstance(lm, dict) else None
                if name is None or name not in fh or "g_plus" not in fh[name] or "g_minus" not in fh[name]:
                    raise ExportFormatError(
                        f"{where}: group of layer {name!r} or its conductance maps are missing"
                    )
                grp = fh[name]
                for key in ("g_min", "g_max", "w_scale"):  # the browsable copies must agree
                    if key in grp.attrs and _attr(grp.attrs[key]) != lm.get(key):
                        raise ExportFormatError(
                            f"{where}: attribute {key} of layer {name!r} is {_attr(grp.attrs[key])!r} but the "
                            f"checksummed header says {lm.get(key)!r}: the file was edited after export"
                        )
                gp = verify_array(header, f"{name}/g_plus", np.asarray(grp["g_plus"][()]), where)
                gm = verify_array(header, f"{name}/g_minus", np.asarray(grp["g_minus"][()]), where)
                layers.append(LayerRecord.from_meta(lm, gp, gm, where=where))
            digital = {}
            for key in header.get("digital_keys", []):
                if "digital" not in fh or key not in fh["digital"]:
                    raise ExportFormatError(f"{where}: digital parameter {key!r} is missing")
                digital[key] = verify_array(header, f"digital/{key}", np.asarray(fh["digital"][key][()]), where)
    except ExportFormatError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise ExportFormatError(
            f"{where}: truncated or corrupted HDF5 file ({type(exc).__name__}: {exc})"
        ) from None
    return ConductanceExport(layers=layers, meta=_meta(header), digital=digital)


# --------------------------------------------------------------------------- csv
def write_csv(exp: ConductanceExport, folder: Path) -> list[Path]:
    header = exp.header()
    files: dict[str, bytes] = {}
    for rec, lm in zip(exp.layers, header["layers"], strict=True):
        fname = f"{_safe(rec.name)}.csv"
        w = rec.weights()
        text = io.StringIO()
        out = csv.writer(text, lineterminator="\r\n")
        out.writerow(CSV_HEADER)
        n_out, n_in = rec.shape
        for i in range(n_out):
            for j in range(n_in):
                out.writerow((i, j, repr(float(rec.g_plus[i, j])), repr(float(rec.g_minus[i, j])),
                              repr(float(w[i, j]))))  # fmt: skip
        files[fname] = text.getvalue().encode()
        lm["file"] = fname
        lm["file_sha256"] = file_digest(files[fname])
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in exp.digital.items()})  # type: ignore[arg-type]
    files["digital.npz"] = buf.getvalue()
    header["digital_file_sha256"] = file_digest(files["digital.npz"])
    files["manifest.json"] = json.dumps(seal_header(header), indent=2).encode()
    _write_folder(folder, files, lambda p: (p / "manifest.json").is_file(), "a CSV export (no manifest.json)")
    return [folder / "manifest.json", *(folder / n for n in files if n.endswith(".csv")), folder / "digital.npz"]


def _write_folder(folder: Path, files: dict[str, bytes], is_ours: Callable[[Path], bool], what: str) -> None:
    """Write ``files`` as the folder ``folder``, replacing an earlier export of ours as a whole.

    The files go into a hidden sibling folder first (each fsync'ed); then an existing ``folder``
    is moved aside, the new one moved in and the old one removed. A folder that holds other
    things than an earlier export is refused rather than replaced.
    """
    if folder.exists():
        if not folder.is_dir():
            raise OutputError(f"{folder} is a file; an export of this format is a folder")
        if any(folder.iterdir()) and not is_ours(folder):
            raise OutputError(f"{folder} is not empty and not {what}: choose another --out")
    parent = folder.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=parent))
    except OSError as exc:
        raise output_error(parent, exc, "create a folder in") from None
    try:
        for name, data in files.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            with (tmp / name).open("wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o777 & ~_umask())
        old = parent / f".{folder.name}.{uuid.uuid4().hex[:8]}.old"
        if folder.exists():
            os.replace(folder, old)
        os.replace(tmp, folder)
    except OSError as exc:
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)
        raise output_error(folder, exc) from None
    except BaseException:
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _read_layer_csv(
    path: Path, shape: tuple[int, int], lm: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(G+, G-, weight column) of one layer file, its structure and then its digest checked."""
    where = str(path)
    if not path.is_file():
        raise ExportFormatError(f"{where}: layer file is missing")
    raw = path.read_bytes()
    gp = np.full(shape, np.nan)
    gm = np.full(shape, np.nan)
    w = np.full(shape, np.nan)
    reader = csv.reader(io.StringIO(raw.decode("utf-8", errors="replace"), newline=""))
    head = next(reader, None)
    if head is None or tuple(h.strip() for h in head) != CSV_HEADER:
        raise ExportFormatError(f"{where}: first line must be the header {','.join(CSV_HEADER)}")
    count = 0
    for lineno, row in enumerate(reader, start=2):
        if len(row) != len(CSV_HEADER):
            raise ExportFormatError(
                f"{where}, line {lineno}: expected {len(CSV_HEADER)} fields, got {len(row)}"
            )
        try:
            i, j = int(row[0]), int(row[1])
            a, b, c = float(row[2]), float(row[3]), float(row[4])
        except ValueError:
            raise ExportFormatError(f"{where}, line {lineno}: not numbers: {row!r}") from None
        if not (0 <= i < shape[0] and 0 <= j < shape[1]):
            raise ExportFormatError(
                f"{where}, line {lineno}: index ({i}, {j}) outside the layer shape {shape}"
            )
        gp[i, j], gm[i, j], w[i, j] = a, b, c
        count += 1
    if count != shape[0] * shape[1] or np.isnan(gp).any() or np.isnan(gm).any():
        raise ExportFormatError(
            f"{where}: {count} device lines for a {shape[0]} x {shape[1]} layer (truncated or duplicated rows)"
        )
    if file_digest(raw) != lm.get("file_sha256"):
        raise ExportFormatError(
            f"{where}: the file does not match the digest the manifest records for it (file_sha256): it was "
            "corrupted or edited after export"
        )
    return gp, gm, w


def read_csv(folder: Path) -> ConductanceExport:
    manifest = folder / "manifest.json" if folder.is_dir() else folder
    folder = manifest.parent
    where = str(manifest)
    if not manifest.is_file():
        raise ExportFormatError(
            f"{where}: manifest.json is missing (a CSV export is a folder with a manifest)"
        )
    header = check_header(decode_json(manifest.read_text(errors="replace"), where), where)
    layers = []
    for lm in header["layers"]:
        if not isinstance(lm, dict) or "file" not in lm or "shape" not in lm:
            raise ExportFormatError(f"{where}: layer entry {lm!r} lacks 'file' or 'shape'")
        try:
            shape = (int(lm["shape"][0]), int(lm["shape"][1]))
        except (TypeError, ValueError, IndexError):
            raise ExportFormatError(f"{where}: layer shape {lm['shape']!r} is not (out, in)") from None
        path = folder / str(lm["file"])
        gp, gm, w = _read_layer_csv(path, shape, lm)
        gp = verify_array(header, f"{lm.get('name')}/g_plus", gp, str(path))
        gm = verify_array(header, f"{lm.get('name')}/g_minus", gm, str(path))
        rec = LayerRecord.from_meta(lm, gp, gm, where=str(path))
        # the redundant weight column must be what the mapping makes of G+ - G-
        off = np.abs(rec.weights() - w) > 1e-9 * rec.w_scale
        if off.any():
            i, j = (int(v) for v in np.argwhere(off)[0])
            raise ExportFormatError(
                f"{path}: {int(off.sum())} weight value(s) disagree with (G+ - G-) / (g_max - g_min) * w_scale, "
                f"e.g. at ({i}, {j}): weight {w[i, j]!r}, from the conductances {rec.weights()[i, j]!r}"
            )
        layers.append(rec)
    digital = {}
    keys = header.get("digital_keys", [])
    if keys:
        dpath = folder / "digital.npz"
        try:
            raw = dpath.read_bytes()
            if file_digest(raw) != header.get("digital_file_sha256"):
                raise ExportFormatError(f"{dpath}: does not match the digest the manifest records for it")
            with np.load(io.BytesIO(raw), allow_pickle=False) as data:
                for key in keys:
                    if key not in data.files:
                        raise ExportFormatError(f"{dpath}: digital parameter {key!r} is missing")
                    digital[key] = verify_array(header, f"digital/{key}", data[key], str(dpath))
        except ExportFormatError:
            raise
        except NPZ_ERRORS as exc:
            raise ExportFormatError(
                f"{dpath}: missing, truncated or corrupted ({type(exc).__name__}: {exc})"
            ) from None
    return ConductanceExport(layers=layers, meta=_meta(header), digital=digital)


# --------------------------------------------------------------------------- png
def write_png(exp: ConductanceExport, folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files: dict[str, bytes] = {}
    for rec in exp.layers:
        fig, axes = plt.subplots(1, 3, figsize=(13, 4))
        for ax, arr, label in ((axes[0], rec.g_plus, "G+"), (axes[1], rec.g_minus, "G-")):
            im = ax.imshow(
                arr, aspect="auto", cmap="viridis", vmin=rec.g_min, vmax=rec.g_max, interpolation="nearest"
            )
            ax.set_title(f"{rec.name} {label} (uS)")
            ax.set_xlabel("input (column)")
            ax.set_ylabel("output (row)")
            fig.colorbar(im, ax=ax)
        bins = np.linspace(rec.g_min, rec.g_max, 51)
        axes[2].hist(rec.g_plus.ravel(), bins=bins, alpha=0.6, label="G+")
        axes[2].hist(rec.g_minus.ravel(), bins=bins, alpha=0.6, label="G-")
        axes[2].set_yscale("log")
        axes[2].set_xlabel("conductance (uS)")
        axes[2].set_ylabel("devices")
        axes[2].set_title(f"{rec.name}: {rec.shape[0]} x {rec.shape[1]} pairs")
        axes[2].legend()
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, dpi=90, format="png")
        plt.close(fig)
        files[f"{_safe(rec.name)}.png"] = buf.getvalue()
    _write_folder(folder, files, lambda p: all(q.suffix == ".png" for q in p.iterdir()),
                  "a PNG export (only .png files)")  # fmt: skip
    return [folder / name for name in files]


# --------------------------------------------------------------------------- dispatch
_WRITERS = {"npz": write_npz, "hdf5": write_hdf5, "csv": write_csv, "png": write_png}
_READERS = {"npz": read_npz, "hdf5": read_hdf5, "csv": read_csv}
SUFFIX = {"npz": ".npz", "hdf5": ".h5", "csv": "", "png": ""}
"""npz and hdf5 write one file; csv and png write a folder."""


def _check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ExportFormatError(f"format {fmt!r}: must be one of {', '.join(FORMATS)}")
    return fmt


def write_export(exp: ConductanceExport, path: str | Path, fmt: str) -> list[Path]:
    """Write ``exp`` to ``path`` (a file for npz/hdf5, a folder for csv/png); returns the files written."""
    fmt = _check_format(fmt)
    path = Path(path)
    if SUFFIX[fmt]:
        if path.is_dir():
            raise OutputError(f"{path} is a folder; a {fmt} export is one file")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise output_error(path.parent, exc, "create") from None
    return _WRITERS[fmt](exp, path)


def guess_format(path: Path) -> str:
    """npz / hdf5 / csv from a path (file suffix; a folder or manifest.json is csv)."""
    if path.is_dir() or path.name == "manifest.json":
        return "csv"
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return "npz"
    if suffix in (".h5", ".hdf5", ".hdf"):
        return "hdf5"
    raise ExportFormatError(
        f"{path}: cannot tell the export format from the name; pass fmt= (npz, hdf5 or csv)"
    )


def read_export(path: str | Path, fmt: str | None = None) -> ConductanceExport:
    """Read an export written by :func:`write_export` (npz, hdf5 or csv; png cannot be read back)."""
    path = Path(path)
    if not path.exists():
        raise ExportFormatError(f"{path}: no such export file or folder")
    fmt = fmt or guess_format(path)
    if fmt == "png":
        raise ExportFormatError("png exports are pictures and cannot be read back; use npz, hdf5 or csv")
    if fmt not in _READERS:
        raise ExportFormatError(f"format {fmt!r}: readable formats are {', '.join(READABLE_FORMATS)}")
    return _READERS[fmt](path)
