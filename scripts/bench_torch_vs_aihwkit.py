"""The same torch model trained on analogdecor.torch's modules and on aihwkit's, side by side.

A 784-256-10 ReLU MLP (torch ``nn.Sequential``), batch 64, SGD lr 0.05, cross-entropy, trained one
epoch at a time on MNIST (the embedded 8x8 digits when MNIST is absent):

* analogdecor: ``convert_to_analog(model, PRESET)`` and ``analogdecor.torch.AnalogSGD`` with the
  chosen update mode;
* aihwkit: ``AnalogSequential`` of ``aihwkit.nn.AnalogLinear`` with aihwkit's preset class of the
  same name (``ReRamESPreset`` ...) and ``aihwkit.optim.AnalogSGD``, as aihwkit's tutorials train.

Epochs are interleaved (one of each in turn, so load changes hit both); the first round is a
warm-up. Prints the median wall and CPU seconds per epoch, their ratios, and each model's training
accuracy at the end. torch, numba and OpenMP run on one thread (``--threads``).

    python scripts/bench_torch_vs_aihwkit.py --preset ReRamES --update mixed
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="ReRamES", help="device preset (and aihwkit's <preset>Preset class)")
    ap.add_argument("--update", default="mixed", choices=("mixed", "per_sample", "low_rank"))
    ap.add_argument("--n-train", type=int, default=3200, help="training images per epoch")
    ap.add_argument("--rounds", type=int, default=4, help="epochs of each (the first is a warm-up)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[1].parent / "shared/data/mnist"))
    args = ap.parse_args()
    for var in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    import torch
    from torch import nn

    from analogdecor.backends.aihwkit import require_aihwkit
    from analogdecor.data import load_dataset
    from analogdecor.torch import AnalogSGD, convert_to_analog

    torch.set_num_threads(args.threads)
    require_aihwkit()
    from aihwkit.nn import AnalogLinear, AnalogSequential
    from aihwkit.optim import AnalogSGD as AihwkitSGD
    from aihwkit.simulator import presets

    if Path(args.data_dir).is_dir():
        ds = load_dataset("mnist", data_dir=args.data_dir, n_train=args.n_train, n_test=100, seed=0)
    else:
        ds = load_dataset("digits")
    x = torch.tensor(ds.x_train, dtype=torch.float32)
    y = torch.tensor(ds.y_train, dtype=torch.long)
    n_in, n_out = x.shape[1], int(y.max()) + 1

    torch.manual_seed(0)
    ours = convert_to_analog(
        nn.Sequential(nn.Linear(n_in, 256), nn.ReLU(), nn.Linear(256, n_out)), args.preset, seed=0
    )
    ours_opt = AnalogSGD(ours.parameters(), lr=0.05, analog_update=args.update)
    preset = getattr(presets, f"{args.preset}Preset")
    torch.manual_seed(0)
    theirs = AnalogSequential(AnalogLinear(n_in, 256, rpu_config=preset()), nn.ReLU(),
                              AnalogLinear(256, n_out, rpu_config=preset()))  # fmt: skip
    theirs_opt = AihwkitSGD(theirs.parameters(), lr=0.05)
    theirs_opt.regroup_param_groups(theirs)
    loss = nn.CrossEntropyLoss()

    def epoch(model: nn.Module, opt: torch.optim.Optimizer) -> None:
        for i in range(0, len(x), 64):
            opt.zero_grad()
            loss(model(x[i : i + 64]), y[i : i + 64]).backward()
            opt.step()

    def accuracy(model: nn.Module) -> float:
        model.eval()
        with torch.no_grad():
            acc = (model(x).argmax(1) == y).float().mean().item()
        model.train()
        return acc

    systems = {"analogdecor.torch": (ours, ours_opt), "aihwkit": (theirs, theirs_opt)}
    wall: dict[str, list[float]] = {k: [] for k in systems}
    cpu: dict[str, list[float]] = {k: [] for k in systems}
    for r in range(args.rounds):
        for name, (model, opt) in systems.items():
            t0, c0 = time.perf_counter(), time.process_time()
            epoch(model, opt)
            if r:
                wall[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
    print(f"{ds.name}, {len(x)} images, preset {args.preset}, analogdecor update {args.update!r}, "
          f"{args.threads} thread(s), load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    for name, (model, _) in systems.items():
        print(f"  {name:18s} wall {statistics.median(wall[name]):6.2f} s/epoch   "
              f"cpu {statistics.median(cpu[name]):6.2f} s/epoch   train accuracy {accuracy(model):.3f}")  # fmt: skip
    w = statistics.median(wall["analogdecor.torch"]) / statistics.median(wall["aihwkit"])
    c = statistics.median(cpu["analogdecor.torch"]) / statistics.median(cpu["aihwkit"])
    print(f"  analogdecor.torch / aihwkit: wall {w:.2f}, cpu {c:.2f}")


if __name__ == "__main__":
    main()
