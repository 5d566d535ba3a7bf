"""What an export holds: one :class:`LayerRecord` per analogue tile plus run metadata.

Every tile of a network (weight tiles ``layers.i.W`` and decorrelation tiles
``layers.i.R``) is exported as its differential pair of conductance maps
(G+, G- in microsiemens) together with the mapping that turns them back into
weights::

    w = (G+ - G-) / (g_max - g_min) * w_scale

(:class:`analogdecor.crossbar.config.MappingConfig`). The digital parameters
of the network (biases, digital output scales, running means, float
decorrelation matrices) travel alongside, so that an import rebuilds a network
with the same outputs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analogdecor import __version__
from analogdecor.config import to_dict
from analogdecor.errors import ExportFormatError
from analogdecor.networks.keys import ParamKey

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "ConductanceExport",
    "LayerRecord",
    "array_digest",
    "collect_layers",
    "digital_state",
    "tile_w_scale",
]

FORMAT_NAME = "analogdecor-conductances"
FORMAT_VERSION = 2
"""2: every array and the header carry a SHA-256 digest that import verifies (1 had none)."""


@dataclass
class LayerRecord:
    """One exported tile: conductance maps and everything needed to read them as weights."""

    name: str
    """Layer name as in ``network.analog_layers()`` (e.g. ``layers.0.W``, ``layers.0.R``)."""
    g_plus: np.ndarray
    """(out, in) conductances of the positive devices (uS, float64)."""
    g_minus: np.ndarray
    """(out, in) conductances of the negative devices (uS, float64)."""
    g_min: float
    """Mapping: lowest conductance (uS)."""
    g_max: float
    """Mapping: highest conductance (uS)."""
    w_scale: float
    """Mapping: weight that corresponds to g_max - g_min."""
    kind: str = "weight"
    """'weight' (a layer's W) or 'decorrelation' (a layer's R tile)."""
    backend: str = ""
    """Backend class the tile came from (FloatTile, Tile, AihwkitTile)."""
    tile_config: dict = field(default_factory=dict)
    """The tile's full TileConfig as a plain dict (device parameters included)."""
    geometry: dict = field(default_factory=dict)
    """How the (out, in) map sits in its layer; empty for dense layers. A conv2d weight map is
    (C_out, C_in k k) with ``kernel_shape`` [C_out, C_in, k, k], columns in (channel, kernel row,
    kernel column) order (``layout``: a torch Conv2d weight is ``map.reshape(kernel_shape)``),
    plus ``stride``, ``padding`` and the layer's ``in_shape``."""

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.g_plus.shape)  # type: ignore[return-value]

    def weights(self) -> np.ndarray:
        """Weights recovered through the mapping (float64)."""
        from analogdecor.crossbar.mapping import conductances_to_weights

        return conductances_to_weights(self.g_plus, self.g_minus, self.g_min, self.g_max, self.w_scale)

    def meta(self) -> dict[str, Any]:
        """Plain-JSON metadata of the layer (no arrays)."""
        return {
            "name": self.name,
            "shape": list(self.shape),
            "g_min": self.g_min,
            "g_max": self.g_max,
            "w_scale": self.w_scale,
            "kind": self.kind,
            "backend": self.backend,
            "tile_config": self.tile_config,
            **({"geometry": self.geometry} if self.geometry else {}),
        }

    @classmethod
    def from_meta(
        cls, meta: dict[str, Any], g_plus: np.ndarray, g_minus: np.ndarray, *, where: str
    ) -> LayerRecord:
        """Rebuild from :meth:`meta` output and the two arrays, validating both (ExportFormatError)."""
        try:
            rec = cls(
                name=str(meta["name"]),
                g_plus=np.asarray(g_plus, dtype=np.float64),
                g_minus=np.asarray(g_minus, dtype=np.float64),
                g_min=float(meta["g_min"]),
                g_max=float(meta["g_max"]),
                w_scale=float(meta["w_scale"]),
                kind=str(meta.get("kind", "weight")),
                backend=str(meta.get("backend", "")),
                tile_config=dict(meta.get("tile_config", {})),
                geometry=dict(meta.get("geometry", {})),
            )
            shape = tuple(int(s) for s in meta["shape"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ExportFormatError(f"{where}: layer metadata is incomplete or malformed ({exc!r})") from None
        rec.validate(where, shape)
        return rec

    def validate(self, where: str, shape: tuple[int, ...] | None = None) -> None:
        """Raise ExportFormatError unless the arrays and the mapping are consistent."""
        gp, gm = self.g_plus, self.g_minus
        if gp.ndim != 2 or gp.shape != gm.shape:
            raise ExportFormatError(
                f"{where}: layer {self.name!r} has G+ of shape {gp.shape} and G- of shape {gm.shape}; "
                "expected two (out, in) maps of equal shape"
            )
        if shape is not None and gp.shape != tuple(shape):
            raise ExportFormatError(
                f"{where}: layer {self.name!r} maps are {gp.shape} but the metadata says {shape}"
            )
        if not (np.all(np.isfinite(gp)) and np.all(np.isfinite(gm))):
            raise ExportFormatError(f"{where}: layer {self.name!r} has non-finite conductances")
        if not (np.isfinite(self.w_scale) and self.w_scale > 0 and np.isfinite(self.g_max)
                and 0 <= self.g_min < self.g_max):  # fmt: skip
            raise ExportFormatError(
                f"{where}: layer {self.name!r} has an invalid mapping (g_min {self.g_min}, g_max {self.g_max}, "
                f"w_scale {self.w_scale})"
            )
        # Every device must lie within the mapping's range (to rounding): a value outside it is
        # physically impossible and cannot be programmed.
        tol = 1e-9 * (self.g_max - self.g_min)
        for label, g in (("G+", gp), ("G-", gm)):
            bad = (g < self.g_min - tol) | (g > self.g_max + tol)
            if bad.any():
                i, j = (int(v) for v in np.argwhere(bad)[0])
                raise ExportFormatError(
                    f"{where}: layer {self.name!r} has {int(bad.sum())} {label} value(s) outside the mapping's "
                    f"range [g_min, g_max] = [{self.g_min}, {self.g_max}] uS, e.g. {g[i, j]!r} at ({i}, {j})"
                )


@dataclass
class ConductanceExport:
    """A whole export: layers, digital state and run metadata."""

    layers: list[LayerRecord]
    meta: dict[str, Any] = field(default_factory=dict)
    """format, format_version, package_version, seed, device_preset, run_config (dict), ..."""
    digital: dict[str, np.ndarray] = field(default_factory=dict)
    """Digital parameters of the network: ``network.state_dict()`` minus the tiles' own states."""

    def layer(self, name: str) -> LayerRecord:
        for rec in self.layers:
            if rec.name == name:
                return rec
        raise KeyError(f"no layer {name!r} in the export; layers: {', '.join(r.name for r in self.layers)}")

    def header(self) -> dict[str, Any]:
        """Metadata with the format tag and the layer list (JSON-serialisable)."""
        return {
            **self.meta,
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "layers": [rec.meta() for rec in self.layers],
            "digital_keys": sorted(self.digital),
            "checksums": self.checksums(),
        }

    def checksums(self) -> dict[str, str]:
        """:func:`array_digest` of every array, keyed ``<layer>/g_plus``, ``<layer>/g_minus``, ``digital/<key>``."""
        out = {}
        for rec in self.layers:
            out[f"{rec.name}/g_plus"] = array_digest(rec.g_plus)
            out[f"{rec.name}/g_minus"] = array_digest(rec.g_minus)
        for key, value in self.digital.items():
            out[f"digital/{key}"] = array_digest(np.asarray(value))
        return out


#: Header entries about the file itself; they are not carried into ``ConductanceExport.meta``.
FILE_KEYS = ("layers", "digital_keys", "checksums", "header_sha256")


def check_header(header: Any, where: str) -> dict[str, Any]:
    """Validate the format tag, the version and the header's own digest of a decoded header."""
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise ExportFormatError(
            f"{where}: not an analogdecor conductance export (format tag missing or wrong)"
        )
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        hint = (" (version 1 exports carry no checksums, so their integrity cannot be verified: export the "
                "run again with `analogdecor export RUN_DIR`)" if version == 1 else "")  # fmt: skip
        raise ExportFormatError(
            f"{where}: export format version {version!r}; this analogdecor ({__version__}) reads version "
            f"{FORMAT_VERSION}{hint}"
        )
    if header.get("header_sha256") != header_digest(header):
        raise ExportFormatError(
            f"{where}: the metadata does not match its checksum (header_sha256): the file was edited or "
            "corrupted after export"
        )
    if not isinstance(header.get("layers"), list) or not isinstance(header.get("checksums"), dict):
        raise ExportFormatError(f"{where}: header has no layer list or no checksums")
    return header


def array_digest(arr: Any) -> str:
    """SHA-256 of an array's dtype, shape and bytes (C order), as ``sha256:<hex>``."""
    a = np.asarray(arr)
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes(order="C"))
    return f"sha256:{h.hexdigest()}"


def file_digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def header_digest(header: dict[str, Any]) -> str:
    """SHA-256 of the header's canonical JSON, the ``header_sha256`` entry itself left out."""
    body = {k: v for k, v in header.items() if k != "header_sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return f"sha256:{hashlib.sha256(text.encode()).hexdigest()}"


def seal_header(header: dict[str, Any]) -> dict[str, Any]:
    """``header`` with its ``header_sha256`` set (call after every other entry is final)."""
    header["header_sha256"] = header_digest(header)
    return header


def verify_array(header: dict[str, Any], key: str, arr: np.ndarray, where: str) -> np.ndarray:
    """``arr`` if its digest is the one the header records for ``key``, else ExportFormatError."""
    expected = header["checksums"].get(key)
    if expected is None:
        raise ExportFormatError(f"{where}: no checksum recorded for {key!r}")
    if array_digest(arr) != expected:
        raise ExportFormatError(
            f"{where}: {key!r} does not match its checksum: the file was corrupted or edited after export"
        )
    return arr


def decode_json(text: Any, where: str) -> Any:
    """json.loads with an ExportFormatError naming the file."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    try:
        return json.loads(str(text))
    except json.JSONDecodeError as exc:
        raise ExportFormatError(f"{where}: metadata is not valid JSON ({exc})") from None


# --------------------------------------------------------------------------- from a network
def tile_w_scale(tile: Any, weights: np.ndarray | None = None) -> float:
    """The w_scale the tile's own :meth:`conductances` used.

    Analogue tiles map ``mapping.w_scale`` or, when unset, the device's
    max(|w_min|, |w_max|); a float tile (no device range) uses ``mapping.w_scale``
    or max |W| (see :meth:`analogdecor.backends.FloatTile.conductances`).
    """
    explicit = getattr(tile, "w_scale", None)
    if explicit is not None and not callable(explicit):
        return float(explicit)
    cfg = tile.config
    if cfg.mapping.w_scale is not None:
        return float(cfg.mapping.w_scale)
    if not getattr(tile, "is_analog", True):
        w = tile.read_weights() if weights is None else weights
        return max(float(np.abs(w).max()), 1e-12)
    return float(cfg.device.w_abs_max)


def collect_layers(network: Any) -> list[LayerRecord]:
    """One :class:`LayerRecord` per ``network.analog_layers()`` entry, from the tiles' conductances."""
    records = []
    geometry: Any = getattr(network, "tile_geometry", lambda name: {})
    for key, tile in _tiles(network):
        name = str(key)
        g_plus, g_minus = tile.conductances()
        m = tile.config.mapping
        records.append(
            LayerRecord(
                name=name,
                g_plus=np.asarray(g_plus, dtype=np.float64).copy(),
                g_minus=np.asarray(g_minus, dtype=np.float64).copy(),
                g_min=float(m.g_min),
                g_max=float(m.g_max),
                w_scale=tile_w_scale(tile),
                kind="decorrelation" if key.part == "R" else "weight",
                backend=type(tile).__name__,
                tile_config=to_dict(tile.config),
                geometry=geometry(name),
            )
        )
    return records


def _tiles(network: Any) -> list[tuple[ParamKey, Any]]:
    """(key, tile) of every tile of ``network``: its ``tiles()``, or its ``analog_layers()`` names parsed."""
    tiles = getattr(network, "tiles", None)
    if callable(tiles):
        return list(tiles())
    return [(ParamKey.parse(name), tile) for name, tile in network.analog_layers()]


def digital_state(network: Any) -> dict[str, np.ndarray]:
    """``network.state_dict()`` without the entries that belong to tiles (those are the conductances)."""
    tile_prefixes = tuple(key.prefix for key, _ in _tiles(network))
    return {k: np.asarray(v) for k, v in network.state_dict().items() if not k.startswith(tile_prefixes)}
