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

Every reader turns truncated or corrupted files into
:class:`~analogdecor.errors.ExportFormatError` naming the file.
"""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from analogdecor.errors import ExportFormatError
from analogdecor.export.records import ConductanceExport, LayerRecord, check_header, decode_json

__all__ = ["FORMATS", "READABLE_FORMATS", "read_export", "write_export"]

FORMATS: tuple[str, ...] = ("npz", "hdf5", "csv", "png")
READABLE_FORMATS: tuple[str, ...] = ("npz", "hdf5", "csv")
CSV_HEADER = ("row", "col", "g_plus_uS", "g_minus_uS", "weight")


def _safe(name: str) -> str:
    """File-system-safe version of a layer name."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


# --------------------------------------------------------------------------- npz
def write_npz(exp: ConductanceExport, path: Path) -> list[Path]:
    arrays: dict[str, np.ndarray] = {"__header__": np.array(json.dumps(exp.header()))}
    for rec in exp.layers:
        arrays[f"{rec.name}/g_plus"] = rec.g_plus
        arrays[f"{rec.name}/g_minus"] = rec.g_minus
    for key, value in exp.digital.items():
        arrays[f"digital/{key}"] = np.asarray(value)
    with path.open("wb") as fh:
        np.savez_compressed(fh, **arrays)  # type: ignore[arg-type]  # numpy stubs: keyword arrays
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
                layers.append(LayerRecord.from_meta(meta, data[keys[0]], data[keys[1]], where=where))
            digital = {}
            for key in header.get("digital_keys", []):
                if f"digital/{key}" not in files:
                    raise ExportFormatError(f"{where}: digital parameter {key!r} is missing")
                digital[key] = data[f"digital/{key}"]
    except ExportFormatError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, zipfile.LargeZipFile) as exc:
        raise ExportFormatError(
            f"{where}: truncated or corrupted npz file ({type(exc).__name__}: {exc})"
        ) from None
    meta = {k: v for k, v in header.items() if k not in ("layers", "digital_keys")}
    return ConductanceExport(layers=layers, meta=meta, digital=digital)


# --------------------------------------------------------------------------- hdf5
def _attr_value(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value)
    if value is None:
        return "null"
    return value


def write_hdf5(exp: ConductanceExport, path: Path) -> list[Path]:
    import h5py

    header = exp.header()
    with h5py.File(path, "w") as fh:
        for key, value in header.items():
            if key == "layers":
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
    return [path]


def read_hdf5(path: Path) -> ConductanceExport:
    import h5py

    where = str(path)
    json_attrs = ("run_config", "layers", "digital_keys", "tile_config", "shape", "layer_names", "geometry")
    try:
        with h5py.File(path, "r") as fh:
            raw = dict(fh.attrs)
            meta: dict[str, Any] = {}
            for key, value in raw.items():
                value = value.decode() if isinstance(value, bytes) else value
                if isinstance(value, np.generic):
                    value = value.item()
                if key in json_attrs or value == "null":
                    value = decode_json(value, where)
                meta[key] = value
            names = meta.pop("layer_names", None)
            if not isinstance(names, list):
                raise ExportFormatError(f"{where}: not an analogdecor conductance export (no layer_names)")
            layer_metas = []
            arrays = []
            for name in names:
                if name not in fh or "g_plus" not in fh[name] or "g_minus" not in fh[name]:
                    raise ExportFormatError(
                        f"{where}: group of layer {name!r} or its conductance maps are missing"
                    )
                grp = fh[name]
                lm = {}
                for key, value in grp.attrs.items():
                    value = value.decode() if isinstance(value, bytes) else value
                    if isinstance(value, np.generic):
                        value = value.item()
                    lm[key] = decode_json(value, where) if key in json_attrs else value
                layer_metas.append(lm)
                arrays.append((grp["g_plus"][()], grp["g_minus"][()]))
            meta["layers"] = layer_metas
            check_header(meta, where)
            digital = {}
            for key in meta.get("digital_keys", []):
                if "digital" not in fh or key not in fh["digital"]:
                    raise ExportFormatError(f"{where}: digital parameter {key!r} is missing")
                digital[key] = np.asarray(fh["digital"][key][()])
    except ExportFormatError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise ExportFormatError(
            f"{where}: truncated or corrupted HDF5 file ({type(exc).__name__}: {exc})"
        ) from None
    layers = [
        LayerRecord.from_meta(lm, gp, gm, where=where)
        for lm, (gp, gm) in zip(layer_metas, arrays, strict=True)
    ]
    meta = {k: v for k, v in meta.items() if k not in ("layers", "digital_keys")}
    return ConductanceExport(layers=layers, meta=meta, digital=digital)


# --------------------------------------------------------------------------- csv
def write_csv(exp: ConductanceExport, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    header = exp.header()
    written = []
    for rec, lm in zip(exp.layers, header["layers"], strict=True):
        fname = f"{_safe(rec.name)}.csv"
        lm["file"] = fname
        w = rec.weights()
        path = folder / fname
        with path.open("w", newline="") as fh:
            out = csv.writer(fh)
            out.writerow(CSV_HEADER)
            n_out, n_in = rec.shape
            for i in range(n_out):
                for j in range(n_in):
                    out.writerow((i, j, repr(float(rec.g_plus[i, j])), repr(float(rec.g_minus[i, j])),
                                  repr(float(w[i, j]))))  # fmt: skip
        written.append(path)
    digital_path = folder / "digital.npz"
    with digital_path.open("wb") as fh:
        np.savez(fh, **{k: np.asarray(v) for k, v in exp.digital.items()})  # type: ignore[arg-type]
    manifest = folder / "manifest.json"
    manifest.write_text(json.dumps(header, indent=2))
    return [manifest, *written, digital_path]


def _read_layer_csv(path: Path, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    where = str(path)
    if not path.is_file():
        raise ExportFormatError(f"{where}: layer file is missing")
    gp = np.full(shape, np.nan)
    gm = np.full(shape, np.nan)
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
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
                a, b = float(row[2]), float(row[3])
            except ValueError:
                raise ExportFormatError(f"{where}, line {lineno}: not numbers: {row!r}") from None
            if not (0 <= i < shape[0] and 0 <= j < shape[1]):
                raise ExportFormatError(
                    f"{where}, line {lineno}: index ({i}, {j}) outside the layer shape {shape}"
                )
            gp[i, j], gm[i, j] = a, b
            count += 1
    if count != shape[0] * shape[1] or np.isnan(gp).any() or np.isnan(gm).any():
        raise ExportFormatError(
            f"{where}: {count} device lines for a {shape[0]} x {shape[1]} layer (truncated or duplicated rows)"
        )
    return gp, gm


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
        gp, gm = _read_layer_csv(folder / str(lm["file"]), shape)
        layers.append(LayerRecord.from_meta(lm, gp, gm, where=where))
    digital = {}
    keys = header.get("digital_keys", [])
    if keys:
        dpath = folder / "digital.npz"
        try:
            with np.load(dpath, allow_pickle=False) as data:
                for key in keys:
                    if key not in data.files:
                        raise ExportFormatError(f"{dpath}: digital parameter {key!r} is missing")
                    digital[key] = data[key]
        except ExportFormatError:
            raise
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
            raise ExportFormatError(
                f"{dpath}: truncated or corrupted ({type(exc).__name__}: {exc})"
            ) from None
    meta = {k: v for k, v in header.items() if k not in ("layers", "digital_keys")}
    return ConductanceExport(layers=layers, meta=meta, digital=digital)


# --------------------------------------------------------------------------- png
def write_png(exp: ConductanceExport, folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []
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
        path = folder / f"{_safe(rec.name)}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written


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
        path.parent.mkdir(parents=True, exist_ok=True)
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
