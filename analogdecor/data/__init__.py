"""Data sets: one entry point, :func:`load_dataset`, that never touches the internet.

========================  =====================================================
name                      source
========================  =====================================================
``digits``                scikit-learn's embedded 8x8 digits (fixed 1437/360 split)
``mnist``                 IDX directory (``data_dir``, else ``$ANALOGDECOR_DATA/mnist``)
``fashion-mnist``         IDX directory (``data_dir``, else ``$ANALOGDECOR_DATA/fashion-mnist``)
``idx``                   any MNIST-style IDX directory given as ``data_dir``
``cifar10``               CIFAR-10 python batches (``data_dir``, else ``$ANALOGDECOR_DATA/cifar10``)
``cifar100``              CIFAR-100 python files, fine labels (``data_dir``, else ``$ANALOGDECOR_DATA/cifar100``)
``tiny-imagenet``         Tiny ImageNet JPEGs, needs Pillow (``data_dir``, else ``$ANALOGDECOR_DATA/tiny-imagenet``)
``synthetic``             correlated Gaussian inputs, linear-teacher labels (:class:`SyntheticSpec`)
========================  =====================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from analogdecor.config import from_dict
from analogdecor.data.cifar import load_cifar10, load_cifar100
from analogdecor.data.dataset import Dataset, subsample
from analogdecor.data.idx import find_idx_files, read_idx, write_idx
from analogdecor.data.images import channel_stats, normalize_channels, random_crop_flip, split_validation
from analogdecor.data.loaders import load_digits, load_idx_dir
from analogdecor.data.synthetic import SyntheticSpec, covariance, make_synthetic
from analogdecor.data.tinyimagenet import list_tiny_imagenet, load_tiny_imagenet
from analogdecor.errors import ConfigError, DataError

__all__ = [
    "DATASETS",
    "DATA_ENV",
    "Dataset",
    "SyntheticSpec",
    "channel_stats",
    "covariance",
    "find_idx_files",
    "list_tiny_imagenet",
    "load_cifar10",
    "load_cifar100",
    "load_dataset",
    "load_digits",
    "load_idx_dir",
    "load_tiny_imagenet",
    "make_synthetic",
    "normalize_channels",
    "random_crop_flip",
    "read_idx",
    "split_validation",
    "write_idx",
]

#: Names accepted by :func:`load_dataset`.
DATASETS: tuple[str, ...] = (
    "digits", "mnist", "fashion-mnist", "idx", "cifar10", "cifar100", "tiny-imagenet", "synthetic",
)  # fmt: skip
#: Environment variable naming a folder with one sub-folder per data set (mnist/, fashion-mnist/,
#: cifar10/, cifar100/, tiny-imagenet/).
DATA_ENV = "ANALOGDECOR_DATA"


def _resolve_dir(name: str, data_dir: str | Path | None) -> Path:
    if data_dir is not None:
        return Path(data_dir).expanduser()
    root = os.environ.get(DATA_ENV)
    if name == "idx" or not root:
        hint = "" if name == "idx" else f", or set ${DATA_ENV} to a folder containing {name}/"
        raise DataError(f"data set {name!r} is read from a directory: pass data_dir{hint} "
                        "(nothing is ever downloaded)")
    return Path(root).expanduser() / name


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    *,
    seed: int = 0,
    n_train: int | None = None,
    n_test: int | None = None,
    spec: SyntheticSpec | Mapping[str, Any] | None = None,
    validation: int | float | None = None,
    **options: Any,
) -> Dataset:
    """Load a data set by name; see the module docstring for the names.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS`.
    data_dir : str or Path, optional
        Directory with the data set's files (IDX files, CIFAR pickles, Tiny ImageNet's folder).
        Required for ``idx``; for the others it defaults to
        ``$ANALOGDECOR_DATA/<name>``. Ignored by ``digits`` and ``synthetic``.
    seed : int
        Seeds the ``n_train``/``n_test`` subsets (and the whole draw for
        ``synthetic``). The digits train/test split itself does not depend on it.
    n_train, n_test : int, optional
        Take a seeded random subset of this many train/test samples (all when
        None). For ``synthetic`` they are the numbers of samples drawn.
    spec : SyntheticSpec or mapping, optional
        Parameters of ``synthetic`` (e.g. ``{"correlation": 0.95}``).
    validation : int or float, optional
        Hold out a seeded random validation split (``x_val``, ``y_val``) of the training
        rows (after ``n_train``): a count (int >= 1) or a fraction in (0, 1). The rest
        stays the training set. None (default): no validation split.
    **options
        Fields of :class:`SyntheticSpec` given directly (``correlation=0.95``);
        only for ``synthetic``. ``idx`` takes ``n_classes`` (labels must lie in
        0..n_classes-1; default: inferred, see :func:`load_idx_dir`).

    Returns
    -------
    Dataset
        float32 inputs (pixels in [0, 1]), int64 labels.

    Raises
    ------
    DataError
        Missing or malformed files (the message names the file and what was expected).
    ConfigError
        Unknown name, bad subset sizes or synthetic options.
    """
    key = name.lower().replace("_", "-")
    if key not in DATASETS:
        raise ConfigError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")
    idx_classes = options.pop("n_classes", None) if key == "idx" else None  # K, when the user gives it
    if key != "synthetic" and (spec is not None or options):
        given = ", ".join(["spec", *options] if spec is not None else list(options))
        raise ConfigError(f"data set {name!r} takes no options ({given}); these are for 'synthetic'")
    # Streams 0 and 1 draw the train/test subsets; stream 2 the validation split (a new stream,
    # so that adding it changed none of the draws before).
    rng_train, rng_test, rng_val = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    if key == "synthetic":
        fields = dict(spec.__dict__ if isinstance(spec, SyntheticSpec) else (spec or {}))
        fields.update(options)
        if n_train is not None:
            fields["n_train"] = n_train
        if n_test is not None:
            fields["n_test"] = n_test
        data = make_synthetic(from_dict(SyntheticSpec, fields, path="synthetic"), seed=seed)
        return data if validation is None else _with_validation(data, validation, rng_val)
    if key == "tiny-imagenet":  # list the files, draw the subsets, then decode only the chosen images
        files = list_tiny_imagenet(_resolve_dir(key, data_dir))
        train_rows, _ = subsample(np.arange(len(files.y_train)), files.y_train, n_train, rng_train, what="n_train")
        test_rows, _ = subsample(np.arange(len(files.y_test)), files.y_test, n_test, rng_test, what="n_test")
        data = load_tiny_imagenet(files.root, train_rows, test_rows)
        return data if validation is None else _with_validation(data, validation, rng_val)
    if key == "digits":
        data = load_digits()
    elif key == "cifar10":
        data = load_cifar10(_resolve_dir(key, data_dir))
    elif key == "cifar100":
        data = load_cifar100(_resolve_dir(key, data_dir))
    else:
        n_classes = idx_classes if key == "idx" else 10
        data = load_idx_dir(_resolve_dir(key, data_dir), name=key, n_classes=n_classes)
    x_train, y_train = subsample(data.x_train, data.y_train, n_train, rng_train, what="n_train")
    x_test, y_test = subsample(data.x_test, data.y_test, n_test, rng_test, what="n_test")
    data = Dataset(x_train, y_train, x_test, y_test, n_classes=data.n_classes, name=key)
    return data if validation is None else _with_validation(data, validation, rng_val)


def _with_validation(data: Dataset, validation: int | float, rng: np.random.Generator) -> Dataset:
    x_train, y_train, x_val, y_val = split_validation(data.x_train, data.y_train, validation, rng,
                                                      name="validation")  # fmt: skip
    return Dataset(x_train, y_train, data.x_test, data.y_test, n_classes=data.n_classes, name=data.name,
                   x_val=x_val, y_val=y_val)  # fmt: skip
