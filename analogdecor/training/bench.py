"""One training epoch, side by side in one process: torch, aihwkit as its users run it, and analogdecor.

``analogdecor bench training`` (and :func:`bench_training`) trains the same network
(``arch``: the MLP 784-256-10 ReLU by default, or ``paper-convnet``, the paper's conv
net on 1x28x28 images, :func:`analogdecor.networks.build.architecture`; MNIST, batch
64, SGD lr 0.05, softmax cross-entropy, backprop) on the same images in the same order with

* ``torch_float``: ``nn.Linear`` layers and ``torch.optim.SGD``;
* ``aihwkit``: ``AnalogSequential`` of ``AnalogLinear`` (and ``AnalogConv2d``) layers with aihwkit's own
  preset of the same name (``ReRamESPreset`` for ReRamES) and ``AnalogSGD``, as
  aihwkit's tutorials train (skipped with a note when aihwkit is absent);
* ``analogdecor_torch``: the same torch model on analogdecor's torch modules
  (:func:`analogdecor.torch.convert_to_analog` with the preset, ``analogdecor.torch.AnalogSGD``
  with the ``mixed`` update), side by side with aihwkit's modules;
* ``analogdecor_float``, ``numba_per_sample``, ``numba_mixed``: analogdecor's
  training step (:func:`~analogdecor.learning.compute_signals`,
  :func:`~analogdecor.learning.apply_updates`) on the float backend and on
  the numba crossbar emulator with the ``per_sample`` and ``mixed`` analogue
  updates, the preset's tile configuration and the default weight scaling, as
  ``analogdecor train`` runs them.

Epochs are interleaved: round r trains one epoch of every system in turn, so
that a change in the machine's load hits all of them alike; each system's
figure is the median over rounds. A short untimed warm-up (compilation, page
faults) comes first. With ``loaded``, the rounds are repeated beside
``cpu_count - 1`` busy processes (``while True: pass``, started and stopped by
the benchmark, as in a sweep where every core has a worker) and each path's
slow-down against its quiet figure is reported.
"""

from __future__ import annotations

import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from analogdecor.errors import ConfigError
from analogdecor.threads import busy_processes, configured

__all__ = ["ARCHS", "SYSTEMS", "TrainingBenchConfig", "bench_training", "format_training_report"]

ARCHS: tuple[str, ...] = ("mlp", "paper-convnet")
"""Networks the benchmark trains: the one-hidden-layer MLP, or the paper's conv net."""

SYSTEMS: tuple[str, ...] = ("torch_float", "aihwkit", "analogdecor_torch", "analogdecor_float", "numba_per_sample",
                            "numba_mixed")
"""The systems timed, in the order of each round."""


@dataclass(frozen=True)
class TrainingBenchConfig:
    """What :func:`bench_training` trains (defaults: the speed issue's setting)."""

    dataset: str = "mnist"
    """Data set; MNIST falls back to ``digits`` (noted in the result) when its files are absent."""
    data_dir: str | None = None
    """Directory of the data set's files (default ``$ANALOGDECOR_DATA/<dataset>``)."""
    n_train: int = 6400
    """Training images per epoch (all of them if the data set has fewer)."""
    arch: str = "mlp"
    """``mlp`` (one hidden ReLU layer of ``hidden``) or ``paper-convnet`` (the paper's conv net, LeakyReLU
    0.01, on the data set's images: 1x28x28 MNIST, 1x8x8 for the digits fallback; ``hidden`` unused)."""
    hidden: int = 256
    """Width of the hidden ReLU layer (arch mlp)."""
    batch: int = 64
    """Samples per SGD step."""
    lr: float = 0.05
    """SGD learning rate (digital and analogue)."""
    preset: str = "ReRamES"
    """Device preset of analogdecor and the aihwkit preset class of the same name."""
    rounds: int = 3
    """Timed epochs per system (interleaved); the median is reported."""
    warmup_batches: int = 4
    """Untimed batches per system before the rounds."""
    seed: int = 0
    """Seed of the data subset, the order and the networks."""
    systems: tuple[str, ...] = SYSTEMS
    """Which systems to time (a subset of :data:`SYSTEMS`)."""
    loaded: bool = False
    """Repeat the rounds beside cpu_count - 1 busy processes and report each path's slow-down."""
    busy: int | None = None
    """Busy processes for ``loaded`` (default: cpu_count - 1, at least 1)."""
    threads: int | str | None = None
    """Threads of every system: an integer, ``"auto"`` (the cores free when the rounds start; for the
    loaded rounds, once the busy processes run) or None (``$ANALOGDECOR_THREADS``, default auto); see
    :mod:`analogdecor.threads`. Set after every system is built, so aihwkit's OpenMP gets the same count."""

    def __post_init__(self) -> None:
        for name in ("n_train", "hidden", "batch", "rounds"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name} = {v!r}: must be an integer >= 1")
        if self.warmup_batches < 0:
            raise ConfigError(f"warmup_batches = {self.warmup_batches!r}: must be >= 0")
        if not (isinstance(self.lr, int | float) and math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr = {self.lr!r}: must be a finite number > 0")
        if self.arch not in ARCHS:
            raise ConfigError(f"arch = {self.arch!r}: must be one of {', '.join(ARCHS)}")
        bad = [s for s in self.systems if s not in SYSTEMS]
        if bad or not self.systems:
            raise ConfigError(f"systems = {self.systems!r}: each must be one of {', '.join(SYSTEMS)}")
        if self.busy is not None and self.busy < 1:
            raise ConfigError(f"busy = {self.busy!r}: must be >= 1")


@dataclass
class _Data:
    x: np.ndarray
    y: np.ndarray
    n_classes: int
    name: str
    shape: tuple[int, ...]
    """What one row of ``x`` is to the network: (features,) for the MLP, (C, H, W) for a conv net."""
    note: str = ""
    order: list[np.ndarray] = field(default_factory=list)


def _load(cfg: TrainingBenchConfig) -> _Data:
    from analogdecor.data import load_dataset
    from analogdecor.errors import DataError

    note = ""
    try:
        ds = load_dataset(cfg.dataset, cfg.data_dir, seed=cfg.seed)
    except DataError as err:
        if cfg.dataset != "mnist":
            raise
        note = f"MNIST not found ({err}); fell back to digits"
        ds = load_dataset("digits", seed=cfg.seed)
    x, y = ds.x_train, ds.y_train
    if len(x) > cfg.n_train:
        pick = np.random.default_rng(cfg.seed).choice(len(x), cfg.n_train, replace=False)
        x, y = x[pick], y[pick]
    elif len(x) < cfg.n_train:
        note = (note + "; " if note else "") + f"{ds.name} has only {len(x)} training images"
    shape: tuple[int, ...] = (int(x.shape[1]),)
    if cfg.arch != "mlp":
        from analogdecor.networks.build import IMAGE_SHAPES, input_shape

        if ds.name not in IMAGE_SHAPES:
            raise ConfigError(
                f"arch = {cfg.arch!r} needs images: data set {ds.name!r} has no image shape "
                f"(use one of {', '.join(IMAGE_SHAPES)})"
            )
        shape = input_shape(ds.name, int(x.shape[1]))
    return _Data(np.ascontiguousarray(x, np.float32), np.asarray(y, np.int64), int(ds.n_classes), ds.name, shape,
                 note)  # fmt: skip


# ------------------------------------------------------------------------------------------ systems
class _Runner:
    """One system: ``batch(i)`` trains on batch i of the epoch's order."""

    def __init__(self, data: _Data, cfg: TrainingBenchConfig) -> None:
        self.data, self.cfg = data, cfg

    def batch(self, idx: np.ndarray) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class _Torch(_Runner):
    def __init__(self, data: _Data, cfg: TrainingBenchConfig, analog: bool | str) -> None:
        super().__init__(data, cfg)
        import torch
        from torch import nn

        torch.manual_seed(cfg.seed)
        self.x, self.y = torch.from_numpy(data.x).reshape(-1, *data.shape), torch.from_numpy(data.y)
        self.loss = nn.CrossEntropyLoss()
        self.model: Any
        self.opt: Any
        if analog == "analogdecor":  # the same torch model on analogdecor.torch's modules (mixed update)
            from analogdecor.torch import AnalogSGD as AnalogdecorSGD
            from analogdecor.torch import convert_to_analog

            self.model = convert_to_analog(self._model(data, cfg), cfg.preset, seed=cfg.seed)
            self.opt = AnalogdecorSGD(self.model.parameters(), lr=cfg.lr, analog_update="mixed")
        elif analog:
            from aihwkit.optim import AnalogSGD
            from aihwkit.simulator import presets

            preset = getattr(presets, f"{cfg.preset}Preset", None)
            if preset is None:
                raise ConfigError(f"aihwkit has no preset class {cfg.preset}Preset")
            self.model = self._model(data, cfg, preset())
            self.opt = AnalogSGD(self.model.parameters(), lr=cfg.lr)
            self.opt.regroup_param_groups(self.model)
        else:
            self.model = self._model(data, cfg)
            self.opt = torch.optim.SGD(self.model.parameters(), lr=cfg.lr)
        self.model.train()

    @staticmethod
    def _model(data: _Data, cfg: TrainingBenchConfig, rpu_config: Any = None) -> Any:
        """The torch network of ``cfg.arch`` (on aihwkit's analogue layers with ``rpu_config``)."""
        from torch import nn

        from analogdecor.networks.bench import paper_convnet_torch, torch_model
        from analogdecor.networks.build import LayerSpec

        if cfg.arch == "paper-convnet":
            return paper_convnet_torch(data.shape, data.n_classes, rpu_config)
        if rpu_config is None:
            return torch_model([LayerSpec("dense", units=cfg.hidden)], data.shape, data.n_classes, activation=nn.ReLU)
        from aihwkit.nn import AnalogLinear, AnalogSequential

        def linear(n_in: int, n_out: int) -> Any:
            return AnalogLinear(n_in, n_out, rpu_config=rpu_config)

        return torch_model([LayerSpec("dense", units=cfg.hidden)], data.shape, data.n_classes, activation=nn.ReLU,
                           linear=linear, sequential=AnalogSequential)  # fmt: skip

    def batch(self, idx: np.ndarray) -> None:
        import torch

        t = torch.from_numpy(idx)
        self.opt.zero_grad()
        loss = self.loss(self.model(self.x[t]), self.y[t])
        loss.backward()
        self.opt.step()


class _Analogdecor(_Runner):
    def __init__(self, data: _Data, cfg: TrainingBenchConfig, backend: Any, mode: Any) -> None:
        super().__init__(data, cfg)
        from analogdecor.learning import AnalogUpdater, init_rule_state, make_optimizer
        from analogdecor.training.config import (
            DataConfig,
            ModelConfig,
            OptimConfig,
            TrainConfig,
            resolve_tile_config,
        )
        from analogdecor.training.rundir import build_network

        model = (ModelConfig(arch="paper-convnet", in_shape=data.shape) if cfg.arch == "paper-convnet"
                 else ModelConfig(hidden=(cfg.hidden,), activation="relu"))  # fmt: skip
        tcfg = TrainConfig(rule="bp", backend=backend, device=cfg.preset, seed=cfg.seed, model=model,
                           data=DataConfig(dataset=data.name),
                           optim=OptimConfig(lr=cfg.lr, batch_size=cfg.batch, analog_update=mode))  # fmt: skip
        tile_cfg = resolve_tile_config(tcfg)
        self.net = build_network(tcfg, tile_cfg, data.x.shape[1], data.n_classes)
        self.rule_state = init_rule_state("bp", self.net, cfg.seed)
        self.optimizer = make_optimizer("sgd", cfg.lr)
        self.updater = AnalogUpdater(mode)
        self.rng = np.random.default_rng(cfg.seed)
        self.analog_lr = tcfg.analog_lr

    def batch(self, idx: np.ndarray) -> None:
        from analogdecor.learning import apply_updates, compute_signals

        result = compute_signals("bp", self.net, self.data.x[idx], self.data.y[idx], self.rule_state, rng=self.rng)
        apply_updates(self.net, result, self.optimizer, self.analog_lr, self.updater)


def _make(name: str, data: _Data, cfg: TrainingBenchConfig) -> _Runner:
    if name == "torch_float":
        return _Torch(data, cfg, analog=False)
    if name == "aihwkit":
        return _Torch(data, cfg, analog=True)
    if name == "analogdecor_torch":
        return _Torch(data, cfg, analog="analogdecor")
    if name == "analogdecor_float":
        return _Analogdecor(data, cfg, "float", "mixed")
    return _Analogdecor(data, cfg, "numba", name.removeprefix("numba_"))


def _missing(module: str) -> str | None:
    """Why ``module`` (torch, or aihwkit's torch front end) cannot be used, or None."""
    try:
        if module == "aihwkit":
            import aihwkit.nn
            import aihwkit.optim  # noqa: F401
        else:
            import torch  # noqa: F401
    except Exception as err:  # ImportError, or a broken build raising something else
        return f"{module} not importable ({type(err).__name__}: {err}); skipped"
    return None


# ------------------------------------------------------------------------------------------ load
def _rounds(runners: dict[str, _Runner], data: _Data, cfg: TrainingBenchConfig,
            epochs: list[np.ndarray]) -> dict[str, dict[str, list[float]]]:  # fmt: skip
    """Time one epoch of every runner per round (wall and process CPU seconds)."""
    out: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": []} for name in runners}
    for order in epochs:
        batches = [order[s : s + cfg.batch] for s in range(0, len(order), cfg.batch)]
        for name, r in runners.items():
            c0, t0 = time.process_time(), time.perf_counter()
            for idx in batches:
                r.batch(idx)
            out[name]["wall"].append(time.perf_counter() - t0)
            out[name]["cpu"].append(time.process_time() - c0)
    return out


def bench_training(cfg: TrainingBenchConfig | None = None, *, log: Callable[[str], None] | None = None) -> dict:
    """Run the benchmark; returns a flat dict of figures (seconds per epoch, ratios, machine).

    Keys: ``<system>_s_per_epoch`` (median wall time), ``<system>_cpu_s_per_epoch``,
    ``numba_mixed_vs_aihwkit_speedup`` and ``numba_per_sample_vs_aihwkit_speedup``
    (aihwkit's time over the path's), ``numba_mixed_vs_float_ratio`` (numba mixed over
    analogdecor float), ``<system>_vs_aihwkit_speedup`` for the rest, and with ``loaded``
    ``<system>_loaded_s_per_epoch`` and ``<system>_loaded_slowdown`` (loaded over quiet).
    Systems that were not run (aihwkit absent) have no keys; ``notes`` says why.
    """
    import numba

    cfg = cfg or TrainingBenchConfig()
    log = log or (lambda _msg: None)
    data = _load(cfg)
    notes = [data.note] if data.note else []
    systems = list(cfg.systems)
    for name, module in (("torch_float", "torch"), ("aihwkit", "aihwkit"), ("analogdecor_torch", "torch")):
        missing = _missing(module) if name in systems else None
        if missing:
            notes.append(missing)
            systems.remove(name)
    runners = {name: _make(name, data, cfg) for name in systems}
    rng = np.random.default_rng(cfg.seed)
    n = len(data.x)
    warm = rng.permutation(n)[: cfg.batch * cfg.warmup_batches]
    for r in runners.values():
        for s in range(0, len(warm), cfg.batch):
            r.batch(warm[s : s + cfg.batch])
    log(f"timing {cfg.rounds} interleaved epochs of {', '.join(runners)}")
    load_before = _load_avg()
    # thread counts set again now that every library (aihwkit's OpenMP too) is loaded: one count for all
    with configured(cfg.threads) as n_threads:
        quiet = _rounds(runners, data, cfg, [rng.permutation(n) for _ in range(cfg.rounds)])
    res: dict[str, Any] = {"load_average_1min_quiet": max(load_before, _load_avg()), "threads_quiet": n_threads}
    for name, t in quiet.items():
        res[f"{name}_s_per_epoch"] = float(np.median(t["wall"]))
        res[f"{name}_cpu_s_per_epoch"] = float(np.median(t["cpu"]))
        res[f"{name}_s_per_epoch_all"] = [float(v) for v in t["wall"]]
    if cfg.loaded:
        n_busy = cfg.busy or max(1, (os.cpu_count() or 2) - 1)
        log(f"again beside {n_busy} busy process(es)")
        with busy_processes(n_busy), configured(cfg.threads) as n_threads:
            loaded = _rounds(runners, data, cfg, [rng.permutation(n) for _ in range(cfg.rounds)])
            res["load_average_1min_loaded"] = _load_avg()
        res["busy_processes"] = n_busy
        res["threads_loaded"] = n_threads
        for name, t in loaded.items():
            res[f"{name}_loaded_s_per_epoch"] = float(np.median(t["wall"]))
            res[f"{name}_loaded_slowdown"] = res[f"{name}_loaded_s_per_epoch"] / res[f"{name}_s_per_epoch"]
    if "aihwkit" in runners:
        ref = res["aihwkit_s_per_epoch"]
        for name in runners:
            if name != "aihwkit":
                res[f"{name}_vs_aihwkit_speedup"] = ref / res[f"{name}_s_per_epoch"]
                res[f"{name}_cpu_vs_aihwkit_speedup"] = res["aihwkit_cpu_s_per_epoch"] / res[f"{name}_cpu_s_per_epoch"]
                if cfg.loaded:
                    res[f"{name}_loaded_vs_aihwkit_speedup"] = (res["aihwkit_loaded_s_per_epoch"]
                                                                / res[f"{name}_loaded_s_per_epoch"])  # fmt: skip
    if "numba_mixed" in runners and "analogdecor_float" in runners:
        res["numba_mixed_vs_float_ratio"] = res["numba_mixed_s_per_epoch"] / res["analogdecor_float_s_per_epoch"]
        res["numba_mixed_vs_float_cpu_ratio"] = (res["numba_mixed_cpu_s_per_epoch"]
                                                 / res["analogdecor_float_cpu_s_per_epoch"])  # fmt: skip
    res.update({
        "systems": list(runners), "notes": notes, "dataset": data.name, "n_train": int(n),
        "network": _network_name(cfg, data), "config": asdict(cfg),
        "numba_threads": numba.get_num_threads(), "torch_threads": _torch_threads(), "blas_threads": _blas(),
        "cpu_count": os.cpu_count(), "machine": platform.machine(),
    })  # fmt: skip
    res["config"]["systems"] = list(cfg.systems)
    return res


def _network_name(cfg: TrainingBenchConfig, data: _Data) -> str:
    """``784-256-10`` for the MLP, ``paper-convnet 1x28x28->10`` for the conv net."""
    if cfg.arch == "mlp":
        return f"{data.x.shape[1]}-{cfg.hidden}-{data.n_classes}"
    return f"{cfg.arch} {'x'.join(map(str, data.shape))}->{data.n_classes}"


def _load_avg() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def _torch_threads() -> int | None:
    try:
        import torch
    except ImportError:
        return None
    return int(torch.get_num_threads())


def _blas() -> int | None:
    from analogdecor.crossbar.bench import _blas_threads

    return _blas_threads()


def format_training_report(res: dict) -> str:
    """The table of :func:`bench_training`'s figures (seconds per epoch, ratios against aihwkit)."""
    has_ref = "aihwkit" in res["systems"]
    loaded = any(k.endswith("_loaded_slowdown") for k in res)
    head = (f"one epoch of BP, {res['network']} on {res['n_train']} {res['dataset']} images, batch "
            f"{res['config']['batch']}, SGD lr {res['config']['lr']}, preset {res['config']['preset']}; "
            f"{res['threads_quiet']} thread(s) (numba, BLAS, OpenMP, torch); "
            f"{res['cpu_count']} CPUs, load {res['load_average_1min_quiet']:.2f}")  # fmt: skip
    cols = f"{'system':<20}{'s/epoch':>9}{'cpu s':>8}"
    if has_ref:
        cols += f"{'vs aihwkit':>12}{'cpu vs aihwkit':>16}"
    if loaded:
        cols += f"{'loaded s':>10}{'slow-down':>11}"
        if has_ref:
            cols += f"{'loaded vs aihwkit':>19}"
    lines = [head, cols]
    for name in res["systems"]:
        row = f"{name:<20}{res[f'{name}_s_per_epoch']:>9.3f}{res[f'{name}_cpu_s_per_epoch']:>8.3f}"
        if has_ref:
            row += f"{'1' if name == 'aihwkit' else format(res[f'{name}_vs_aihwkit_speedup'], '.2f') + 'x':>12}"
            cpu = "1" if name == "aihwkit" else format(res[f"{name}_cpu_vs_aihwkit_speedup"], ".2f") + "x"
            row += f"{cpu:>16}"
        if loaded:
            row += f"{res[f'{name}_loaded_s_per_epoch']:>10.3f}{res[f'{name}_loaded_slowdown']:>10.2f}x"
            if has_ref:
                v = "1" if name == "aihwkit" else format(res[f"{name}_loaded_vs_aihwkit_speedup"], ".2f") + "x"
                row += f"{v:>19}"
        lines.append(row)
    if "numba_mixed_vs_float_ratio" in res:
        lines.append(f"numba mixed / analogdecor float: {res['numba_mixed_vs_float_ratio']:.2f} "
                     f"(CPU time {res['numba_mixed_vs_float_cpu_ratio']:.2f})")  # fmt: skip
    if loaded:
        lines.append(f"loaded: beside {res['busy_processes']} busy process(es), {res['threads_loaded']} thread(s), "
                     f"load {res['load_average_1min_loaded']:.2f}")  # fmt: skip
    lines += [f"note: {n}" for n in res["notes"]]
    return "\n".join(lines)
