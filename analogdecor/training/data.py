"""The data a training run sees: :func:`load_run_data` (train, resume and evaluate all load through it)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from analogdecor.data import Dataset, channel_stats, load_dataset, normalize_channels, random_crop_flip
from analogdecor.networks.build import input_shape
from analogdecor.training.config import TrainConfig

__all__ = ["augment_batch", "image_shape", "load_run_data"]

#: Pixels of padding on each side of an augmentation crop.
CROP_PADDING = 4


def image_shape(cfg: TrainConfig, ds: Dataset) -> tuple[int, ...]:
    """(C, H, W) of the data set's rows: ``model.in_shape`` if given, else the data set's own."""
    return input_shape(cfg.data.dataset, ds.n_features, cfg.model.in_shape)


def load_run_data(cfg: TrainConfig) -> Dataset:
    """Load ``cfg.data``: subsets, the validation split, then (``normalize``) per-channel normalisation.

    The channel statistics come from the training rows that remain after the
    validation split; they are kept in ``channel_mean``/``channel_std`` of the result.

    Raises
    ------
    DataError, ConfigError
        As :func:`analogdecor.data.load_dataset`; ConfigError when ``normalize`` is
        asked of data with no known image shape (set ``model.in_shape``).
    """
    d = cfg.data
    classes: dict[str, Any] = {}  # labels of an IDX directory must lie in 0..out_features-1, when given
    if d.dataset == "idx" and cfg.model.out_features:
        classes["n_classes"] = cfg.model.out_features
    ds = load_dataset(d.dataset, d.data_dir, seed=cfg.seed, n_train=d.n_train, n_test=d.n_test,
                      validation=d.validation, **classes)  # fmt: skip
    if not d.normalize:
        return ds
    shape = image_shape(cfg, ds)
    mean, std = channel_stats(ds.x_train, shape)

    x_val = None if ds.x_val is None else normalize_channels(ds.x_val, mean, std, shape)
    return replace(ds, x_train=normalize_channels(ds.x_train, mean, std, shape),
                   x_test=normalize_channels(ds.x_test, mean, std, shape), x_val=x_val,
                   channel_mean=mean, channel_std=std)  # fmt: skip


def augment_batch(cfg: TrainConfig, ds: Dataset, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A training batch with ``data.augment``'s random crops and flips (see :func:`~analogdecor.data.random_crop_flip`).

    The padding is black in the pixels' own scale: 0, or what 0 normalises to when
    the data set is normalised.
    """
    fill = None
    if ds.channel_mean is not None and ds.channel_std is not None:
        fill = -ds.channel_mean / ds.channel_std
    return random_crop_flip(x, image_shape(cfg, ds), rng, pad=CROP_PADDING, fill=fill)
