"""The :class:`Dataset` container and seeded sub-sampling shared by every loader."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analogdecor.errors import ConfigError, DataError

__all__ = ["Dataset", "subsample"]


@dataclass(frozen=True, eq=False)
class Dataset:
    """A classification data set split into train and test parts.

    Every loader of :mod:`analogdecor.data` returns one. The arrays are checked
    once on construction (dtypes, shapes, label range) so that training code
    can rely on them.

    Attributes
    ----------
    x_train, x_test : numpy.ndarray
        float32, shape (N, d): one flattened sample per row. Image data sets
        are scaled to [0, 1] (bytes / 255); synthetic data are raw Gaussians.
    y_train, y_test : numpy.ndarray
        int64, shape (N,): class labels in ``[0, n_classes)``.
    n_classes : int
        Number of classes.
    name : str
        Name of the data set as given to :func:`~analogdecor.data.load_dataset`.
    x_val, y_val : numpy.ndarray or None
        A validation split held out of the training rows (``load_dataset(validation=...)``);
        None when there is none.
    channel_mean, channel_std : numpy.ndarray or None
        Per-channel statistics (float64, shape (C,)) the rows were normalised with
        (:func:`analogdecor.data.images.normalize_channels`); None when not normalised.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    name: str
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    channel_mean: np.ndarray | None = None
    channel_std: np.ndarray | None = None

    def __post_init__(self) -> None:
        if (self.x_val is None) != (self.y_val is None):
            raise DataError(f"{self.name}: x_val and y_val must be given together")
        for part in ("train", "test", "val"):
            x = getattr(self, f"x_{part}")
            y = getattr(self, f"y_{part}")
            if part == "val" and x is None:
                continue
            if not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.ndim != 2:
                raise DataError(f"{self.name}: x_{part} must be a float32 array of shape (N, d), got "
                                f"{getattr(x, 'dtype', type(x).__name__)} {getattr(x, 'shape', '')}")
            if not isinstance(y, np.ndarray) or y.dtype != np.int64 or y.shape != (x.shape[0],):
                raise DataError(f"{self.name}: y_{part} must be an int64 array of shape ({x.shape[0]},), got "
                                f"{getattr(y, 'dtype', type(y).__name__)} {getattr(y, 'shape', '')}")
            if y.size and (y.min() < 0 or y.max() >= self.n_classes):
                raise DataError(f"{self.name}: y_{part} has labels outside [0, {self.n_classes}) "
                                f"(min {y.min()}, max {y.max()})")
        for part in ("test", "val"):
            x = getattr(self, f"x_{part}")
            if x is not None and self.x_train.shape[1] != x.shape[1]:
                raise DataError(f"{self.name}: train samples have {self.x_train.shape[1]} features but {part} "
                                f"samples have {x.shape[1]}")

    @property
    def n_features(self) -> int:
        """Number of input features d (flattened pixels for images)."""
        return int(self.x_train.shape[1])

    def __repr__(self) -> str:
        val = "" if self.y_val is None else f", n_val={len(self.y_val)}"
        return (f"Dataset(name={self.name!r}, n_train={len(self.y_train)}, n_test={len(self.y_test)}{val}, "
                f"n_features={self.n_features}, n_classes={self.n_classes})")


def subsample(
    x: np.ndarray, y: np.ndarray, n: int | None, rng: np.random.Generator, *, what: str
) -> tuple[np.ndarray, np.ndarray]:
    """Return a seeded random subset of ``n`` rows (all rows, unchanged, when ``n`` is None).

    The chosen rows keep their original order, so a subset of a subset drawn
    with the same generator state is reproducible.

    Raises
    ------
    ConfigError
        If ``n`` is not a positive integer or exceeds the number of rows; the
        message names ``what`` (e.g. ``"n_train"``).
    """
    if n is None:
        return x, y
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ConfigError(f"{what} = {n!r}: must be a positive integer or None (all samples)")
    if n > len(y):
        raise ConfigError(f"{what} = {n}: only {len(y)} samples are available")
    if n == len(y):
        return x, y
    idx = np.sort(rng.choice(len(y), size=int(n), replace=False))
    return x[idx], y[idx]
