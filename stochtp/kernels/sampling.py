"""Numba sampling kernels on the Philox stream: uniform, normal, Bernoulli, sigmoid-Bernoulli.

Every value is a pure function of (seed, stream, position): position i of a float32 stream
uses word i % 4 of Philox block i // 4, so the output is bit-identical whatever the number
of threads and however the array is split. The Bernoulli kernels compare against exactly the
float32 uniform of the same position: `bernoulli(p, s, k) == (uniform(p.shape, s, k) < p)`.

Conversions (documented because tests and replays depend on them):
- float32 uniform: (w >> 8) * 2**-24, in [0, 1) on a 2**-24 grid;
- float64 uniform: ((w0 >> 5) * 2**26 + (w1 >> 6)) * 2**-53, two words per value;
- normal: Box-Muller on (1 - u1, u2); float32 values come in pairs from two words (tails cut
  at 5.77 sigma, probability 2e-8), float64 values in pairs from two 53-bit uniforms. The
  float32 path computes log(1 - u1) and (cos, sin)(2 pi u2) with branch-free polynomials on the
  integer words (exact range reduction, errors below 2e-7), so that it vectorises; float64 uses libm.
- sigmoid: 1 / (1 + exp(-a)); in float32 exp is a branch-free polynomial (relative error below
  3e-7, i.e. within 2 ulp of libm; infinite above 88.7 as libm's), so that the loop vectorises.

Words are made a *group* at a time (`philox4x32_lanes`: LANES blocks side by side so that the
rounds vectorise, one row per word: position 4 l + k of the group is words[k, l]), then
converted in one pass; the last group of an array that it does not fill goes through a
group-sized buffer. The uniform, normal and Bernoulli kernels are each one
`_*_groups(first, stop, ...)` routine inside one `*_tasks(first, stop, ...)` kernel, which works
on a range of the array's tasks (`_GROUPS_PER_TASK` groups each); the float32 or float64
conversion is chosen when Numba compiles, so that a kernel compiles the one precision it is
called with (compiling is what a fresh install waits for: seconds per kernel). `run_tasks` runs
a kernel's tasks in the calling thread, or in contiguous ranges on the run's threads (Python
threads; Numba's parallel loops compiled each kernel a second time, for seconds more). The
sigmoid-Bernoulli draw is a sigmoid pass followed by the Bernoulli kernel. A flat array may be
cut into equal blocks with one stream each (a chunk of mini-batches, each drawing its own
numbers in one call). Mini-batch-sized arrays stay in the calling thread: waking threads for
20 000 values costs more than the work and takes the cores from the BLAS call that follows.
Every split gives the same values.
"""
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from numba import types
from numba.extending import overload

from . import compiling
from .bits import bits_from_float32, float32_from_bits
from .philox import LANES, philox4x32_lanes

GROUP = 4 * LANES  # 32-bit words per group
PARALLEL_MIN_SIZE = 1 << 16  # smaller arrays are worked on by the calling thread (see above)


_GROUPS_PER_TASK = 32
_TWO_M24 = np.float32(2.0**-24)
_TWO_M53 = 2.0**-53
_TWO_PI_F32 = np.float32(2.0 * math.pi)
_ONE_F32 = np.float32(1.0)  # keeps float32 arithmetic float32 and float64 arithmetic float64
_U8 = np.uint32(8)
_U5 = np.uint32(5)
_U6 = np.uint32(6)
_SQRT2_F32 = np.float32(math.sqrt(2.0))
_LN2_F32 = np.float32(math.log(2.0))
_HALF_F32 = np.float32(0.5)
_I23, _I127 = np.int32(23), np.int32(127)  # float32 exponent: bits 23..30, bias 127
_MANTISSA, _ONE_BITS = np.int32(0x7FFFFF), np.int32(127 << 23)
_THIRD, _FIFTH, _SEVENTH, _NINTH = (np.float32(1.0 / d) for d in (3, 5, 7, 9))
_LOG2E_F32 = np.float32(1.0 / math.log(2.0))
_LN2_HI_F32, _LN2_LO_F32 = np.float32(0.693359375), np.float32(math.log(2.0) - 0.693359375)  # ln 2 = hi + lo, hi exact
_EXP_OVERFLOW_F32 = np.float32(88.72)
_ROUNDER_F32 = np.float32(1.5 * 2**23)
_EXP_TERMS = tuple(np.float32(1.0 / k) for k in (7, 6, 5, 4, 3, 2))  # Taylor to degree 7 in nested form
_HALF_PI_OVER_2_22 = np.float32(math.pi / 2 / 2**22)
# Taylor terms in nested form: sin t = t (1 - t^2/(2*3) (1 - t^2/(4*5) (...))), likewise cos from 1*2.
_SIN3, _SIN5, _SIN7, _SIN9, _SIN11 = (np.float32(1.0 / ((d - 1) * d)) for d in (3, 5, 7, 9, 11))
_COS2, _COS4, _COS6, _COS8, _COS10, _COS12 = (np.float32(1.0 / ((d - 1) * d)) for d in (2, 4, 6, 8, 10, 12))


@numba.njit(inline="always", cache=True, nogil=True)
def _scratch():
    return np.empty((4, LANES), np.uint32)


@numba.njit(inline="always", cache=True, nogil=True)
def _u24(word):
    return np.float32(np.int32(word >> _U8)) * _TWO_M24  # through int32: AVX2 converts signed ints only


@numba.njit(inline="always", cache=True, nogil=True)
def _u53(word0, word1):
    return (np.float64(word0 >> _U5) * 67108864.0 + np.float64(word1 >> _U6)) * _TWO_M53


@numba.njit(inline="always", cache=True, nogil=True)
def _groups_of(n_words):
    return (n_words + GROUP - 1) // GROUP


def _uniform_from_words(words, out):
    """One group's uniforms into `out`, a group's worth of values: float32 one word each (position
    4 l + k from words[k, l]), float64 two words each (positions 2 l, 2 l + 1 from words 0-1, 2-3
    of l). The precision is chosen when Numba compiles (the overload below), as `_exp`'s."""


@overload(_uniform_from_words, inline="always")
def _uniform_from_words_for_type(words, out):
    if out.dtype == types.float64:
        return lambda words, out: _uniform_from_words_f64(words, out)
    return lambda words, out: _uniform_from_words_f32(words, out)


@numba.njit(inline="always", cache=True, nogil=True)
def _uniform_from_words_f64(words, out):
    for lane in range(LANES):
        out[2 * lane] = _u53(words[0, lane], words[1, lane])
        out[2 * lane + 1] = _u53(words[2, lane], words[3, lane])


@numba.njit(inline="always", cache=True, nogil=True)
def _uniform_from_words_f32(words, out):
    for lane in range(LANES):
        for k in range(4):
            out[4 * lane + k] = _u24(words[k, lane])


@numba.njit(inline="always", cache=True, nogil=True)
def _radius_f32(word):
    """sqrt(-2 log(1 - u)) for u = (word >> 8) 2**-24, branch-free.

    x = 1 - u in [2**-24, 1] is m 2^e with m read from its bits into [sqrt(1/2), sqrt(2)), so
    -ln x = -e ln 2 - ln m; ln m = 2 atanh((m - 1) / (m + 1)), |t| < 0.172.
    """
    bits = bits_from_float32(_ONE_F32 - _u24(word))
    exponent = np.float32((bits >> _I23) - _I127)
    m = float32_from_bits((bits & _MANTISSA) | _ONE_BITS)  # in [1, 2)
    high = m >= _SQRT2_F32
    m = m * _HALF_F32 if high else m
    scaled = -(exponent + _ONE_F32) if high else -exponent  # x = m 2^-scaled
    t = (m - _ONE_F32) / (m + _ONE_F32)
    t2 = t * t
    series = _ONE_F32 + t2 * (_THIRD + t2 * (_FIFTH + t2 * (_SEVENTH + t2 * _NINTH)))
    minus_log = scaled * _LN2_F32 - np.float32(2.0) * t * series  # -ln(1 - u)
    return np.float32(math.sqrt(np.float32(2.0) * minus_log))


@numba.njit(inline="always", cache=True, nogil=True)
def _exp_reduced_f32(x):
    """(n, e^r - 1) with x = n ln 2 + r, n = round(x / ln 2), |r| <= ln 2 / 2, branch-free;
    e^r - 1 = r (1 + r/2 (1 + r/3 ...)) to r^7."""
    n = (x * _LOG2E_F32 + _ROUNDER_F32) - _ROUNDER_F32  # round to nearest: the sum's ulp is 1
    r = (x - n * _LN2_HI_F32) - n * _LN2_LO_F32
    series = _ONE_F32
    for inverse in _EXP_TERMS:
        series = _ONE_F32 + r * inverse * series
    return n, r * series


@numba.njit(inline="always", cache=True, nogil=True)
def _exp2_f32(n):
    """2^n for an integral float32 n in [-126, 127] (the normal floats), from its exponent bits."""
    return float32_from_bits((np.int32(n) + _I127) << _I23)


@numba.njit(inline="always", cache=True, nogil=True)
def _exp_f32(x):
    """exp(x) in float32 (relative error below 3e-7); infinite above 88.72 as libm's.

    With x clamped to +-88.72, n = round(x / ln 2) lies in [-128, 128]: 2^n is applied as two
    factors 2^(n/2) that are normal floats, so that exp(x) near the ends of the range (subnormal,
    or just below the largest float) is rounded once, from the exact product.
    """
    n, em1 = _exp_reduced_f32(min(max(x, -_EXP_OVERFLOW_F32), _EXP_OVERFLOW_F32))
    half = np.float32(np.int32(n) >> np.int32(1))  # floor(n / 2)
    value = ((_ONE_F32 + em1) * _exp2_f32(half)) * _exp2_f32(n - half)
    return np.float32(np.inf) if x > _EXP_OVERFLOW_F32 else value


def _exp(x):
    """exp in x's precision: the polynomial `_exp_f32` for float32, libm for float64. The choice is
    made when Numba compiles (the overload below), so that the float32 loops vectorise."""
    return math.exp(x)


@overload(_exp, inline="always")
def _exp_for_type(x):
    if x == types.float32:
        return lambda x: _exp_f32(x)
    return lambda x: math.exp(x)


@numba.njit(inline="always", cache=True, nogil=True)
def sigmoid_scalar(a):
    """1 / (1 + exp(-a)) in a's precision."""
    return _ONE_F32 / (_ONE_F32 + _exp(-a))


@numba.njit(inline="always", cache=True, nogil=True)
def _cos_sin_f32(word):
    """(cos, sin)(2 pi u) for u = (word >> 8) 2**-24: quadrant from the top two bits, Taylor on [0, pi/2)."""
    quadrant = word >> np.uint32(30)
    theta = np.float32(np.int32((word >> _U8) & np.uint32(0x3FFFFF))) * _HALF_PI_OVER_2_22
    t2 = theta * theta
    sin = theta * (_ONE_F32 - t2 * _SIN3 * (_ONE_F32 - t2 * _SIN5 * (_ONE_F32 - t2 * _SIN7 * (_ONE_F32 - t2 * _SIN9 * (_ONE_F32 - t2 * _SIN11)))))
    cos = _ONE_F32 - t2 * _COS2 * (_ONE_F32 - t2 * _COS4 * (_ONE_F32 - t2 * _COS6 * (_ONE_F32 - t2 * _COS8 * (_ONE_F32 - t2 * _COS10 * (_ONE_F32 - t2 * _COS12)))))
    odd = (quadrant & np.uint32(1)) != 0
    x, y = (sin, cos) if odd else (cos, sin)
    x = -x if ((quadrant + np.uint32(1)) & np.uint32(2)) != 0 else x  # cos < 0 in quadrants 1, 2
    y = -y if (quadrant & np.uint32(2)) != 0 else y  # sin < 0 in quadrants 2, 3
    return x, y


def _normal_from_words(words, out, buffer, loc, scale):
    """One group's Box-Muller pairs into `out`, the group's view of the output (shorter for the
    last group of an array that it does not fill), in the precision of `out`: loc + scale z
    (`loc` the group's view of it), or scale z where `loc` is empty (scale 1 leaves z exact).
    A float32 pair takes words 0-1 or 2-3 of a block, a float64 pair all four; the precision is
    chosen when Numba compiles (the overload below).

    The values go to `buffer` first, one row per value of a lane as `words` holds them, so that
    the lane loop stores whole vectors (stores into `out` directly were scattered, 4 apart)."""


@overload(_normal_from_words, inline="always")
def _normal_from_words_for_type(words, out, buffer, loc, scale):
    if out.dtype == types.float64:
        return lambda words, out, buffer, loc, scale: _normal_from_words_f64(words, out, buffer, loc, scale)
    return lambda words, out, buffer, loc, scale: _normal_from_words_f32(words, out, buffer, loc, scale)


@numba.njit(inline="always", cache=True, nogil=True)
def _normal_from_words_f64(words, out, buffer, loc, scale):
    for lane in range(LANES):
        radius = math.sqrt(-2.0 * math.log(1.0 - _u53(words[0, lane], words[1, lane])))
        angle = 2.0 * math.pi * _u53(words[2, lane], words[3, lane])
        buffer[0, lane] = radius * math.cos(angle)
        buffer[1, lane] = radius * math.sin(angle)
    _interleave(buffer, 2, out, loc, scale)


@numba.njit(inline="always", cache=True, nogil=True)
def _normal_from_words_f32(words, out, buffer, loc, scale):
    for lane in range(LANES):
        for k in range(0, 4, 2):  # both pairs through one call site: Numba copies the IR it inlines at each
            radius = _radius_f32(words[k, lane])
            cos, sin = _cos_sin_f32(words[k + 1, lane])
            buffer[k, lane] = radius * cos
            buffer[k + 1, lane] = radius * sin
    _interleave(buffer, 4, out, loc, scale)


@numba.njit(inline="always", cache=True, nogil=True)
def _interleave(buffer, per_lane, out, loc, scale):
    """out[per_lane l + k] = loc[...] + scale buffer[k, l] (no loc where `loc` is empty), as far as
    `out` (a group's view) goes. `per_lane` is a literal at each call, so that the inner loop
    unrolls; the views are indexed from 0, so that LLVM sees no negative index (see
    `bernoulli_span`: the loop vectorises)."""
    if out.size == per_lane * LANES:
        if loc.size:
            for lane in range(LANES):
                for k in range(per_lane):
                    out[per_lane * lane + k] = loc[per_lane * lane + k] + scale * buffer[k, lane]
        else:
            for lane in range(LANES):
                for k in range(per_lane):
                    out[per_lane * lane + k] = scale * buffer[k, lane]
    else:  # the last group of an array that it does not fill
        for i in range(out.size):
            z = scale * buffer[i % per_lane, i // per_lane]
            out[i] = loc[i] + z if loc.size else z


@numba.njit(inline="always", cache=True, nogil=True)
def _values_per_group(out):
    return GROUP // 2 if out.itemsize == 8 else GROUP


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _uniform_groups(first, stop, out, key0, key1, stream0, stream1):
    words = _scratch()
    per_group = _values_per_group(out)
    for g in range(first, stop):
        philox4x32_lanes(g * LANES, key0, key1, stream0, stream1, words)
        base = g * per_group
        if base + per_group <= out.size:
            _uniform_from_words(words, out[base:base + per_group])
        else:
            uniforms = _partial_group_uniforms(words, np.empty(per_group, out.dtype), out.size - base)
            for i in range(uniforms.size):
                out[base + i] = uniforms[i]
    return False


@numba.njit(inline="always", cache=True, nogil=True)
def _partial_group_uniforms(words, group, count):
    """The first `count` uniforms of a group, made in `group` (a group's worth): the last group of
    an array that it does not fill."""
    _uniform_from_words(words, group)
    return group[:count]


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _normal_groups(first, stop, out, loc, scale, key0, key1, stream0, stream1):
    words = _scratch()
    buffer = np.empty((4, LANES), out.dtype)  # float64 uses rows 0-1
    per_group = _values_per_group(out)
    for g in range(first, stop):
        philox4x32_lanes(g * LANES, key0, key1, stream0, stream1, words)
        base = g * per_group
        end = min(base + per_group, out.size)
        _normal_from_words(words, out[base:end], buffer, loc[base:end], scale)  # an empty loc slices to empty
    return False


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _bernoulli_groups(first, stop, p, out, key0, key1, stream0, stream1):
    """out = 1[u < p] on groups first..stop-1 of flat arrays; True if one of their p is NaN."""
    start, end = first * GROUP, min(stop * GROUP, p.size)
    return bernoulli_span(first, p[start:end], out[start:end], key0, key1, stream0, stream1)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def bernoulli_span(first, p, out, key0, key1, stream0, stream1):
    """out = 1[u < p] where p and out are views of a stream's positions from first * GROUP on (as
    far as p goes); True if one of their p is NaN.

    A whole group is compared on views of it (`_bernoulli_group`), indexed from 0: indexed as
    p[g * GROUP + i] from a `first` that LLVM cannot prove non-negative (an argument), the loop
    would keep Numba's negative-index wraparound and not vectorise."""
    words = _scratch()
    nan = False
    whole = p.size // GROUP
    for g in range(whole):
        philox4x32_lanes((first + g) * LANES, key0, key1, stream0, stream1, words)
        nan |= _bernoulli_group(words, p[g * GROUP:(g + 1) * GROUP], out[g * GROUP:(g + 1) * GROUP])
    base = whole * GROUP
    if base < p.size:  # the last group of an array that it does not fill
        philox4x32_lanes((first + whole) * LANES, key0, key1, stream0, stream1, words)
        uniforms = _partial_group_uniforms(words, np.empty(GROUP, np.float32), p.size - base)
        for i in range(uniforms.size):
            prob = p[base + i]
            out[base + i] = uniforms[i] < prob
            nan |= prob != prob
    return nan


@numba.njit(inline="always", cache=True, nogil=True)
def _bernoulli_group(words, p, out):
    """out = 1[u < p] on one group's views (position 4 l + k from words[k, l]); True if a p is NaN."""
    nan = False
    for lane in range(LANES):
        for k in range(4):
            prob = p[4 * lane + k]
            out[4 * lane + k] = _u24(words[k, lane]) < prob
            nan |= prob != prob
    return nan


@numba.njit(inline="always", cache=True, nogil=True)
def _words_needed(n_values, itemsize):
    return n_values * 2 if itemsize == 8 else n_values


@numba.njit(inline="always", cache=True, nogil=True)
def _layout(size, itemsize, n_blocks):
    """(values per block, groups per block, tasks per block) of a flat array cut into `n_blocks` streams."""
    block = size // n_blocks
    groups = _groups_of(_words_needed(block, itemsize))
    return block, groups, (groups + _GROUPS_PER_TASK - 1) // _GROUPS_PER_TASK


@numba.njit(inline="always", cache=True, nogil=True)
def _task_range(task, tasks_per_block, groups_per_block):
    """(block, first group, stop group) of parallel task `task`."""
    block = task // tasks_per_block
    start = (task % tasks_per_block) * _GROUPS_PER_TASK
    return block, start, min(groups_per_block, start + _GROUPS_PER_TASK)


# Task kernels: `stream0s`, `stream1s` hold one stream per block; block b is positions
# b*block..(b+1)*block-1 of the flat arrays, drawn from position 0 of stream b. A call works on
# tasks first..stop-1 of the array's tasks (`_GROUPS_PER_TASK` groups of one block each, block
# after block): `run_tasks` gives all of them to the calling thread, or a contiguous range to
# each of the run's threads. Serial or threaded, it is the one compiled kernel.


def block_tasks(size, itemsize, n_blocks):
    """The number of tasks of a flat array of `size` values of `itemsize` bytes in `n_blocks` blocks
    (`_layout`'s, in Python)."""
    block = size // n_blocks
    groups = -(-(block * 2 if itemsize == 8 else block) // GROUP)
    return n_blocks * -(-groups // _GROUPS_PER_TASK)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def uniform_tasks(first, stop, out, key0, key1, stream0s, stream1s):
    """Fill tasks first..stop-1 of flat float32 or float64 `out` with U[0, 1) values, block b from stream b."""
    block, groups, tasks = _layout(out.size, out.itemsize, stream0s.size)
    for task in range(first, stop):
        b, start, end = _task_range(task, tasks, groups)
        _uniform_groups(start, end, out[b * block:(b + 1) * block], key0, key1, stream0s[b], stream1s[b])
    return False


@numba.njit(cache=True, nogil=True, error_model="numpy")
def normal_tasks(first, stop, out, loc, scale, key0, key1, stream0s, stream1s):
    """Fill tasks first..stop-1 of flat float32 or float64 `out` with loc + scale N(0, 1) values,
    block b from stream b; `loc` is an array like `out`, or empty for none."""
    block, groups, tasks = _layout(out.size, out.itemsize, stream0s.size)
    for task in range(first, stop):
        b, start, end = _task_range(task, tasks, groups)
        sl = slice(b * block, (b + 1) * block)
        _normal_groups(start, end, out[sl], loc[sl], scale, key0, key1, stream0s[b], stream1s[b])
    return False


@numba.njit(cache=True, nogil=True, error_model="numpy")
def bernoulli_tasks(first, stop, p, out, key0, key1, stream0s, stream1s):
    """out[i] = 1[u_i < p[i]] on tasks first..stop-1 of flat arrays, block b from stream b;
    returns True if one of their p[i] is NaN."""
    block, groups, tasks = _layout(p.size, 4, stream0s.size)
    nan = False
    for task in range(first, stop):
        b, start, end = _task_range(task, tasks, groups)
        sl = slice(b * block, (b + 1) * block)
        nan |= _bernoulli_groups(start, end, p[sl], out[sl], key0, key1, stream0s[b], stream1s[b])
    return nan


@numba.njit(cache=True, nogil=True, error_model="numpy")
def sigmoid_tasks(first, stop, a, out):
    """out[i] = sigmoid(a[i]) for i in first..stop-1 of flat arrays (one value a task; a vectorised
    polynomial exp in float32, libm in float64); the loop runs on views indexed from 0, so that
    it vectorises."""
    values, results = a[first:stop], out[first:stop]
    for i in range(values.size):
        results[i] = sigmoid_scalar(values[i])
    return False


def run_tasks(kernel, tasks, size, *args):
    """kernel(first, stop, *args) over tasks 0..tasks-1, `size` values of work in all: by the
    calling thread below PARALLEL_MIN_SIZE values or with one thread, else in contiguous ranges,
    one per thread of `numba.get_num_threads()` (Python threads: the kernels release the GIL).
    Returns whether a call returned True, once every range has ended (the calling thread runs the
    first range itself). A kernel that a child process compiles ahead is waited for first
    (`compiling.wait_for`)."""
    compiling.wait_for(kernel)
    threads = min(numba.get_num_threads(), tasks) if size >= PARALLEL_MIN_SIZE else 1
    if threads <= 1:
        return bool(kernel(0, tasks, *args))
    bounds = [tasks * t // threads for t in range(threads + 1)]
    others = [thread_pool().submit(kernel, bounds[t], bounds[t + 1], *args) for t in range(1, threads)]
    try:
        first = kernel(bounds[0], bounds[1], *args)
    finally:
        results = [future.result() for future in others]  # no range left running when this returns or raises
    return bool(first) or any(results)


_POOL = {}  # process id -> its thread pool (a pool made before a fork has no threads in the child)
_POOL_LOCK = threading.Lock()


def thread_pool():
    """The process's thread pool for kernels run in ranges, as many workers as Numba may use."""
    with _POOL_LOCK:
        pid = os.getpid()
        if pid not in _POOL:
            _POOL.clear()
            _POOL[pid] = ThreadPoolExecutor(max_workers=numba.config.NUMBA_NUM_THREADS, thread_name_prefix="stochtp-kernel")
        return _POOL[pid]
