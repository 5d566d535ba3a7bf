"""Speed of one BP training step of the paper's conv net, as ratios measured in one run.

``analogdecor bench conv`` times (median over ``steps`` after one warm-up step):

- ``float``: analogdecor's float backend (im2col reads, SGD), decorrelation off;
- ``torch``: the same architecture as ``torch.nn`` (Conv2d, MaxPool2d, Linear) with ``torch.optim.SGD``;
- ``float+decor``: the float backend with every layer decorrelated (R forward, backward and update);
- ``numba-mixed`` / ``numba-per_sample``: the numba emulator with mixed-precision / per-sample updates;
- ``aihwkit``: aihwkit's AnalogConv2d / AnalogLinear with AnalogSGD and the same preset (translated);

and prints the ratios the issue asks for: float / torch, numba-mixed / float, aihwkit / numba
(speed-up of the emulator), and decorrelation's extra cost (float+decor / float). Entries whose
package is missing (torch, aihwkit) are reported as skipped.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from analogdecor.errors import ConfigError

__all__ = ["VARIANTS", "ConvBenchConfig", "bench_conv", "format_conv_report", "paper_convnet_torch", "torch_model"]

VARIANTS: tuple[str, ...] = ("float", "torch", "float+decor", "numba-mixed", "numba-per_sample", "aihwkit")


@dataclass(frozen=True)
class ConvBenchConfig:
    """Settings of :func:`bench_conv`."""

    batch: int = 64
    """Images per step."""
    in_shape: tuple[int, int, int] = (1, 28, 28)
    """Image shape (MNIST-sized by default)."""
    n_classes: int = 10
    preset: str = "ReRamES"
    """Device preset of the analogue backends."""
    steps: int = 5
    """Timed steps per variant (after one warm-up step); the median is reported."""
    seed: int = 0
    variants: tuple[str, ...] = VARIANTS
    """Which variants to time."""

    def __post_init__(self) -> None:
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown:
            raise ConfigError(f"ConvBenchConfig.variants: unknown {unknown}; known: {', '.join(VARIANTS)}")
        for name in ("batch", "steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"ConvBenchConfig.{name} = {getattr(self, name)!r}: must be >= 1")


def _analogdecor_step(backend: str, decor: bool, mode: str, cfg: ConvBenchConfig, x: np.ndarray, y: np.ndarray):
    from analogdecor.decorrelation import DecorrelationConfig
    from analogdecor.devices.registry import load_preset
    from analogdecor.learning import SGD, AnalogUpdater, UpdateRouter, compute_signals
    from analogdecor.networks.build import architecture, build_network

    tile_cfg = load_preset(cfg.preset) if backend != "float" else None
    dcfg = DecorrelationConfig(enabled=True, lr=1e-5) if decor else None
    net = build_network(architecture("paper-convnet"), cfg.in_shape, cfg.n_classes, backend=backend,
                        tile_config=tile_cfg, decorrelation=dcfg,
                        weight_scaling=0.6 if backend != "float" else None, seed=cfg.seed)  # fmt: skip
    router = UpdateRouter(SGD(0.01), 0.01, AnalogUpdater(mode))

    def step() -> None:
        router.step(net, compute_signals("bp", net, x, y, {}))

    return step


def torch_model(specs: Any, in_shape: tuple[int, ...], n_classes: int, *, activation: Any,
                conv: Any = None, linear: Any = None, sequential: Any = None) -> Any:  # fmt: skip
    """A ``torch.nn.Sequential`` of the hidden layers ``specs`` (LayerSpec) plus a dense output layer.

    The torch twin of :func:`analogdecor.networks.build.build_network`'s layout (a flatten inserted
    before the output when the last layer leaves an image). ``activation()`` makes the module after
    every conv2d and hidden dense layer; ``conv(c_in, c_out, kernel, stride=, padding=)`` and
    ``linear(n_in, n_out)`` make the parameter layers and ``sequential(*modules)`` holds them (default
    ``nn.Conv2d`` / ``nn.Linear`` / ``nn.Sequential``; aihwkit's ``AnalogConv2d`` / ``AnalogLinear`` with
    an rpu_config and ``AnalogSequential`` for the analogue twin). Shapes follow
    ``build_network``'s rules, so an architecture that does not fit its input is the same ConfigError.
    """
    from torch import nn

    from analogdecor.networks.build import _out_shape

    conv = conv or nn.Conv2d
    linear = linear or nn.Linear
    shape = tuple(int(v) for v in in_shape)
    mods: list[Any] = []
    for i, spec in enumerate(specs):
        nxt = _out_shape(i, spec, shape)
        if spec.kind == "conv2d":
            mods += [conv(shape[0], spec.channels, spec.kernel, stride=spec.step, padding=spec.padding), activation()]
        elif spec.kind == "dense":
            mods += [linear(shape[0], spec.units), activation()]
        elif spec.kind in ("maxpool", "avgpool"):
            pool = nn.MaxPool2d if spec.kind == "maxpool" else nn.AvgPool2d
            mods.append(pool(spec.size, stride=spec.step))
        else:
            mods.append(nn.Flatten())
        shape = nxt
    if len(shape) != 1:
        mods.append(nn.Flatten())
        shape = (int(np.prod(shape)),)
    mods.append(linear(shape[0], n_classes))
    return (sequential or nn.Sequential)(*mods)


def paper_convnet_torch(in_shape: tuple[int, ...], n_classes: int, rpu_config: Any = None) -> Any:
    """The paper's conv net in torch (``nn.Conv2d``/``nn.Linear``, LeakyReLU 0.01), or, with
    ``rpu_config``, in aihwkit (``AnalogConv2d``/``AnalogLinear`` in an ``AnalogSequential``)."""
    from torch import nn

    from analogdecor.networks.build import architecture

    def act() -> Any:
        return nn.LeakyReLU(0.01)

    if rpu_config is None:
        return torch_model(architecture("paper-convnet"), in_shape, n_classes, activation=act)
    from aihwkit.nn import AnalogConv2d, AnalogLinear, AnalogSequential

    def conv(*args: Any, **kwargs: Any) -> Any:
        return AnalogConv2d(*args, rpu_config=rpu_config, **kwargs)

    def linear(*args: Any) -> Any:
        return AnalogLinear(*args, rpu_config=rpu_config)

    return torch_model(architecture("paper-convnet"), in_shape, n_classes, activation=act, conv=conv, linear=linear,
                       sequential=AnalogSequential)  # fmt: skip


def _torch_step(cfg: ConvBenchConfig, x: np.ndarray, y: np.ndarray):
    import torch

    torch.manual_seed(cfg.seed)
    model = paper_convnet_torch(cfg.in_shape, cfg.n_classes)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    return _sgd_step(model, opt, x.reshape(-1, *cfg.in_shape), y)


def _aihwkit_step(cfg: ConvBenchConfig, x: np.ndarray, y: np.ndarray):
    from aihwkit.optim import AnalogSGD

    from analogdecor.backends.aihwkit.translate import to_rpu_config
    from analogdecor.devices.registry import load_preset

    rpu = to_rpu_config(load_preset(cfg.preset), seed=cfg.seed)
    model = paper_convnet_torch(cfg.in_shape, cfg.n_classes, rpu)
    opt = AnalogSGD(model.parameters(), lr=0.01)
    opt.regroup_param_groups(model)
    return _sgd_step(model, opt, x.reshape(-1, *cfg.in_shape), y)


def _sgd_step(model: Any, opt: Any, x: np.ndarray, y: np.ndarray):
    """One cross-entropy training step of a torch ``model`` with ``opt`` on the batch (x, y)."""
    import torch

    xt, yt = torch.tensor(x), torch.tensor(y)

    def step() -> None:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(xt), yt).backward()
        opt.step()

    return step


def _time(step: Any, n: int) -> float:
    step()  # warm-up (numba compilation, allocations)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_conv(cfg: ConvBenchConfig | None = None) -> dict[str, Any]:
    """Median seconds per BP step of every variant and the ratios (see the module notes)."""
    cfg = cfg or ConvBenchConfig()
    rng = np.random.default_rng(cfg.seed)
    x = rng.random((cfg.batch, int(np.prod(cfg.in_shape))), dtype=np.float32)
    y = rng.integers(0, cfg.n_classes, cfg.batch)
    makers = {
        "float": lambda: _analogdecor_step("float", False, "mixed", cfg, x, y),
        "float+decor": lambda: _analogdecor_step("float", True, "mixed", cfg, x, y),
        "numba-mixed": lambda: _analogdecor_step("numba", False, "mixed", cfg, x, y),
        "numba-per_sample": lambda: _analogdecor_step("numba", False, "per_sample", cfg, x, y),
        "torch": lambda: _torch_step(cfg, x, y),
        "aihwkit": lambda: _aihwkit_step(cfg, x, y),
    }
    seconds: dict[str, float] = {}
    skipped: dict[str, str] = {}
    for name in cfg.variants:
        try:
            step = makers[name]()
        except ImportError as exc:
            skipped[name] = f"{type(exc).__name__}: {exc}"
            continue
        seconds[name] = _time(step, cfg.steps)

    def ratio(a: str, b: str) -> float | None:
        return seconds[a] / seconds[b] if a in seconds and b in seconds else None

    return {
        "config": {"batch": cfg.batch, "in_shape": list(cfg.in_shape), "preset": cfg.preset, "steps": cfg.steps},
        "seconds_per_step": seconds,
        "skipped": skipped,
        "ratios": {
            "float_over_torch": ratio("float", "torch"),
            "numba_mixed_over_float": ratio("numba-mixed", "float"),
            "aihwkit_over_numba_mixed": ratio("aihwkit", "numba-mixed"),
            "aihwkit_over_numba_per_sample": ratio("aihwkit", "numba-per_sample"),
            "decor_over_plain_float": ratio("float+decor", "float"),
        },
    }


def format_conv_report(res: dict[str, Any]) -> str:
    """A short table of :func:`bench_conv`'s result."""
    c = res["config"]
    lines = [f"paper conv net, BP step, batch {c['batch']}, input {'x'.join(map(str, c['in_shape']))}, "
             f"preset {c['preset']} (median of {c['steps']} steps)"]  # fmt: skip
    for name, s in res["seconds_per_step"].items():
        lines.append(f"  {name:<18} {s * 1e3:10.1f} ms/step")
    for name, why in res["skipped"].items():
        lines.append(f"  {name:<18} skipped ({why})")
    targets = {"float_over_torch": "<= 2", "numba_mixed_over_float": "<= 4", "aihwkit_over_numba_mixed": ">= 5",
               "aihwkit_over_numba_per_sample": "(reported)", "decor_over_plain_float": "(reported)"}  # fmt: skip
    for name, r in res["ratios"].items():
        lines.append(f"  {name:<30} {'n/a' if r is None else f'{r:6.2f}'}   target {targets[name]}")
    return "\n".join(lines)
