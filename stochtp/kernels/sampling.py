"""Numba sampling kernels on the Philox stream: uniform, normal, Bernoulli, sigmoid-Bernoulli.

Every value is a pure function of (seed, stream, position): position i of a float32 stream
uses word i % 4 of Philox block i // 4, so the output is bit-identical whatever the number
of threads and however the array is split. The Bernoulli kernels compare against exactly the
float32 uniform of the same position: `bernoulli(p, s, k) == (uniform(p.shape, s, k) < p)`.

Conversions (documented because tests and replays depend on them):
- float32 uniform: (w >> 8) * 2**-24, in [0, 1) on a 2**-24 grid;
- float64 uniform: ((w0 >> 5) * 2**26 + (w1 >> 6)) * 2**-53, two words per value;
- normal: Box-Muller on (1 - u1, u2); float32 values come in fours from one block (tails cut
  at 5.77 sigma, probability 2e-8), float64 values in pairs from two 53-bit uniforms.

Each kernel is one `_*_blocks(first, stop, ...)` routine that fills Philox blocks
first..stop-1, run either by a parallel driver (tasks of `_BLOCKS_PER_TASK` blocks over
Numba's threads) or serially. Mini-batch-sized arrays go serial: waking a thread pool for
20 000 values costs more than the work and takes the cores from the BLAS call that follows.
Both drivers produce the same values, since every value depends only on its position.
"""
import math

import numba
import numpy as np
from numba import prange

from .philox import philox4x32

_BLOCKS_PER_TASK = 1024
_TWO_M24 = np.float32(2.0**-24)
_TWO_M53 = 2.0**-53
_TWO_PI_F32 = np.float32(2.0 * math.pi)
_ONE_F32 = np.float32(1.0)  # keeps float32 arithmetic float32 and float64 arithmetic float64
_U8 = np.uint64(8)
_U5 = np.uint64(5)
_U6 = np.uint64(6)
_U32 = np.uint64(32)
_MASK32 = np.uint64(0xFFFFFFFF)


@numba.njit(inline="always", cache=True, nogil=True)
def _block(j, key0, key1, stream0, stream1):
    """The four 32-bit words of Philox block `j` of the stream."""
    b = np.uint64(j)
    return philox4x32(b & _MASK32, b >> _U32, stream0, stream1, key0, key1)


@numba.njit(inline="always", cache=True, nogil=True)
def _u24(word):
    return np.float32(word >> _U8) * _TWO_M24


@numba.njit(inline="always", cache=True, nogil=True)
def _u53(word0, word1):
    return (np.float64(word0 >> _U5) * 67108864.0 + np.float64(word1 >> _U6)) * _TWO_M53


@numba.njit(inline="always", cache=True, nogil=True)
def _box_muller_f32(word0, word1):
    radius = np.float32(math.sqrt(np.float32(-2.0) * math.log(np.float32(1.0) - _u24(word0))))
    angle = _TWO_PI_F32 * _u24(word1)
    return radius * np.float32(math.cos(angle)), radius * np.float32(math.sin(angle))


@numba.njit(inline="always", cache=True, nogil=True)
def _task_range(task, n_blocks):
    """Blocks of parallel task `task`."""
    start = task * _BLOCKS_PER_TASK
    return start, min(n_blocks, start + _BLOCKS_PER_TASK)


@numba.njit(inline="always", cache=True, nogil=True)
def _uniform_f32_blocks(first, stop, out, key0, key1, stream0, stream1):
    n = out.size
    for j in range(first, stop):
        words = _block(j, key0, key1, stream0, stream1)
        for lane in range(min(4, n - 4 * j)):
            out[4 * j + lane] = _u24(words[lane])
    return False


@numba.njit(inline="always", cache=True, nogil=True)
def _uniform_f64_blocks(first, stop, out, key0, key1, stream0, stream1):
    n = out.size
    for j in range(first, stop):
        w0, w1, w2, w3 = _block(j, key0, key1, stream0, stream1)
        out[2 * j] = _u53(w0, w1)
        if 2 * j + 1 < n:
            out[2 * j + 1] = _u53(w2, w3)
    return False


@numba.njit(inline="always", cache=True, nogil=True)
def _normal_f32_blocks(first, stop, out, key0, key1, stream0, stream1):
    n = out.size
    for j in range(first, stop):
        w0, w1, w2, w3 = _block(j, key0, key1, stream0, stream1)
        z0, z1 = _box_muller_f32(w0, w1)
        z2, z3 = _box_muller_f32(w2, w3)
        zs = (z0, z1, z2, z3)
        for lane in range(min(4, n - 4 * j)):
            out[4 * j + lane] = zs[lane]
    return False


@numba.njit(inline="always", cache=True, nogil=True)
def _normal_f64_blocks(first, stop, out, key0, key1, stream0, stream1):
    n = out.size
    for j in range(first, stop):
        w0, w1, w2, w3 = _block(j, key0, key1, stream0, stream1)
        radius = math.sqrt(-2.0 * math.log(1.0 - _u53(w0, w1)))
        angle = 2.0 * math.pi * _u53(w2, w3)
        out[2 * j] = radius * math.cos(angle)
        if 2 * j + 1 < n:
            out[2 * j + 1] = radius * math.sin(angle)
    return False


@numba.njit(inline="always", cache=True, nogil=True)
def _bernoulli_blocks(first, stop, p, out, key0, key1, stream0, stream1):
    """out = 1[u < p] on blocks first..stop-1; True if one of their p is NaN."""
    n = p.size
    nan = False
    for j in range(first, stop):
        words = _block(j, key0, key1, stream0, stream1)
        for lane in range(min(4, n - 4 * j)):
            prob = p[4 * j + lane]
            out[4 * j + lane] = _u24(words[lane]) < prob
            nan |= prob != prob
    return nan


@numba.njit(inline="always", cache=True, nogil=True)
def _sigmoid_bernoulli_blocks(first, stop, a, p_out, h_out, key0, key1, stream0, stream1):
    """p = sigmoid(a), h = 1[u < p] on blocks first..stop-1; True if one of their a is NaN."""
    n = a.size
    nan = False
    for j in range(first, stop):
        words = _block(j, key0, key1, stream0, stream1)
        for lane in range(min(4, n - 4 * j)):
            i = 4 * j + lane
            prob = _ONE_F32 / (_ONE_F32 + math.exp(-a[i]))
            p_out[i] = prob
            h_out[i] = _u24(words[lane]) < prob
            nan |= a[i] != a[i]
    return nan


@numba.njit(parallel=True, cache=True, nogil=True)
def uniform_kernel(out, key0, key1, stream0, stream1):
    """Fill flat float32 or float64 `out` with U[0, 1) values of the stream, from position 0."""
    wide = out.itemsize == 8
    n_blocks = (out.size + 1) // 2 if wide else (out.size + 3) // 4
    for task in prange((n_blocks + _BLOCKS_PER_TASK - 1) // _BLOCKS_PER_TASK):
        start, stop = _task_range(task, n_blocks)
        if wide:
            _uniform_f64_blocks(start, stop, out, key0, key1, stream0, stream1)
        else:
            _uniform_f32_blocks(start, stop, out, key0, key1, stream0, stream1)


@numba.njit(cache=True, nogil=True)
def uniform_serial(out, key0, key1, stream0, stream1):
    if out.itemsize == 8:
        _uniform_f64_blocks(0, (out.size + 1) // 2, out, key0, key1, stream0, stream1)
    else:
        _uniform_f32_blocks(0, (out.size + 3) // 4, out, key0, key1, stream0, stream1)


@numba.njit(parallel=True, cache=True, nogil=True)
def normal_kernel(out, key0, key1, stream0, stream1):
    """Fill flat float32 or float64 `out` with N(0, 1) values of the stream, from position 0."""
    wide = out.itemsize == 8
    n_blocks = (out.size + 1) // 2 if wide else (out.size + 3) // 4
    for task in prange((n_blocks + _BLOCKS_PER_TASK - 1) // _BLOCKS_PER_TASK):
        start, stop = _task_range(task, n_blocks)
        if wide:
            _normal_f64_blocks(start, stop, out, key0, key1, stream0, stream1)
        else:
            _normal_f32_blocks(start, stop, out, key0, key1, stream0, stream1)


@numba.njit(cache=True, nogil=True)
def normal_serial(out, key0, key1, stream0, stream1):
    if out.itemsize == 8:
        _normal_f64_blocks(0, (out.size + 1) // 2, out, key0, key1, stream0, stream1)
    else:
        _normal_f32_blocks(0, (out.size + 3) // 4, out, key0, key1, stream0, stream1)


@numba.njit(parallel=True, cache=True, nogil=True)
def bernoulli_kernel(p, out, key0, key1, stream0, stream1):
    """out[i] = 1[u_i < p[i]] on flat arrays; returns True if some p[i] is NaN."""
    n_blocks = (p.size + 3) // 4
    n_tasks = (n_blocks + _BLOCKS_PER_TASK - 1) // _BLOCKS_PER_TASK
    nan_seen = np.zeros(n_tasks, dtype=np.bool_)
    for task in prange(n_tasks):
        start, stop = _task_range(task, n_blocks)
        nan_seen[task] = _bernoulli_blocks(start, stop, p, out, key0, key1, stream0, stream1)
    return nan_seen.any()


@numba.njit(cache=True, nogil=True)
def bernoulli_serial(p, out, key0, key1, stream0, stream1):
    return _bernoulli_blocks(0, (p.size + 3) // 4, p, out, key0, key1, stream0, stream1)


@numba.njit(parallel=True, cache=True, nogil=True)
def sigmoid_bernoulli_kernel(a, p_out, h_out, key0, key1, stream0, stream1):
    """p = sigmoid(a), h = 1[u < p] on flat arrays; returns True if some a[i] is NaN."""
    n_blocks = (a.size + 3) // 4
    n_tasks = (n_blocks + _BLOCKS_PER_TASK - 1) // _BLOCKS_PER_TASK
    nan_seen = np.zeros(n_tasks, dtype=np.bool_)
    for task in prange(n_tasks):
        start, stop = _task_range(task, n_blocks)
        nan_seen[task] = _sigmoid_bernoulli_blocks(start, stop, a, p_out, h_out, key0, key1, stream0, stream1)
    return nan_seen.any()


@numba.njit(cache=True, nogil=True)
def sigmoid_bernoulli_serial(a, p_out, h_out, key0, key1, stream0, stream1):
    return _sigmoid_bernoulli_blocks(0, (a.size + 3) // 4, a, p_out, h_out, key0, key1, stream0, stream1)
