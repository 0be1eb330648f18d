"""Public sampling kernels (docs/concepts.md): counter-based, parallel, bit-reproducible.

    uniform(shape, seed, stream=0, dtype=float32)       U[0, 1)
    normal(shape, seed, stream=0, dtype=float32)        N(0, 1); loc=, scale= for loc + scale N(0, 1)
    (each also takes out=, an array of the shape and dtype to fill instead of a new one)
    bernoulli(p, seed, stream=0, out=None)              1[u < p], uint8 by default
    sigmoid_bernoulli(a, seed, stream=0)                (p, h) = (sigmoid(a), 1[u < p])
    uniform_reference(shape, seed, stream=0, dtype=float32)   uniform's values, by NumPy

The value at position i of stream (seed, stream) is a pure function of (seed, stream, i)
(Philox4x32-10, see `philox`), so results do not depend on `numba.set_num_threads`, and the
same (seed, stream) gives different methods the same numbers. `stream_id` derives stream ids
from named purposes. This package imports nothing else of stochtp (the thread settings it
relies on are made by `stochtp/__init__.py`, which Python runs first).

`stream` may also be a sequence of stream ids: the array is cut into that many equal blocks
along its first axis and block k is drawn from stream[k], exactly as a separate call on the
block would draw it. A chunk of mini-batches, each with its own stream, is drawn in one call.
`bernoulli` also draws one block of probabilities for every stream of the sequence (an `out` of
that many blocks): the same probabilities sampled for several stacked passes.

Kernels are compiled on first use and cached (see `compiling`: where, and `compilations()`,
what a block of code compiled and how long it took).
"""
import functools
import math

import numpy as np

from .compiling import compilations, ensure_cache_location

ensure_cache_location()  # before the kernels are defined: Numba picks their cache folder then

from . import sampling  # noqa: E402
from .philox import philox4x32_reference  # noqa: E402
from .streams import check_uint64, derive, is_stream_sequence, split64, stream_id  # noqa: E402

__all__ = ["uniform", "normal", "bernoulli", "sigmoid_bernoulli", "uniform_reference", "stream_id", "derive", "philox4x32_reference", "compilations"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_SAMPLE_DTYPES = (np.dtype(np.uint8), np.dtype(np.bool_), *_FLOATS)


def _shape(shape):
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)):
        raise ValueError(f"shape must hold integers, got {shape!r}")
    dims = tuple(shape)
    for d in dims:
        if isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer)):
            raise ValueError(f"shape must hold integers, got {shape!r}")
        if d < 0:
            raise ValueError(f"shape must not be negative, got {shape!r}")
    return tuple(int(d) for d in dims)


def _float_dtype(dtype):
    if dtype is None:  # np.dtype(None) is float64: a silent default: a wrong dtype is an error, never a conversion
        raise ValueError("dtype must be float32 or float64, got None")
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dtype not in _FLOATS:
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    return dtype


def _float_input(array, name):
    array = np.asarray(array)
    if array.dtype not in _FLOATS:
        raise ValueError(f"{name} must be a float32 or float64 array, got dtype {array.dtype}")
    return np.asarray(array, order="C")


def _read_only(array):
    """A read-only view of `array`. Numba compiles a kernel once per argument type, and whether
    an array is writeable is part of its type: `normal` reads `loc` through such a view, so that
    a read-only loc (the training inputs) and a writeable one (DTP's targets) share one kernel."""
    view = array.view()
    view.flags.writeable = False
    return view


def _output(out, shape, default_dtype, name, allowed=_SAMPLE_DTYPES, inputs=()):
    """`out` checked (a new array if None); it may not overlap `inputs`, which the kernels read as they write."""
    if out is None:
        if np.dtype(default_dtype) not in allowed:
            raise ValueError(f"{name} dtype {np.dtype(default_dtype)} is not supported; allowed: {', '.join(map(str, allowed))}")
        return np.empty(shape, dtype=default_dtype)
    if not isinstance(out, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(out).__name__}")
    if out.shape != shape:
        raise ValueError(f"{name} has shape {out.shape}, expected {shape}")
    if out.dtype not in allowed:
        raise ValueError(f"{name} has dtype {out.dtype}; allowed: {', '.join(map(str, allowed))}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError(f"{name} must be a writeable C-contiguous array")
    if any(np.may_share_memory(out, array) for array in inputs):
        raise ValueError(f"{name} must not share memory with the kernel's other arrays")
    return out


def _words(seed, stream, shape):
    """Kernel arguments (key0, key1, stream0s, stream1s) for one stream or one per block of `shape`'s first axis."""
    key = _key_words(check_uint64(seed, "seed"))
    if not is_stream_sequence(stream):
        stream = check_uint64(stream, "stream")
        return (*key, np.array([stream & 0xFFFFFFFF], np.uint64), np.array([stream >> 32], np.uint64))  # split64, as arrays
    streams = [check_uint64(s, "stream") for s in stream]
    if not streams or len(shape) == 0 or shape[0] % len(streams):
        raise ValueError(f"{len(streams)} streams cannot cut an array of shape {shape} into equal blocks along its first axis")
    words = np.array(streams, dtype=np.uint64)
    return (*key, words & np.uint64(0xFFFFFFFF), words >> np.uint64(32))  # split64 on every stream


@functools.lru_cache(maxsize=16)
def _key_words(seed):
    """The Philox key words of a checked `seed` (a run draws everything with one seed: made once)."""
    return split64(seed)


def uniform(shape, seed, stream=0, dtype=np.float32, out=None):
    """U[0, 1) values at positions 0..size-1 of stream (seed, stream), C order; into `out` if given
    (a buffer reused across calls: a fresh array of tens of MB costs page faults, here up to 10x
    the drawing itself)."""
    dtype, shape = _float_dtype(dtype), _shape(shape)
    out = _output(out, shape, dtype, "out", allowed=(dtype,))
    words = _words(seed, stream, shape)
    sampling.run_tasks(sampling.uniform_tasks, sampling.block_tasks(out.size, out.itemsize, words[2].size), out.size, out.reshape(-1), *words)
    return out


def uniform_reference(shape, seed, stream=0, dtype=np.float32):
    """`uniform`'s values, bit for bit, computed by NumPy on the Philox reference (one stream).

    The tests compare the kernel with it, and draws made once (a run's initial weights, an
    epoch's permutation) use it: NumPy draws them in milliseconds, where compiling the kernel
    for them would take seconds in a fresh install. The conversions are `sampling`'s, in integers:
    float32 (w >> 8) 2**-24 from word k of block l at position 4 l + k; float64
    ((w0 >> 5) 2**26 + (w1 >> 6)) 2**-53 from words 0-1 and 2-3 of block l at 2 l and 2 l + 1.
    """
    dtype, shape = _float_dtype(dtype), _shape(shape)
    key = np.array(split64(check_uint64(seed, "seed")), dtype=np.uint32)
    stream0, stream1 = split64(check_uint64(stream, "stream"))
    size = math.prod(shape)
    block = np.arange(-(-size * (dtype.itemsize // 4) // 4), dtype=np.uint64)  # 4 words a block; float64 takes 2 a value
    counters = np.stack([block & np.uint64(0xFFFFFFFF), block >> np.uint64(32), np.full_like(block, stream0), np.full_like(block, stream1)], axis=1)
    words = philox4x32_reference(counters, key).astype(np.uint64)
    if dtype == np.float64:
        values = ((words[:, 0::2] >> np.uint64(5)) * np.uint64(2**26) + (words[:, 1::2] >> np.uint64(6))).astype(np.float64) * 2.0**-53
    else:
        values = (words >> np.uint64(8)).astype(np.float32) * np.float32(2.0**-24)
    return values.reshape(-1)[:size].reshape(shape)


def normal(shape, seed, stream=0, dtype=np.float32, loc=None, scale=1.0, out=None):
    """N(0, 1) values at positions 0..size-1 of stream (seed, stream), C order; into `out` if given
    (as `uniform`'s).

    With `loc` (an array of `shape` and `dtype`) and/or `scale`, returns loc + scale z for the
    same z, rounded as that two-step expression is in `dtype`, in one pass: a noisy copy of an
    input (a training mini-batch plus its Gaussian input noise) without temporaries.
    """
    dtype, shape = _float_dtype(dtype), _shape(shape)
    if loc is None:
        loc = _read_only(np.empty(0, dtype=dtype))
    else:
        loc = _read_only(_float_input(loc, "loc"))
        if loc.shape != shape or loc.dtype != dtype:
            raise ValueError(f"loc must be a {dtype} array of shape {shape}, got {loc.dtype} {loc.shape}")
    if isinstance(scale, (bool, np.bool_)) or not isinstance(scale, (int, float, np.integer, np.floating)) or not np.isfinite(scale):
        raise ValueError(f"scale must be a finite number, got {scale!r}")
    out = _output(out, shape, dtype, "out", allowed=(dtype,), inputs=(loc,))
    words = _words(seed, stream, shape)
    tasks = sampling.block_tasks(out.size, out.itemsize, words[2].size)
    sampling.run_tasks(sampling.normal_tasks, tasks, out.size, out.reshape(-1), loc.reshape(-1), dtype.type(scale), *words)
    return out


def bernoulli(p, seed, stream=0, out=None, dtype=np.uint8):
    """Samples 1[u < p] element-wise (p outside [0, 1] clips naturally); uint8 unless `out`/`dtype` say otherwise.

    With a sequence of C streams, `out` may instead hold C times p's rows: block k of `out` is
    what a call on p with stream[k] alone draws (the same probabilities drawn for C stacked
    passes, without a C-fold copy of them).
    """
    p = _float_input(p, "p")
    if out is not None and is_stream_sequence(stream) and p.ndim and out.shape != p.shape:
        _output(out, (len(stream) * p.shape[0], *p.shape[1:]), dtype, "out", inputs=(p,))
        for one_stream, block in zip(stream, np.split(out, len(stream))):
            bernoulli(p, seed, one_stream, out=block)
        return out
    out = _output(out, p.shape, dtype, "out", inputs=(p,))
    if _bernoulli_draw(p.reshape(-1), out.reshape(-1), _words(seed, stream, p.shape)):
        raise ValueError("p contains NaN")
    return out


def sigmoid_bernoulli(a, seed, stream=0, p_out=None, h_out=None):
    """Fused p = sigmoid(a), h = 1[u < p]; returns (p, h), both of a's dtype unless `h_out` says otherwise.

    h has a float dtype by default because a stochastic layer's sample feeds the next matmul.
    """
    a = _float_input(a, "a")
    p_out = _output(p_out, a.shape, a.dtype, "p_out", allowed=(a.dtype,), inputs=(a,))
    h_out = _output(h_out, a.shape, a.dtype, "h_out", inputs=(a, p_out))
    p_flat = p_out.reshape(-1)
    sampling.run_tasks(sampling.sigmoid_tasks, a.size, a.size, a.reshape(-1), p_flat)
    if _bernoulli_draw(p_flat, h_out.reshape(-1), _words(seed, stream, a.shape)):
        raise ValueError("a (pre-activation) contains NaN")
    return p_out, h_out


def _bernoulli_draw(p, out, words):
    """1[u < p] on flat arrays by the Bernoulli kernel's tasks; True if some p is NaN."""
    return sampling.run_tasks(sampling.bernoulli_tasks, sampling.block_tasks(p.size, 4, words[2].size), p.size, p, out, *words)
