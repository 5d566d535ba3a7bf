"""Data loaders: digits, IDX directories, CIFAR-10 batches, synthetic data, MNIST (when present)."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from analogdecor.data import (
    DATA_ENV,
    Dataset,
    SyntheticSpec,
    covariance,
    find_idx_files,
    load_dataset,
    read_idx,
    write_idx,
)
from analogdecor.errors import ConfigError, DataError

MNIST_DIR = Path(__file__).parents[1].parent / "shared/data/mnist"


# --------------------------------------------------------------------------- helpers
def _idx_bytes(array: np.ndarray, type_byte: int) -> bytes:
    """Independent IDX encoder (struct-based), so the reader is not tested against its own writer only."""
    header = bytes([0, 0, type_byte, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def _write(path: Path, payload: bytes) -> Path:
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as fh:
            fh.write(payload)
    else:
        path.write_bytes(payload)
    return path


def _make_idx_dir(root: Path, *, gz: bool, n_train=30, n_test=12, shape=(5, 4), n_classes=10, seed=0):
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    arrays = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
        labels = rng.integers(0, n_classes, size=n, dtype=np.uint8)
        if split == "train":  # every class occurs in the training labels (else K cannot be inferred)
            labels[:n_classes] = np.arange(n_classes)
        _write(root / f"{split}-images-idx3-ubyte{ext}", _idx_bytes(images, 0x08))
        _write(root / f"{split}-labels-idx1-ubyte{ext}", _idx_bytes(labels, 0x08))
        arrays[split] = (images, labels)
    return arrays


# --------------------------------------------------------------------------- digits
def test_digits_shapes_range_and_fixed_split():
    d = load_dataset("digits")
    assert isinstance(d, Dataset)
    assert d.x_train.shape == (1437, 64)
    assert d.x_test.shape == (360, 64)
    assert d.x_train.dtype == np.float32
    assert d.y_train.dtype == np.int64
    assert d.n_features == 64
    assert d.n_classes == 10
    assert d.name == "digits"
    assert d.x_train.min() >= 0.0
    assert d.x_train.max() == 1.0
    assert set(np.unique(d.y_train)) == set(range(10)) == set(np.unique(d.y_test))
    # the split does not move with the run seed, so all seeds share one test set
    other = load_dataset("digits", seed=7)
    np.testing.assert_array_equal(d.x_test, other.x_test)


def test_subsets_are_seeded_and_checked():
    a = load_dataset("digits", seed=1, n_train=200, n_test=50)
    b = load_dataset("digits", seed=1, n_train=200, n_test=50)
    c = load_dataset("digits", seed=2, n_train=200, n_test=50)
    assert a.x_train.shape == (200, 64)
    assert a.x_test.shape == (50, 64)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.x_train, c.x_train)
    full = load_dataset("digits")
    # every subset row is a row of the full set
    rows = {r.tobytes() for r in full.x_train}
    assert all(r.tobytes() in rows for r in a.x_train)
    with pytest.raises(ConfigError, match="n_train = 5000: only 1437"):
        load_dataset("digits", n_train=5000)
    with pytest.raises(ConfigError, match="n_test"):
        load_dataset("digits", n_test=0)


def test_unknown_name_and_stray_options():
    with pytest.raises(ConfigError, match="unknown data set 'svhn'"):
        load_dataset("svhn")
    with pytest.raises(ConfigError, match="correlation"):
        load_dataset("digits", correlation=0.5)


# --------------------------------------------------------------------------- IDX
@pytest.mark.parametrize("gz", [True, False])
def test_idx_directory_round_trip(tmp_path, gz):
    arrays = _make_idx_dir(tmp_path / "set", gz=gz)
    d = load_dataset("idx", tmp_path / "set")
    images, labels = arrays["train"]
    assert d.x_train.shape == (30, 20)
    assert d.x_test.shape == (12, 20)
    np.testing.assert_allclose(d.x_train, images.reshape(30, -1) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(d.y_train, labels.astype(np.int64))
    np.testing.assert_array_equal(d.y_test, arrays["t10k"][1])
    assert d.n_classes == int(max(labels.max(), arrays["t10k"][1].max())) + 1


@pytest.mark.parametrize("suffix", [".gz", ""])
@pytest.mark.parametrize(
    ("dtype", "type_byte"),
    [(np.uint8, 0x08), (np.int8, 0x09), (np.int16, 0x0B), (np.int32, 0x0C), (np.float32, 0x0D), (np.float64, 0x0E)],
)
def test_read_write_idx_all_types(tmp_path, dtype, type_byte, suffix):
    rng = np.random.default_rng(3)
    a = (rng.standard_normal((3, 4, 2)) * 50).astype(dtype)
    p = _write(tmp_path / f"a.idx{suffix}", _idx_bytes(a, type_byte))
    np.testing.assert_array_equal(read_idx(p), a)
    q = write_idx(tmp_path / f"b.idx{suffix}", a)
    np.testing.assert_array_equal(read_idx(q), a)
    raw = gzip.decompress(q.read_bytes()) if suffix else q.read_bytes()
    assert raw == _idx_bytes(a, type_byte)


def test_truncated_idx_names_file(tmp_path):
    _make_idx_dir(tmp_path, gz=False)
    bad = tmp_path / "train-images-idx3-ubyte"
    bad.write_bytes(bad.read_bytes()[:-7])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: 609 bytes, expected 616 .*\(truncated\)"):
        load_dataset("idx", tmp_path)


def test_truncated_gzip_names_file(tmp_path):
    _make_idx_dir(tmp_path, gz=True)
    bad = tmp_path / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:15])
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz: cannot read the gzip stream"):
        load_dataset("idx", tmp_path)


def test_bad_magic_names_file(tmp_path):
    p = tmp_path / "x-idx1-ubyte"
    p.write_bytes(b"PK\x03\x04" + b"\0" * 20)
    with pytest.raises(DataError, match=r"x-idx1-ubyte: bad IDX magic number 0x504b0304"):
        read_idx(p)
    p.write_bytes(b"\0\0")
    with pytest.raises(DataError, match="at least a 4-byte magic"):
        read_idx(p)


def test_label_count_mismatch_and_negative_labels(tmp_path):
    _make_idx_dir(tmp_path, gz=False)
    _write(tmp_path / "train-labels-idx1-ubyte", _idx_bytes(np.zeros(29, np.uint8), 0x08))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte: 29 labels but train-images-idx3-ubyte holds 30"):
        load_dataset("idx", tmp_path)
    _write(tmp_path / "train-labels-idx1-ubyte", _idx_bytes(-np.ones(30, np.int8), 0x09))
    with pytest.raises(DataError, match="negative label"):
        load_dataset("idx", tmp_path)


def test_missing_directory_and_missing_file(tmp_path, monkeypatch):
    with pytest.raises(DataError, match=r"nope: data directory does not exist"):
        load_dataset("idx", tmp_path / "nope")
    with pytest.raises(DataError, match="pass data_dir"):
        load_dataset("idx")
    monkeypatch.delenv(DATA_ENV, raising=False)
    with pytest.raises(DataError, match=f"pass data_dir, or set \\${DATA_ENV}"):
        load_dataset("fashion-mnist")
    _make_idx_dir(tmp_path / "d", gz=True)
    (tmp_path / "d" / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"no t10k-images-idx3-ubyte\[.gz\] file"):
        load_dataset("idx", tmp_path / "d")


def test_env_default_directory(tmp_path, monkeypatch):
    _make_idx_dir(tmp_path / "fashion-mnist", gz=True)
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    d = load_dataset("fashion-mnist", n_train=10)
    assert d.name == "fashion-mnist"
    assert d.x_train.shape == (10, 20)
    assert d.n_classes == 10


def test_find_idx_files_prefixed_names_and_ambiguity(tmp_path):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        _write(tmp_path / f"emnist-digits-{split}-images-idx3-ubyte.gz",
               _idx_bytes(rng.integers(0, 255, (4, 2, 2), dtype=np.uint8), 0x08))
        _write(tmp_path / f"emnist-digits-{split}-labels-idx1-ubyte.gz",
               _idx_bytes(np.arange(4, dtype=np.uint8), 0x08))
    files = find_idx_files(tmp_path)
    assert files["test_images"].name == "emnist-digits-test-images-idx3-ubyte.gz"
    assert load_dataset("idx", tmp_path).n_classes == 4
    (tmp_path / "other-train-images-idx3-ubyte").write_bytes(b"")
    with pytest.raises(DataError, match="several files could be the train images"):
        find_idx_files(tmp_path)


# --------------------------------------------------------------------------- CIFAR-10
def _write_cifar(root: Path, n=6, seed=0, protocol=pickle.DEFAULT_PROTOCOL):
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).tolist()
        with (root / name).open("wb") as fh:
            pickle.dump({b"batch_label": name.encode(), b"data": data, b"labels": labels}, fh, protocol=protocol)
        batches[name] = (data, labels)
    return batches


@pytest.mark.parametrize("protocol", [2, pickle.DEFAULT_PROTOCOL, pickle.HIGHEST_PROTOCOL])
def test_cifar10_fake_batches(tmp_path, protocol):
    # protocol 2 is the official batches' protocol (written by Python 2); Python 3 writes its
    # bytes through _codecs.encode there, newer protocols through numpy's _frombuffer
    batches = _write_cifar(tmp_path / "cifar-10-batches-py", protocol=protocol)
    for where in (tmp_path / "cifar-10-batches-py", tmp_path):  # the batch folder or its parent
        d = load_dataset("cifar10", where)
        assert d.x_train.shape == (30, 3072)
        assert d.x_test.shape == (6, 3072)
        assert d.n_classes == 10
        np.testing.assert_allclose(d.x_train[6:12], batches["data_batch_2"][0] / 255.0, rtol=1e-6)
        np.testing.assert_array_equal(d.y_test, batches["test_batch"][1])
    assert load_dataset("cifar10", tmp_path, n_train=5, seed=1).x_train.shape == (5, 3072)


def test_cifar10_errors_name_the_file(tmp_path):
    root = tmp_path / "c"
    _write_cifar(root)
    (root / "data_batch_4").unlink()
    with pytest.raises(DataError, match=r"data_batch_4: CIFAR-10 batch file does not exist"):
        load_dataset("cifar10", root)
    with (root / "data_batch_4").open("wb") as fh:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, fh)
    with pytest.raises(DataError, match=r"data_batch_4: b'data' must be uint8 of shape \(N, 3072\)"):
        load_dataset("cifar10", root)
    (root / "data_batch_4").write_bytes(b"\x80\x04garbage")
    with pytest.raises(DataError, match="data_batch_4: not a CIFAR-10 python batch"):
        load_dataset("cifar10", root)
    with (root / "data_batch_4").open("wb") as fh:
        pickle.dump({b"data": Path("x")}, fh)  # a non-array class: refused, never executed
    with pytest.raises(DataError, match="refusing to load"):
        load_dataset("cifar10", root)
    with pytest.raises(DataError, match="CIFAR-10 directory does not exist"):
        load_dataset("cifar10", tmp_path / "absent")


# --------------------------------------------------------------------------- synthetic
@pytest.mark.parametrize("structure", ["ar1", "equicorrelated"])
def test_synthetic_has_requested_correlation(structure):
    d = load_dataset("synthetic", seed=4, n_train=20000, n_test=100, correlation=0.8, structure=structure,
                     n_features=8)
    assert d.x_train.shape == (20000, 8)
    assert d.x_test.shape == (100, 8)
    assert d.x_train.dtype == np.float32
    assert d.y_train.dtype == np.int64
    emp = np.cov(d.x_train.T.astype(np.float64))
    want = covariance(SyntheticSpec(n_features=8, correlation=0.8, structure=structure))
    # explicit expectation, written out independently of covariance()
    for i in range(8):
        for j in range(8):
            rho = 0.8 ** abs(i - j) if structure == "ar1" else (1.0 if i == j else 0.8)
            assert want[i, j] == pytest.approx(rho)
    np.testing.assert_allclose(emp, want, atol=0.04)
    # all classes occur, and labels follow a linear teacher: a least-squares linear
    # classifier fits the noiseless labels far above chance
    assert set(np.unique(d.y_train)) == set(range(4))
    onehot = np.eye(4)[d.y_train]
    w, *_ = np.linalg.lstsq(d.x_train, onehot, rcond=None)
    assert np.mean(np.argmax(d.x_train @ w, axis=1) == d.y_train) > 0.7


def test_synthetic_white_and_seeded():
    d = load_dataset("synthetic", spec={"correlation": 0.0, "n_features": 6}, n_train=20000, n_test=10)
    np.testing.assert_allclose(np.cov(d.x_train.T), np.eye(6), atol=0.04)
    a = load_dataset("synthetic", spec=SyntheticSpec(label_noise=0.5), seed=3)
    b = load_dataset("synthetic", spec=SyntheticSpec(label_noise=0.5), seed=3)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert a.x_train.shape == (2000, 32)


def test_synthetic_bad_options_name_the_field():
    with pytest.raises(ConfigError, match=r"correlation = 1.0: must lie in"):
        load_dataset("synthetic", correlation=1.0)
    with pytest.raises(ConfigError, match=r"unknown field.*'rho'"):
        load_dataset("synthetic", rho=0.3)
    with pytest.raises(ConfigError, match="structure"):
        load_dataset("synthetic", structure="banded")


# --------------------------------------------------------------------------- MNIST
@pytest.mark.mnist
@pytest.mark.skipif(not MNIST_DIR.is_dir(), reason=f"MNIST not present at {MNIST_DIR}")
def test_mnist_from_shared_dir():
    d = load_dataset("mnist", MNIST_DIR, n_train=500, seed=0)
    assert d.x_train.shape == (500, 784)
    assert d.x_test.shape == (10000, 784)
    assert d.x_train.dtype == np.float32
    assert d.x_test.max() == 1.0
    assert d.x_test.min() == 0.0
    assert d.n_classes == 10
    # the known MNIST test-set class counts
    np.testing.assert_array_equal(np.bincount(d.y_test), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
