"""Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011).

A counter-based generator: the output is a pure function of a 128-bit counter and a 64-bit
key, so any position of any stream can be computed independently, in any order, on any
thread. stochtp lays the words out as

    key     = (seed mod 2**32, seed // 2**32)                 the run's 64-bit seed
    counter = (block mod 2**32, block // 2**32,               position in the stream / 4
               stream mod 2**32, stream // 2**32)             the 64-bit stream id

and one call yields four 32-bit words, i.e. the values at positions 4*block .. 4*block+3.
`philox4x32` is the Numba kernel; `philox4x32_reference` is the plain NumPy version the
tests compare it with (and with the published known-answer vectors).
"""
import numba
import numpy as np

_M0 = np.uint64(0xD2511F53)
_M1 = np.uint64(0xCD9E8D57)
_W0 = np.uint64(0x9E3779B9)
_W1 = np.uint64(0xBB67AE85)
_MASK32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)


@numba.njit(inline="always", cache=True, nogil=True)
def philox4x32(c0, c1, c2, c3, k0, k1):
    """Ten Philox rounds on counter (c0..c3) with key (k0, k1); all uint64 holding 32-bit words."""
    for _ in range(10):
        p0 = _M0 * c0
        p1 = _M1 * c2
        c0, c1, c2, c3 = (
            (p1 >> _SHIFT32) ^ c1 ^ k0,
            p1 & _MASK32,
            (p0 >> _SHIFT32) ^ c3 ^ k1,
            p0 & _MASK32,
        )
        k0 = (k0 + _W0) & _MASK32
        k1 = (k1 + _W1) & _MASK32
    return c0, c1, c2, c3


def philox4x32_reference(counters, key):
    """NumPy Philox4x32-10 of an (N, 4) uint32 counter array under a (2,) uint32 key -> (N, 4) uint32."""
    c = np.asarray(counters, dtype=np.uint64).T.copy()
    k0, k1 = (np.uint64(w) for w in np.asarray(key, dtype=np.uint64))
    for _ in range(10):
        p0 = _M0 * c[0]
        p1 = _M1 * c[2]
        c = np.stack([(p1 >> _SHIFT32) ^ c[1] ^ k0, p1 & _MASK32, (p0 >> _SHIFT32) ^ c[3] ^ k1, p0 & _MASK32])
        k0 = (k0 + _W0) & _MASK32
        k1 = (k1 + _W1) & _MASK32
    return c.T.astype(np.uint32)


LANES = 32  # Philox blocks computed side by side, so that LLVM vectorises across them (vpmuludq)


@numba.njit(inline="always", cache=True, nogil=True)
def philox4x32_lanes(first_block, key0, key1, stream0, stream1, words):
    """Blocks first_block .. first_block+LANES-1 of a stream into `words`, a (4, LANES) uint32
    array with one row per word: words[k, l] = word k of block first_block + l, i.e. position
    4 l + k of the group.

    The lane loop is outermost and the ten rounds inside it, so that the vectorised lanes keep
    their state in registers through all rounds; one row per word stores them without shuffles."""
    for lane in range(LANES):
        block = np.uint64(first_block + lane)
        c0, c1, c2, c3 = philox4x32(block & _MASK32, block >> _SHIFT32, stream0, stream1, key0, key1)
        words[0, lane] = np.uint32(c0)
        words[1, lane] = np.uint32(c1)
        words[2, lane] = np.uint32(c2)
        words[3, lane] = np.uint32(c3)
