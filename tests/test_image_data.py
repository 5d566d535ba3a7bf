"""Image data: CIFAR-100 and Tiny ImageNet loaders, safe unpickling, normalisation, augmentation,
validation split and top-5 accuracy, through to a training run's metrics."""

from __future__ import annotations

import json
import os
import pickle
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from reference import ref_random_crop_flip
from test_training_resume import assert_same_run, interrupt_in_epoch

from analogdecor.cli import main
from analogdecor.data import (
    DATA_ENV,
    channel_stats,
    load_dataset,
    normalize_channels,
    random_crop_flip,
    split_validation,
)
from analogdecor.errors import ConfigError, DataError
from analogdecor.training import TrainConfig, apply_overrides, evaluate, resume, train
from analogdecor.training.data import load_run_data
from analogdecor.training.metrics import METRIC_KEYS, top_k_correct

Image = pytest.importorskip("PIL.Image")


# --------------------------------------------------------------------------- fixtures in the real layouts
def write_cifar100(root: Path, n_train=120, n_test=40, seed=0) -> dict[str, tuple[np.ndarray, list[int]]]:
    """``cifar-100-python/`` as the official archive has it: train, test, meta (pickle protocol 2)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    out = {}
    for name, n in (("train", n_train), ("test", n_test)):
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        fine = rng.integers(0, 100, size=n).tolist()
        coarse = [f // 5 for f in fine]
        batch = {b"filenames": [f"img_{i}.png".encode() for i in range(n)], b"batch_label": name.encode(),
                 b"fine_labels": fine, b"coarse_labels": coarse, b"data": data}  # fmt: skip
        with (root / name).open("wb") as fh:
            pickle.dump(batch, fh, protocol=2)
        out[name] = (data, fine)
    meta = {b"fine_label_names": [f"class{i}".encode() for i in range(100)],
            b"coarse_label_names": [f"super{i}".encode() for i in range(20)]}  # fmt: skip
    with (root / "meta").open("wb") as fh:
        pickle.dump(meta, fh, protocol=2)
    return out


def py2_dumps(d: dict) -> bytes:
    """A dict pickled as Python 2's cPickle wrote the official CIFAR files (protocol 2).

    Byte strings are py2 ``str`` (SHORT_BINSTRING/BINSTRING, no ``_codecs``) and the uint8
    array is rebuilt by ``numpy.core.multiarray._reconstruct`` with a ``numpy.dtype`` state,
    so the reader is tested on the opcodes and names of the originals, not on what Python 3 writes.
    """

    def text(b: bytes) -> bytes:
        return (b"U" + bytes([len(b)]) + b) if len(b) < 256 else (b"T" + struct.pack("<i", len(b)) + b)

    def num(i: int) -> bytes:
        return b"K" + bytes([i]) if 0 <= i < 256 else b"J" + struct.pack("<i", i)

    def obj(v) -> bytes:
        if isinstance(v, bytes):
            return text(v)
        if isinstance(v, int):
            return num(v)
        if isinstance(v, list):
            return b"](" + b"".join(obj(x) for x in v) + b"e"
        assert isinstance(v, np.ndarray)
        assert (v.dtype, v.ndim) == (np.uint8, 2)
        dtype = (b"cnumpy\ndtype\n" + text(b"u1") + num(0) + num(1) + b"\x87R"
                 + b"(" + num(3) + text(b"|") + b"NNN" + num(-1) + num(-1) + num(0) + b"tb")  # fmt: skip
        return (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n" + num(0) + b"\x85" + text(b"b")
                + b"\x87R(" + num(1) + num(v.shape[0]) + num(v.shape[1]) + b"\x86" + dtype + b"\x89"
                + text(v.tobytes()) + b"tb")  # fmt: skip

    return b"\x80\x02}(" + b"".join(obj(k) + obj(v) for k, v in d.items()) + b"u."


WNIDS = ["n02124075", "n01443537", "n04067472"]  # deliberately not sorted in wnids.txt


def write_tiny_imagenet(root: Path, per_class=4, n_val=6, seed=0) -> Path:
    """``tiny-imagenet-200/`` as the official zip unpacks: wnids.txt, train/<wnid>/images, val/."""
    rng = np.random.default_rng(seed)
    base = root / "tiny-imagenet-200"
    (base / "val" / "images").mkdir(parents=True)
    (base / "test" / "images").mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    for w in WNIDS:
        folder = base / "train" / w / "images"
        folder.mkdir(parents=True)
        (base / "train" / w / f"{w}_boxes.txt").write_text("")
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(folder / f"{w}_{i}.JPEG")
    lines = []
    for i in range(n_val):
        name = f"val_{i}.JPEG"
        if i == 0:  # Tiny ImageNet has a few greyscale images
            Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8), mode="L").save(base / "val/images" / name)
        else:
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(base / "val/images" / name)
        lines.append(f"{name}\t{WNIDS[i % 3]}\t0\t0\t63\t63")
    (base / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return base


def rows_of(path: Path) -> np.ndarray:
    img = Image.open(path).convert("RGB")
    return (np.asarray(img, dtype=np.float32).transpose(2, 0, 1).reshape(-1) / np.float32(255)).astype(np.float32)


# --------------------------------------------------------------------------- CIFAR-100
def test_cifar100_reads_the_official_layout_with_fine_labels(tmp_path, monkeypatch):
    arrays = write_cifar100(tmp_path / "cifar-100-python")
    for where in (tmp_path / "cifar-100-python", tmp_path):  # the folder or its parent
        d = load_dataset("cifar100", where)
        assert (d.x_train.shape, d.x_test.shape, d.n_classes) == ((120, 3072), (40, 3072), 100)
        np.testing.assert_allclose(d.x_train, arrays["train"][0] / 255.0, rtol=1e-6)
        np.testing.assert_array_equal(d.y_train, arrays["train"][1])  # the fine labels, not the coarse
        np.testing.assert_array_equal(d.y_test, arrays["test"][1])
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "env"))
    write_cifar100(tmp_path / "env" / "cifar100" / "cifar-100-python")
    assert load_dataset("cifar100", n_train=10, seed=3).x_train.shape == (10, 3072)


def test_cifar100_pickled_by_python2_as_the_originals(tmp_path):
    root = tmp_path / "cifar-100-python"
    root.mkdir()
    rng = np.random.default_rng(1)
    arrays = {}
    for name, n in (("train", 30), ("test", 10)):
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        fine = rng.integers(0, 100, size=n).tolist()
        (root / name).write_bytes(py2_dumps({b"filenames": [b"a.png"] * n, b"batch_label": b"training batch 1 of 1",
                                             b"fine_labels": fine, b"coarse_labels": [f // 5 for f in fine],
                                             b"data": data}))  # fmt: skip
        arrays[name] = (data, fine)
    (root / "meta").write_bytes(py2_dumps({b"fine_label_names": [b"apple"] * 100,
                                           b"coarse_label_names": [b"fruit"] * 20}))  # fmt: skip
    assert b"_codecs" not in (root / "train").read_bytes()
    d = load_dataset("cifar100", tmp_path)
    np.testing.assert_array_equal(d.x_train, (arrays["train"][0] * np.float32(1 / 255)).astype(np.float32))
    np.testing.assert_array_equal(d.y_train, arrays["train"][1])
    np.testing.assert_array_equal(d.y_test, arrays["test"][1])


class _RunsShell:
    """Pickles as a call of os.system: unpickling it with pickle.load would run the command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Evaluates:
    def __reduce__(self):
        return (eval, ("1+1",))


@pytest.mark.parametrize("dataset", ["cifar100", "cifar10"])
def test_a_malicious_pickle_is_refused_and_never_runs(tmp_path, dataset):
    marker = tmp_path / "pwned"
    if dataset == "cifar100":
        write_cifar100(tmp_path / "c")
        target = tmp_path / "c" / "train"
    else:
        (tmp_path / "c").mkdir()
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            with (tmp_path / "c" / name).open("wb") as fh:
                pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}, fh, protocol=2)
        target = tmp_path / "c" / "data_batch_3"
    with target.open("wb") as fh:
        pickle.dump({b"data": _RunsShell(marker), b"fine_labels": [0], b"labels": [0]}, fh, protocol=2)
    with pytest.raises(DataError, match=rf"{target.name}: .*refusing to load (posix|os)\.system"):
        load_dataset(dataset, tmp_path / "c")
    assert not marker.exists()
    # builtins (eval, getattr, ...) are refused as well, and so is a non-latin1 _codecs.encode
    target.write_bytes(pickle.dumps(_Evaluates(), protocol=2))
    with pytest.raises(DataError, match=rf"{target.name}: .*refusing to load (__builtin__|builtins)\.eval"):
        load_dataset(dataset, tmp_path / "c")
    with target.open("wb") as fh:
        fh.write(b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x05\x00\x00\x00rot13\x86R.")
    with pytest.raises(DataError, match=rf"{target.name}: .*refusing _codecs\.encode"):
        load_dataset(dataset, tmp_path / "c")


@pytest.mark.parametrize("name", ["train", "test", "meta"])
def test_cifar100_truncated_or_malformed_file_names_the_file(tmp_path, name):
    root = tmp_path / "cifar-100-python"
    write_cifar100(root, n_train=20, n_test=10)
    full = (root / name).read_bytes()
    (root / name).write_bytes(full[: len(full) // 2])
    with pytest.raises(DataError, match=rf"cifar-100-python/{name}: not a CIFAR-100 python"):
        load_dataset("cifar100", tmp_path)
    (root / name).unlink()
    with pytest.raises(DataError, match=rf"cifar-100-python/{name}: .*does not exist"):
        load_dataset("cifar100", tmp_path)


def test_cifar100_bad_contents_name_the_file(tmp_path):
    root = tmp_path / "c"
    write_cifar100(root, n_train=20, n_test=10)
    with (root / "test").open("wb") as fh:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"fine_labels": [0, 100]}, fh, protocol=2)
    with pytest.raises(DataError, match=r"c/test: b'fine_labels' must lie in 0\.\.99"):
        load_dataset("cifar100", root)
    with (root / "meta").open("wb") as fh:
        pickle.dump({b"fine_label_names": [b"a"] * 10}, fh, protocol=2)
    with pytest.raises(DataError, match=r"c/meta: b'fine_label_names' must list 100 class names"):
        load_dataset("cifar100", root)


# --------------------------------------------------------------------------- Tiny ImageNet
def test_tiny_imagenet_reads_the_official_layout(tmp_path):
    base = write_tiny_imagenet(tmp_path)
    d = load_dataset("tiny-imagenet", tmp_path)  # the parent of tiny-imagenet-200/
    assert (d.x_train.shape, d.x_test.shape, d.n_classes) == ((12, 3 * 64 * 64), (6, 3 * 64 * 64), 3)
    order = sorted(WNIDS)  # class k is the k-th WordNet id in sorted order
    np.testing.assert_array_equal(d.y_train, np.repeat([0, 1, 2], 4))
    first = base / "train" / order[0] / "images" / f"{order[0]}_0.JPEG"
    np.testing.assert_array_equal(d.x_train[0], rows_of(first))  # channel-major rows, scaled to [0, 1]
    np.testing.assert_array_equal(d.y_test, [order.index(WNIDS[i % 3]) for i in range(6)])
    grey = rows_of(base / "val" / "images" / "val_0.JPEG").reshape(3, -1)
    np.testing.assert_array_equal(grey[0], grey[1])  # greyscale -> RGB
    np.testing.assert_array_equal(d.x_test[0], grey.reshape(-1))
    # a subset decodes only the chosen images, and equals the subset of the whole
    sub = load_dataset("tiny-imagenet", base, n_train=5, n_test=2, seed=4)
    whole = load_dataset("tiny-imagenet", base, seed=4)
    rng = np.random.default_rng(np.random.SeedSequence(4).spawn(2)[0])
    pick = np.sort(rng.choice(12, size=5, replace=False))
    np.testing.assert_array_equal(sub.x_train, whole.x_train[pick])
    np.testing.assert_array_equal(sub.y_train, whole.y_train[pick])


def test_tiny_imagenet_corrupt_image_names_the_file(tmp_path):
    base = write_tiny_imagenet(tmp_path)
    bad = base / "train" / WNIDS[1] / "images" / f"{WNIDS[1]}_2.JPEG"
    raw = bad.read_bytes()
    bad.write_bytes(raw[: len(raw) // 2])  # truncated JPEG
    with pytest.raises(DataError, match=rf"{bad.name}: not a readable image"):
        load_dataset("tiny-imagenet", base)
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(DataError, match=rf"{bad.name}: not a readable image"):
        load_dataset("tiny-imagenet", base)
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(bad, format="JPEG")
    with pytest.raises(DataError, match=rf"{bad.name}: image of 32x32 pixels; expected 64x64"):
        load_dataset("tiny-imagenet", base)


def test_tiny_imagenet_layout_errors_name_the_file(tmp_path):
    base = write_tiny_imagenet(tmp_path)
    ann = base / "val" / "val_annotations.txt"
    ann.write_text(ann.read_text() + "val_9.JPEG\tn99999999\t0\t0\t1\t1\n")
    with pytest.raises(DataError, match=r"val_annotations\.txt: line 7 .* does not name an image and a class"):
        load_dataset("tiny-imagenet", base)
    (base / "wnids.txt").unlink()
    with pytest.raises(DataError, match=r"wnids\.txt: file does not exist"):
        load_dataset("tiny-imagenet", base)


def test_missing_pillow_says_what_to_install(tmp_path, monkeypatch):
    base = write_tiny_imagenet(tmp_path)
    monkeypatch.setitem(sys.modules, "PIL", None)  # import PIL now fails, as on an install without it
    with pytest.raises(DataError, match=r'Pillow, which is not installed: pip install "analogdecor\[images\]"'):
        load_dataset("tiny-imagenet", base)


# --------------------------------------------------------------------------- validation, normalisation, top-5
def test_validation_split_is_disjoint_seeded_and_sized():
    x = np.arange(50, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)  # row i holds i
    y = np.arange(50) % 5
    xt, yt, xv, yv = split_validation(x, y, 0.2, np.random.default_rng(1))
    assert (len(yt), len(yv)) == (40, 10)
    ids_t, ids_v = xt[:, 0].astype(int), xv[:, 0].astype(int)
    assert not set(ids_t) & set(ids_v)
    assert sorted([*ids_t, *ids_v]) == list(range(50))
    np.testing.assert_array_equal(yv, ids_v % 5)  # labels travel with their rows
    again = split_validation(x, y, 0.2, np.random.default_rng(1))
    np.testing.assert_array_equal(again[2], xv)
    assert len(split_validation(x, y, 7, np.random.default_rng(1))[3]) == 7
    for bad in (0, 50, 1.0, 0.0, True):
        with pytest.raises(ConfigError, match=r"data\.validation"):
            split_validation(x, y, bad, np.random.default_rng(1))
    d = load_dataset("digits", validation=100, seed=2)
    assert (len(d.y_train), len(d.y_val)) == (1337, 100)
    whole = load_dataset("digits", seed=2)
    rows = {r.tobytes() for r in whole.x_train}
    assert {r.tobytes() for r in d.x_val} <= rows
    assert not {r.tobytes() for r in d.x_val} & {r.tobytes() for r in d.x_train}
    np.testing.assert_array_equal(d.x_test, whole.x_test)


def test_dataconfig_checks_the_new_fields():
    cfg = apply_overrides(TrainConfig(), {"data.validation": 0.25, "data.augment": True, "data.normalize": True})
    assert (cfg.data.validation, cfg.data.augment, cfg.data.normalize) == (0.25, True, True)
    assert apply_overrides(TrainConfig(), {"data.validation": 300}).data.validation == 300
    for bad in (0, 1.5, -3):
        with pytest.raises(ConfigError, match=r"DataConfig.validation"):
            apply_overrides(TrainConfig(), {"data.validation": bad})
    with pytest.raises(ConfigError, match=r"DataConfig.augment = true: for image data sets only"):
        apply_overrides(TrainConfig(), {"data.dataset": "synthetic", "data.augment": True})
    default = TrainConfig().data
    assert (default.validation, default.augment, default.normalize) == (None, False, False)


def test_normalisation_uses_training_statistics_per_channel():
    rng = np.random.default_rng(0)
    shape = (3, 4, 5)
    x = (rng.random((30, 60)) * np.repeat([1.0, 2.0, 4.0], 20) + np.repeat([0.0, 5.0, -1.0], 20)).astype(np.float32)
    mean, std = channel_stats(x, shape)
    per_channel = x.reshape(30, 3, 20).transpose(1, 0, 2).reshape(3, -1).astype(np.float64)
    np.testing.assert_allclose(mean, per_channel.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(std, per_channel.std(axis=1), rtol=1e-12)
    z = normalize_channels(x, mean, std, shape).reshape(30, 3, 20)
    np.testing.assert_allclose(z.mean(axis=(0, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=(0, 2)), 1.0, atol=1e-5)
    # through a run's data: statistics of the training rows left after the validation split
    cfg = apply_overrides(TrainConfig(), {"data.normalize": True, "data.validation": 0.1, "seed": 5})
    d, raw = load_run_data(cfg), load_dataset("digits", validation=0.1, seed=5)
    m, s = raw.x_train.mean(dtype=np.float64), raw.x_train.std(dtype=np.float64)
    np.testing.assert_allclose(d.channel_mean, [m])
    np.testing.assert_allclose(d.channel_std, [s])
    np.testing.assert_allclose(d.x_test, (raw.x_test - m) / s, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(d.x_val, (raw.x_val - m) / s, rtol=1e-5, atol=1e-5)


def test_top5_against_a_hand_example():
    logits = np.array([
        [9, 8, 7, 6, 5, 4, 3, 2, 1, 0, -1, -2],  # true 4: fifth largest -> in
        [9, 8, 7, 6, 5, 4, 3, 2, 1, 0, -1, -2],  # true 5: sixth largest -> out
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],    # true 11: largest -> in (top-1 as well)
        [5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5],    # all tied: no class above -> in
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], # true 0: smallest -> out
    ], dtype=np.float32)  # fmt: skip
    y = np.array([4, 5, 11, 7, 0])
    assert top_k_correct(logits, y, 5) == 3
    assert top_k_correct(logits, y, 1) == 2  # rows 3 and 4 (ties count for the true class)
    assert top_k_correct(logits, y, 12) == 5

    class Fixed:
        def forward(self, x):
            return logits[x[:, 0].astype(int)]

    _, acc, top5 = evaluate(Fixed(), np.arange(5, dtype=np.float32)[:, None], y, 2, top_k=5)
    assert (acc, top5) == (1 / 5, 3 / 5)  # argmax: row 2 only (row 3's argmax is class 0)
    assert len(evaluate(Fixed(), np.arange(5, dtype=np.float32)[:, None], y, 2)) == 2


# --------------------------------------------------------------------------- augmentation
@pytest.mark.parametrize(("shape", "pad", "fill"), [((3, 6, 5), 4, None), ((1, 8, 8), 2, [-0.5]), ((2, 3, 3), 0, None)])
def test_crop_flip_matches_the_slow_reference_and_is_seeded(shape, pad, fill):
    x = np.random.default_rng(0).random((40, int(np.prod(shape))), dtype=np.float32)
    got = random_crop_flip(x, shape, np.random.default_rng(7), pad=pad, fill=None if fill is None else np.array(fill))
    want = ref_random_crop_flip(x, shape, np.random.default_rng(7), pad, fill)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got, random_crop_flip(x, shape, np.random.default_rng(7), pad=pad,
                                                        fill=None if fill is None else np.array(fill)))  # fmt: skip
    assert not np.array_equal(got, random_crop_flip(x, shape, np.random.default_rng(8), pad=pad))


def test_crop_flip_by_hand():
    img = np.arange(1, 17, dtype=np.float32).reshape(1, 16)  # 1x4x4: value = 4*row + col + 1

    class Draws:  # offsets (row 3, col 1) with pad 2: one row/col of padding on the bottom/left
        def integers(self, lo, hi, size):
            assert (lo, hi, size) == (0, 5, (1, 2))
            return np.array([[3, 1]])

        def __init__(self, flip):
            self.flip = flip

        def random(self, n):
            return np.array([0.2 if self.flip else 0.7])

    crop = random_crop_flip(img, (1, 4, 4), Draws(False), pad=2).reshape(4, 4)
    # the window starts at padded (3, 1), which is image (1, -1): image rows 1..3 then padding,
    # a column of padding then image columns 0..2
    want = np.array([[0, 5, 6, 7], [0, 9, 10, 11], [0, 13, 14, 15], [0, 0, 0, 0]], dtype=np.float32)
    np.testing.assert_array_equal(crop, want)
    flipped = random_crop_flip(img, (1, 4, 4), Draws(True), pad=2).reshape(4, 4)
    np.testing.assert_array_equal(flipped, want[:, ::-1])


# --------------------------------------------------------------------------- training runs
TINY_CONV = [{"kind": "conv2d", "channels": 4, "kernel": 3, "stride": 2}, {"kind": "maxpool", "size": 3},
             {"kind": "flatten"}, {"kind": "dense", "units": 16}]  # fmt: skip


def cifar100_cfg(root: Path, **over) -> TrainConfig:
    return apply_overrides(TrainConfig(), {
        "data.dataset": "cifar100", "data.data_dir": str(root), "data.validation": 20, "data.augment": True,
        "data.normalize": True, "model.layers": TINY_CONV, "optim.epochs": 3, "optim.batch_size": 25,
        "optim.lr": 0.02, **over,
    })  # fmt: skip


def test_cifar100_run_records_top5_and_validation_metrics(tmp_path):
    write_cifar100(tmp_path / "data" / "cifar-100-python")
    cfg = cifar100_cfg(tmp_path / "data")
    res = train(cfg, tmp_path / "run", progress=False)
    assert res.status == "finished"
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert list(saved) == ["epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy",
                           "test_top5_accuracy", "val_loss", "val_accuracy", "val_top5_accuracy", "epoch_time_s"]
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0]
    assert header.split(",") == list(saved)
    for split in ("test", "val"):
        assert len(saved[f"{split}_top5_accuracy"]) == 3
        assert all(t5 >= t1 for t1, t5 in zip(saved[f"{split}_accuracy"], saved[f"{split}_top5_accuracy"], strict=True))
        assert all(np.isfinite(saved[f"{split}_loss"]))
    # the recorded figures are those of the final network on the split the run held out
    ds = load_run_data(cfg)
    assert (len(ds.y_train), len(ds.y_val)) == (100, 20)
    # run.json records the input normalisation a deployed network needs
    norm = json.loads((tmp_path / "run" / "run.json").read_text())["input_normalization"]
    np.testing.assert_allclose(norm["channel_mean"], np.ravel(ds.channel_mean))
    np.testing.assert_allclose(norm["channel_std"], np.ravel(ds.channel_std))
    loss, acc, top5 = evaluate(res.network, ds.x_val, ds.y_val, top_k=5)
    assert (saved["val_loss"][-1], saved["val_accuracy"][-1], saved["val_top5_accuracy"][-1]) == (loss, acc, top5)
    # same seed, same batches (augmentation included); another seed, other crops
    again = train(cfg, None, progress=False)
    assert again.metrics["train_loss"] == res.metrics["train_loss"]
    other = train(apply_overrides(cfg, {"seed": 1}), None, progress=False)
    assert other.metrics["train_loss"] != res.metrics["train_loss"]


def test_augmentation_changes_the_batches_and_not_the_other_streams(tmp_path):
    base = apply_overrides(TrainConfig(), {"data.n_train": 200, "data.n_test": 50, "optim.epochs": 1,
                                           "model.layers": TINY_CONV[:1] + TINY_CONV[2:]})  # fmt: skip
    plain = train(base, None, progress=False)
    aug = train(apply_overrides(base, {"data.augment": True}), None, progress=False)
    assert aug.metrics["train_loss"] != plain.metrics["train_loss"]
    assert list(plain.metrics) == list(METRIC_KEYS)  # nothing new without validation or > 10 classes


def test_resume_with_augmentation_and_validation_is_bit_for_bit(tmp_path, monkeypatch):
    write_cifar100(tmp_path / "data" / "cifar-100-python")
    cfg = cifar100_cfg(tmp_path / "data", **{"optim.epochs": 4})
    reference = train(cfg, tmp_path / "whole", progress=False)
    # Ctrl-C in epoch 3's test evaluation: two evaluations (test, validation) per epoch
    from test_training_resume import ctrl_c_on_call

    ctrl_c_on_call(monkeypatch, "evaluate", 5, lambda: train(cfg, tmp_path / "cut", progress=False))
    assert json.loads((tmp_path / "cut" / "run.json").read_text())["epochs_completed"] == 2
    resumed = resume(tmp_path / "cut", progress=False)
    for key in reference.metrics:
        if key != "epoch_time_s":
            assert resumed.metrics[key] == reference.metrics[key], key
    x = load_run_data(cfg).x_test
    np.testing.assert_array_equal(resumed.network.forward(x), reference.network.forward(x))


def test_a_checkpoint_from_before_the_new_data_fields_still_resumes(tmp_path, monkeypatch):
    cfg = apply_overrides(TrainConfig(), {"model.hidden": [16], "optim.epochs": 4, "data.n_train": 300,
                                          "data.n_test": 100, "optim.batch_size": 50})  # fmt: skip
    reference = train(cfg, tmp_path / "whole", progress=False)
    interrupt_in_epoch(monkeypatch, cfg, tmp_path / "cut")
    ckpt = tmp_path / "cut" / "checkpoint.npz"
    with np.load(ckpt, allow_pickle=False) as npz:
        flat = {k: npz[k] for k in npz.files}
    config = json.loads(str(flat["meta.config"]))
    for name in ("validation", "normalize", "augment"):  # written by a version without these fields
        config["train"]["data"].pop(name, None)
    flat["meta.config"] = np.str_(json.dumps(config, sort_keys=True))
    with ckpt.open("wb") as fh:
        np.savez(fh, **flat)
    resumed = resume(tmp_path / "cut", progress=False)
    assert_same_run(resumed, reference, tmp_path / "cut", tmp_path / "whole")


def test_cli_flags_reach_the_config(tmp_path, capsys):
    rc = main(["train", "--dataset", "cifar100", "--data-dir", "x", "--validation", "0.1", "--augment", "on",
               "--normalize", "on", "--print-config"])  # fmt: skip
    assert rc == 0
    text = capsys.readouterr().out
    assert 'dataset = "cifar100"' in text
    for line in ("validation = 0.1", "augment = true", "normalize = true"):
        assert line in text
    assert main(["train", "--validation", "500", "--print-config"]) == 0
    assert "validation = 500" in capsys.readouterr().out


def test_evaluate_sees_the_data_as_the_run_did(tmp_path):
    from analogdecor.inference.evaluate import EvaluateConfig, evaluate_run

    cfg = apply_overrides(TrainConfig(), {"model.hidden": [16],
                                          "optim.epochs": 2, "data.normalize": True, "data.validation": 0.2})  # fmt: skip
    res = train(cfg, tmp_path / "run", progress=False)
    flat, _ = evaluate_run(tmp_path / "run", EvaluateConfig(model="none", seeds=1), out_dir=tmp_path / "ev")
    assert flat.baseline_accuracy == res.metrics["test_accuracy"][-1]  # normalised test rows, as in training


def test_validation_as_a_float_in_toml_stays_a_fraction():
    """TOML ``validation = 1.0`` is the fraction 1.0 (refused), not the count 1."""
    from analogdecor.config import from_dict
    from analogdecor.training.config import DataConfig

    assert from_dict(DataConfig, {"validation": 5}).validation == 5
    assert from_dict(DataConfig, {"validation": 0.25}).validation == 0.25
    with pytest.raises(ConfigError, match=r"DataConfig\.validation = 1\.0"):
        from_dict(DataConfig, {"validation": 1.0})
