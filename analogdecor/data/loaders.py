"""Loaders for real data sets: scikit-learn's 8x8 digits and IDX directories (CIFAR: :mod:`.cifar`).

None of them downloads anything: each reads a standard file layout from a
directory (or, for digits, the copy embedded in scikit-learn).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from analogdecor.data.cifar import load_cifar10
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
