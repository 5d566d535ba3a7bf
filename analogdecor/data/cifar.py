"""CIFAR-10 and CIFAR-100 from their python pickles, read without executing anything.

The official python versions (https://www.cs.toronto.edu/~kriz/cifar.html) are
pickles written by Python 2's cPickle (protocol 2): each file is a dict whose
values are byte strings, lists of ints and one uint8 NumPy array. Unpickling
such a file with :func:`pickle.load` would run whatever callables the file
names, so a planted file could run arbitrary code. :class:`SafeUnpickler`
resolves only the handful of NumPy names that rebuild an array (and Python 3's
protocol-2 byte-string helper); any other reference is refused before it is
imported, with a :class:`~analogdecor.errors.DataError` naming the file.

Layouts (``directory`` may also be the folder that contains the named folder):

``cifar-10-batches-py/``
    ``data_batch_1`` .. ``data_batch_5``, ``test_batch``: ``b'data'`` (N, 3072), ``b'labels'``.
``cifar-100-python/``
    ``train``, ``test``: ``b'data'`` (N, 3072), ``b'fine_labels'``, ``b'coarse_labels'``;
    ``meta``: ``b'fine_label_names'`` (100 names), ``b'coarse_label_names'``.

Each row is 1024 red, 1024 green, then 1024 blue bytes of a row-major 32x32
image (channel-major, (3, 32, 32)), scaled here to [0, 1].
"""

from __future__ import annotations

import codecs
import pickle
import struct
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from analogdecor.data.dataset import Dataset
from analogdecor.errors import DataError

__all__ = ["CIFAR100_CLASSES", "SafeUnpickler", "load_cifar10", "load_cifar100", "read_pickle"]

_PIXELS = 32 * 32 * 3
#: Number of fine classes of CIFAR-100 (its labels, ``b'fine_labels'``).
CIFAR100_CLASSES = 100


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles of Python 3 use it for bytes, and nothing more."""
    if encoding.lower().replace("-", "") not in ("latin1", "iso88591") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refusing _codecs.encode({type(text).__name__}, {encoding!r})")
    return codecs.encode(text, "latin1")


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds only plain containers, byte strings and NumPy arrays.

    ``find_class`` is the only way a pickle reaches a callable (``REDUCE``, ``NEWOBJ``,
    ``INST``, ``OBJ`` and the extension registry all go through it), so allowing just
    the names below means that no other code can run. Genuine CIFAR pickles
    (Python 2, protocol 2) reference ``numpy.core.multiarray._reconstruct``,
    ``numpy.ndarray`` and ``numpy.dtype``; the same data pickled by Python 3 and
    NumPy 2 uses ``numpy._core.*``, ``_codecs.encode`` (protocol 2's bytes) or
    ``numpy._core.numeric._frombuffer`` (protocol 5). Persistent ids are refused by
    :class:`pickle.Unpickler` itself.
    """

    _ALLOWED: ClassVar[dict[tuple[str, str], Any]] = {
        **{(mod, "_reconstruct"): None for mod in ("numpy.core.multiarray", "numpy._core.multiarray")},
        **{(mod, "scalar"): None for mod in ("numpy.core.multiarray", "numpy._core.multiarray")},
        **{(mod, "_frombuffer"): None for mod in ("numpy.core.numeric", "numpy._core.numeric")},
        ("numpy", "ndarray"): None,
        ("numpy", "dtype"): None,
        ("_codecs", "encode"): _latin1_encode,
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: a CIFAR pickle holds only arrays, lists and byte strings"
            )
        return self._ALLOWED[(module, name)] or super().find_class(module, name)


#: Everything a damaged or hostile pickle can raise while being read (truncation, bad opcodes, refusals).
_PICKLE_ERRORS = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError,
                  IndexError, KeyError, OverflowError, MemoryError, struct.error, OSError)  # fmt: skip


def read_pickle(path: Path, what: str) -> dict[bytes, Any]:
    """Read one pickled dict with :class:`SafeUnpickler` (byte strings stay ``bytes``).

    Raises
    ------
    DataError
        Missing, truncated or corrupt file, a refused reference, or not a dict; the message names ``path``.
    """
    if not path.is_file():
        raise DataError(f"{path}: {what} does not exist")
    try:
        with path.open("rb") as fh:
            obj = SafeUnpickler(fh, encoding="bytes").load()
    except _PICKLE_ERRORS as exc:
        raise DataError(f"{path}: not a {what} (a pickled dict): {type(exc).__name__}: {exc}") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a pickled dict ({what}), got {type(obj).__name__}")
    return obj


def _images_labels(path: Path, batch: dict[bytes, Any], label_key: bytes, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    missing = [k for k in (b"data", label_key) if k not in batch]
    if missing:
        raise DataError(f"{path}: batch dict lacks {', '.join(map(repr, missing))} (keys: {sorted(batch, key=repr)})")
    data = batch[b"data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _PIXELS:
        raise DataError(f"{path}: b'data' must be uint8 of shape (N, {_PIXELS}), got "
                        f"{getattr(data, 'dtype', type(data).__name__)} {getattr(data, 'shape', '')}")
    try:
        labels = np.asarray(batch[label_key])
    except (ValueError, TypeError) as exc:
        raise DataError(f"{path}: {label_key!r} is not a list of integers ({exc})") from None
    if labels.ndim != 1 or labels.shape[0] != data.shape[0] or labels.dtype.kind not in "iu":
        raise DataError(f"{path}: {label_key!r} must be {data.shape[0]} integers, got {labels.dtype} {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise DataError(f"{path}: {label_key!r} must lie in 0..{n_classes - 1}, got {labels.min()}..{labels.max()}")
    return data, labels.astype(np.int64)


def _find(directory: str | Path, folder: str, marker: str, what: str, expected: str) -> Path:
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: {what} directory does not exist ({expected})")
    if not (directory / marker).exists() and (directory / folder).is_dir():
        directory = directory / folder
    return directory


def _to_float(x: np.ndarray) -> np.ndarray:
    return (x * np.float32(1.0 / 255.0)).astype(np.float32)


_CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))


def load_cifar10(directory: str | Path) -> Dataset:
    """CIFAR-10 from its python batches (``cifar-10-batches-py``): 50000 train / 10000 test, 10 classes.

    Parameters
    ----------
    directory : str or Path
        The folder holding ``data_batch_1`` .. ``data_batch_5`` and ``test_batch``, or a
        folder that contains ``cifar-10-batches-py``.

    Raises
    ------
    DataError
        A missing, truncated or malformed batch, or one that references anything but
        arrays (see :class:`SafeUnpickler`); the message names the file.
    """
    what = "CIFAR-10 python batch"
    directory = _find(directory, "cifar-10-batches-py", "test_batch", "CIFAR-10",
                      "expected data_batch_1..5 and test_batch")  # fmt: skip
    parts = []
    for name in (*_CIFAR10_TRAIN, "test_batch"):
        path = directory / name
        if not path.is_file():
            raise DataError(f"{path}: CIFAR-10 batch file does not exist (expected data_batch_1..5 and test_batch)")
        parts.append(_images_labels(path, read_pickle(path, what), b"labels", 10))
    x_train = np.concatenate([p[0] for p in parts[:-1]])
    y_train = np.concatenate([p[1] for p in parts[:-1]])
    return Dataset(_to_float(x_train), y_train, _to_float(parts[-1][0]), parts[-1][1], n_classes=10, name="cifar10")


def load_cifar100(directory: str | Path) -> Dataset:
    """CIFAR-100 from ``cifar-100-python``: 50000 train / 10000 test, the 100 fine labels.

    Parameters
    ----------
    directory : str or Path
        The folder holding ``train``, ``test`` and ``meta``, or a folder that contains
        ``cifar-100-python``.

    Raises
    ------
    DataError
        A missing, truncated or malformed file, one that references anything but
        arrays (see :class:`SafeUnpickler`), or a ``meta`` that does not list 100 fine
        classes; the message names the file.
    """
    directory = _find(directory, "cifar-100-python", "test", "CIFAR-100", "expected train, test and meta")
    meta_path = directory / "meta"
    meta = read_pickle(meta_path, "CIFAR-100 python meta file")
    names = meta.get(b"fine_label_names")
    if not isinstance(names, list) or len(names) != CIFAR100_CLASSES:
        raise DataError(f"{meta_path}: b'fine_label_names' must list {CIFAR100_CLASSES} class names, got "
                        f"{len(names) if isinstance(names, list) else type(names).__name__}")
    split = {}
    for name in ("train", "test"):
        path = directory / name
        split[name] = _images_labels(path, read_pickle(path, "CIFAR-100 python file"), b"fine_labels", CIFAR100_CLASSES)
    (x_train, y_train), (x_test, y_test) = split["train"], split["test"]
    return Dataset(_to_float(x_train), y_train, _to_float(x_test), y_test, n_classes=CIFAR100_CLASSES,
                   name="cifar100")  # fmt: skip
