"""The sampling kernels (stochtp.kernels, stochtp.kernels.sampling): bit-exact re-derivation of
the documented conversions from the NumPy Philox reference, thread invariance, distributions,
independence of the lanes, and bad input.

The statistical tests are calibrated to the family-wise false-alarm rate ALPHA of
kernel_statistics (fixed seeds: a correct generator fails a given test with probability at most
ALPHA over the choice of seed).
"""

import math

import numba
import numpy as np
import pytest
from kernel_statistics import (
    ALPHA,
    SEED,
    assert_uniform_bins,
    chi_square_critical,
    chi_square_equal_bins,
    correlation_z,
    kolmogorov_critical,
    standard_normal_cdf,
    two_sided_z_critical,
    upper_normal_quantile,
)

from stochtp.kernels import bernoulli, derive, normal, philox4x32_reference, sampling, sigmoid_bernoulli, stream_id, uniform, uniform_reference

ODD_SIZES = [0, 1, 3, 5, 4097, 100_003]  # not multiples of 4; 4097 and 100_003 span several parallel tasks
SEED_STREAM_PAIRS = [(0, 0), (12345, 7), (2**32, 2**32 + 5), (2**64 - 1, 2**64 - 1)]


# ---------------------------------------------------------------------------------------------
# The statistics helpers


def test_statistics_helpers_match_known_quantiles():
    assert upper_normal_quantile(0.025) == pytest.approx(1.959964, abs=1e-5)
    assert upper_normal_quantile(1e-3) == pytest.approx(3.090232, abs=1e-5)
    assert chi_square_critical(999, 1e-3) == pytest.approx(1142.848, rel=1e-4)
    assert chi_square_critical(10, 1e-3) == pytest.approx(29.588, rel=1e-2)
    assert chi_square_equal_bins(np.array([0, 0, 0, 1]), 2) == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------
# NumPy re-derivation of the documented stream layout


def reference_blocks(n_blocks, seed, stream):
    """(n_blocks, 4) uint32: Philox blocks 0..n_blocks-1 of stream (seed, stream), from the NumPy reference."""
    block = np.arange(n_blocks, dtype=np.uint64)
    counters = np.empty((n_blocks, 4), dtype=np.uint32)
    counters[:, 0] = block & np.uint64(0xFFFFFFFF)
    counters[:, 1] = block >> np.uint64(32)
    counters[:, 2] = stream & 0xFFFFFFFF
    counters[:, 3] = stream >> 32
    key = np.array([seed & 0xFFFFFFFF, seed >> 32], dtype=np.uint32)
    return philox4x32_reference(counters, key)


def reference_uniform_f32(n, seed, stream):
    words = reference_blocks((n + 3) // 4, seed, stream).reshape(-1)[:n]
    return ((words >> 8).astype(np.float64) * 2.0**-24).astype(np.float32)


def reference_u53(high_word, low_word):
    integer = (high_word.astype(np.uint64) >> np.uint64(5)) * np.uint64(2**26) + (low_word.astype(np.uint64) >> np.uint64(6))
    return integer.astype(np.float64) * 2.0**-53


def reference_uniform_f64(n, seed, stream):
    words = reference_blocks((n + 1) // 2, seed, stream)
    pairs = np.stack([reference_u53(words[:, 0], words[:, 1]), reference_u53(words[:, 2], words[:, 3])], axis=1)
    return pairs.reshape(-1)[:n]


def reference_normal_f32(n, seed, stream):
    """Box-Muller on float32 uniform pairs (lanes 0,1 and 2,3 of each block), computed in float64."""
    u = reference_uniform_f32(4 * ((n + 3) // 4), seed, stream).astype(np.float64).reshape(-1, 2)
    radius = np.sqrt(-2.0 * np.log(1.0 - u[:, 0]))
    angle = 2.0 * math.pi * u[:, 1]
    return np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1).reshape(-1)[:n]


def reference_normal_f64(n, seed, stream):
    """Box-Muller on two 53-bit uniforms per block, one (cos, sin) pair per block."""
    words = reference_blocks((n + 1) // 2, seed, stream)
    radius = np.sqrt(-2.0 * np.log(1.0 - reference_u53(words[:, 0], words[:, 1])))
    angle = 2.0 * math.pi * reference_u53(words[:, 2], words[:, 3])
    return np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1).reshape(-1)[:n]


# ---------------------------------------------------------------------------------------------
# 1. Bit-exact agreement with the documented conversions


@pytest.mark.parametrize("seed, stream", SEED_STREAM_PAIRS)
@pytest.mark.parametrize("n", ODD_SIZES)
def test_uniform_float32_is_the_documented_conversion(n, seed, stream):
    values = uniform(n, seed, stream)
    assert values.dtype == np.float32 and values.shape == (n,)
    np.testing.assert_array_equal(values, reference_uniform_f32(n, seed, stream))


@pytest.mark.parametrize("seed, stream", SEED_STREAM_PAIRS)
@pytest.mark.parametrize("n", ODD_SIZES)
def test_uniform_float64_is_the_documented_conversion(n, seed, stream):
    values = uniform(n, seed, stream, dtype=np.float64)
    assert values.dtype == np.float64 and values.shape == (n,)
    np.testing.assert_array_equal(values, reference_uniform_f64(n, seed, stream))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed, stream", SEED_STREAM_PAIRS)
@pytest.mark.parametrize("shape", [*ODD_SIZES, (784, 200), (3, 5, 7)])
def test_uniform_reference_is_the_kernel_bit_for_bit(shape, seed, stream, dtype):
    values = uniform_reference(shape, seed, stream, dtype=dtype)
    expected = uniform(shape, seed, stream, dtype=dtype)
    assert values.dtype == expected.dtype and values.shape == expected.shape
    np.testing.assert_array_equal(values, expected)


@pytest.mark.parametrize("n", ODD_SIZES)
def test_normal_is_box_muller_on_the_documented_uniforms(n):
    values32 = normal(n, SEED, 3)
    values64 = normal(n, SEED, 3, dtype=np.float64)
    assert values32.dtype == np.float32 and values64.dtype == np.float64
    np.testing.assert_allclose(values32, reference_normal_f32(n, SEED, 3), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(values64, reference_normal_f64(n, SEED, 3), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normal_with_loc_and_scale_is_the_two_step_expression_bit_for_bit(dtype):
    """loc + scale z is fused into the kernel's pass; it must round as `z * scale + loc` does in
    `dtype` (the training input noise depended on it before the fusion), blocks included."""
    shape = (3 * 1000, 7)
    loc = np.random.default_rng(5).random(shape).astype(dtype)
    z = normal(shape, SEED, [4, 5, 6], dtype=dtype)
    expected = z * dtype(0.3)
    expected += loc
    np.testing.assert_array_equal(normal(shape, SEED, [4, 5, 6], dtype=dtype, loc=loc, scale=0.3), expected)
    np.testing.assert_array_equal(normal(shape, SEED, [4, 5, 6], dtype=dtype, scale=0.3), z * dtype(0.3))


def test_normal_rejects_a_loc_of_another_shape_or_dtype_and_a_non_finite_scale():
    with pytest.raises(ValueError, match="loc must be a float32 array of shape \\(4,\\)"):
        normal(4, SEED, loc=np.zeros(5, np.float32))
    with pytest.raises(ValueError, match="loc must be a float32"):
        normal(4, SEED, loc=np.zeros(4, np.float64))
    for scale in (float("nan"), float("inf"), "0.3", None):
        with pytest.raises(ValueError, match="scale must be a finite number"):
            normal(4, SEED, scale=scale)


def test_multidimensional_shapes_fill_in_c_order():
    np.testing.assert_array_equal(uniform((3, 5, 7), SEED, 1), uniform(105, SEED, 1).reshape(3, 5, 7))
    np.testing.assert_array_equal(normal((2, 9), SEED, 1, np.float64), normal(18, SEED, 1, np.float64).reshape(2, 9))
    assert uniform((), SEED).shape == () and uniform((4, 0), SEED).shape == (4, 0)


@pytest.mark.parametrize("p_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", ODD_SIZES)
def test_bernoulli_is_uniform_float32_below_p(n, p_dtype):
    p = np.random.default_rng(n).uniform(-0.2, 1.2, size=n).astype(p_dtype)
    samples = bernoulli(p, SEED, 11)
    assert samples.dtype == np.uint8 and samples.shape == (n,)
    expected = reference_uniform_f32(n, SEED, 11) < p
    np.testing.assert_array_equal(samples, expected.astype(np.uint8))
    np.testing.assert_array_equal(samples, uniform(n, SEED, 11) < p)


def test_bernoulli_compares_float64_p_without_rounding_it_to_float32():
    u = uniform(4097, SEED, 5).astype(np.float64)
    np.testing.assert_array_equal(bernoulli(u.astype(np.float32), SEED, 5), 0)  # u < u never holds
    np.testing.assert_array_equal(bernoulli(u, SEED, 5), 0)
    just_above = np.nextafter(u, 2.0)  # rounds back to u in float32, but is strictly above u in float64
    assert np.all(just_above.astype(np.float32) == u)
    np.testing.assert_array_equal(bernoulli(just_above, SEED, 5), 1)


@pytest.mark.parametrize("out_dtype", [np.uint8, np.bool_, np.float32, np.float64])
def test_bernoulli_writes_into_out_of_every_allowed_dtype(out_dtype):
    p = np.random.default_rng(1).random((6, 7)).astype(np.float32)
    out = np.full(p.shape, 7, dtype=out_dtype)
    result = bernoulli(p, SEED, 2, out=out)
    assert result is out
    np.testing.assert_array_equal(out, (uniform(p.shape, SEED, 2) < p).astype(out_dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_uniform_and_normal_fill_out_with_the_values_they_would_return(dtype):
    shape = (3 * 130, 5)  # blocks whose last group is partial
    loc = np.random.default_rng(2).random(shape).astype(dtype)
    for kernel, options in ((uniform, {}), (normal, {}), (normal, {"loc": loc, "scale": 0.3})):
        out = np.full(shape, np.nan, dtype=dtype)
        result = kernel(shape, SEED, [4, 5, 6], dtype=dtype, out=out, **options)
        assert result is out
        np.testing.assert_array_equal(out, kernel(shape, SEED, [4, 5, 6], dtype=dtype, **options))


@pytest.mark.parametrize("kernel", [uniform, normal])
def test_uniform_and_normal_reject_an_out_of_another_shape_or_dtype_or_layout(kernel):
    with pytest.raises(ValueError, match="out has shape"):
        kernel(8, SEED, out=np.empty(9, dtype=np.float32))
    with pytest.raises(ValueError, match="out has dtype float64"):
        kernel(8, SEED, out=np.empty(8))  # the default dtype is float32: out must match it
    with pytest.raises(ValueError, match="C-contiguous"):
        kernel(8, SEED, out=np.empty(16, dtype=np.float32)[::2])


def test_normal_refuses_an_out_that_overlaps_loc():
    loc = np.zeros(9, dtype=np.float32)
    with pytest.raises(ValueError, match="out must not share memory"):
        normal(8, SEED, loc=loc[1:], out=loc[:-1])


def test_bernoulli_dtype_argument_sets_the_output_dtype():
    p = np.full(9, 0.5, dtype=np.float32)
    for dtype in (np.bool_, np.float32):
        samples = bernoulli(p, SEED, dtype=dtype)
        assert samples.dtype == dtype
        np.testing.assert_array_equal(samples, bernoulli(p, SEED).astype(dtype))


@pytest.mark.parametrize("a_dtype, p_rtol", [(np.float32, 2e-6), (np.float64, 1e-14)])
@pytest.mark.parametrize("n", ODD_SIZES)
def test_sigmoid_bernoulli_is_sigmoid_then_uniform_below_p(n, a_dtype, p_rtol):
    a = (4.0 * np.random.default_rng(n).standard_normal(n)).astype(a_dtype)
    p, h = sigmoid_bernoulli(a, SEED, 13)
    assert p.dtype == a_dtype and h.dtype == a_dtype and p.shape == h.shape == (n,)
    np.testing.assert_allclose(p, 1.0 / (1.0 + np.exp(-a.astype(np.float64))), rtol=p_rtol, atol=0)
    np.testing.assert_array_equal(h, (reference_uniform_f32(n, SEED, 13) < p).astype(a_dtype))


def test_sigmoid_bernoulli_p_is_accurate_down_to_the_float32_underflow():
    """Down to a = -88.72 sigmoid(a) = exp(a) is a subnormal float32; it must still be right to
    the last places (2^n for the exponent's extremes n = +-128 was once built wrong)."""
    a = np.linspace(-88.72, 88.72, 200_001, dtype=np.float32)
    p, _ = sigmoid_bernoulli(a, SEED)
    np.testing.assert_allclose(p, 1.0 / (1.0 + np.exp(-a.astype(np.float64))), rtol=2e-6, atol=3e-45)


def test_sigmoid_bernoulli_writes_into_given_outputs():
    a = np.linspace(-6, 6, 37, dtype=np.float32).reshape(37, 1)
    p_out, h_out = np.empty_like(a), np.empty(a.shape, dtype=np.uint8)
    p, h = sigmoid_bernoulli(a, SEED, 4, p_out=p_out, h_out=h_out)
    assert p is p_out and h is h_out
    expected_p, expected_h = sigmoid_bernoulli(a, SEED, 4)
    np.testing.assert_array_equal(p_out, expected_p)
    np.testing.assert_array_equal(h_out, expected_h.astype(np.uint8))


def test_sigmoid_bernoulli_saturates_at_infinite_and_extreme_inputs():
    a = np.array([-np.inf, -1e4, -100.0, 100.0, 1e4, np.inf] * 5, dtype=np.float32)
    p, h = sigmoid_bernoulli(a, SEED)
    assert np.all(np.isfinite(p)) and np.all((p >= 0) & (p <= 1))
    np.testing.assert_array_equal(h, (a > 0).astype(np.float32))


# ---------------------------------------------------------------------------------------------
# 2. Thread invariance, determinism, prefix property


@pytest.fixture
def thread_counts():
    """(1, all threads); restores the caller's thread count afterwards."""
    most = numba.config.NUMBA_NUM_THREADS
    if most < 2:
        pytest.skip("Numba has a single thread here: thread invariance cannot be observed")
    previous = numba.get_num_threads()
    yield 1, most
    numba.set_num_threads(previous)


def sample_with_threads(threads, draw):
    numba.set_num_threads(threads)
    return draw()


@pytest.mark.parametrize(
    "draw",
    [
        lambda p: bernoulli(p, SEED, 21),
        lambda p: uniform(p.size, SEED, 21),
        lambda p: normal(p.size, SEED, 21),
        lambda p: sigmoid_bernoulli(p, SEED, 21)[1],
        lambda p: uniform(p.size // 4 + 3, SEED, 21, dtype=np.float64),
        lambda p: normal(p.size // 4 + 3, SEED, 21, dtype=np.float64),
    ],
    ids=["bernoulli", "uniform", "normal", "sigmoid_bernoulli", "uniform64", "normal64"],
)
def test_results_do_not_depend_on_the_thread_count(thread_counts, draw):
    p = np.random.default_rng(0).random(10**7 + 3, dtype=np.float32)
    single, parallel = (sample_with_threads(t, lambda: draw(p)) for t in thread_counts)
    assert numba.get_num_threads() == thread_counts[1]
    np.testing.assert_array_equal(single, parallel)


def test_same_seed_and_stream_give_the_same_numbers():
    p = np.random.default_rng(3).random(10**5 + 1)
    np.testing.assert_array_equal(bernoulli(p, SEED, 8), bernoulli(p, SEED, 8))
    np.testing.assert_array_equal(uniform(10**5 + 1, SEED, 8), uniform(10**5 + 1, SEED, 8))
    np.testing.assert_array_equal(normal(10**5 + 1, SEED, 8), normal(10**5 + 1, SEED, 8))


@pytest.mark.parametrize("prefix", [0, 1, 2, 3, 5, 4095, 4097, 8193])
def test_a_prefix_of_a_stream_is_the_shorter_stream(prefix):
    n = 3 * 4096 + 7
    for dtype in (np.float32, np.float64):
        np.testing.assert_array_equal(uniform(n, SEED, 9, dtype)[:prefix], uniform(prefix, SEED, 9, dtype))
        np.testing.assert_array_equal(normal(n, SEED, 9, dtype)[:prefix], normal(prefix, SEED, 9, dtype))
    p = np.random.default_rng(prefix).random(n, dtype=np.float32)
    np.testing.assert_array_equal(bernoulli(p, SEED, 9)[:prefix], bernoulli(p[:prefix], SEED, 9))
    np.testing.assert_array_equal(sigmoid_bernoulli(p, SEED, 9)[1][:prefix], sigmoid_bernoulli(p[:prefix], SEED, 9)[1])


# ---------------------------------------------------------------------------------------------
# 3. Distributions


@pytest.mark.parametrize("dtype, grid_bits", [(np.float32, 24), (np.float64, 53)])
def test_uniform_values_lie_on_the_grid_in_zero_one(dtype, grid_bits):
    values = uniform(10**6, SEED, 30, dtype)
    assert values.min() >= 0.0 and values.max() < 1.0
    scaled = values.astype(np.float64) * 2.0**grid_bits
    np.testing.assert_array_equal(scaled, np.floor(scaled))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_uniform_passes_chi_square_on_coarse_bins_and_low_bits(dtype):
    """Two chi-square tests, each at ALPHA / 2: 1000 equal bins of [0, 1), and the 256 values of the lowest 8 bits."""
    values = uniform(10**6, SEED, 31, dtype)
    assert_uniform_bins((values.astype(np.float64) * 1000).astype(np.int64), 1000, ALPHA / 2)
    grid_bits = 24 if dtype == np.float32 else 53
    low_bits = (values.astype(np.float64) * 2.0**grid_bits).astype(np.uint64) & np.uint64(0xFF)
    assert_uniform_bins(low_bits.astype(np.int64), 256, ALPHA / 2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_uniform_mean_and_variance(dtype):
    """z-tests of mean 1/2 and variance 1/12 (Var[(u - 1/2)^2] = 1/180); family-wise ALPHA."""
    n = 10**6
    u = uniform(n, SEED, 32, dtype).astype(np.float64)
    critical = two_sided_z_critical(ALPHA, tests=2)
    z_mean = (u.mean() - 0.5) / math.sqrt(1.0 / (12 * n))
    z_variance = (((u - 0.5) ** 2).mean() - 1.0 / 12) / math.sqrt(1.0 / (180 * n))
    assert abs(z_mean) < critical, z_mean
    assert abs(z_variance) < critical, z_variance


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normal_moments(dtype):
    """z-tests of E[x]=0, E[x^2]=1, E[x^3]=0, E[x^4]=3 (variances 1, 2, 15, 96); family-wise ALPHA."""
    n = 10**6
    x = normal(n, SEED, 40, dtype).astype(np.float64)
    assert np.all(np.isfinite(x))
    critical = two_sided_z_critical(ALPHA, tests=4)
    for power, expected, variance in [(1, 0.0, 1.0), (2, 1.0, 2.0), (3, 0.0, 15.0), (4, 3.0, 96.0)]:
        z = ((x**power).mean() - expected) / math.sqrt(variance / n)
        assert abs(z) < critical, f"moment {power}: z = {z:.2f}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normal_kolmogorov_smirnov(dtype):
    n = 200_000
    x = np.sort(normal(n, SEED, 41, dtype).astype(np.float64))
    cdf = standard_normal_cdf(x)
    distance = max((np.arange(1, n + 1) / n - cdf).max(), (cdf - np.arange(n) / n).max())
    assert distance < kolmogorov_critical(n, ALPHA), distance


def test_normal_float32_tails_reach_five_sigma_and_stop_at_the_documented_cut():
    x = normal(4 * 10**6, SEED, 42)
    # P(|x| > 4.5) = 6.8e-6: about 27 expected; 0 seen would mean the tails are cut too early.
    assert np.count_nonzero(np.abs(x) > 4.5) > 0
    assert np.abs(x).max() <= math.sqrt(-2.0 * math.log(2.0**-24)) * (1 + 1e-6)


@pytest.mark.parametrize("p_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("probability", [0.3, 1e-3, 0.5, 0.97])
def test_bernoulli_frequency_matches_p(probability, p_dtype):
    """Binomial z-test on 10^6 samples at ALPHA."""
    n = 10**6
    successes = int(bernoulli(np.full(n, probability, dtype=p_dtype), SEED, 50).sum(dtype=np.int64))
    exact_p = float(np.ceil(np.float64(np.asarray(probability, p_dtype)) * 2**24) / 2**24)  # P(u < p) on the grid
    z = (successes - n * exact_p) / math.sqrt(n * exact_p * (1 - exact_p))
    assert abs(z) < two_sided_z_critical(ALPHA), z


@pytest.mark.parametrize("probability, expected", [(0.0, 0), (1.0, 1), (1.5, 1), (-0.5, 0), (np.inf, 1), (-np.inf, 0)])
def test_bernoulli_clips_p_outside_the_unit_interval(probability, expected):
    for p_dtype in (np.float32, np.float64):
        samples = bernoulli(np.full(10**5 + 1, probability, dtype=p_dtype), SEED, 51)
        np.testing.assert_array_equal(samples, expected)


def test_bernoulli_with_varied_p_has_the_expected_count():
    """Sum of independent Bernoulli(p_i): mean sum p_i, variance sum p_i (1 - p_i); z-test at ALPHA."""
    p = np.random.default_rng(52).random(10**6)
    successes = bernoulli(p, SEED, 52).sum(dtype=np.int64)
    z = (successes - p.sum()) / math.sqrt((p * (1 - p)).sum())
    assert abs(z) < two_sided_z_critical(ALPHA), z


def test_bernoulli_with_varied_p_is_calibrated_per_bin():
    """Successes per decile of p against their expectation: sum of z^2 over 10 bins is chi-square(10) at ALPHA."""
    p = np.random.default_rng(53).random(10**6, dtype=np.float32)
    samples = bernoulli(p, SEED, 53)
    decile = np.minimum((p * 10).astype(np.int64), 9)
    successes = np.bincount(decile, weights=samples, minlength=10)
    expected = np.bincount(decile, weights=p, minlength=10)
    variance = np.bincount(decile, weights=p * (1.0 - p), minlength=10)
    statistic = float((((successes - expected) ** 2) / variance).sum())
    assert statistic < chi_square_critical(10, ALPHA), statistic


@pytest.mark.parametrize("pre_activation", [-4.0, 0.0, 2.5])
def test_sigmoid_bernoulli_frequency_matches_sigmoid(pre_activation):
    """Binomial z-test on 10^6 samples at ALPHA."""
    n = 10**6
    p, h = sigmoid_bernoulli(np.full(n, pre_activation, dtype=np.float32), SEED, 60)
    probability = 1.0 / (1.0 + math.exp(-pre_activation))
    assert p[0] == pytest.approx(probability, rel=1e-6)
    z = (h.sum(dtype=np.float64) - n * probability) / math.sqrt(n * probability * (1 - probability))
    assert abs(z) < two_sided_z_critical(ALPHA), z


def test_sigmoid_bernoulli_with_varied_inputs_has_the_expected_count():
    a = np.random.default_rng(61).normal(0.0, 3.0, 10**6)
    p, h = sigmoid_bernoulli(a, SEED, 61)
    z = (h.sum() - p.sum()) / math.sqrt((p * (1 - p)).sum())
    assert abs(z) < two_sided_z_critical(ALPHA), z


# ---------------------------------------------------------------------------------------------
# 4. Independence of the lanes


def test_lanes_within_and_across_blocks_are_uncorrelated():
    """All 6 lane pairs of a block and lane 3 -> next block's lane 0; correlation z-tests, family-wise ALPHA."""
    lanes = uniform(4 * 10**6, SEED, 70).reshape(-1, 4)
    pairs = [(lanes[:, i], lanes[:, j]) for i in range(4) for j in range(i + 1, 4)]
    pairs.append((lanes[:-1, 3], lanes[1:, 0]))
    critical = two_sided_z_critical(ALPHA, tests=len(pairs))
    for first, second in pairs:
        z = correlation_z(first, second)
        assert abs(z) < critical, z


def test_consecutive_pairs_are_uniform_on_the_square():
    """Chi-square of (u[2i], u[2i+1]) on a 32 x 32 grid at ALPHA: catches dependence that correlation misses."""
    u = uniform(2 * 10**6, SEED, 71).reshape(-1, 2)
    cells = (u * 32).astype(np.int64)
    assert_uniform_bins(cells[:, 0] * 32 + cells[:, 1], 32 * 32)


# ---------------------------------------------------------------------------------------------
# 5. Bad input

P = np.full(8, 0.5, dtype=np.float32)


@pytest.mark.parametrize("nan_position", [0, 4096 * 3 + 1, 8 * 4096 + 2])
def test_bernoulli_rejects_nan_p(nan_position):
    p = np.full(8 * 4096 + 3, 0.5)
    p[nan_position] = np.nan
    with pytest.raises(ValueError, match="p contains NaN"):
        bernoulli(p, SEED)


@pytest.mark.parametrize("nan_position", [0, 4096 * 3 + 1, 8 * 4096 + 2])
def test_sigmoid_bernoulli_rejects_nan_pre_activation(nan_position):
    a = np.zeros(8 * 4096 + 3, dtype=np.float32)
    a[nan_position] = np.nan
    with pytest.raises(ValueError, match="contains NaN"):
        sigmoid_bernoulli(a, SEED)


BLOCK = 40_003  # three streams' blocks of a threaded call (3 x 40 003 values >= PARALLEL_MIN_SIZE), each ending in a partial group


@pytest.mark.parametrize("nan_position", [0, 4096 * 5 + 7, 2 * BLOCK - 2, 2 * BLOCK + 20_000])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_threaded_kernels_find_a_nan_in_any_task_block_or_partial_group(nan_position, dtype):
    values = np.full(3 * BLOCK, 0.5, dtype=dtype)
    assert values.size >= sampling.PARALLEL_MIN_SIZE
    values[nan_position] = np.nan
    with pytest.raises(ValueError, match="p contains NaN"):
        bernoulli(values, SEED, [1, 2, 3])
    with pytest.raises(ValueError, match="contains NaN"):
        sigmoid_bernoulli(values, SEED, [1, 2, 3])


@pytest.mark.parametrize("p", [np.ones(4, dtype=np.int64), np.ones(4, dtype=np.float16), np.ones(4, dtype=bool), [1, 0]])
def test_bernoulli_rejects_non_float_p(p):
    with pytest.raises(ValueError, match="p must be a float32 or float64 array"):
        bernoulli(p, SEED)


@pytest.mark.parametrize("a", [np.ones(4, dtype=np.int32), np.ones(4, dtype=np.float16)])
def test_sigmoid_bernoulli_rejects_non_float_input(a):
    with pytest.raises(ValueError, match="a must be a float32 or float64 array"):
        sigmoid_bernoulli(a, SEED)


@pytest.mark.parametrize("kernel", [uniform, normal])
@pytest.mark.parametrize("dtype", [int, np.int32, np.float16, bool, "nonsense", None])  # None: NumPy would read float64
def test_uniform_and_normal_reject_non_float_dtype(kernel, dtype):
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        kernel(4, SEED, dtype=dtype)


@pytest.mark.parametrize(
    "out, message",
    [
        (np.empty(16, dtype=np.uint8)[::2], "C-contiguous"),
        (np.empty((2, 8), dtype=np.uint8, order="F")[0], "C-contiguous"),
        (np.empty(7, dtype=np.uint8), "shape"),
        (np.empty((8, 1), dtype=np.uint8), "shape"),
        (np.empty(8, dtype=np.int32), "dtype"),
        (np.empty(8, dtype=np.float16), "dtype"),
        ([0] * 8, "numpy array"),
    ],
    ids=["strided", "fortran-column", "short", "extra-axis", "int32", "float16", "list"],
)
def test_bernoulli_rejects_bad_out(out, message):
    with pytest.raises(ValueError, match=message):
        bernoulli(P, SEED, out=out)


def test_outputs_that_overlap_the_inputs_are_refused():
    """The kernels read their input while they write: an overlapping output would silently give wrong samples."""
    buffer = np.linspace(0.05, 0.95, 101)
    with pytest.raises(ValueError, match="out must not share memory"):
        bernoulli(buffer[:-1], SEED, out=buffer[1:])
    a = np.linspace(-2, 2, 8)
    with pytest.raises(ValueError, match="p_out must not share memory"):
        sigmoid_bernoulli(a, SEED, p_out=a)
    p_out = np.empty(8)
    with pytest.raises(ValueError, match="h_out must not share memory"):
        sigmoid_bernoulli(a, SEED, p_out=p_out, h_out=p_out)


def test_a_0d_array_as_a_stream_is_a_value_error():
    """Not a sequence of streams (it cannot be iterated) and not an integer: one clear message."""
    with pytest.raises(ValueError, match="stream must be an integer"):
        uniform(4, SEED, np.array(5))
    with pytest.raises(ValueError, match="stream part must be an integer"):
        derive(np.array(3), "x")


def test_bernoulli_rejects_read_only_out():
    out = np.empty(8, dtype=np.uint8)
    out.setflags(write=False)
    with pytest.raises(ValueError, match="writeable"):
        bernoulli(P, SEED, out=out)


def test_sigmoid_bernoulli_rejects_bad_outputs():
    with pytest.raises(ValueError, match="p_out has dtype float64"):
        sigmoid_bernoulli(P, SEED, p_out=np.empty(8))
    with pytest.raises(ValueError, match="h_out has shape"):
        sigmoid_bernoulli(P, SEED, h_out=np.empty(9, dtype=np.float32))
    with pytest.raises(ValueError, match="h_out must be a writeable C-contiguous array"):
        sigmoid_bernoulli(P, SEED, h_out=np.empty(16, dtype=np.float32)[::2])


@pytest.mark.parametrize("shape", [-1, (3, -2)])
def test_negative_shape_is_rejected(shape):
    for kernel in (uniform, normal):
        with pytest.raises(ValueError, match="shape must not be negative"):
            kernel(shape, SEED)


@pytest.mark.parametrize("shape", [(2, 1.5), (np.float64(4),), True, (True, 2), "ab"])
def test_non_integer_shape_is_rejected(shape):
    for kernel in (uniform, normal):
        with pytest.raises(ValueError, match="shape must hold integers"):
            kernel(shape, SEED)


@pytest.mark.parametrize(
    "seed, message",
    [(-1, "seed must be in"), (2**64, "seed must be in"), (True, "seed must be an integer"), (1.0, "seed must be an integer"), (None, "seed must be an integer")],
)
def test_bad_seed_is_rejected_by_every_kernel(seed, message):
    calls = [
        lambda: uniform(4, seed),
        lambda: normal(4, seed),
        lambda: bernoulli(P, seed),
        lambda: sigmoid_bernoulli(P, seed),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=message):
            call()


@pytest.mark.parametrize("stream", [-1, 2**64, False])
def test_bad_stream_is_rejected(stream):
    with pytest.raises(ValueError, match="stream must"):
        uniform(4, SEED, stream)
    with pytest.raises(ValueError, match="stream must"):
        bernoulli(P, SEED, stream)


def test_numpy_integer_seeds_and_streams_are_accepted():
    np.testing.assert_array_equal(uniform(5, np.uint64(2**64 - 1), np.int64(3)), uniform(5, 2**64 - 1, 3))


# ---------------------------------------------------------------------------------------------
# Edge cases pinned so that they stay handled.


def test_bernoulli_and_sigmoid_bernoulli_keep_a_zero_dimensional_shape():
    assert bernoulli(np.float32(0.3), SEED).shape == ()
    assert sigmoid_bernoulli(np.float64(0.3), SEED)[1].shape == ()


@pytest.mark.parametrize("dtype", [np.float16, object])
def test_bernoulli_rejects_an_unsupported_output_dtype(dtype):
    with pytest.raises(ValueError, match="dtype"):
        bernoulli(P, SEED, dtype=dtype)


@pytest.mark.parametrize("shape", [2.5, 3.0, np.float64(4), None])
def test_non_integer_scalar_shape_is_rejected(shape):
    with pytest.raises(ValueError, match="shape must hold integers"):
        uniform(shape, SEED)


def in_ranges(kernel, tasks, *args):
    """kernel over tasks 0..tasks-1 in three uneven ranges, as threads of `run_tasks` would take them."""
    cuts = sorted({0, tasks // 3, min(tasks, 2 * tasks // 3 + 1), tasks})
    return any([kernel(first, stop, *args) for first, stop in zip(cuts[:-1], cuts[1:])])


@pytest.mark.parametrize("size", [1, 4097, 70001])
def test_task_kernels_draw_the_same_values_in_one_call_or_in_ranges(size):
    """The calling thread runs all of a kernel's tasks in one call, the threads of `run_tasks` a
    range each: both must produce the values of the position-based contract."""
    from stochtp.kernels import _words

    words = _words(SEED, 99, (size,))
    for dtype in (np.float32, np.float64):
        tasks = sampling.block_tasks(size, np.dtype(dtype).itemsize, 1)
        a, b = np.empty(size, dtype), np.empty(size, dtype)
        sampling.uniform_tasks(0, tasks, a, *words)
        in_ranges(sampling.uniform_tasks, tasks, b, *words)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, uniform(size, SEED, 99, dtype=dtype))
        loc, scale = uniform(size, SEED + 2, dtype=dtype), dtype(0.3)
        for given in (loc, loc[:0]):
            a, b = np.empty(size, dtype), np.empty(size, dtype)
            sampling.normal_tasks(0, tasks, a, given, scale, *words)
            in_ranges(sampling.normal_tasks, tasks, b, given, scale, *words)
            np.testing.assert_array_equal(a, b)
        p = uniform(size, SEED + 1, dtype=dtype)
        h1, h2 = np.empty(size, np.uint8), np.empty(size, np.uint8)
        bernoulli_tasks = sampling.block_tasks(size, 4, 1)
        assert not sampling.bernoulli_tasks(0, bernoulli_tasks, p, h1, *words)
        assert not in_ranges(sampling.bernoulli_tasks, bernoulli_tasks, p, h2, *words)
        np.testing.assert_array_equal(h1, h2)
        pa, pb = np.empty(size, dtype), np.empty(size, dtype)
        sampling.sigmoid_tasks(0, size, p - 0.5, pa)
        in_ranges(sampling.sigmoid_tasks, size, p - 0.5, pb)
        np.testing.assert_array_equal(pa, pb)


def test_run_tasks_splits_large_arrays_over_the_threads_alike(thread_counts):
    """Above PARALLEL_MIN_SIZE values the tasks go to the run's threads in ranges; the draws do not
    depend on the number of threads."""
    shape = (3, sampling.PARALLEL_MIN_SIZE // 2 + 5)
    alone, split = (sample_with_threads(threads, lambda: (normal(shape, SEED, [4, 5, 6]), bernoulli(np.full(shape, 0.3), SEED, 7)))
                    for threads in thread_counts)
    for one, many in zip(alone, split):
        np.testing.assert_array_equal(one, many)


def test_run_tasks_returns_after_every_range_has_ended():
    """A range that finds a NaN early must not leave the other threads writing after the caller raised."""
    import threading
    import time

    ended = []

    def kernel(first, stop, flag_first):
        if first > 0:
            time.sleep(0.05)
        ended.append(threading.get_ident())
        return first == 0 and flag_first

    previous = numba.get_num_threads()
    try:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        threads = numba.get_num_threads()
        assert sampling.run_tasks(kernel, 8, sampling.PARALLEL_MIN_SIZE, True)
    finally:
        numba.set_num_threads(previous)
    assert len(ended) == min(threads, 8)


@pytest.mark.parametrize("blocks, rows", [(1, 3), (3, 1), (5, 40), (7, 300)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_chunk_of_blocks_draws_what_each_block_draws_alone(blocks, rows, dtype):
    """stream = [s_0, ..., s_{C-1}] cuts the first axis into C blocks; block k is the draw of stream s_k.
    7 x 300 x 130 values go to the threads, the others stay in the calling thread."""
    streams = [stream_id(k, "chunk") for k in range(blocks)]
    shape = (blocks * rows, 130)
    a = (uniform(shape, SEED + 5, dtype=dtype) - 0.5) * 8

    def each(draw):
        return np.concatenate([draw(a[k * rows:(k + 1) * rows], s) for k, s in enumerate(streams)])

    np.testing.assert_array_equal(uniform(shape, SEED, streams, dtype=dtype), each(lambda x, s: uniform(x.shape, SEED, s, dtype=dtype)))
    np.testing.assert_array_equal(normal(shape, SEED, streams, dtype=dtype), each(lambda x, s: normal(x.shape, SEED, s, dtype=dtype)))
    p = uniform(shape, SEED + 6, dtype=dtype)
    np.testing.assert_array_equal(bernoulli(p, SEED, streams), np.concatenate([bernoulli(p[k * rows:(k + 1) * rows], SEED, s) for k, s in enumerate(streams)]))
    for got, expected in zip(sigmoid_bernoulli(a, SEED, streams), zip(*[sigmoid_bernoulli(a[k * rows:(k + 1) * rows], SEED, s) for k, s in enumerate(streams)])):
        np.testing.assert_array_equal(got, np.concatenate(expected))


@pytest.mark.parametrize("blocks, rows", [(1, 40), (3, 40), (4, 200)])
def test_one_block_of_probabilities_draws_for_every_stream_what_it_draws_alone(blocks, rows):
    """With C streams and an `out` of C times p's rows, block k of `out` is the draw of p from
    stream s_k alone (4 x 200 x 130 values: each block goes to the threads)."""
    streams = [stream_id(k, "repeat") for k in range(blocks)]
    p = uniform((rows, 130), SEED + 7)
    out = np.empty((blocks * rows, 130), np.float32)
    assert bernoulli(p, SEED, streams, out=out) is out
    np.testing.assert_array_equal(out, np.concatenate([bernoulli(p, SEED, s, dtype=np.float32) for s in streams]))


def test_an_out_that_is_neither_p_nor_p_once_per_stream_is_refused():
    with pytest.raises(ValueError, match=r"out has shape \(6, 5\), expected \(8, 5\)"):
        bernoulli(np.full((4, 5), 0.5), SEED, [1, 2], out=np.empty((6, 5), np.uint8))


@pytest.mark.parametrize("streams", [[], [1, 2, 3]])
def test_streams_that_do_not_cut_the_array_into_equal_blocks_are_rejected(streams):
    with pytest.raises(ValueError, match="equal blocks"):
        normal((4, 5), SEED, streams)
