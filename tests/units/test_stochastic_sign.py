"""The stochastic sign unit (stochtp.units.stochastic_sign)."""
import math

import numpy as np
import pytest

from stochtp import Network, kernels, methods, units
from stochtp.errors import ConfigError

# A frequency test per array of independent draws: |z| < 5 for every column (Bonferroni over the
# columns), a false alarm of at most columns x 5.7e-7; the seeds are fixed, so the outcome is too.
Z_LIMIT = 5.0

SIGN = units.get("stochastic_sign")


@pytest.mark.parametrize("slope", [1.0, 1.7])
def test_stochastic_sign_fires_plus_one_with_probability_sigmoid_of_k_a(slope):
    """10 columns of 40 000 draws at fixed pre-activations: the frequency of +1 within Z_LIMIT
    standard errors of sigmoid(k a) (false-alarm rate at most 6e-6)."""
    a = np.tile(np.linspace(-3, 3, 10), (40000, 1))
    h, p = SIGN.activate(a, seed=3, stream=5, slope=slope)
    assert set(np.unique(h)) == {-1.0, 1.0} and h.dtype == a.dtype
    np.testing.assert_allclose(p[0], 1 / (1 + np.exp(-slope * a[0])), rtol=1e-14)
    frequency = (h > 0).mean(axis=0)
    z = (frequency - p[0]) / np.sqrt(p[0] * (1 - p[0]) / len(a))
    assert np.abs(z).max() < Z_LIMIT


def test_stochastic_sign_draws_the_bits_a_bernoulli_layer_draws():
    """The same stream gives h = 2 c - 1 for the Bernoulli unit's sample c, and the same p."""
    a = np.random.default_rng(0).normal(size=(30, 20)).astype(np.float32)
    bernoulli = units.get("bernoulli")
    h, p = SIGN.activate(a, seed=1, stream=2, slope=1.5)
    c, q = bernoulli.activate(a, seed=1, stream=2, slope=1.5)
    np.testing.assert_array_equal(p, q)
    np.testing.assert_array_equal(h, 2 * c - 1)
    np.testing.assert_array_equal(SIGN.bits(h), c)
    np.testing.assert_array_equal(SIGN.sample(p, 1, 7), 2 * bernoulli.sample(p, 1, 7) - 1)


def test_stochastic_sign_sampled_from_a_mean_has_that_mean():
    """h ~ the unit with E[h] = m: 10 columns of 40 000 draws, |z| < Z_LIMIT (false alarm <= 6e-6);
    means outside [-1, 1] give the nearer value."""
    m = np.tile(np.linspace(-0.9, 0.9, 10), (40000, 1))
    h = SIGN.sample_from_mean(m, seed=4, stream=6)
    assert set(np.unique(h)) == {-1.0, 1.0}
    z = (h.mean(axis=0) - m[0]) / np.sqrt((1 - m[0] ** 2) / len(m))  # var h = 1 - m^2
    assert np.abs(z).max() < Z_LIMIT
    np.testing.assert_array_equal(SIGN.sample_from_mean(np.array([[-1.3, 1.2]]), 0, 0), [[-1.0, 1.0]])


@pytest.mark.parametrize("slope", [1.0, 0.6])
def test_stochastic_sign_score_mean_and_surrogates_are_their_derivatives(slope):
    """score = d log P(h | a) / d a and d E[h | a] / d a against central differences in float64;
    the `sigmoid` surrogate is d E[h | a] / d a, `identity` is 1, and a true derivative is none."""
    a = np.linspace(-2.5, 2.5, 11)
    p = SIGN.probability(a, slope)
    eps = 1e-6

    def log_probability(a, h):
        q = 1 / (1 + np.exp(-slope * a))
        return np.log(np.where(h > 0, q, 1 - q))

    for value in (-1.0, 1.0):
        h = np.full_like(a, value)
        numeric = (log_probability(a + eps, h) - log_probability(a - eps, h)) / (2 * eps)
        np.testing.assert_allclose(SIGN.score(h, p, slope), numeric, rtol=1e-7, atol=1e-9)
    mean = SIGN.mean_from_preactivation(a, slope)
    np.testing.assert_allclose(mean, 2 * p - 1, rtol=0, atol=1e-15)
    numeric = (SIGN.mean_from_preactivation(a + eps, slope) - SIGN.mean_from_preactivation(a - eps, slope)) / (2 * eps)
    np.testing.assert_allclose(SIGN.mean_derivative(a, None, p, slope), numeric, rtol=1e-7)
    np.testing.assert_array_equal(SIGN.surrogate_derivative("sigmoid", a, p, slope), SIGN.mean_derivative(a, None, p, slope))
    np.testing.assert_array_equal(SIGN.surrogate_derivative("identity", a, p, slope), np.ones_like(a))
    assert SIGN.derivative(a, mean, p) is None
    with pytest.raises(ConfigError, match="unknown surrogate 'clipped' for stochastic_sign units; known: sigmoid, identity"):
        SIGN.surrogate_derivative("clipped", a, p)


def test_the_mnist_stochastic_sign_network_and_its_sign_transmission():
    """`784-200p-200p-10s` parses; a sign transmission after a stochastic sign passes its values on
    unchanged, and straight-through through both accepts only their common surrogate."""
    net = Network.from_spec("784-200p-200p-10s")
    assert [layer.unit for layer in net.layers] == ["stochastic_sign", "stochastic_sign", "softmax"] and net.stochastic
    net = Network.from_spec("5-4p:n-3s", seed=2)
    trace = net.forward(np.random.default_rng(0).normal(size=(6, 5)), seed=1)
    np.testing.assert_array_equal(trace.out[0], trace.h[0])
    methods.get("st", surrogate="identity").bind(net)
    with pytest.raises(ConfigError, match="surrogate 'sigmoid' does not apply to the sign units of layer 0; choose one of identity, clipped, tanh"):
        methods.get("st", surrogate="sigmoid").bind(net)


@pytest.mark.parametrize("name", ["bp", "st", "reinforce", "arm", "disarm", "dtp", "tp"])
def test_every_method_trains_a_stochastic_sign_network(name):
    """One mini-batch step of each method changes the parameters it should and keeps them finite
    (bp: only the output layer, the true derivative through a sample being zero)."""
    rng = np.random.default_rng(3)
    net = Network.from_spec("6-5p-4p-3s", seed=1, input_noise=0.2)
    x, y = rng.normal(size=(20, 6)).astype(np.float32), rng.integers(0, 3, 20)
    method = methods.get(name)
    method.bind(net, seed=0)
    before = [array.copy() for array in net.parameters()]
    method.train_epoch(net, [(0, x, y)], seed=2, epoch=1)
    changed = [not np.array_equal(old, new) for old, new in zip(before, net.parameters())]
    assert all(np.isfinite(array).all() for array in net.parameters())
    assert changed == ([False] * 4 + [True] * 2 if name == "bp" else [True] * 6)
    assert math.isfinite(net.loss(net.forward(x, seed=0), y))


def test_predict_proba_reuses_the_probabilities_of_the_first_stochastic_sign_layer():
    """K-sample averages draw, per sample k, what a forward pass on stream ("test-sample", k) draws."""
    net = Network.from_spec("5-4p-3p-3s", seed=2)
    x = np.random.default_rng(1).normal(size=(7, 5)).astype(np.float32)
    expected = np.mean([net.forward(x, seed=3, stream=kernels.stream_id(0, "test-sample", k), train=False).output for k in range(4)], axis=0)
    np.testing.assert_allclose(net.predict_proba(x, seed=3, samples=4), expected, rtol=1e-6)
