"""Image-data steps shared by the loaders and training: a validation split, per-channel normalisation, augmentation.

Rows of a :class:`~analogdecor.data.Dataset` are flattened channel-major images, so
every function here takes the per-sample shape ``(C, H, W)`` next to the rows.
Each is a pure function of its arrays and a :class:`numpy.random.Generator`.
"""

from __future__ import annotations

import numpy as np

from analogdecor.errors import ConfigError, ShapeError

__all__ = ["channel_stats", "normalize_channels", "random_crop_flip", "split_validation", "validation_size"]

_CHUNK = 4096  # rows per pass of channel_stats (bounds its float64 temporaries)


def _as_images(x: np.ndarray, shape: tuple[int, ...], what: str) -> np.ndarray:
    if len(shape) != 3 or any(int(s) < 1 for s in shape):
        raise ShapeError(f"{what}: image shape {tuple(shape)} must be (C, H, W)")
    if x.ndim != 2 or x.shape[1] != int(np.prod(shape)):
        raise ShapeError(f"{what}: rows of shape {x.shape} do not hold images of shape {tuple(shape)}")
    return x.reshape(x.shape[0], *(int(s) for s in shape))


def validation_size(validation: int | float, n: int, *, name: str = "data.validation") -> int:
    """Number of rows a validation setting takes out of ``n`` training rows.

    An int is a count (>= 1); a float in (0, 1) a fraction (rounded, at least 1 row).
    At least one row must stay for training.
    """
    if isinstance(validation, bool) or not isinstance(validation, int | float | np.integer | np.floating):
        raise ConfigError(f"{name} = {validation!r}: must be a count (>= 1) or a fraction in (0, 1)")
    if isinstance(validation, float | np.floating):
        if not 0.0 < validation < 1.0:
            raise ConfigError(f"{name} = {validation!r}: a fraction must lie in (0, 1) (a count is an integer)")
        size = max(1, round(float(validation) * n))
    else:
        size = int(validation)
        if size < 1:
            raise ConfigError(f"{name} = {validation!r}: a count must be >= 1")
    if size >= n:
        raise ConfigError(f"{name} = {validation!r}: takes {size} of the {n} training samples; "
                          "at least one must stay for training")  # fmt: skip
    return size


def split_validation(
    x: np.ndarray, y: np.ndarray, validation: int | float, rng: np.random.Generator, *, name: str = "data.validation"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hold out a seeded random validation set from training rows.

    Parameters
    ----------
    x, y : numpy.ndarray
        Training rows and labels.
    validation : int or float
        A count or a fraction (see :func:`validation_size`).
    rng : numpy.random.Generator
        Draws the held-out rows (one permutation of ``len(y)``).

    Returns
    -------
    x_train, y_train, x_val, y_val : numpy.ndarray
        Disjoint parts of the rows, each in the rows' original order.
    """
    size = validation_size(validation, len(y), name=name)
    perm = rng.permutation(len(y))
    val, train = np.sort(perm[:size]), np.sort(perm[size:])
    return x[train], y[train], x[val], y[val]


def channel_stats(x: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each channel over all rows and pixels (float64, shape (C,)).

    Computed in float64, in two passes over chunks of rows. A channel with no spread
    gets std 1 (normalising it then only removes its mean).
    """
    img = _as_images(x, shape, "channel_stats")
    n, c = img.shape[0], img.shape[1]
    count = max(n * img.shape[2] * img.shape[3], 1)
    total = np.zeros(c)
    for s in range(0, n, _CHUNK):
        total += img[s : s + _CHUNK].sum(axis=(0, 2, 3), dtype=np.float64)
    mean = total / count
    sq = np.zeros(c)
    for s in range(0, n, _CHUNK):
        d = img[s : s + _CHUNK].astype(np.float64) - mean[None, :, None, None]
        sq += np.einsum("nchw,nchw->c", d, d)
    std = np.sqrt(sq / count)
    std[std == 0] = 1.0
    return mean, std


def normalize_channels(x: np.ndarray, mean: np.ndarray, std: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``(x - mean[c]) / std[c]`` for every pixel of channel ``c``, as float32 rows of the same shape."""
    img = _as_images(x, shape, "normalize_channels")
    m = np.asarray(mean, dtype=np.float32).reshape(1, -1, 1, 1)
    s = np.asarray(std, dtype=np.float32).reshape(1, -1, 1, 1)
    if m.shape[1] != img.shape[1] or s.shape[1] != img.shape[1]:
        raise ShapeError(f"normalize_channels: {m.shape[1]} means / {s.shape[1]} stds for {img.shape[1]} channels")
    return ((img - m) / s).astype(np.float32).reshape(x.shape[0], -1)


def random_crop_flip(
    x: np.ndarray, shape: tuple[int, ...], rng: np.random.Generator, *, pad: int = 4, fill: np.ndarray | None = None
) -> np.ndarray:
    """Random crops of the zero-padded images, each then mirrored left-right with probability 1/2.

    Each image is padded by ``pad`` pixels on every side and an H x W window at a
    uniformly drawn offset in ``0..2*pad`` (rows and columns) is cut out, as
    ``torchvision.transforms.RandomCrop(H, padding=pad)`` followed by
    ``RandomHorizontalFlip()`` do.

    Parameters
    ----------
    x : numpy.ndarray
        float32 rows (N, C*H*W).
    shape : tuple of int
        (C, H, W).
    rng : numpy.random.Generator
        Draws, in this order, ``rng.integers(0, 2*pad + 1, size=(N, 2))`` (row and column
        offsets) and ``rng.random(N) < 0.5`` (which images are mirrored).
    pad : int
        Padding on each side (0: flips only).
    fill : numpy.ndarray, optional
        Value of the padding per channel (shape (C,)); zeros when None. Training with
        normalised inputs passes the value a black pixel normalises to.

    Returns
    -------
    numpy.ndarray
        float32 rows of the same shape.
    """
    img = _as_images(x, shape, "random_crop_flip")
    n, c, h, w = img.shape
    if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
        raise ConfigError(f"random_crop_flip: pad = {pad!r} must be an integer >= 0")
    offsets = rng.integers(0, 2 * pad + 1, size=(n, 2))
    flips = rng.random(n) < 0.5
    padded = np.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=np.float32)
    if fill is not None:
        padded[...] = np.asarray(fill, dtype=np.float32).reshape(1, c, 1, 1)
    padded[:, :, pad : pad + h, pad : pad + w] = img
    rows = offsets[:, :1] + np.arange(h)  # (n, h)
    cols = offsets[:, 1:] + np.arange(w)  # (n, w)
    cols[flips] = cols[flips, ::-1]
    out = padded[np.arange(n)[:, None, None, None], np.arange(c)[None, :, None, None],
                 rows[:, None, :, None], cols[:, None, None, :]]  # fmt: skip
    return out.reshape(n, -1)
