"""The K-sample passes kernel (stochtp.kernels.passes) against its NumPy reference, and the
network's K-sample evaluation with and without it."""
import numba
import numpy as np
import pytest

from stochtp.kernels import passes, stream_id
from stochtp.network import Network


def random_chain(rng, widths, scale=1.0, exact=False):
    """The weights and biases of the products of a chain of `widths` (float32).
    `exact`: weights and biases on a 1/8 grid, small enough that every float32 sum is exact."""
    weights = [rng.standard_normal((n_in, n_out)) * scale for n_in, n_out in zip(widths[:-1], widths[1:])]
    biases = [rng.standard_normal(n_out) * scale for n_out in widths[1:]]
    if exact:
        weights, biases = ([np.round(w * 8) / 8 for w in arrays] for arrays in (weights, biases))
    return [w.astype(np.float32) for w in weights], [b.astype(np.float32) for b in biases]


def chain_streams(samples, layers):
    return [[stream_id(k, "forward-sample", j) for j in range(layers)] for k in range(samples)]


def test_chains_whose_tables_would_be_too_large_take_the_pass_by_pass_path():
    net = Network.from_spec("4-1500b-1500b-10s", seed=0)
    assert passes.table_bytes([layer.W for layer in net.layers[1:]]) > passes.MAX_TABLE_BYTES
    assert net._bernoulli_chain(0) is None


def test_tables_are_reused_for_unchanged_weights_only():
    W = np.random.default_rng(1).standard_normal((16, 5)).astype(np.float32)
    first = passes.tables_of(W)
    assert passes.tables_of(W.copy()) is first
    W[3, 2] += 1.0  # an optimiser step changes the weights in place
    changed = passes.tables_of(W)
    assert changed is not first
    np.testing.assert_array_equal(changed, passes.bit_tables(W))


def test_bit_tables_hold_the_sums_of_the_rows_a_pattern_selects():
    rng = np.random.default_rng(0)
    W = rng.standard_normal((11, 3)).astype(np.float32)
    tables = passes.bit_tables(W)
    assert tables.shape == (2, passes.PATTERNS, 3)
    for group, pattern in [(0, 0), (0, 0b10110001), (1, 0b111), (1, 0b11111000)]:
        rows = [passes.BITS * group + b for b in range(passes.BITS) if pattern >> b & 1 and passes.BITS * group + b < 11]
        np.testing.assert_allclose(tables[group, pattern], W[rows].sum(axis=0), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("widths, rows, slope", [([20, 13, 7], 50, 1.0), ([200, 200, 10], 37, 1.0), ([5, 9, 3, 4], 70, 2.0), ([8, 2], 3, 1.0)])
def test_chain_sum_matches_the_numpy_reference(widths, rows, slope):
    """Same draws, products rounded in another order: the sums agree to float32 rounding (a sample
    flips only where a uniform lies within rounding of its probability, about 1 draw in 10**7)."""
    rng = np.random.default_rng(len(widths) * rows)
    p_first = rng.random((rows, widths[0])).astype(np.float32)
    weights, biases = random_chain(rng, widths)
    streams = chain_streams(6, len(widths) - 1)
    fused = passes.chain_sum(p_first, weights, biases, slope, 9, streams)
    reference = passes.chain_totals_reference(p_first, weights, biases, slope, 9, streams)
    assert fused.shape == (rows, widths[-1]) and fused.dtype == np.float64
    np.testing.assert_allclose(fused, reference, rtol=0, atol=1e-5)
    np.testing.assert_allclose(fused.sum(axis=1), 6.0, rtol=1e-6)


def test_chain_sum_follows_the_reference_when_few_samples_change_between_passes():
    """Probabilities near 0 or 1 (a trained network): most rows move their pre-activations by the
    changed units' weights from pass to pass, over more than REFRESH passes. Pre-activations of
    tens round coarser than in the other tests; a wrong sample would move a sum by up to 1."""
    rng = np.random.default_rng(8)
    widths = [64, 48, 10]
    p_first = np.where(rng.random((90, 64)) < 0.5, 0.02, 0.98).astype(np.float32)
    weights, biases = random_chain(rng, widths, scale=3.0)
    streams = chain_streams(2 * passes.REFRESH + 3, 2)
    np.testing.assert_allclose(passes.chain_sum(p_first, weights, biases, 1.0, 2, streams),
                               passes.chain_totals_reference(p_first, weights, biases, 1.0, 2, streams), rtol=0, atol=1e-4)


@pytest.mark.parametrize("widths", [[21, 13, 7], [5, 9, 3, 4]])
def test_chain_sum_shortcut_is_exact_for_widths_not_multiples_of_the_group(widths):
    """Probabilities near 0 or 1 and weights whose sums are exact in float32, so that the
    shortcut's pre-activations (the last pass's plus or minus the changed units' rows) equal the
    reference's: rows whose last code group is partial, several tiles and a partial last one, more
    passes than REFRESH."""
    rng = np.random.default_rng(9)
    p_first = np.where(rng.random((300, widths[0])) < 0.5, 0.01, 0.99).astype(np.float32)
    weights, biases = random_chain(rng, widths, scale=0.5, exact=True)
    assert 300 % passes.tile_rows(np.array(widths[:-1])) != 0 and 300 > 2 * passes.tile_rows(np.array(widths[:-1]))
    streams = chain_streams(2 * passes.REFRESH + 3, len(widths) - 1)
    np.testing.assert_allclose(passes.chain_sum(p_first, weights, biases, 1.0, 6, streams),
                               passes.chain_totals_reference(p_first, weights, biases, 1.0, 6, streams), rtol=2e-6, atol=1e-7)


def test_chain_sum_draws_the_reference_samples_where_the_sums_are_exact():
    """With weights whose sums are exact in float32 the two compute the same pre-activations, so
    every sample must be the same: the outputs agree to the softmax's last bits."""
    rng = np.random.default_rng(3)
    widths = [24, 16, 5]
    p_first = rng.random((40, 24)).astype(np.float32)
    weights, biases = random_chain(rng, widths, scale=0.5, exact=True)
    streams = chain_streams(20, 2)
    np.testing.assert_allclose(passes.chain_sum(p_first, weights, biases, 1.0, 4, streams),
                               passes.chain_totals_reference(p_first, weights, biases, 1.0, 4, streams), rtol=2e-6, atol=1e-7)


def test_chain_sum_does_not_depend_on_the_thread_count():
    """Layers of different widths, tiles split over the threads in different ranges: each draws and
    sums on its own, and the totals must not depend on the split; repeated, as a race shows up
    only in some runs."""
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("Numba has a single thread here: thread invariance cannot be observed")
    rng = np.random.default_rng(4)
    p_first = rng.random((300, 40)).astype(np.float32)
    weights, biases = random_chain(rng, [40, 30, 6])
    streams = chain_streams(20, 2)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = passes.chain_sum(p_first, weights, biases, 1.0, 1, streams)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        for _ in range(5):
            assert np.array_equal(one, passes.chain_sum(p_first, weights, biases, 1.0, 1, streams))
    finally:
        numba.set_num_threads(before)


def test_chain_sum_rejects_nan_probabilities():
    rng = np.random.default_rng(5)
    p_first = rng.random((16, 8)).astype(np.float32)
    p_first[3, 2] = np.nan
    weights, biases = random_chain(rng, [8, 4, 2])
    with pytest.raises(ValueError, match="NaN"):
        passes.chain_sum(p_first, weights, biases, 1.0, 0, chain_streams(2, 2))


@pytest.mark.parametrize("spec, fused", [("12-10b-9b-4s", True), ("12-7t-10b-4s", True), ("12-10p-4s", False), ("12-10b:n-4s", False), ("12-10b-8t-4s", False)])
def test_network_k_sample_evaluation_with_and_without_the_kernel(spec, fused, monkeypatch):
    """The kernel runs where the chain above the first stochastic layer is Bernoulli layers and a
    softmax; there, and elsewhere, the K-sample probabilities are those of the pass-by-pass path."""
    net = Network.from_spec(spec, seed=2)
    x = np.random.default_rng(6).random((60, 12)).astype(np.float32)
    assert (net._bernoulli_chain(next(i for i, layer in enumerate(net.layers) if layer.stochastic)) is not None) == fused
    proba = net.predict_proba(x, samples=passes.MIN_SAMPLES + 5, seed=7, stream=11)
    monkeypatch.setattr(Network, "_bernoulli_chain", lambda self, first: None)
    np.testing.assert_allclose(proba, net.predict_proba(x, samples=passes.MIN_SAMPLES + 5, seed=7, stream=11), rtol=0, atol=1e-6)


def test_few_passes_take_the_pass_by_pass_path(monkeypatch):
    """Below MIN_SAMPLES passes (the 1-sample evaluation) BLAS products beat the kernel's first pass."""
    net = Network.from_spec("12-10b-9b-4s", seed=2)
    x = np.random.default_rng(6).random((60, 12)).astype(np.float32)
    called = []
    monkeypatch.setattr(passes, "chain_sum", lambda *args: called.append(args))
    net.predict_proba(x, samples=passes.MIN_SAMPLES - 1)
    assert not called


def test_word_order_puts_each_position_where_philox_lays_its_word():
    values = np.arange(300, dtype=np.float32) + 1
    ordered = passes.word_order(values)
    assert ordered.size == 3 * passes.GROUP and ordered.dtype == np.float32
    for position in [0, 1, 3, 4, 127, 128, 133, 255, 299]:
        group, within = divmod(position, passes.GROUP)
        lane, word = divmod(within, 4)
        assert ordered[group * passes.GROUP + word * passes.LANES + lane] == values[position]
    assert np.count_nonzero(ordered) == 300  # the last group padded with p = 0


def test_pack_bits_puts_value_i_at_bit_i():
    samples = np.random.default_rng(2).random(150) < 0.5
    words = passes.pack_bits(samples)
    assert words.dtype == np.uint64 and words.size == 4  # three words, and a zero one past them
    assert [bool(int(words[i // 64]) >> (i % 64) & 1) for i in range(150)] == list(samples) and words[-1] == 0


@numba.njit(cache=True, error_model="numpy", fastmath={"contract"})
def _passes_sigmoid(a):
    padded = np.zeros(-(-a.size // 128) * 128, np.float32)
    padded[:a.size] = a
    p = np.empty_like(padded)
    nan = passes._logistic_word_order(padded, a.size, np.float32(1.0), p)
    return p, nan


def test_the_passes_sigmoid_is_the_sampling_kernels_to_rounding():
    """Within 2 ulp of `sigmoid_bernoulli`'s where p >= 2**-24 (where a uniform can lie under it
    but for u = 0), 0 and 1 where it is, and a NaN pre-activation reported."""
    from stochtp.kernels import sigmoid_bernoulli
    rng = np.random.default_rng(11)
    a = np.concatenate([rng.standard_normal(5000) * 6, np.linspace(-95, 95, 3001), [0.0, -88.72, 88.72, -88.73, 88.73]]).astype(np.float32)
    ordered, nan = _passes_sigmoid(a)
    mine = ordered.reshape(-1, 4, passes.LANES).transpose(0, 2, 1).reshape(-1)[:a.size]  # back to position order
    theirs = sigmoid_bernoulli(a, 0, 0)[0]
    assert not nan
    np.testing.assert_array_equal(mine == 0, theirs == 0)
    np.testing.assert_array_equal(mine == 1, theirs == 1)
    normal = theirs >= 2.0**-24
    assert np.abs(mine[normal].view(np.int32) - theirs[normal].view(np.int32)).max() <= 2
    assert _passes_sigmoid(np.array([0.5, np.nan, 1.0], np.float32))[1]


@pytest.mark.parametrize("fault", ["weight", "slope", "zero times infinity"])
def test_chain_sum_rejects_a_nan_probability_above_the_first_layer(fault):
    rng = np.random.default_rng(6)
    p_first = rng.random((16, 8)).astype(np.float32)
    weights, biases = random_chain(rng, [8, 4, 2])
    slope = {"weight": 1.0, "slope": np.nan, "zero times infinity": np.inf}[fault]
    if fault == "weight":
        weights[0][5, 1] = np.nan
    if fault == "zero times infinity":
        weights[0][:], biases[0][:] = 0.0, 0.0
    with pytest.raises(ValueError, match="NaN"):
        passes.chain_sum(p_first, weights, biases, slope, 0, chain_streams(2, 2))
    with pytest.raises(ValueError, match="NaN"), np.errstate(invalid="ignore"):  # the reference's 0 * inf
        passes.chain_totals_reference(p_first, weights, biases, slope, 0, chain_streams(2, 2))


def test_chain_sum_of_a_single_wide_softmax_product_starts_from_the_likelier_samples():
    """A Bernoulli layer straight into a softmax of at least SHORTCUT_MIN_OUTPUTS units: the one
    product starts from the first layer's likelier samples; sums exact in float32."""
    rng = np.random.default_rng(13)
    widths = [70, passes.SHORTCUT_MIN_OUTPUTS + 2]
    p_first = np.where(rng.random((50, 70)) < 0.5, 0.05, 0.95).astype(np.float32)
    weights, biases = random_chain(rng, widths, scale=0.5, exact=True)
    streams = chain_streams(passes.REFRESH + 3, 1)
    np.testing.assert_allclose(passes.chain_sum(p_first, weights, biases, 1.0, 3, streams),
                               passes.chain_totals_reference(p_first, weights, biases, 1.0, 3, streams), rtol=2e-6, atol=1e-7)


def test_chain_sum_first_product_from_the_likelier_samples_and_the_last_pass():
    """A three-product chain with probabilities near 0 or 1: the first product is formed from the
    first layer's likelier samples, the second (wide) from the last pass's, over more passes than
    REFRESH; sums exact in float32, so the totals equal the reference's to the softmax's bits."""
    rng = np.random.default_rng(12)
    widths = [72, 80, 70, 6]
    assert min(widths[1:3]) >= passes.SHORTCUT_MIN_OUTPUTS
    p_first = np.where(rng.random((100, 72)) < 0.5, 0.03, 0.97).astype(np.float32)
    weights, biases = random_chain(rng, widths, scale=0.5, exact=True)
    weights[0] *= 8  # second-layer probabilities near 0 or 1 too, with sums still exact
    streams = chain_streams(2 * passes.REFRESH + 5, 3)
    np.testing.assert_allclose(passes.chain_sum(p_first, weights, biases, 1.0, 5, streams),
                               passes.chain_totals_reference(p_first, weights, biases, 1.0, 5, streams), rtol=2e-6, atol=1e-7)
