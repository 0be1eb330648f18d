"""Philox4x32-10 (stochtp.kernels.philox): the Random123 known answers, for the NumPy reference
and the Numba kernel, and the kernel against the reference on random inputs."""
import numba
import numpy as np
import pytest
from kernel_statistics import SEED

from stochtp.kernels import philox4x32_reference
from stochtp.kernels.philox import philox4x32

# Random123 kat_vectors for philox4x32-10: (counter, key, expected output), 32-bit words.
PHILOX_KNOWN_ANSWERS = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]


@numba.njit(cache=True)
def philox_words_numba(counter, key):
    """Calls the Numba Philox kernel on uint32 counter/key arrays; returns its four words."""
    words = philox4x32(
        np.uint64(counter[0]), np.uint64(counter[1]), np.uint64(counter[2]), np.uint64(counter[3]),
        np.uint64(key[0]), np.uint64(key[1]),
    )
    result = np.empty(4, dtype=np.uint32)
    for lane in range(4):
        result[lane] = np.uint32(words[lane])
    return result


@pytest.mark.parametrize("counter, key, expected", PHILOX_KNOWN_ANSWERS)
def test_philox_numpy_reference_matches_random123_vectors(counter, key, expected):
    words = philox4x32_reference(np.array([counter], dtype=np.uint32), np.array(key, dtype=np.uint32))
    assert words.dtype == np.uint32
    assert [int(w) for w in words[0]] == list(expected)


@pytest.mark.parametrize("counter, key, expected", PHILOX_KNOWN_ANSWERS)
def test_philox_numba_kernel_matches_random123_vectors(counter, key, expected):
    words = philox_words_numba(np.array(counter, dtype=np.uint32), np.array(key, dtype=np.uint32))
    assert [int(w) for w in words] == list(expected)


def test_philox_numba_kernel_matches_reference_on_random_inputs():
    rng = np.random.default_rng(SEED)
    counters = rng.integers(0, 2**32, size=(200, 4), dtype=np.uint32)
    keys = rng.integers(0, 2**32, size=(200, 2), dtype=np.uint32)
    for counter, key in zip(counters, keys):
        expected = philox4x32_reference(counter[None, :], key)[0]
        np.testing.assert_array_equal(philox_words_numba(counter, key), expected)
