"""Registry of device presets: TOML files in device_models/, each with its source paper.

A preset file holds a ``[source]`` table (name, citation, ...) and the tables of
a :class:`~analogdecor.crossbar.config.TileConfig` (``[device]`` and optionally
``[forward]``, ``[backward]``, ``[update]``, ``[mapping]``); see
device_models/README.md. Files are searched in, in order:

1. the directory named by the environment variable ``ANALOGDECOR_DEVICE_MODELS``;
2. ``analogdecor/device_models`` inside the installed package (wheels);
3. the repository's ``device_models/`` (editable installs).

The first of these that exists is used. Names match case-insensitively. A name that is the
path of an existing ``.toml`` file (e.g. a preset written by ``analogdecor devices fit``) is read
from that file instead, so every command that takes a preset name also takes a path.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import os
import textwrap
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path

from analogdecor.config import from_dict, load_toml
from analogdecor.crossbar.config import TileConfig
from analogdecor.errors import ConfigError

__all__ = ["Preset", "PresetSource", "field_docs", "list_presets", "load_preset", "preset_dir", "preset_info"]

ENV_VAR = "ANALOGDECOR_DEVICE_MODELS"


@dataclass(frozen=True)
class PresetSource:
    """Provenance of a preset (the ``[source]`` table)."""

    name: str
    """Preset name; must equal the file name without ``.toml``."""
    summary: str = ""
    """One line: what device this is."""
    citation: str = ""
    """The paper the fit comes from."""
    url: str = ""
    """Where to read the paper."""
    fit: str = ""
    """Where the parameter values come from (e.g. the aihwkit preset class)."""
    notes: str = ""
    """Caveats: what of the original model is not emulated."""
    endurance_source: str = ""
    """Where ``device.endurance`` comes from (required when the preset sets it)."""
    data: str = ""
    """Fitted presets: the measurement file the fit was made from (as given to ``devices fit``)."""
    sha256: str = ""
    """Fitted presets: SHA-256 digest of that file's bytes, so the data behind a preset can be checked."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"PresetSource.name = {self.name!r}: must be a non-empty string")


@dataclass(frozen=True)
class Preset:
    """A loaded preset: its name, file, provenance and tile configuration."""

    name: str
    path: Path
    source: PresetSource
    config: TileConfig


def preset_dir() -> Path:
    """The directory the presets are read from (see the module docstring for the order)."""
    env = os.environ.get(ENV_VAR)
    if env:
        path = Path(env)
        if not path.is_dir():
            raise ConfigError(f"{ENV_VAR} = {env!r}: not a directory")
        return path
    here = Path(__file__).resolve()
    for candidate in (here.parents[1] / "device_models", here.parents[2] / "device_models"):
        if candidate.is_dir():
            return candidate
    raise ConfigError(
        f"no device_models directory found (looked in {here.parents[1] / 'device_models'} and "
        f"{here.parents[2] / 'device_models'}); set {ENV_VAR}"
    )


def _files() -> dict[str, Path]:
    return {p.stem: p for p in sorted(preset_dir().glob("*.toml"))}


def list_presets() -> list[str]:
    """Names of the available presets, sorted."""
    return sorted(_files(), key=str.lower)


def _resolve(name: str) -> Path:
    if isinstance(name, str | Path) and str(name).endswith(".toml"):
        path = Path(name)
        if path.is_file():
            return path
        raise ConfigError(f"device preset file {path} does not exist")
    files = _files()
    if name in files:
        return files[name]
    lower = {k.lower(): v for k, v in files.items()}
    if isinstance(name, str) and name.lower() in lower:
        return lower[name.lower()]
    raise ConfigError(f"unknown device preset {name!r}; known presets: {', '.join(list_presets())}")


def preset_info(name: str) -> Preset:
    """Load preset ``name`` (case-insensitive, or the path of a ``.toml`` file) with its provenance;
    errors name the file."""
    path = _resolve(name)
    data = load_toml(path)
    if "source" not in data:
        raise ConfigError(f"{path}: missing [source] table (name, citation, ...)")
    if "device" not in data:
        raise ConfigError(f"{path}: missing [device] table")
    try:
        source = from_dict(PresetSource, data.pop("source"), path="source")
        config = from_dict(TileConfig, data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if source.name != path.stem:
        raise ConfigError(f"{path}: source.name = {source.name!r} must equal the file name {path.stem!r}")
    if config.device.endurance is not None and not source.endurance_source:
        raise ConfigError(f"{path}: device.endurance = {config.device.endurance!r} needs "
                          "source.endurance_source (where the figure comes from)")  # fmt: skip
    return Preset(name=path.stem, path=path, source=source, config=config)


def load_preset(name: str) -> TileConfig:
    """The :class:`TileConfig` of preset ``name`` (case-insensitive).

    Raises
    ------
    ConfigError
        Unknown name (the message lists the known ones) or an invalid file
        (the message names the file and the field).
    """
    return preset_info(name).config


@cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstring written under each field of dataclass ``cls`` (attribute docstrings, via ``ast``)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):  # pragma: no cover - source not available (frozen builds)
        return {}
    cls_node = tree.body[0]
    if not isinstance(cls_node, ast.ClassDef):  # pragma: no cover - getsource of a class gives a class
        return {}
    body = cls_node.body
    docs: dict[str, str] = {}
    for node, nxt in itertools.pairwise(body):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)):  # fmt: skip
            docs[node.target.id] = " ".join(nxt.value.value.split())
    known = {f.name for f in fields(cls)}
    return {k: v for k, v in docs.items() if k in known}
