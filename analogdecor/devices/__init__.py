"""Device models (typed dataclasses), their per-device draws, and the preset registry.

:class:`DeviceConfig` describes one pulsed device family (aihwkit-compatible);
:func:`load_preset` gives a full tile configuration from device_models/.
"""

from __future__ import annotations

from analogdecor.devices.config import DEVICE_MODELS, DeviceConfig

__all__ = ["DEVICE_MODELS", "DeviceConfig", "list_presets", "load_preset", "preset_info"]

_REGISTRY = ("list_presets", "load_preset", "preset_info")


def __getattr__(name: str):
    # The registry imports analogdecor.crossbar.config, which imports this package's
    # config module: import it lazily to keep the import graph acyclic.
    if name in _REGISTRY:
        from analogdecor.devices import registry

        return getattr(registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
