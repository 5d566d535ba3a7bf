"""Physical arrays: a logical tile split over a grid of fixed-size crossbar arrays.

A chip holds arrays of a fixed size (commonly 256 x 256 or 512 x 512), each with
its own DACs, ADCs and pulse generators. A weight matrix larger than one array is
split over a grid of them (``mapping.array_rows`` x ``mapping.array_cols`` each):

- forward ``y = W x``: array (r, c) reads the input slice ``x[cols_c]`` through its
  own periphery (noise management on that slice, its own DAC/ADC ranges, bound
  management and output noise); the partial sums of the arrays of block row r are
  added digitally (float32, in ascending c);
- backward ``e = W^T d``: array (r, c) reads ``d[rows_r]``; partial sums added over r;
- update: array (r, c) takes the pulsed outer product of ``x[cols_c]`` and
  ``d[rows_r]`` with its own update management (pulse-train length and line
  probabilities from its own max|x| and max|d|), as aihwkit's tile arrays do.

Every array is a :class:`~analogdecor.crossbar.tile.Tile` with its own random
streams (seeded from the logical tile's seed and its place in the grid) and its
own device draws; all arrays of a logical tile share one ``w_scale`` (so one
conductance map describes the whole layer). With a perfect periphery and a float
update, the grid computes the same algebra as the monolithic tile (exactly where
float32 sums are exact, e.g. on dyadic values; otherwise to float32 rounding of
the partial sums).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from analogdecor._arrays import as_batch
from analogdecor.config import from_dict, to_dict
from analogdecor.crossbar.config import TileConfig
from analogdecor.crossbar.mapping import conductances_to_weights
from analogdecor.crossbar.tile import Tile
from analogdecor.errors import ConfigError, ShapeError

__all__ = ["ArrayPlace", "ArrayTile", "array_edges", "grid_shape", "make_numba_tile"]


def array_edges(size: int, per_array: int | None) -> list[int]:
    """Offsets where arrays start along one axis, plus ``size``: [0, a, 2a, ..., size]."""
    if per_array is None or per_array >= size:
        return [0, int(size)]
    if isinstance(per_array, bool) or not isinstance(per_array, int | np.integer) or per_array < 1:
        raise ConfigError(f"array size = {per_array!r}: must be an integer >= 1")
    return [*range(0, int(size), int(per_array)), int(size)]


def grid_shape(out_size: int, in_size: int, config: TileConfig) -> tuple[int, int]:
    """(rows, columns) of the grid of arrays that holds an ``out_size`` x ``in_size`` tile."""
    m = config.mapping
    return len(array_edges(out_size, m.array_rows)) - 1, len(array_edges(in_size, m.array_cols)) - 1


@dataclass(frozen=True)
class ArrayPlace:
    """Where one physical array sits in its logical tile."""

    row: int
    """Block row of the array in the grid."""
    col: int
    """Block column of the array in the grid."""
    row_offset: int
    """First output (weight-matrix row) the array holds."""
    col_offset: int
    """First input (weight-matrix column) the array holds."""
    rows: int
    """Outputs the array holds (<= mapping.array_rows)."""
    cols: int
    """Inputs the array holds (<= mapping.array_cols)."""

    @property
    def key(self) -> str:
        """The array's name in state dicts and exports: ``a<row>_<col>``."""
        return f"a{self.row}_{self.col}"


def _array_seed(seed: int, r: int, c: int) -> int:
    return int(np.random.SeedSequence([int(seed), 0x41525259, r, c]).generate_state(1, np.uint32)[0])


class ArrayTile:
    """A logical ``(out_size, in_size)`` tile held by a grid of numba :class:`Tile` arrays.

    Same contract as :class:`Tile` (forward, backward, update, set_weights,
    program, read_weights, hidden_weights, conductances, pulse_counts,
    state_dict, load_state_dict); see the module notes for the semantics.

    Parameters
    ----------
    out_size, in_size
        The logical weight matrix.
    config
        Settings of every array; ``config.mapping.array_rows`` / ``array_cols``
        fix the array size (None: the whole extent along that axis).
    seed, device_seed
        As for :class:`Tile`; each array derives its own from them and its place.
    """

    is_analog = True
    backend = "numba"

    def __init__(self, out_size: int, in_size: int, config: TileConfig | None = None, *,
                 seed: int = 0, device_seed: int | None = None) -> None:  # fmt: skip
        config = config if config is not None else TileConfig()
        if not isinstance(config, TileConfig):
            raise ConfigError(f"config must be a TileConfig, got {type(config).__name__}")
        for name, v in (("out_size", out_size), ("in_size", in_size)):
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
                raise ConfigError(f"{name} = {v!r}: must be an integer >= 1")
        self.out_size, self.in_size = int(out_size), int(in_size)
        self.config = config
        self.seed = int(seed)
        self.device_seed = device_seed
        self.row_edges = array_edges(self.out_size, config.mapping.array_rows)
        self.col_edges = array_edges(self.in_size, config.mapping.array_cols)
        self.places: list[ArrayPlace] = []
        self.tiles: list[Tile] = []
        for r in range(len(self.row_edges) - 1):
            for c in range(len(self.col_edges) - 1):
                r0, r1 = self.row_edges[r], self.row_edges[r + 1]
                c0, c1 = self.col_edges[c], self.col_edges[c + 1]
                self.places.append(ArrayPlace(r, c, r0, c0, r1 - r0, c1 - c0))
                dseed = None if device_seed is None else _array_seed(device_seed, r, c)
                self.tiles.append(
                    Tile(r1 - r0, c1 - c0, config, seed=_array_seed(seed, r, c), device_seed=dseed)
                )
        self.w_scale = max(t.w_scale for t in self.tiles)
        """Weight that maps onto g_max - g_min, shared by all arrays (the largest of theirs when unset)."""
        for t in self.tiles:
            t.use_w_scale(self.w_scale)

    # ------------------------------------------------------------------ grid
    @property
    def grid(self) -> tuple[int, int]:
        """(block rows, block columns) of the grid."""
        return len(self.row_edges) - 1, len(self.col_edges) - 1

    @property
    def n_arrays(self) -> int:
        return len(self.tiles)

    def arrays(self) -> Iterator[tuple[ArrayPlace, Tile]]:
        """(place, tile) of every array, row-major."""
        return zip(self.places, self.tiles, strict=True)

    def _assemble(self, parts: list[np.ndarray], dtype) -> np.ndarray:
        out = np.empty((self.out_size, self.in_size), dtype)
        for p, a in zip(self.places, parts, strict=True):
            out[p.row_offset : p.row_offset + p.rows, p.col_offset : p.col_offset + p.cols] = a
        return out

    def _blocks(self, w: np.ndarray) -> list[np.ndarray]:
        return [np.ascontiguousarray(w[p.row_offset : p.row_offset + p.rows, p.col_offset : p.col_offset + p.cols])
                for p in self.places]  # fmt: skip

    # ------------------------------------------------------------------ reads
    def forward(self, x) -> np.ndarray:
        """``y = W x`` per row of ``x`` (B, in_size): every array reads its input slice; partial sums added."""
        x = as_batch("x", x, self.in_size, "in_size")
        y = np.zeros((x.shape[0], self.out_size), np.float32)
        xs = [
            np.ascontiguousarray(x[:, c0:c1])
            for c0, c1 in zip(self.col_edges, self.col_edges[1:], strict=False)
        ]
        for p, t in self.arrays():
            y[:, p.row_offset : p.row_offset + p.rows] += t.forward(xs[p.col])
        return y

    def backward(self, d) -> np.ndarray:
        """``e = W^T d`` per row of ``d`` (B, out_size): every array reads its slice of d; partial sums added."""
        d = as_batch("d", d, self.out_size, "out_size")
        e = np.zeros((d.shape[0], self.in_size), np.float32)
        ds = [
            np.ascontiguousarray(d[:, r0:r1])
            for r0, r1 in zip(self.row_edges, self.row_edges[1:], strict=False)
        ]
        for p, t in self.arrays():
            e[:, p.col_offset : p.col_offset + p.cols] += t.backward(ds[p.row])
        return e

    def update(self, x, d, lr: float) -> None:
        """``W <- W - lr sum_n d_n x_n^T``: each array applies its block with its own update management."""
        x = as_batch("x", x, self.in_size, "in_size")
        d = as_batch("d", d, self.out_size, "out_size")
        if x.shape[0] != d.shape[0]:
            raise ShapeError(f"x has {x.shape[0]} rows but d has {d.shape[0]}; they must match (batch size)")
        for p, t in self.arrays():
            t.update(
                x[:, p.col_offset : p.col_offset + p.cols], d[:, p.row_offset : p.row_offset + p.rows], lr
            )

    def apply_accumulator(self, chi: np.ndarray) -> None:
        """Fire the pulses the accumulator ``chi`` (out_size, in_size) float64 holds, array by array
        (see :meth:`Tile.apply_accumulator`); ``chi`` keeps the remainder."""
        if not isinstance(chi, np.ndarray) or chi.dtype.kind != "f":
            raise TypeError("chi must be a floating-point NumPy array")
        if chi.shape != (self.out_size, self.in_size):
            raise ShapeError(f"chi has shape {chi.shape}; expected (out_size, in_size) = "
                             f"({self.out_size}, {self.in_size})")  # fmt: skip
        for p, t in self.arrays():
            rows, cols = slice(p.row_offset, p.row_offset + p.rows), slice(p.col_offset, p.col_offset + p.cols)
            block = np.ascontiguousarray(chi[rows, cols], np.float64)
            t.apply_accumulator(block)
            chi[rows, cols] = block

    # ------------------------------------------------------------------ writes
    def _check_matrix(self, name: str, weights) -> np.ndarray:
        w = np.asarray(weights)
        if w.shape != (self.out_size, self.in_size):
            raise ShapeError(f"{name} has shape {w.shape}; expected (out_size, in_size) = "
                             f"({self.out_size}, {self.in_size})")  # fmt: skip
        return w

    def set_weights(self, weights) -> None:
        """Write ``weights`` exactly into every array (see :meth:`Tile.set_weights`)."""
        for t, b in zip(self.tiles, self._blocks(self._check_matrix("weights", weights)), strict=True):
            t.set_weights(b)

    def program(self, weights) -> None:
        """Write ``weights`` with programming and write noise into every array (see :meth:`Tile.program`)."""
        for t, b in zip(self.tiles, self._blocks(self._check_matrix("weights", weights)), strict=True):
            t.program(b)

    # ------------------------------------------------------------------ views
    def read_weights(self) -> np.ndarray:
        return self._assemble([t.read_weights() for t in self.tiles], np.float32)

    def hidden_weights(self) -> np.ndarray:
        return self._assemble([t.hidden_weights() for t in self.tiles], np.float32)

    def conductances(self) -> tuple[np.ndarray, np.ndarray]:
        """(G+, G-) in uS of the whole logical tile (each array's map in its place)."""
        pairs = [t.conductances() for t in self.tiles]
        return (self._assemble([g[0] for g in pairs], np.float64),
                self._assemble([g[1] for g in pairs], np.float64))  # fmt: skip

    def weights_from_conductances(self, g_plus, g_minus) -> np.ndarray:
        m = self.config.mapping
        return conductances_to_weights(g_plus, g_minus, m.g_min, m.g_max, self.w_scale).astype(np.float32)

    def pulse_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """(up, down) pulses fired at every device so far, uint64 (out_size, in_size) each."""
        counts = [t.pulse_counts() for t in self.tiles]
        return (self._assemble([c[0] for c in counts], np.uint64),
                self._assemble([c[1] for c in counts], np.uint64))  # fmt: skip

    @property
    def refresh_count(self) -> int:
        return sum(t.refresh_count for t in self.tiles)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """All state: the grid and every array's :meth:`Tile.state_dict` under ``a<row>_<col>.``."""
        out: dict = {
            "out_size": np.int64(self.out_size),
            "in_size": np.int64(self.in_size),
            "config_json": np.str_(json.dumps(to_dict(self.config), sort_keys=True)),
            "seed": np.int64(self.seed),
            "device_seed": np.int64(-1 if self.device_seed is None else self.device_seed),
            "w_scale": np.float64(self.w_scale),
            "grid.row_edges": np.asarray(self.row_edges, np.int64),
            "grid.col_edges": np.asarray(self.col_edges, np.int64),
        }
        for p, t in self.arrays():
            for k, v in t.state_dict().items():
                out[f"{p.key}.{k}"] = v
        return out

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` output (same sizes and grid required)."""
        for name, edges in (("grid.row_edges", self.row_edges), ("grid.col_edges", self.col_edges)):
            if name not in state:
                raise ConfigError(f"state dict lacks {name}: it was not saved from a tile split over arrays")
            saved = [int(v) for v in np.asarray(state[name]).ravel()]
            if saved != edges:
                raise ShapeError(f"state[{name!r}] = {saved}: this tile's arrays start at {edges}")
        for p, t in self.arrays():
            prefix = p.key + "."
            t.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
        if "config_json" in state:
            saved_cfg = json.loads(str(state["config_json"]))
            if saved_cfg != to_dict(self.config):
                self.config = from_dict(TileConfig, saved_cfg)
        self.w_scale = float(state["w_scale"]) if "w_scale" in state else max(t.w_scale for t in self.tiles)

    def __repr__(self) -> str:
        r, c = self.grid
        return (f"ArrayTile({self.out_size}, {self.in_size}, arrays={r}x{c}, "
                f"model={self.config.device.model!r}, seed={self.seed})")  # fmt: skip


def make_numba_tile(out_size: int, in_size: int, config: TileConfig, *, seed: int = 0,
                    device_seed: int | None = None) -> Tile | ArrayTile:  # fmt: skip
    """A :class:`Tile` when one array holds the whole matrix (today's results unchanged), else an
    :class:`ArrayTile` over the grid that ``config.mapping.array_rows`` / ``array_cols`` ask for."""
    if grid_shape(int(out_size), int(in_size), config) == (1, 1):
        return Tile(out_size, in_size, config, seed=seed, device_seed=device_seed)
    return ArrayTile(out_size, in_size, config, seed=seed, device_seed=device_seed)
