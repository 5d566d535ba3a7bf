"""Loaders for real data sets: scikit-learn's 8x8 digits, IDX directories, CIFAR-10 batches.

None of them downloads anything: each reads a standard file layout from a
directory (or, for digits, the copy embedded in scikit-learn).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import ClassVar

import numpy as np

from analogdecor.data.dataset import Dataset
from analogdecor.data.idx import find_idx_files, read_idx
from analogdecor.errors import DataError

__all__ = ["DIGITS_TEST_SIZE", "load_cifar10", "load_digits", "load_idx_dir"]

#: Test-set size of the fixed digits split (1797 samples -> 1437 train / 360 test).
DIGITS_TEST_SIZE = 360
_DIGITS_SPLIT_SEED = 0


def load_digits() -> Dataset:
    """scikit-learn's 8x8 handwritten digits (1797 samples, 64 features, 10 classes).

    The split is fixed (stratified, 1437 train / 360 test, independent of any
    run seed) so that runs with different seeds are evaluated on the same test
    set. Pixels (0..16) are scaled to [0, 1].
    """
    from sklearn.datasets import load_digits as _sk_load_digits
    from sklearn.model_selection import train_test_split

    bunch = _sk_load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=DIGITS_TEST_SIZE, stratify=y, random_state=_DIGITS_SPLIT_SEED
    )
    return Dataset(x_train, y_train, x_test, y_test, n_classes=10, name="digits")


def _images_to_float(images: np.ndarray, path: Path) -> np.ndarray:
    if images.ndim < 2:
        raise DataError(f"{path}: expected an image array (N, rows, cols, ...), got shape {images.shape}")
    flat = images.reshape(images.shape[0], -1)
    if images.dtype == np.uint8:
        return (flat / np.float32(255.0)).astype(np.float32)
    if images.dtype.kind == "f":
        return flat.astype(np.float32)
    raise DataError(f"{path}: images of IDX type {images.dtype}; expected unsigned bytes (0x08) or floats")


def _labels_to_int(labels: np.ndarray, path: Path, n_images: int, images_path: Path) -> np.ndarray:
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataError(f"{path}: expected a 1-D integer label array, got {labels.dtype} of shape {labels.shape}")
    if labels.shape[0] != n_images:
        raise DataError(f"{path}: {labels.shape[0]} labels but {images_path.name} holds {n_images} images")
    if labels.size and labels.min() < 0:
        raise DataError(f"{path}: negative label {labels.min()}")
    return labels.astype(np.int64)


def load_idx_dir(directory: str | Path, *, name: str = "idx", n_classes: int | None = None) -> Dataset:
    """Load an MNIST-style IDX directory (MNIST, Fashion-MNIST, KMNIST, EMNIST, ...).

    Parameters
    ----------
    directory : str or Path
        Directory holding the four files found by :func:`~analogdecor.data.idx.find_idx_files`.
    name : str
        Name recorded in the returned :class:`Dataset`.
    n_classes : int, optional
        Number of classes (every label must lie in 0..n_classes-1); default: one more
        than the largest label, and then every class must occur in the training labels.

    Raises
    ------
    DataError
        For a missing directory or file, a malformed file, or inconsistent
        image/label counts or image sizes; the message names the file.
    """
    files = find_idx_files(directory)
    parts = {}
    for split in ("train", "test"):
        img_path, lab_path = files[f"{split}_images"], files[f"{split}_labels"]
        images = read_idx(img_path)
        x = _images_to_float(images, img_path)
        y = _labels_to_int(read_idx(lab_path), lab_path, x.shape[0], img_path)
        parts[split] = (x, y, images.shape[1:], img_path)
    if parts["train"][2] != parts["test"][2]:
        raise DataError(f"{parts['test'][3]}: images of shape {parts['test'][2]} but "
                        f"{parts['train'][3].name} has {parts['train'][2]}")
    top = int(max(parts["train"][1].max(initial=0), parts["test"][1].max(initial=0)))
    if n_classes is None:
        # K is inferred as one more than the largest label (of either split); every class 0..K-1 must
        # then occur among the training labels, so that a stray label cannot silently add classes.
        n_classes = top + 1
        absent = np.setdiff1d(np.arange(n_classes), parts["train"][1])
        if absent.size:
            shown = ", ".join(map(str, absent[:8])) + (", ..." if absent.size > 8 else "")
            raise DataError(
                f"{files['train_labels']}: labels go up to {top}, so the data set would have {n_classes} "
                f"classes, but {absent.size} of them ({shown}) never occur in the training labels: labels must "
                "be 0..K-1 (a stray or corrupted label?). If the training set really lacks classes, give the "
                "number of classes (model.out_features)"
            )
    elif top >= n_classes:
        raise DataError(f"{Path(directory)}: labels go up to {top} but the data set {name!r} has {n_classes} classes")
    return Dataset(parts["train"][0], parts["train"][1], parts["test"][0], parts["test"][1],
                   n_classes=n_classes, name=name)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds plain containers and NumPy arrays (no arbitrary code)."""

    _ALLOWED: ClassVar[frozenset[tuple[str, str]]] = frozenset({
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 store bytes
    })

    def find_class(self, module: str, name: str):  # type: ignore[override]
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: a CIFAR batch holds only arrays and lists")


_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_TEST = "test_batch"
_CIFAR_PIXELS = 32 * 32 * 3


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DataError(f"{path}: CIFAR-10 batch file does not exist (expected data_batch_1..5 and test_batch)")
    try:
        with path.open("rb") as fh:
            batch = _ArrayUnpickler(fh, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as exc:
        raise DataError(f"{path}: not a CIFAR-10 python batch (a pickled dict): {exc}") from None
    if not isinstance(batch, dict):
        raise DataError(f"{path}: expected a pickled dict with b'data' and b'labels', got {type(batch).__name__}")
    missing = [k for k in (b"data", b"labels") if k not in batch]
    if missing:
        raise DataError(f"{path}: batch dict lacks {', '.join(map(repr, missing))} (keys: {sorted(batch)})")
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[b"labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _CIFAR_PIXELS:
        raise DataError(f"{path}: b'data' must be uint8 of shape (N, {_CIFAR_PIXELS}), got {data.dtype} {data.shape}")
    if labels.ndim != 1 or labels.shape[0] != data.shape[0] or labels.dtype.kind not in "iu":
        raise DataError(f"{path}: b'labels' must be {data.shape[0]} integers, got {labels.dtype} {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{path}: labels must lie in 0..9, got {labels.min()}..{labels.max()}")
    return data, labels.astype(np.int64)


def load_cifar10(directory: str | Path) -> Dataset:
    """CIFAR-10 from its python batches (``cifar-10-batches-py``): 50000 train / 10000 test.

    ``directory`` is the folder holding ``data_batch_1`` .. ``data_batch_5`` and
    ``test_batch``, or a folder that contains ``cifar-10-batches-py``. Each row
    is the batch's 3072 bytes (1024 red, 1024 green, 1024 blue, row-major 32x32)
    scaled to [0, 1]. The batches are pickles; they are read with an unpickler
    that accepts only arrays and plain containers.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: CIFAR-10 directory does not exist (expected data_batch_1..5 and test_batch)")
    if not (directory / _CIFAR_TEST).exists() and (directory / "cifar-10-batches-py").is_dir():
        directory = directory / "cifar-10-batches-py"
    train = [_read_cifar_batch(directory / n) for n in _CIFAR_TRAIN]
    x_test, y_test = _read_cifar_batch(directory / _CIFAR_TEST)
    x_train = np.concatenate([b[0] for b in train])
    y_train = np.concatenate([b[1] for b in train])
    scale = np.float32(1.0 / 255.0)
    return Dataset((x_train * scale).astype(np.float32), y_train, (x_test * scale).astype(np.float32), y_test,
                   n_classes=10, name="cifar10")
