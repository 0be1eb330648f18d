"""The exact oracle against an independent joint enumeration, Monte Carlo
forward samples and central finite differences of its own expected loss."""
import itertools

import numpy as np
import pytest

from stochtp import Network, exact, kernels, losses, units
from stochtp.errors import ConfigError

# Bernoulli layers alone, a tanh layer between two Bernoulli ones (with a sign transmission),
# a deterministic layer below, a sigmoid output on the mse loss; slope k != 1 on one of them.
# Then stochastic sign layers: alone, with k != 1, mixed with Bernoulli and tanh layers (a
# sign transmission after one), and below an mse output.
NETWORKS = [("3-3b-3b-2s", 1.0), ("4-4b-3s", 1.5), ("3-4b:n-2t-2b-2s", 1.0), ("3-2t:n-3b-2s", 1.0), ("3-3b-2g", 1.0)]
SIGN_NETWORKS = [("3-3p-3p-2s", 1.0), ("4-4p-3s", 1.5), ("3-3p:n-2t-2b-2s", 1.0), ("3-2t-3p-2g", 1.0)]
# A bit c of a stochastic unit (P(c = 1) = sigmoid(k a)), written as the unit's value.
VALUE_OF_BIT = {"bernoulli": lambda c: c, "stochastic_sign": lambda c: 2 * c - 1}


def small_problem(spec, slope, seed=0, batch=5, dtype=np.float64):
    """A network with random biases, a batch of Gaussian inputs and targets that suit its loss."""
    rng = np.random.default_rng(seed)
    net = Network.from_spec(spec, seed=seed, dtype=dtype).replace(slope=slope)
    for layer in net.layers:
        layer.b[:] = rng.normal(0, 0.5, layer.b.shape)
    x = rng.normal(size=(batch, net.layers[0].n_in))
    n_out = net.layers[-1].n_out
    y = rng.integers(0, n_out, size=batch) if net.loss_name == "nll" else rng.random((batch, n_out))
    return net, x, y


def joint_enumeration(net, x, y):
    """E[L] by a plain loop over every joint configuration of all stochastic units, example by example."""
    stochastic_bits = sum(layer.n_out for layer in net.layers if layer.stochastic)
    total = 0.0
    for b in range(len(x)):
        for bits in itertools.product((0.0, 1.0), repeat=stochastic_bits):
            probability, value, used = 1.0, x[b : b + 1], 0
            for layer in net.layers:
                a = value @ layer.W + layer.b
                if layer.stochastic:
                    c = np.array([bits[used : used + layer.n_out]])
                    used += layer.n_out
                    p = 1 / (1 + np.exp(-net.slope * a))
                    probability *= np.prod(np.where(c > 0, p, 1 - p))
                    h = VALUE_OF_BIT[layer.unit](c)
                else:
                    h = layer.kind.activate(a)[0]
                value = units.transmit(layer.transmission, h)
            total += probability * losses.per_example(net.loss_name, h, y[b : b + 1])[0]
    return total / len(x)


@pytest.mark.parametrize("spec, slope", NETWORKS + SIGN_NETWORKS)
def test_expected_loss_matches_joint_enumeration(spec, slope):
    net, x, y = small_problem(spec, slope)
    assert exact.expected_loss(net, x, y) == pytest.approx(joint_enumeration(net, x, y), rel=1e-12)


@pytest.mark.parametrize("spec, slope", NETWORKS[:3] + SIGN_NETWORKS[1:3])
def test_expected_loss_within_monte_carlo_error_bars(spec, slope):
    """20 000 forward samples per example; |z| < 4.5 has a false-alarm rate of 7e-6 per network."""
    net, x, y = small_problem(spec, slope, batch=3)
    samples = 20000
    trace = net.forward(np.tile(x, (samples, 1)), seed=7, stream=kernels.stream_id("mc", spec))
    loss = net.per_example_loss(trace, np.concatenate([y] * samples)).reshape(samples, len(x)).mean(axis=1)
    z = (loss.mean() - exact.expected_loss(net, x, y)) / (loss.std(ddof=1) / np.sqrt(samples))
    assert abs(z) < 4.5


@pytest.mark.parametrize("spec, slope", NETWORKS + SIGN_NETWORKS)
def test_gradient_matches_finite_differences(spec, slope):
    """Central differences of the oracle's own E[L], float64, step 1e-6, to 1e-6 relative."""
    net, x, y = small_problem(spec, slope)
    grads = exact.expected_gradient(net, x, y)
    eps = 1e-6
    for layer, pair in zip(net.layers, grads):
        for array, analytic in zip((layer.W, layer.b), pair):
            numeric = np.zeros_like(array)
            for index in np.ndindex(array.shape):
                saved = array[index]
                array[index] = saved + eps
                up = exact.expected_loss(net, x, y)
                array[index] = saved - eps
                down = exact.expected_loss(net, x, y)
                array[index] = saved
                numeric[index] = (up - down) / (2 * eps)
            np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)


def test_chunks_of_examples_give_the_same_answer(monkeypatch):
    net, x, y = small_problem("3-3b-2t-3b-2s", 1.0, batch=7)
    loss, grads = exact.expectation(net, x, y)
    monkeypatch.setattr(exact, "CHUNK_ENTRIES", 8)  # 2^3 configurations: one example per chunk
    chunked_loss, chunked = exact.expectation(net, x, y)
    assert chunked_loss == pytest.approx(loss, rel=1e-13)
    for (W, b), (cW, cb) in zip(grads, chunked):
        np.testing.assert_allclose(cW, W, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(cb, b, rtol=1e-12, atol=1e-15)


def test_float32_network_is_evaluated_in_float64():
    net32, x, y = small_problem("3-3b-3b-2s", 1.0, dtype=np.float32)
    net64 = Network([type(layer)(layer.W.astype(np.float64), layer.b.astype(np.float64), layer.unit, layer.transmission) for layer in net32.layers])
    grads = exact.expected_gradient(net32, x, y)
    assert all(dW.dtype == db.dtype == np.float64 for dW, db in grads)
    assert exact.expected_loss(net32, x, y) == exact.expected_loss(net64, x, y)


def test_refuses_networks_over_the_bit_limit():
    net = Network.from_spec("4-12b-9b-2s", dtype=np.float64)
    x, y = np.zeros((2, 4)), np.zeros(2, dtype=int)
    with pytest.raises(ConfigError, match=r"21 stochastic units.*max_bits = 20"):
        exact.expected_loss(net, x, y)
    with pytest.raises(ConfigError, match=r"5 stochastic units.*max_bits = 4"):
        exact.expected_gradient(Network.from_spec("4-5b-2s"), x, y, max_bits=4)


def test_refuses_a_stochastic_output_layer():
    with pytest.raises(ConfigError, match="non-stochastic output"):
        exact.expected_loss(Network.from_spec("3-2b-2b"), np.zeros((1, 3)), np.zeros((1, 2)))
