"""Stream ids (stochtp.kernels.streams) and the independence of the streams and seeds they name.

The statistical tests are calibrated to the family-wise false-alarm rate ALPHA of
kernel_statistics (fixed seeds: a correct generator fails with probability at most ALPHA over
the choice of seed).
"""
import hashlib
import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from kernel_statistics import ALPHA, SEED, correlation_z, two_sided_z_critical

from stochtp.kernels import normal, stream_id, uniform


# ---------------------------------------------------------------------------------------------
# Stream ids


def test_stream_ids_differ_for_different_parts():
    parts = [
        (),
        (0,),
        (1,),
        ("0",),
        (2**64 - 1,),
        ("forward-sample",),
        ("input-noise",),
        *[(epoch, batch) for epoch in range(20) for batch in range(50)],  # (0, 1) and (1, 0) among them
        *[(base, purpose, layer) for base in (0, 1) for purpose in ("forward-sample", "inverse-noise") for layer in range(4)],
    ]
    ids = [stream_id(*part) for part in parts]
    assert len(set(ids)) == len(parts)
    assert all(isinstance(i, int) and 0 <= i < 2**64 for i in ids)
    assert stream_id(3, "shuffle") == stream_id(3, "shuffle")


def test_stream_id_is_pinned_so_streams_are_stable_across_processes():
    assert stream_id(3, "forward-sample", 1) == 14935634200291496872
    assert stream_id(0, "shuffle") == 2148183187870131442


@given(st.lists(st.one_of(st.integers(0, 2**64 - 1), st.text()), max_size=6))
def test_stream_id_is_the_blake2b_of_the_json_list_of_its_parts(parts):
    digest = hashlib.blake2b(json.dumps(parts).encode(), digest_size=8).digest()
    assert stream_id(*parts) == int.from_bytes(digest, "little")


@pytest.mark.parametrize("part", [-1, 2**64, 1.5, True, None])
def test_stream_id_rejects_bad_parts(part):
    with pytest.raises(ValueError, match="stream part"):
        stream_id(1, part)


def test_stream_id_parts_cannot_run_together():
    assert stream_id("a\x1fsb") != stream_id("a", "b")
    assert stream_id("1") != stream_id(1)


# ---------------------------------------------------------------------------------------------
# Independence of streams and seeds

DISTINCT_DRAWS = [
    ((SEED, 0), (SEED, 1)),
    ((SEED, 0), (SEED, 2**32)),
    ((0, 5), (1, 5)),
    ((1, 5), (2**32 + 1, 5)),
    ((SEED, stream_id(7, "forward-sample", 0)), (SEED, stream_id(7, "forward-sample", 1))),
    ((SEED, stream_id(7, "input-noise")), (SEED, stream_id(8, "input-noise"))),
]


def test_distinct_streams_and_seeds_are_uncorrelated():
    """Correlation z-test on 10^6 values per pair; family-wise ALPHA over all pairs and both kernels."""
    critical = two_sided_z_critical(ALPHA, tests=2 * len(DISTINCT_DRAWS))
    for first, second in DISTINCT_DRAWS:
        for kernel in (uniform, normal):
            z = correlation_z(kernel(10**6, *first), kernel(10**6, *second))
            assert abs(z) < critical, f"{kernel.__name__} {first} vs {second}: z = {z:.2f}"


def test_distinct_streams_and_seeds_share_no_values():
    """53-bit uniforms of unrelated streams collide with probability ~1e-6: a shared value means overlapping streams."""
    for first, second in DISTINCT_DRAWS:
        assert np.intersect1d(uniform(10**5, *first, np.float64), uniform(10**5, *second, np.float64)).size == 0
