"""Counter-based random streams for the numba kernels (splitmix64 + ziggurat normals).

Why not numba's ``np.random``: its Mersenne Twister is slow to seed (one seed per
row of a parallel kernel would cost more than the work) and its normals cost
~30 ns each, more than the matrix product they perturb. Here every row (or
sample) of a kernel owns a stream, seeded from a 64-bit call seed drawn from the
tile's ``numpy.random.Generator`` and the row index, so results are bit-for-bit
reproducible whatever the thread count or scheduling.

Streams are ``uint64`` counters (the state, threaded through the calls) hashed by splitmix64
(Steele, Lea & Flood, OOPSLA 2014; passes BigCrush). Normals come from the
128-layer ziggurat of Marsaglia & Tsang (J. Stat. Softw. 5(8), 2000) with the
layer index and the value taken from disjoint bits of one 64-bit draw (the fix
of Doornik, 2005, for the correlation in the original 32-bit version).

The lookup tables are module-level constants: numba freezes them into the
compiled kernels (the one deliberate exception to "no globals in kernels").
"""

from __future__ import annotations

import math

import numpy as np

from analogdecor._numba import njit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S32 = np.uint64(32)
_S11 = np.uint64(11)
_LOW7 = np.uint64(127)
_INV53 = 1.0 / 9007199254740992.0  # 2**-53
_ZIG_R = 3.442619855899


def _ziggurat_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tables kn, wn, fn of the 128-layer ziggurat (Marsaglia & Tsang 2000, ``zigset``)."""
    m1 = 2147483648.0
    vn = 9.91256303526217e-3
    dn = tn = _ZIG_R
    kn = np.zeros(128, np.int64)
    wn = np.zeros(128, np.float64)
    fn = np.zeros(128, np.float64)
    q = vn / math.exp(-0.5 * dn * dn)
    kn[0] = int((dn / q) * m1)
    kn[1] = 0
    wn[0] = q / m1
    wn[127] = dn / m1
    fn[0] = 1.0
    fn[127] = math.exp(-0.5 * dn * dn)
    for i in range(126, 0, -1):
        dn = math.sqrt(-2.0 * math.log(vn / dn + math.exp(-0.5 * dn * dn)))
        kn[i + 1] = int((dn / tn) * m1)
        tn = dn
        fn[i] = math.exp(-0.5 * dn * dn)
        wn[i] = dn / m1
    return kn, wn, fn


_KN, _WN, _FN = _ziggurat_tables()


@njit(inline="always")
def mix64(z):
    """splitmix64 finaliser: a bijective 64-bit hash."""
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@njit(inline="always")
def stream(seed, index):
    """Initial state (a uint64 counter) of stream ``index`` under call seed ``seed``.

    States are plain scalars threaded through the draws (``value, state =
    normal(state)``) so that the compiler keeps them in registers.
    """
    return mix64(np.uint64(seed) ^ mix64(np.uint64(index) + _GOLDEN))


@njit(inline="always")
def next_u64(st):
    """Next 64 random bits: returns (bits, new state)."""
    st = st + _GOLDEN
    return mix64(st), st


@njit(inline="always")
def uniform(st):
    """Uniform double in [0, 1) (53 random bits): returns (u, new state)."""
    r, st = next_u64(st)
    return float(r >> _S11) * _INV53, st


@njit(inline="always")
def _uniform_open(st):
    """Uniform double in (0, 1] (safe for log): returns (u, new state)."""
    r, st = next_u64(st)
    return (float(r >> _S11) + 1.0) * _INV53, st


@njit
def _normal_tail(st, hz, iz):
    """Slow path of the ziggurat: base strip tail or wedge rejection (``nfix``); returns (z, state)."""
    while True:
        x = hz * _WN[iz]
        if iz == 0:
            while True:
                u1, st = _uniform_open(st)
                u2, st = _uniform_open(st)
                xt = -math.log(u1) / _ZIG_R
                yt = -math.log(u2)
                if yt + yt >= xt * xt:
                    break
            return (_ZIG_R + xt if hz > 0 else -_ZIG_R - xt), st
        u, st = uniform(st)
        if _FN[iz] + u * (_FN[iz - 1] - _FN[iz]) < math.exp(-0.5 * x * x):
            return x, st
        r, st = next_u64(st)
        iz = np.intp(r & _LOW7)
        hz = np.int64(np.int32(np.uint32(r >> _S32)))
        if abs(hz) < _KN[iz]:
            return hz * _WN[iz], st


@njit(inline="always")
def normal(st):
    """Standard normal double (ziggurat; ~97% of draws cost one 64-bit draw): returns (z, new state)."""
    r, st = next_u64(st)
    iz = np.intp(r & _LOW7)
    hz = np.int64(np.int32(np.uint32(r >> _S32)))
    if abs(hz) < _KN[iz]:
        return hz * _WN[iz], st
    return _normal_tail(st, hz, iz)


@njit
def fill_normal(seed, out):
    """Fill the 2-D array ``out`` with normals, row ``r`` from ``stream(seed, r)`` (for tests)."""
    for r in range(out.shape[0]):
        st = stream(seed, r)
        for c in range(out.shape[1]):
            out[r, c], st = normal(st)


@njit
def fill_uniform(seed, out):
    """Fill the 2-D array ``out`` with uniforms in [0, 1), row ``r`` from ``stream(seed, r)``."""
    for r in range(out.shape[0]):
        st = stream(seed, r)
        for c in range(out.shape[1]):
            out[r, c], st = uniform(st)
