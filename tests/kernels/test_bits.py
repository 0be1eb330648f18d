"""The bit-level intrinsics of stochtp.kernels.bits against Python's integers."""
import numba
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from stochtp.kernels.bits import bits_from_float32, float32_from_bits, lowest_bit, set_bits


@numba.njit(cache=True)
def _set_and_lowest(word):
    return set_bits(word), lowest_bit(word)


@settings(deadline=None)  # the first example compiles the kernel
@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_set_bits_and_lowest_bit_match_python(word):
    count, lowest = _set_and_lowest(np.uint64(word))
    assert count == bin(word).count("1")
    assert lowest == ((word & -word).bit_length() - 1 if word else 64)


@numba.njit(cache=True)
def _round_trip(value):
    return float32_from_bits(bits_from_float32(value))


@settings(deadline=None)
@given(st.floats(width=32, allow_nan=False))
def test_float32_bits_round_trip(value):
    assert _round_trip(np.float32(value)) == np.float32(value)
    assert np.float32(value).view(np.int32) == _bits(np.float32(value))


@numba.njit(cache=True)
def _bits(value):
    return bits_from_float32(value)
