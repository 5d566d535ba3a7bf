"""Regenerate device_models/measurements/example_simulated.csv: SIMULATED pulse-response data.

No public measurement set that may be redistributed was found, so the example file bundled with
analogdecor is simulated, pulse by pulse, through analogdecor's own tile from the known device
below (an ExpStep device with the ReRamES preset's shape, a larger step so that ~60 pulses cross
the range, and device-to-device, cycle-to-cycle and write noise: ``EXAMPLE_SOURCE`` in
analogdecor/devices/measurements.py). `analogdecor devices fit` on it should give these parameters
back (docs/guide/fit-device.md).

    python scripts/make_example_measurements.py
"""

from __future__ import annotations

from pathlib import Path

from analogdecor.crossbar.config import TileConfig
from analogdecor.devices.measurements import (
    EXAMPLE_SETUP,
    EXAMPLE_SOURCE,
    simulate_measurements,
    write_measurements,
)

SOURCE = EXAMPLE_SOURCE
N_DEVICES, N_CYCLES, N_PULSES, SEED = (EXAMPLE_SETUP[k] for k in ("n_devices", "n_cycles", "n_pulses", "seed"))
OUT = Path(__file__).resolve().parents[1] / "device_models" / "measurements" / "example_simulated.csv"


def main() -> None:
    rows = simulate_measurements(TileConfig(device=SOURCE), N_DEVICES, N_CYCLES, N_PULSES, g_min=0.0, g_max=25.0,
                                 w_scale=1.0, seed=SEED)  # fmt: skip
    fields = ", ".join(f"{k}={getattr(SOURCE, k)!r}" for k in (
        "model", "dw_min", "up_down", "up_down_dtod", "dw_min_dtod", "dw_min_std", "w_min", "w_max", "w_min_dtod",
        "w_max_dtod", "a", "b", "gamma_up", "gamma_down", "A_up", "A_down", "write_noise_std"))  # fmt: skip
    comment = (
        "SIMULATED DATA, not a measurement: written by scripts/make_example_measurements.py through\n"
        "analogdecor's own tile, pulse by pulse, from the known device\n"
        f"DeviceConfig({fields})\n"
        f"{N_DEVICES} devices, {N_CYCLES} cycles of {N_PULSES} up then {N_PULSES} down pulses, seed {SEED};\n"
        "conductance range 0..25 uS mapped onto weights -1..1 (analogdecor devices fit defaults).\n"
        "Format: docs/guide/fit-device.md (pulse 0 = the read before the train's first pulse)."
    )
    write_measurements(OUT, rows, comment)
    print(f"{len(rows)} reads -> {OUT}")


if __name__ == "__main__":
    main()
