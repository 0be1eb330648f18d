"""Seeds and stream ids: how stochtp names every random draw it makes.

A draw is addressed by (seed, stream, position). `seed` is the run's seed; `stream` is a
64-bit id derived from the draw's purpose, so that two purposes never share numbers and the
same purpose always gets the same numbers, in any process:

    stream_id(epoch, batch)                         the mini-batch's base stream (train loop)
    stream_id(base, "forward-sample", layer)        Bernoulli samples of one layer
    stream_id(base, "input-noise")                  training input noise
    stream_id(base, "inverse-noise", layer)         DTP inverse-training corruption
    stream_id(epoch, "shuffle")                     the epoch's permutation
    stream_id(base, "estimator", ...)               an estimator's extra draws

Different methods given the same (seed, stream) see the same numbers: common random numbers.
`derive(streams, ...)` maps a purpose over the streams of a stacked chunk of mini-batches.
"""
import functools
import hashlib
import json

import numpy as np

UINT64_LIMIT = 2**64


def check_uint64(value, name):
    """`value` as a Python int in [0, 2**64), or ValueError naming `name`."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer in [0, 2**64), got {value!r}")
    value = int(value)
    if not 0 <= value < UINT64_LIMIT:
        raise ValueError(f"{name} must be in [0, 2**64), got {value}")
    return value


def stream_id(*parts):
    """A 64-bit stream id from a tuple of non-negative ints and strings (a stable hash, not Python's):
    the BLAKE2b digest of the parts' JSON list, `[3, "forward-sample", 0]`."""
    return _digest(_canonical(parts))


def _canonical(parts):
    """The inside of the parts' JSON list, `3, "forward-sample", 0` (a hot path: plain ints go straight through)."""
    return ", ".join([str(part) if type(part) is int and 0 <= part < UINT64_LIMIT else _part_text(part) for part in parts])


def _part_text(part):
    """One part's JSON text: a string literal, or the integer checked to lie in [0, 2**64)."""
    return _json_string(part) if isinstance(part, str) else str(check_uint64(part, "stream part"))


def _digest(canonical):
    """The stream id of the parts whose JSON list is `[canonical]`."""
    return int.from_bytes(hashlib.blake2b(f"[{canonical}]".encode(), digest_size=8).digest(), "little")


@functools.lru_cache(maxsize=256)
def _json_string(text):
    """`text` as a JSON string literal; the few purpose names are encoded once (a hot path)."""
    return json.dumps(text)


def derive(stream, *parts):
    """stream_id(stream, *parts), or the list of them for a sequence of streams (one per block of a
    stacked chunk of mini-batches, as the kernels accept it)."""
    if not is_stream_sequence(stream):
        return stream_id(stream, *parts)
    suffix = ", " + _canonical(parts) if parts else ""  # the parts' text, made once for all the streams
    return [_digest(_canonical((s,)) + suffix) for s in stream]


def is_stream_sequence(stream):
    """Whether `stream` is a sequence of streams (a list, tuple or 1-D array) rather than one id."""
    return isinstance(stream, (list, tuple)) or (isinstance(stream, np.ndarray) and stream.ndim > 0)


def split64(value):
    """The low and high 32-bit words of a 64-bit int, as np.uint64 (the kernels' word type)."""
    return np.uint64(value & 0xFFFFFFFF), np.uint64(value >> 32)
