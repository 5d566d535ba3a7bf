"""Export/import of conductance maps: round trips for every readable format, clear errors for bad files."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from analogdecor import __version__
from analogdecor.errors import ExportFormatError
from analogdecor.export import (
    FORMAT_NAME,
    READABLE_FORMATS,
    ConductanceExport,
    LayerRecord,
    read_export,
    write_export,
)

TARGET = {"npz": "c.npz", "hdf5": "c.h5", "csv": "csvdir", "png": "pngdir"}


def make_export(seed: int = 0) -> ConductanceExport:
    rng = np.random.default_rng(seed)
    layers = []
    for name, shape, kind in (("layers.0.R", (4, 4), "decorrelation"), ("layers.0.W", (3, 4), "weight"),
                              ("layers.1.W", (2, 3), "weight")):  # fmt: skip
        layers.append(
            LayerRecord(
                name=name,
                g_plus=rng.uniform(0, 25, shape),
                g_minus=rng.uniform(0, 25, shape),
                g_min=0.0,
                g_max=25.0,
                w_scale=0.6,
                kind=kind,
                backend="Tile",
                tile_config={"device": {"model": "exp", "dw_min": 0.00135}, "mapping": {"g_max": 25.0}},
            )
        )
    digital = {
        "layers.0.bias": rng.standard_normal(3).astype(np.float32),
        "layers.0.out_scale": np.float64(1.5),
    }
    meta = {
        "seed": 7,
        "device_preset": "ReRamES",
        "package_version": __version__,
        "run_config": {"seed": 7, "widths": [4, 3, 2]},
    }
    return ConductanceExport(layers=layers, meta=meta, digital=digital)


@pytest.mark.parametrize("fmt", READABLE_FORMATS)
def test_round_trip_is_exact(tmp_path, fmt):
    exp = make_export()
    write_export(exp, tmp_path / TARGET[fmt], fmt)
    back = read_export(tmp_path / TARGET[fmt])
    assert [r.name for r in back.layers] == [r.name for r in exp.layers]
    for a, b in zip(exp.layers, back.layers, strict=True):
        assert np.array_equal(a.g_plus, b.g_plus)
        assert np.array_equal(a.g_minus, b.g_minus)
        assert (a.g_min, a.g_max, a.w_scale, a.kind, a.backend) == (
            b.g_min,
            b.g_max,
            b.w_scale,
            b.kind,
            b.backend,
        )
        assert a.tile_config == b.tile_config
        assert np.array_equal(a.weights(), b.weights())
    assert back.meta["seed"] == 7
    assert back.meta["device_preset"] == "ReRamES"
    assert back.meta["package_version"] == __version__
    assert back.meta["run_config"] == {"seed": 7, "widths": [4, 3, 2]}
    assert sorted(back.digital) == sorted(exp.digital)
    for k, v in exp.digital.items():
        assert np.array_equal(back.digital[k], v)
        assert np.asarray(back.digital[k]).dtype == np.asarray(v).dtype


def test_hdf5_layout_one_group_per_layer_with_attributes(tmp_path):
    import h5py

    write_export(make_export(), tmp_path / "c.h5", "hdf5")
    with h5py.File(tmp_path / "c.h5", "r") as fh:
        assert fh.attrs["format"] == FORMAT_NAME
        assert fh.attrs["seed"] == 7
        grp = fh["layers.0.W"]
        assert grp["g_plus"].shape == (3, 4)
        assert grp.attrs["w_scale"] == 0.6
        assert grp.attrs["kind"] == "weight"
        assert json.loads(grp.attrs["tile_config"])["device"]["model"] == "exp"


def test_csv_is_one_device_pair_per_line_row_major(tmp_path):
    exp = make_export()
    write_export(exp, tmp_path / "csvdir", "csv")
    lines = (tmp_path / "csvdir" / "layers.1.W.csv").read_text().splitlines()
    assert lines[0] == "row,col,g_plus_uS,g_minus_uS,weight"
    assert len(lines) == 1 + 2 * 3
    rec = exp.layer("layers.1.W")
    row, col, gp, gm, w = lines[1 + 1 * 3 + 2].split(",")  # row 1, col 2
    assert (int(row), int(col)) == (1, 2)
    assert float(gp) == rec.g_plus[1, 2]
    assert float(gm) == rec.g_minus[1, 2]
    assert float(w) == pytest.approx((rec.g_plus[1, 2] - rec.g_minus[1, 2]) / 25.0 * 0.6, rel=1e-15)


def test_png_writes_one_picture_per_layer_and_cannot_be_read(tmp_path):
    paths = write_export(make_export(), tmp_path / "pngdir", "png")
    assert len(paths) == 3
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ExportFormatError, match="cannot be read back"):
        read_export(tmp_path / "pngdir", "png")


# --------------------------------------------------------------------------- bad files
@pytest.mark.parametrize("fmt", ["npz", "hdf5"])
@pytest.mark.parametrize("keep", [0.0, 0.3, 0.9])
def test_truncated_files_give_clear_errors(tmp_path, fmt, keep):
    path = tmp_path / TARGET[fmt]
    write_export(make_export(), path, fmt)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ExportFormatError, match=str(path.name)):
        read_export(path)


@pytest.mark.parametrize("fmt", ["npz", "hdf5"])
def test_corrupted_bytes_give_clear_errors(tmp_path, fmt):
    path = tmp_path / TARGET[fmt]
    write_export(make_export(), path, fmt)
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(0)
    for pos in rng.integers(0, len(data), 200):
        data[pos] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ExportFormatError):
        read_export(path)


def test_npz_that_is_not_an_export(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, a=np.ones(3))
    with pytest.raises(ExportFormatError, match="not an analogdecor conductance export"):
        read_export(path)


def test_npz_missing_layer_array(tmp_path):
    path = tmp_path / "c.npz"
    write_export(make_export(), path, "npz")
    with zipfile.ZipFile(path) as zin:
        entries = {n: zin.read(n) for n in zin.namelist()}
    del entries["layers.1.W/g_minus.npy"]
    with zipfile.ZipFile(path, "w") as zout:
        for n, b in entries.items():
            zout.writestr(n, b)
    with pytest.raises(ExportFormatError, match=r"layers\.1\.W"):
        read_export(path)


def test_wrong_format_version(tmp_path):
    path = tmp_path / "c.npz"
    exp = make_export()
    write_export(exp, path, "npz")
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    header = json.loads(arrays["__header__"].item())
    header["format_version"] = 99
    arrays["__header__"] = np.array(json.dumps(header))
    np.savez(path, **arrays)
    with pytest.raises(ExportFormatError, match="version 99"):
        read_export(path)


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (lambda lines: lines[:-2], "truncated"),
        (lambda lines: [*lines[:3], "1,x,2.0,3.0,0.1", *lines[4:]], "line 4: not numbers"),
        (lambda lines: [*lines[:3], "9,0,2.0,3.0,0.1", *lines[4:]], "outside the layer shape"),
        (lambda lines: ["r,c,a,b,w", *lines[1:]], "header"),
        (lambda lines: [*lines[:2], "0,1,2.0", *lines[3:]], "expected 5 fields"),
    ],
)
def test_damaged_csv_names_file_and_line(tmp_path, damage, match):
    folder = tmp_path / "csvdir"
    write_export(make_export(), folder, "csv")
    f = folder / "layers.0.W.csv"
    f.write_text("\n".join(damage(f.read_text().splitlines())) + "\n")
    with pytest.raises(ExportFormatError, match=match) as info:
        read_export(folder)
    assert "layers.0.W.csv" in str(info.value)


def test_csv_missing_manifest_or_layer_file(tmp_path):
    folder = tmp_path / "csvdir"
    write_export(make_export(), folder, "csv")
    (folder / "layers.1.W.csv").unlink()
    with pytest.raises(ExportFormatError, match="layer file is missing"):
        read_export(folder)
    (folder / "manifest.json").write_text("{not json")
    with pytest.raises(ExportFormatError, match="not valid JSON"):
        read_export(folder)
    (folder / "manifest.json").unlink()
    with pytest.raises(ExportFormatError, match=r"manifest\.json is missing"):
        read_export(folder, "csv")


def test_inconsistent_maps_are_rejected(tmp_path):
    exp = make_export()
    exp.layers[0].g_minus = exp.layers[0].g_minus[:, :3]
    path = tmp_path / "c.npz"
    write_export(exp, path, "npz")
    with pytest.raises(ExportFormatError, match="equal shape"):
        read_export(path)
    exp = make_export()
    exp.layers[1].g_plus[0, 0] = np.nan
    write_export(exp, path, "npz")
    with pytest.raises(ExportFormatError, match="non-finite"):
        read_export(path)


def test_unknown_names_and_formats(tmp_path):
    with pytest.raises(ExportFormatError, match="no such export"):
        read_export(tmp_path / "missing.npz")
    (tmp_path / "x.bin").write_bytes(b"123")
    with pytest.raises(ExportFormatError, match="cannot tell the export format"):
        read_export(tmp_path / "x.bin")
    with pytest.raises(ExportFormatError, match="must be one of"):
        write_export(make_export(), tmp_path / "y", "xlsx")
