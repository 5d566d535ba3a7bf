"""The conv-read check: analogdecor's convolution on a tile against aihwkit's own ``AnalogConv2d``.

analogdecor runs a convolution as one batched read of the image patches (im2col, patch layout
(channel, kernel row, kernel column); :mod:`analogdecor.networks.conv`); aihwkit's
``AnalogConv2d`` unfolds the images itself and reads its tile. With the same weights, device
settings and images, the error of each against the ideal convolution of its read-back weights
(``torch.nn.functional.conv2d``) must have the same mean and mean square. A wrong patch layout, a
padding or stride mismatch, or rows read with other periphery settings show up here.

As in the forward check (:mod:`analogdecor.validation.checks`), the images are spread over
``Sizes.tiles`` independent tiles (layers) per side, each side reads chunk r on its r-th tile, and
per-tile statistics are compared with a paired t test over tiles.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from analogdecor.crossbar.config import TileConfig
from analogdecor.validation.checks import (
    Comparison,
    Sizes,
    TileFactory,
    _clustered,
    _split,
    _tile_seed,
    quiet_device,
)

__all__ = ["CONV_IN_SHAPE", "CONV_KERNEL", "CONV_PADDING", "conv_forward_checks"]

CONV_IN_SHAPE: tuple[int, int, int] = (2, 6, 6)
"""Images (C, H, W) of the check: 36 patch rows of 2 x 3 x 3 = 18 inputs each."""
CONV_KERNEL = 3
CONV_PADDING = 1


def conv_forward_checks(
    cfg: TileConfig, preset: str, fa: TileFactory, fb: TileFactory, sizes: Sizes, seed: int
) -> list[Comparison]:
    """Read error of a ``Conv2dLayer`` on tiles of ``fa`` against aihwkit's ``AnalogConv2d`` (paired over tiles).

    ``fb`` is not used: the reference side is always aihwkit's own convolution (its rpu config translated
    from ``cfg``). ``sizes.out_size`` output channels; ``sizes.forward_trials`` patch rows in all, at least
    two images per tile. Returns [] when aihwkit (or torch) cannot be imported.
    """
    try:
        import torch
        from aihwkit.nn import AnalogConv2d

        from analogdecor.backends.aihwkit.translate import to_rpu_config
    except ImportError:
        return []
    from analogdecor.networks.conv import Conv2dLayer

    cfg = cfg.replace(device=quiet_device(cfg.device))  # the same stored weights on both sides
    C, H, W = CONV_IN_SHAPE
    k, pad, c_out = CONV_KERNEL, CONV_PADDING, sizes.out_size
    rng = np.random.default_rng([seed, 606])
    dev = cfg.device
    # half the device range, at most +-1 (Ideal's range of +-1e6 would measure float32 rounding of the sums)
    lo, hi = max(0.5 * dev.w_min, -1.0), min(0.5 * dev.w_max, 1.0)
    weights = rng.uniform(lo, hi, (c_out, C * k * k)).astype(np.float32)
    positions = H * W  # stride 1, padding 1: one output per input pixel
    n_images = max(2 * sizes.tiles, -(-sizes.forward_trials // positions))
    images = rng.uniform(-1.0, 1.0, (n_images, C, H, W)).astype(np.float32)
    chunks = _split(n_images, sizes.tiles)

    def ideal(x: np.ndarray, w: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w.reshape(c_out, C, k, k)),
                                              padding=pad).numpy()  # fmt: skip

    def ours(r: int, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        tile = fa(c_out, C * k * k, cfg, _tile_seed(seed, r))
        tile.set_weights(weights)
        layer = Conv2dLayer(tile=tile, bias=np.zeros(c_out, np.float32), activation="identity",
                            in_shape=CONV_IN_SHAPE, kernel=k, padding=pad)  # fmt: skip
        return layer.forward(x, train=False, slope=0.0).a, np.asarray(tile.read_weights(), np.float32)

    def aihwkit(r: int, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        layer: Any = AnalogConv2d(C, c_out, k, padding=pad, bias=False,
                                  rpu_config=to_rpu_config(cfg, seed=_tile_seed(seed, r)))  # fmt: skip
        layer.set_weights(torch.from_numpy(weights))
        with torch.no_grad():
            out = layer(torch.from_numpy(x)).numpy()
        return out, layer.get_weights()[0].numpy().reshape(c_out, -1)

    stats_ab = []  # per side: (tiles, 2) mean error and mean squared error of each tile's images
    for read in (ours, aihwkit):
        per_tile = []
        for r, rows in enumerate(chunks):
            x = images[rows.start : rows.stop]
            out, w_read = read(r, x)
            e = out.astype(np.float64) - ideal(x, w_read).astype(np.float64)
            per_tile.append((e.mean(), (e**2).mean()))
        stats_ab.append(np.array(per_tile))
    sa, sb = stats_ab
    detail = f"{len(chunks)} tiles, {n_images} {C}x{H}x{W} images, {c_out} channels, paired t"
    # float32 rounding of one output, a sum of C k^2 products (|x| <= 1): two implementations that sum in
    # another order differ by that much even with a perfect periphery (e.g. the Ideal preset)
    rounding = C * k * k * float(np.finfo(np.float32).eps) * float(np.abs(weights).max())
    return [
        _clustered("conv read: mean error", preset, sa[:, 0], sb[:, 0], paired=True, detail=detail, floor=rounding),
        _clustered("conv read: mean sq. error", preset, sa[:, 1], sb[:, 1], paired=True, detail=detail,
                   floor=rounding**2),
    ]
