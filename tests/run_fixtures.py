"""A small trained-looking run directory for the CLI tests of export and evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from analogdecor.crossbar.config import TileConfig
from analogdecor.data import load_dataset
from analogdecor.decorrelation import DecorrelationConfig
from analogdecor.devices.config import DeviceConfig
from analogdecor.training import ModelConfig, TrainConfig, build_network
from analogdecor.training.rundir import save_model, write_config


def write_ridge_run(path: Path, *, decorrelation_tiles: bool) -> Path:
    """Write a run directory (numba crossbar) holding a ridge-fitted digits classifier.

    Written with the training package's own run-directory functions, so the CLI reads it
    exactly as it reads a trained run; ``decorrelation_tiles`` adds an R tile per layer.
    """
    ds = load_dataset("digits")
    decor = DecorrelationConfig(enabled=True, on_tile=True) if decorrelation_tiles else DecorrelationConfig()
    cfg = TrainConfig(backend="numba", model=ModelConfig(hidden=()), decorrelation=decor, seed=1)
    dev = DeviceConfig(model="softbounds", dw_min=0.002, w_min=-1.0, w_max=1.0, write_noise_std=0.0)
    tile_cfg = TileConfig(device=dev)
    net = build_network(cfg, tile_cfg, 64, 10)
    X = np.hstack([ds.x_train, np.ones((len(ds.x_train), 1), np.float32)]).astype(np.float64)
    A = np.linalg.solve(X.T @ X + np.eye(65), X.T @ np.eye(10)[ds.y_train])
    layer = net.layers[0]
    layer.out_scale = float(np.abs(A[:64]).max()) / 0.5
    layer.tile.set_weights((A[:64].T / layer.out_scale).astype(np.float32))
    layer.bias = A[64].astype(np.float32)
    write_config(path, cfg, tile_cfg)
    save_model(path, net, {})
    (path / "run.json").write_text(json.dumps({"seed": 1, "version": "test", "status": "finished"}))
    return path
