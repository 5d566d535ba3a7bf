"""Device models (typed dataclasses), their per-device draws, and the preset registry.

:class:`DeviceConfig` describes one pulsed device family (aihwkit-compatible);
:func:`load_preset` gives a full tile configuration from device_models/.
"""

from __future__ import annotations

from analogdecor.devices.config import DEVICE_MODELS, DeviceConfig
from analogdecor.devices.registry import list_presets, load_preset, preset_info

__all__ = ["DEVICE_MODELS", "DeviceConfig", "list_presets", "load_preset", "preset_info"]
