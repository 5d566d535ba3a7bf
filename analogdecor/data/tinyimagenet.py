"""Tiny ImageNet (``tiny-imagenet-200``): 200 classes of 64x64 colour images, decoded with Pillow.

Layout of the official archive (http://cs231n.stanford.edu/tiny-imagenet-200.zip), unpacked::

    tiny-imagenet-200/
        wnids.txt                         200 WordNet ids, one per line
        train/<wnid>/images/*.JPEG        500 per class
        val/images/*.JPEG                 10000 images
        val/val_annotations.txt           <file> TAB <wnid> TAB <box...>, one line per image

The ``test/`` folder has no labels, so the labelled ``val/`` folder serves as the
test split. Class ``k`` is the ``k``-th WordNet id in sorted order (as
``torchvision.datasets.ImageFolder`` numbers the ``train/`` folders). Images are
converted to RGB (a few are greyscale) and stored channel-major, (3, 64, 64),
scaled to [0, 1]. Pillow is an optional dependency (``pip install "analogdecor[images]"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from analogdecor.data.dataset import Dataset
from analogdecor.errors import DataError

__all__ = ["TINY_IMAGENET_SHAPE", "TinyImageNetFiles", "decode_images", "list_tiny_imagenet", "load_tiny_imagenet"]

#: (C, H, W) of a Tiny ImageNet image.
TINY_IMAGENET_SHAPE = (3, 64, 64)
_FOLDER = "tiny-imagenet-200"


def _pillow() -> Any:
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise DataError(
            "Tiny ImageNet's JPEG images are decoded with Pillow, which is not installed: "
            'pip install "analogdecor[images]" (or pip install pillow)'
        ) from None
    return Image, UnidentifiedImageError


class TinyImageNetFiles:
    """The image files and labels of a Tiny ImageNet directory, listed but not decoded yet.

    Attributes
    ----------
    root : Path
        The ``tiny-imagenet-200`` folder.
    wnids : list of str
        The 200 WordNet ids in sorted order (label ``k`` is ``wnids[k]``).
    train_files, test_files : list of Path
        Image files of the train split and of the ``val`` folder (the test split).
    y_train, y_test : numpy.ndarray
        int64 labels of those files.
    """

    def __init__(self, root: Path, wnids: list[str], train_files: list[Path], y_train: np.ndarray,
                 test_files: list[Path], y_test: np.ndarray) -> None:  # fmt: skip
        self.root, self.wnids = root, wnids
        self.train_files, self.y_train = train_files, y_train
        self.test_files, self.y_test = test_files, y_test


def _read_text(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"{path}: file does not exist (expected the tiny-imagenet-200 layout: wnids.txt, "
                        "train/<wnid>/images/*.JPEG, val/images/*.JPEG, val/val_annotations.txt)")
    try:
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable text file ({exc})") from None


def list_tiny_imagenet(directory: str | Path) -> TinyImageNetFiles:
    """Find the files of a Tiny ImageNet directory and their labels (nothing is decoded).

    Parameters
    ----------
    directory : str or Path
        The ``tiny-imagenet-200`` folder or the folder that contains it.

    Raises
    ------
    DataError
        A missing folder or file, a duplicate WordNet id, a class folder without
        images, or a val annotation that names an unknown class or a missing image;
        the message names the file.
    """
    root = Path(directory)
    if not root.is_dir():
        raise DataError(f"{root}: Tiny ImageNet directory does not exist (expected {_FOLDER}/ with wnids.txt, "
                        "train/ and val/)")
    if not (root / "wnids.txt").exists() and (root / _FOLDER).is_dir():
        root = root / _FOLDER
    listed = _read_text(root / "wnids.txt")
    if len(set(listed)) != len(listed):
        raise DataError(f"{root / 'wnids.txt'}: a WordNet id is listed twice")
    if len(listed) < 2:
        raise DataError(f"{root / 'wnids.txt'}: lists {len(listed)} class(es); expected 200")
    wnids = sorted(listed)
    label = {w: k for k, w in enumerate(wnids)}
    train_files: list[Path] = []
    y_train: list[int] = []
    for w in wnids:
        folder = root / "train" / w / "images"
        files = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".jpeg", ".jpg", ".png"))
        if not files:
            raise DataError(f"{folder}: no images of class {w} (expected train/{w}/images/*.JPEG)")
        train_files += files
        y_train += [label[w]] * len(files)
    annotations = root / "val" / "val_annotations.txt"
    test_files: list[Path] = []
    y_test: list[int] = []
    for i, line in enumerate(_read_text(annotations), start=1):
        fields = line.split("\t")
        if len(fields) < 2 or fields[1] not in label:
            raise DataError(f"{annotations}: line {i} ({line[:60]!r}) does not name an image and a class of wnids.txt")
        path = root / "val" / "images" / fields[0]
        if not path.is_file():
            raise DataError(f"{path}: image listed on line {i} of {annotations} does not exist")
        test_files.append(path)
        y_test.append(label[fields[1]])
    return TinyImageNetFiles(root, wnids, train_files, np.asarray(y_train, dtype=np.int64), test_files,
                             np.asarray(y_test, dtype=np.int64))  # fmt: skip


def decode_images(files: Sequence[Path], shape: tuple[int, int, int] = TINY_IMAGENET_SHAPE) -> np.ndarray:
    """Decode image files into float32 rows (channel-major, scaled to [0, 1]).

    Raises
    ------
    DataError
        Pillow is not installed (the message says what to install), or a file is
        corrupt, truncated or not of size ``shape``; the message names the file.
    """
    image_mod, unidentified = _pillow()
    c, h, w = shape
    out = np.empty((len(files), c * h * w), dtype=np.float32)
    for i, path in enumerate(files):
        try:
            with image_mod.open(path) as img:
                img.load()  # decodes everything now: a truncated JPEG fails here, not later
                pixels = np.asarray(img.convert("RGB" if c == 3 else "L"), dtype=np.uint8)
        except (OSError, SyntaxError, ValueError, unidentified) as exc:
            raise DataError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from None
        if pixels.shape[:2] != (h, w):
            raise DataError(f"{path}: image of {pixels.shape[1]}x{pixels.shape[0]} pixels; expected {w}x{h}")
        rows = pixels.reshape(h, w, c).transpose(2, 0, 1)  # HWC -> CHW
        out[i] = rows.reshape(-1) / np.float32(255.0)
    return out


def load_tiny_imagenet(directory: str | Path, train_index: np.ndarray | None = None,
                       test_index: np.ndarray | None = None) -> Dataset:  # fmt: skip
    """Tiny ImageNet as a :class:`Dataset` (100000 train / 10000 test from ``val/``, 200 classes).

    Parameters
    ----------
    directory : str or Path
        The ``tiny-imagenet-200`` folder or the folder that contains it.
    train_index, test_index : numpy.ndarray, optional
        Decode only these rows of the listing (a subset; all rows when None).

    Notes
    -----
    All of it in float32 takes 5.4 GB; ``n_train``/``n_test`` of
    :func:`~analogdecor.data.load_dataset` decode only the chosen images.
    """
    files = list_tiny_imagenet(directory)
    tr = np.arange(len(files.train_files)) if train_index is None else np.asarray(train_index)
    te = np.arange(len(files.test_files)) if test_index is None else np.asarray(test_index)
    x_train = decode_images([files.train_files[i] for i in tr])
    x_test = decode_images([files.test_files[i] for i in te])
    return Dataset(x_train, files.y_train[tr], x_test, files.y_test[te], n_classes=len(files.wnids),
                   name="tiny-imagenet")  # fmt: skip
