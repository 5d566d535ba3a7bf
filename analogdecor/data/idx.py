"""IDX files (the MNIST layout): a strict reader, a writer, and directory discovery.

The IDX format (LeCun et al., http://yann.lecun.com/exdb/mnist/) is a 4-byte
magic number ``0x00 0x00 TYPE NDIM``, then NDIM big-endian uint32 dimension
sizes, then the data in C order, big-endian. MNIST, Fashion-MNIST, KMNIST's
IDX release and EMNIST all use it, with file names such as
``train-images-idx3-ubyte.gz``. Files may be gzip-compressed (``.gz``) or plain.
"""

from __future__ import annotations

import gzip
import re
import zlib
from pathlib import Path

import numpy as np

from analogdecor.errors import DataError

__all__ = ["IDX_DTYPES", "find_idx_files", "read_idx", "write_idx"]

#: IDX type byte -> big-endian NumPy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_TYPE_OF: dict[str, int] = {dt.str[1:]: code for code, dt in IDX_DTYPES.items()}


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise DataError(f"{path}: file does not exist")
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot read the gzip stream ({exc}); the file is truncated or not gzip") from None


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (gzip-compressed when its name ends in ``.gz``).

    Parameters
    ----------
    path : str or Path
        The file.

    Returns
    -------
    numpy.ndarray
        The array in native byte order, with the dimensions from the header.

    Raises
    ------
    DataError
        If the file is missing, not IDX (bad magic number or type byte), or its
        size does not match its header; the message names the file and what
        was expected.
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise DataError(f"{path}: {len(raw)} bytes; expected an IDX file (at least a 4-byte magic number)")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise DataError(
            f"{path}: bad IDX magic number 0x{raw[:4].hex()}; expected 0x0000TTNN with type TT in "
            f"{', '.join(f'{c:02x}' for c in IDX_DTYPES)} (e.g. 0x00000803 for unsigned-byte images)"
        )
    dtype = IDX_DTYPES[raw[2]]
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"{path}: header declares {ndim} dimensions but the file has only {len(raw)} bytes")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(
            f"{path}: {len(raw)} bytes, expected {expected} for an IDX array of shape {dims} and type "
            f"{dtype.name} ({'truncated' if len(raw) < expected else 'trailing bytes'})"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file (gzip-compressed when ``path`` ends in ``.gz``).

    Supported dtypes: uint8, int8, int16, int32, float32, float64.
    """
    path = Path(path)
    array = np.asarray(array)
    key = array.dtype.newbyteorder(">").str[1:]
    if key not in _TYPE_OF:
        raise DataError(f"{path}: cannot write dtype {array.dtype} as IDX; supported: uint8, int8, int16, "
                        "int32, float32, float64")
    if array.ndim == 0 or array.ndim > 255:
        raise DataError(f"{path}: IDX needs 1 to 255 dimensions, got {array.ndim}")
    header = bytes([0, 0, _TYPE_OF[key], array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = header + np.ascontiguousarray(array, dtype=array.dtype.newbyteorder(">")).tobytes()
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as fh:
            fh.write(payload)
    else:
        path.write_bytes(payload)
    return path


#: role -> (split words, kind word, IDX dimensionality)
_ROLES = {
    "train_images": (("train",), "images", 3),
    "train_labels": (("train",), "labels", 1),
    "test_images": (("t10k", "test"), "images", 3),
    "test_labels": (("t10k", "test"), "labels", 1),
}


def find_idx_files(directory: str | Path) -> dict[str, Path]:
    """Locate the four IDX files of an MNIST-style directory.

    A file matches a role when its name (less ``.gz``) ends with
    ``<split>-<kind>-idx<N>-ubyte``, where split is ``train`` or ``t10k``/``test``
    and kind is ``images`` or ``labels`` (``-`` or ``_`` or ``.`` as separators), so
    ``train-images-idx3-ubyte.gz`` and ``emnist-digits-train-images-idx3-ubyte`` both match.

    Returns
    -------
    dict
        Keys ``train_images``, ``train_labels``, ``test_images``, ``test_labels``.

    Raises
    ------
    DataError
        If the directory is missing, or a role has no file or several files (a plain
        file and a ``.gz`` of the same name count as two).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: data directory does not exist (expected a directory holding "
                        "train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], "
                        "t10k-labels-idx1-ubyte[.gz])")
    names = sorted(p.name for p in directory.iterdir() if p.is_file())
    found: dict[str, Path] = {}
    for role, (splits, kind, ndim) in _ROLES.items():
        pattern = re.compile(
            rf"(^|[-_.])({'|'.join(splits)})[-_.]{kind}[-_.]idx{ndim}[-_.]ubyte(\.gz)?$", re.IGNORECASE
        )
        hits = [n for n in names if pattern.search(n)]
        if not hits:
            raise DataError(f"{directory}: no {splits[0]}-{kind}-idx{ndim}-ubyte[.gz] file (the "
                            f"{role.replace('_', ' ')}); files present: {', '.join(names) or 'none'}")
        # Exactly one candidate per role: a plain file beside a .gz of the same name is not assumed
        # to hold the same data (a half-finished gunzip, or an edited copy, would silently win).
        if len(hits) > 1:
            raise DataError(f"{directory}: several files could be the {role.replace('_', ' ')}: "
                            f"{', '.join(hits)}; keep exactly one (e.g. remove the uncompressed copy)")
        found[role] = directory / hits[0]
    return found
