"""Typed configuration: dataclasses <-> dicts/TOML, dotted overrides, validation helpers.

Every configuration object in analogdecor is a frozen dataclass that validates
itself once in ``__post_init__`` (through the ``check_*`` helpers below, which
raise :class:`~analogdecor.errors.ConfigError` naming the field and the value).
This module converts such dataclasses from and to plain dicts (TOML files, JSON
run records), and applies dotted overrides such as ``{"device.dw_min_std": 0.5}``
used by the CLI and by sweeps. Unknown keys and wrong types are errors that name
the full dotted path.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from analogdecor.errors import ConfigError

T = TypeVar("T")

__all__ = [
    "check_choice",
    "check_finite",
    "check_int",
    "check_nonneg",
    "check_positive",
    "check_range",
    "field_names",
    "from_dict",
    "load_toml",
    "parse_scalar",
    "to_dict",
    "with_overrides",
]


# --------------------------------------------------------------------------- checks
def _where(obj: Any, name: str) -> str:
    return f"{type(obj).__name__}.{name}"


def check_finite(obj: Any, name: str) -> None:
    """Raise if ``obj.name`` is not a finite real number."""
    value = getattr(obj, name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{_where(obj, name)} = {value!r}: must be a finite number")


def check_positive(obj: Any, name: str, *, allow_none: bool = False) -> None:
    """Raise unless ``obj.name`` is finite and > 0 (or None when allowed)."""
    if allow_none and getattr(obj, name) is None:
        return
    check_finite(obj, name)
    if getattr(obj, name) <= 0:
        raise ConfigError(f"{_where(obj, name)} = {getattr(obj, name)!r}: must be > 0")


def check_nonneg(obj: Any, name: str) -> None:
    """Raise unless ``obj.name`` is finite and >= 0."""
    check_finite(obj, name)
    if getattr(obj, name) < 0:
        raise ConfigError(f"{_where(obj, name)} = {getattr(obj, name)!r}: must be >= 0")


def check_range(obj: Any, name: str, lo: float, hi: float) -> None:
    """Raise unless ``lo <= obj.name <= hi``."""
    check_finite(obj, name)
    value = getattr(obj, name)
    if not lo <= value <= hi:
        raise ConfigError(f"{_where(obj, name)} = {value!r}: must lie in [{lo}, {hi}]")


def check_int(obj: Any, name: str, *, minimum: int | None = None, allow_none: bool = False,
              maximum: int | None = None, why: str = "") -> None:  # fmt: skip
    """Raise unless ``obj.name`` is an int (not bool) in [minimum, maximum] (or None when allowed).

    ``why`` says in the message why a value above ``maximum`` cannot run.
    """
    value = getattr(obj, name)
    if allow_none and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{_where(obj, name)} = {value!r}: must be an integer")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{_where(obj, name)} = {value!r}: must be >= {minimum}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{_where(obj, name)} = {value!r}: must be <= {maximum}" + (f" ({why})" if why else ""))


def check_choice(obj: Any, name: str, choices: typing.Iterable[Any]) -> None:
    """Raise unless ``obj.name`` is one of ``choices``."""
    value = getattr(obj, name)
    choices = tuple(choices)
    if value not in choices:
        raise ConfigError(f"{_where(obj, name)} = {value!r}: must be one of {', '.join(map(repr, choices))}")


# --------------------------------------------------------------------------- conversion
def field_names(cls: type) -> list[str]:
    """Names of a dataclass's init fields."""
    return [f.name for f in dataclasses.fields(cls) if f.init]


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _convert(value: Any, tp: Any, path: str) -> Any:
    """Convert ``value`` to the annotated type ``tp`` or raise ConfigError naming ``path``."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        if type(value) in (int, float) and type(value) in args:  # int | float: 1.0 stays a float
            return value
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, path)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{path} = {value!r}: expected {_type_name(tp)}")
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise ConfigError(f"{path} = {value!r}: must be one of {', '.join(map(repr, get_args(tp)))}")
    if origin in (tuple, list):
        if isinstance(value, str) or not isinstance(value, list | tuple):
            raise ConfigError(f"{path} = {value!r}: expected a list")
        args = get_args(tp)
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{path}[{i}]") for i, v in enumerate(value))
        if origin is tuple and args:
            if len(args) != len(value):
                raise ConfigError(f"{path} = {value!r}: expected {len(args)} items")
            return tuple(_convert(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
        inner = args[0] if args else Any
        return origin(_convert(v, inner, f"{path}[{i}]") for i, v in enumerate(value))
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path} = {value!r}: expected a table")
        return dict(value)
    if _is_dataclass_type(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path} = {value!r}: expected a table of {tp.__name__} fields")
        return from_dict(tp, value, path=path)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{path} = {value!r}: expected true or false")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{path} = {value!r}: expected an integer")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{path} = {value!r}: expected a number")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{path} = {value!r}: expected a string")
    if tp is Path:
        if isinstance(value, str | Path):
            return Path(value)
        raise ConfigError(f"{path} = {value!r}: expected a path")
    return value


def _type_name(tp: Any) -> str:
    if get_origin(tp) in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if tp is type(None):
        return "none"
    return getattr(tp, "__name__", str(tp))


def from_dict(cls: type[T], data: Mapping[str, Any], *, path: str = "") -> T:
    """Build dataclass ``cls`` from a (nested) mapping; unknown keys and bad types raise ConfigError."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path or cls.__name__}: expected a table, got {data!r}")
    hints = get_type_hints(cls)
    names = field_names(cls)
    unknown = sorted(set(data) - set(names))
    if unknown:
        where = path or cls.__name__
        raise ConfigError(
            f"{where}: unknown field(s) {', '.join(map(repr, unknown))}; known fields: {', '.join(names)}"
        )
    kwargs = {}
    for name in names:
        if name in data:
            sub = f"{path}.{name}" if path else name
            kwargs[name] = _convert(data[name], hints[name], sub)
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        if path:
            raise ConfigError(f"{path}: {exc}") from None
        raise


def to_dict(obj: Any) -> Any:
    """Plain (TOML/JSON-friendly) representation of a config dataclass; None values are dropped."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {}
        for f in dataclasses.fields(obj):
            value = to_dict(getattr(obj, f.name))
            if value is not None:
                out[f.name] = value
        return out
    if isinstance(obj, tuple | list):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, Mapping):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file, with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None


def parse_scalar(text: str) -> Any:
    """Parse a command-line value: TOML literal if it is one (1e-3, true, [1, 2]), else the string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def with_overrides(cfg: T, overrides: Mapping[str, Any]) -> T:
    """Return ``cfg`` with dotted-path overrides applied (``{"device.dw_min_std": 0.5}``).

    Each value is type-checked against the field's annotation; an unknown path
    is a ConfigError that names it and lists the known fields at that level.
    """
    data = to_dict(cfg)
    for dotted, value in overrides.items():
        _set_path(type(cfg), data, dotted.split("."), value, dotted)
    return from_dict(type(cfg), data)


def _set_path(cls: type, data: dict, parts: list[str], value: Any, dotted: str) -> None:
    head, rest = parts[0], parts[1:]
    hints = get_type_hints(cls)
    if head not in field_names(cls):
        raise ConfigError(f"unknown setting {dotted!r}: {cls.__name__} has no field {head!r}; known: {', '.join(field_names(cls))}")
    if not rest:
        data[head] = to_dict(value)
        return
    tp = hints[head]
    if get_origin(tp) in (Union, types.UnionType):
        tp = next((a for a in get_args(tp) if _is_dataclass_type(a)), tp)
    if not _is_dataclass_type(tp):
        raise ConfigError(f"unknown setting {dotted!r}: {cls.__name__}.{head} has no sub-fields")
    sub = data.get(head)
    if not isinstance(sub, dict):
        sub = {}
        data[head] = sub
    _set_path(tp, sub, rest, value, dotted)
