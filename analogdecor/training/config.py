"""TrainConfig: everything one training run needs, as one frozen, validated, nested dataclass.

Build it from a TOML file (:func:`load_train_config`), from a dict
(:func:`analogdecor.config.from_dict`) or in Python, and change it with dotted
overrides (:func:`analogdecor.config.with_overrides`, e.g. ``{"optim.lr": 0.1,
"decorrelation.enabled": True}``). Settings of the analogue tiles are the device
preset named by ``device`` plus the dotted overrides in ``tile`` (e.g.
``{"device.dw_min_std": 0.5, "forward.out_bits": 6}``); :func:`resolve_tile_config`
applies them and raises a ConfigError naming any unknown path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from analogdecor.config import (
    check_choice,
    check_int,
    check_positive,
    from_dict,
    load_toml,
    with_overrides,
)
from analogdecor.crossbar.config import TileConfig
from analogdecor.decorrelation.config import DecorrelationConfig
from analogdecor.errors import ConfigError
from analogdecor.networks.spec import LayerSpec

__all__ = [
    "DataConfig",
    "ModelConfig",
    "OptimConfig",
    "TrainConfig",
    "apply_overrides",
    "load_train_config",
    "resolve_tile_config",
]

RULE_NAMES = ("bp", "fa", "dfa", "np", "anp")
BACKEND_NAMES = ("float", "numba", "aihwkit")
DATASET_NAMES = ("digits", "mnist", "fashion-mnist", "idx", "cifar10", "cifar100", "tiny-imagenet", "synthetic")


@dataclass(frozen=True)
class ModelConfig:
    """The network: an MLP (inputs -> hidden... -> classes), a named architecture, or any ``layers`` list."""

    hidden: tuple[int, ...] = (100,)
    """Widths of the hidden layers of arch 'mlp' (empty: a single linear layer)."""
    arch: Literal["mlp", "paper-mlp", "paper-convnet"] = "mlp"
    """mlp (``hidden``), paper-mlp (4 hidden layers of 1000) or paper-convnet (arXiv 2407.10780's
    conv net; see :mod:`analogdecor.networks.build`). Ignored when ``layers`` is given."""
    layers: tuple[LayerSpec, ...] = ()
    """Any sequential network: hidden layers as tables (kind = conv2d/dense/maxpool/avgpool/flatten,
    channels, units, kernel, stride, padding, size); the output layer is appended."""
    in_shape: tuple[int, ...] | None = None
    """Image shape (C, H, W) of a conv net's input; None: from the data set (mnist 1x28x28, ...)."""
    activation: Literal["relu", "leaky_relu", "tanh", "sigmoid"] = "leaky_relu"
    """Hidden activation (the output layer gives logits)."""
    slope: float = 0.01
    """Negative slope of leaky_relu."""
    in_features: int | None = None
    """Expected input size; None: taken from the data. A mismatch with the data is an error."""
    out_features: int | None = None
    """Expected number of classes; None: taken from the data. A mismatch is an error."""
    weight_scaling: float | None = 0.6
    """Analogue tiles only: initial weights are scaled so each tile's largest |w| is this value
    (inside the device range), and a digital output scale undoes the factor. None: no scaling."""
    init: Literal["torch", "he"] = "he"
    """Initial weights and biases (analogdecor.networks.init): torch = as torch.nn.Linear/Conv2d
    and the paper's code, U(+-1/sqrt(fan_in)) for weights and biases; he = He-uniform weights
    (Glorot for tanh/sigmoid), zero biases. FA's feedback matrices are U(+-sqrt(6/fan_in)) under both."""

    def __post_init__(self) -> None:
        for i, w in enumerate(self.hidden):
            if isinstance(w, bool) or not isinstance(w, int) or w < 1:
                raise ConfigError(f"ModelConfig.hidden[{i}] = {w!r}: widths must be integers >= 1")
        check_choice(self, "activation", ("relu", "leaky_relu", "tanh", "sigmoid"))
        check_positive(self, "slope")
        check_int(self, "in_features", minimum=1, allow_none=True)
        if self.in_shape is not None and (
            len(self.in_shape) not in (1, 3) or any(isinstance(v, bool) or not isinstance(v, int) or v < 1
                                                    for v in self.in_shape)
        ):  # fmt: skip
            raise ConfigError(f"ModelConfig.in_shape = {self.in_shape!r}: must be (C, H, W) or (d,), all >= 1")
        if self.layers and self.arch != "mlp":
            raise ConfigError(f"ModelConfig.arch = {self.arch!r} and ModelConfig.layers both given: pick one")
        check_int(self, "out_features", minimum=2, allow_none=True)
        check_positive(self, "weight_scaling", allow_none=True)
        check_choice(self, "init", ("torch", "he"))


@dataclass(frozen=True)
class DataConfig:
    """Which data set (see :func:`analogdecor.data.load_dataset`)."""

    dataset: str = "digits"
    """digits, mnist, fashion-mnist, idx (any IDX directory), cifar10, cifar100, tiny-imagenet or synthetic."""
    data_dir: str | None = None
    """Directory of the files (IDX, CIFAR pickles, tiny-imagenet-200/); required for idx."""
    n_train: int | None = None
    """Use a seeded random subset of this many training samples (None: all)."""
    n_test: int | None = None
    """Use a seeded random subset of this many test samples (None: all)."""
    validation: int | float | None = None
    """Hold out a seeded random validation split of the training samples (after n_train): a count
    (integer >= 1) or a fraction in (0, 1). Its loss and accuracy are recorded per epoch (val_loss,
    val_accuracy) next to the test figures. None: no validation split."""
    normalize: bool = False
    """Image data: normalise every channel to zero mean and unit standard deviation, with the statistics
    of the training split (after the validation split is taken out), applied to every split."""
    augment: bool = False
    """Image data: per sample and epoch, a random 4-pixel-shifted crop of the image padded with black
    pixels, then a random horizontal flip, drawn from the run's seed (training batches only)."""

    def __post_init__(self) -> None:
        check_choice(self, "dataset", DATASET_NAMES)
        if self.dataset == "idx" and not self.data_dir:
            raise ConfigError(
                "DataConfig.dataset = 'idx' needs DataConfig.data_dir (a directory of IDX files)"
            )
        check_int(self, "n_train", minimum=1, allow_none=True)
        check_int(self, "n_test", minimum=1, allow_none=True)
        v = self.validation
        if v is not None and (
            isinstance(v, bool) or not isinstance(v, int | float)
            or (isinstance(v, int) and v < 1) or (isinstance(v, float) and not 0.0 < v < 1.0)
        ):  # fmt: skip
            raise ConfigError(
                f"DataConfig.validation = {v!r}: must be a count (an integer >= 1) or a fraction in (0, 1)"
            )
        for name in ("normalize", "augment"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"DataConfig.{name} = {getattr(self, name)!r}: must be true or false")
            if getattr(self, name) and self.dataset == "synthetic":
                raise ConfigError(f"DataConfig.{name} = true: for image data sets only, not 'synthetic'")


@dataclass(frozen=True)
class OptimConfig:
    """Optimisation: learning rates, batch, epochs, node-perturbation noise."""

    optimizer: Literal["sgd", "adam"] = "sgd"
    """Optimiser of digital parameters (float weights, biases). Analogue tiles always take
    SGD-like pulsed updates: a crossbar keeps no per-device optimiser state."""
    lr: float = 0.05
    """Learning rate of digital parameters."""
    analog_lr: float | None = None
    """Learning rate of the pulsed updates of analogue tiles; None: the same as lr
    (must be given when optimizer is adam and the backend is analogue)."""
    batch_size: int = 32
    """Samples per update (the rule's outer products are averaged over the batch)."""
    epochs: int = 5
    """Passes over the training set."""
    analog_update: Literal["per_sample", "low_rank", "mixed"] = "mixed"
    """How analogue tiles take a batch: per_sample (one pulsed outer product per sample, as a
    crossbar does natively), low_rank (the batch mean's best rank-update_rank approximation as
    that many outer products) or mixed (mixed precision: a digital accumulator per device fires
    pulses when it reaches dw_min). See analogdecor.learning.update."""
    update_rank: int = 4
    """Rank of the low_rank analog update."""
    np_sigma: float = 0.3
    """Node perturbation: std of the noise added to every pre-activation in the noisy pass. It must
    stand well above the noise floor of an analogue forward read (0.3 suits the presets' out_noise
    0.1); the float backend works with far smaller values too."""
    np_passes: Literal["separate", "stacked"] = "separate"
    """NP/ANP: separate clean and noisy passes (the noisy one centred with the clean pass's batch
    means) or, as the paper's code, one pass of the stacked batch [x; x] with noise on its second
    half (decorrelated layers centre both halves with their joint mean, and the decorrelation rule
    sees the stacked batch: floor(f 2B) + 1 clean samples)."""
    beta1: float = 0.9
    """Adam's first-moment decay."""
    beta2: float = 0.9999
    """Adam's second-moment decay (0.9999 as in the reference experiments)."""
    eps: float = 1e-8
    """Adam's epsilon."""
    eval_batch_size: int = 1000
    """Batch size of evaluation passes (memory only; results do not depend on it)."""

    def __post_init__(self) -> None:
        check_choice(self, "optimizer", ("sgd", "adam"))
        check_positive(self, "lr")
        check_positive(self, "analog_lr", allow_none=True)
        for name in ("lr", "analog_lr"):  # tiles compute in float32: a larger rate is inf there
            value = getattr(self, name)
            if value is not None and value > 1e30:
                raise ConfigError(f"OptimConfig.{name} = {value!r}: must be <= 1e30 (tiles compute in float32)")
        check_int(self, "batch_size", minimum=1)
        check_int(self, "epochs", minimum=1)
        check_choice(self, "analog_update", ("per_sample", "low_rank", "mixed"))
        check_int(self, "update_rank", minimum=1)
        check_positive(self, "np_sigma")
        check_choice(self, "np_passes", ("separate", "stacked"))
        for name in ("beta1", "beta2"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"OptimConfig.{name} = {value!r}: must lie in [0, 1)")
        check_positive(self, "eps")
        check_int(self, "eval_batch_size", minimum=1)


@dataclass(frozen=True)
class TrainConfig:
    """One training run (the file `analogdecor train` reads; every field has a default)."""

    rule: Literal["bp", "fa", "dfa", "np", "anp"] = "bp"
    """Learning rule: bp, fa (feedback alignment), dfa (direct FA), np (node perturbation) or anp
    (activity-based node perturbation)."""
    backend: Literal["float", "numba", "aihwkit"] = "float"
    """Where weights live: float (numpy), numba (the crossbar emulator) or aihwkit."""
    device: str = "ReRamES"
    """Device preset of analogue tiles (see `analogdecor devices list`); with the float backend it
    only sets the conductance mapping of the exported maps."""
    tile: dict[str, Any] = field(default_factory=dict)
    """Dotted overrides on the preset's TileConfig, e.g. {"device.dw_min_std": 0.5, "mapping.levels": 32}."""
    decorrelation: DecorrelationConfig = field(default_factory=DecorrelationConfig)
    """Input decorrelation of every layer (off by default)."""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    seed: int = 0
    """Seed of weights, tiles, data order and noise (same seed, same run, bit for bit)."""

    def __post_init__(self) -> None:
        check_choice(self, "rule", RULE_NAMES)
        check_choice(self, "backend", BACKEND_NAMES)
        if not isinstance(self.device, str) or not self.device:
            raise ConfigError(f"TrainConfig.device = {self.device!r}: must be a preset name")
        if not isinstance(self.tile, dict):
            raise ConfigError(f"TrainConfig.tile = {self.tile!r}: must be a table of dotted overrides")
        for key in self.tile:
            if not isinstance(key, str) or not key:
                raise ConfigError(
                    f"TrainConfig.tile has key {key!r}: keys are dotted paths such as 'device.dw_min'"
                )
        check_int(self, "seed", minimum=0, maximum=2**63 - 1,
                  why="seeds are stored as 64-bit integers in model.npz and the tiles' states")  # fmt: skip
        if (
            self.decorrelation.enabled
            and self.decorrelation.on_tile
            and self.decorrelation.rule not in ("ahmad", "zca")
        ):
            raise ConfigError(
                f"decorrelation.rule = {self.decorrelation.rule!r} cannot run with decorrelation.on_tile = true: "
                "only 'ahmad' (a pulsed outer product) and 'zca' (programming) can"
            )
        if self.optim.optimizer == "adam" and self.backend != "float" and self.optim.analog_lr is None:
            raise ConfigError(
                f"optim.optimizer = 'adam' with backend {self.backend!r}: analogue tiles take plain pulsed "
                "(SGD) updates, so set optim.analog_lr for them (Adam's lr is far too small for SGD)"
            )

    @property
    def analog_lr(self) -> float:
        """The learning rate of pulsed tile updates."""
        return self.optim.analog_lr if self.optim.analog_lr is not None else self.optim.lr


def resolve_tile_config(cfg: TrainConfig) -> TileConfig:
    """The preset ``cfg.device`` with ``cfg.tile``'s dotted overrides applied.

    Raises
    ------
    ConfigError
        Unknown preset (the message lists the known ones) or an override path
        that TileConfig does not have (named in the message).
    """
    from analogdecor.devices.registry import load_preset

    base = load_preset(cfg.device)
    if not cfg.tile:
        return base
    try:
        return with_overrides(base, cfg.tile)
    except ConfigError as exc:
        raise ConfigError(f"TrainConfig.tile: {exc}") from None


def load_train_config(path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read a TrainConfig from a TOML file and apply dotted ``overrides``.

    A run directory's config.toml (which also holds a ``[resolved_tile]`` table) reads too.
    """
    data = load_toml(path)
    data.pop("resolved_tile", None)
    try:
        cfg = from_dict(TrainConfig, data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return apply_overrides(cfg, overrides) if overrides else cfg


def apply_overrides(cfg: TrainConfig, overrides: dict[str, Any]) -> TrainConfig:
    """Dotted overrides on a TrainConfig; keys ``tile.<path>`` go into the ``tile`` dict.

    ``{"optim.lr": 0.1, "tile.device.dw_min_std": 0.5}`` sets ``cfg.optim.lr`` and adds
    ``"device.dw_min_std": 0.5`` to ``cfg.tile``. Values are type-checked; unknown paths
    are ConfigErrors naming them (tile paths are checked by :func:`resolve_tile_config`).
    """
    plain = {k: v for k, v in overrides.items() if not k.startswith("tile.")}
    tile = {k[len("tile.") :]: v for k, v in overrides.items() if k.startswith("tile.")}
    out = with_overrides(cfg, plain) if plain else cfg
    if tile:
        out = with_overrides(out, {"tile": {**out.tile, **tile}})
    return out
