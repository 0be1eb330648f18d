"""Back-propagation against central finite differences in float64, and
straight-through against its chain rule written out by hand."""
import numpy as np
import pytest

from stochtp import Network, methods, units
from stochtp.methods.backprop import backward
from stochtp.network import Layer, Trace
from stochtp.methods.base import backward_flops


def finite_difference(net, x, y, eps=1e-6):
    grads = []
    for layer in net.layers:
        pair = []
        for array in (layer.W, layer.b):
            g = np.zeros_like(array)
            for idx in np.ndindex(array.shape):
                old = array[idx]
                array[idx] = old + eps
                up = net.loss(net.forward(x, train=False), y)
                array[idx] = old - eps
                down = net.loss(net.forward(x, train=False), y)
                array[idx] = old
                g[idx] = (up - down) / (2 * eps)
            pair.append(g)
        grads.append(tuple(pair))
    return grads


@pytest.mark.parametrize("spec", ["5-4t-3g-3s", "6-5r-4l-3s", "4-6t-5t-2g", "5-4g-3t-4l"])
@pytest.mark.parametrize("seed", [0, 1])
def test_backprop_matches_finite_differences(spec, seed):
    rng = np.random.default_rng(seed)
    net = Network.from_spec(spec, seed=seed, dtype=np.float64)
    for layer in net.layers:
        layer.b[:] = rng.normal(0, 0.5, layer.b.shape)
    x = rng.normal(size=(7, net.layers[0].n_in))
    if net.loss_name == "nll":
        y = rng.integers(0, net.layers[-1].n_out, size=7)
    else:
        y = rng.random((7, net.layers[-1].n_out))
    bp = methods.get("bp")
    analytic = bp.gradient(net, x, y, seed=0)
    numeric = finite_difference(net, x, y)
    for (dW, db), (nW, nb) in zip(analytic, numeric):
        np.testing.assert_allclose(dW, nW, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(db, nb, rtol=1e-6, atol=1e-9)


def test_zero_derivative_through_sign_stops_lower_layers():
    net = Network.from_spec("5-4t:n-4t-3s", seed=3, dtype=np.float64)
    x = np.random.default_rng(0).normal(size=(8, 5))
    y = np.arange(8) % 3
    grads = methods.get("bp").gradient(net, x, y, seed=0)
    assert not grads[0][0].any() and not grads[0][1].any()
    assert grads[1][0].any() and grads[2][0].any()


def test_training_without_the_sign_is_backprop_of_the_continuous_net_and_restores_the_sign():
    """train_transmission=False (paper-discrete-bp-cont): the gradient of the same net without its
    sign transmission, every layer included; the network keeps its sign for testing."""
    x = np.random.default_rng(0).normal(size=(8, 5))
    y = np.arange(8) % 3
    discrete = Network.from_spec("5-4t:n-4t-3s", seed=3, dtype=np.float64)
    continuous = Network.from_spec("5-4t-4t-3s", seed=3, dtype=np.float64)
    grads = methods.get("bp", train_transmission=False).gradient(discrete, x, y, seed=0)
    for (dW, db), (eW, eb) in zip(grads, methods.get("bp").gradient(continuous, x, y, seed=0)):
        np.testing.assert_array_equal(dW, eW)
        np.testing.assert_array_equal(db, eb)
    assert grads[0][0].any()
    assert [layer.transmission for layer in discrete.layers] == ["sign", "identity", "identity"]


def test_zero_derivative_through_bernoulli_samples():
    net = Network.from_spec("5-4b-3s", seed=3, dtype=np.float64)
    x = np.random.default_rng(0).normal(size=(8, 5))
    grads = methods.get("bp").gradient(net, x, np.arange(8) % 3, seed=0)
    assert not grads[0][0].any()
    assert grads[1][0].any()


class CountedProducts(np.ndarray):
    """Arrays whose matrix products add their FLOPs (2 m k n) to `flops`; what NumPy makes of
    them is counted too."""

    flops = 0

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        plain = [x.view(np.ndarray) if isinstance(x, CountedProducts) else x for x in inputs]
        if ufunc is np.matmul:
            CountedProducts.flops += 2 * plain[0].shape[0] * plain[0].shape[1] * plain[1].shape[1]
        result = getattr(ufunc, method)(*plain, **kwargs)
        return result.view(CountedProducts) if isinstance(result, np.ndarray) else result


@pytest.mark.parametrize("spec, surrogate, inject, reached", [
    ("5-4t:n-4t-3s", None, False, [1, 2]),  # no gradient crosses the sign: none into layer 0, no weight gradient there
    ("5-4b-4b-3s", None, False, [2]),  # nor a sample
    ("5-4t-4t-3s", None, False, [0, 1, 2]),
    ("5-4b-4b-3s", "sigmoid", False, [0, 1, 2]),  # the surrogate carries it everywhere
    ("5-4b-4t-4b-3s", None, True, [0, 1, 2, 3]),  # injected at the samples (REINFORCE, ARM), chained through tanh
])
def test_backward_takes_the_products_backward_flops_counts(spec, surrogate, inject, reached):
    """Every product `backward` takes, counted as it runs, against `backward_flops`: no product
    into a layer whose gradient is zero or replaced by an injected one. `reached`: the layers
    that get a non-zero weight gradient."""
    rows = 6
    net = Network.from_spec(spec, seed=1, dtype=np.float64)
    x, y = np.random.default_rng(0).normal(size=(rows, 5)), np.arange(rows) % 3
    trace = net.forward(x, seed=0)
    injected = {i: np.ones_like(trace.a[i]).view(CountedProducts) for i, layer in enumerate(net.layers) if layer.stochastic} if inject else None
    counted = Network([Layer(layer.W.view(CountedProducts), layer.b, layer.unit, layer.transmission) for layer in net.layers])
    counted_trace = Trace(trace.x.view(CountedProducts), *([array.view(CountedProducts) for array in part] for part in (trace.a, trace.h, trace.p, trace.out)))
    CountedProducts.flops = 0
    grads = backward(counted, counted_trace, net.output_grad(trace, y).view(CountedProducts), surrogate, injected=injected)
    assert CountedProducts.flops == backward_flops(net, rows, surrogate is None, list(injected or ()))
    assert [i for i, (dW, db) in enumerate(grads) if dW.any()] == reached


def test_bp_training_reduces_loss_on_a_separable_problem():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    net = Network.from_spec("4-8t-2s", seed=0, dtype=np.float64)
    bp = methods.get("bp", lr=0.01, optimizer="centred_rmsprop")
    bp.bind(net)
    before = net.loss(net.forward(x), y)
    for epoch in range(20):
        stats = bp.train_epoch(net, [(k, x[k * 20:(k + 1) * 20], y[k * 20:(k + 1) * 20]) for k in range(10)], seed=0, epoch=epoch)
    assert net.loss(net.forward(x), y) < 0.3 * before
    assert stats["train_error"] < 0.05


def test_unknown_method_and_option():
    from stochtp.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown method 'nope'"):
        methods.get("nope")
    with pytest.raises(ConfigError, match="has no option 'eta'"):
        methods.get("bp", eta=1)


# ---------------------------------------------------------------- straight-through

HAND_SURROGATES = {
    "sigmoid": lambda a, p, k: k * p * (1 - p),  # sigma'(k a) with p = sigma(k a)
    "identity": lambda a, p, k: np.ones_like(a),
    "clipped": lambda a, p, k: (np.abs(a) <= 1).astype(a.dtype),
    "tanh": lambda a, p, k: 1 - np.tanh(a) ** 2,
}


def hand_written_straight_through(net, trace, y, surrogate):
    """[(dW, db), ...] by the chain rule, every discrete element (sample, sign or step unit, sign
    transmission) passing the gradient with HAND_SURROGATES[surrogate] of its input."""
    d = HAND_SURROGATES[surrogate]
    onehot = np.eye(net.layers[-1].n_out)[y]
    grad_a = (trace.output - onehot) / len(y)  # softmax + nll, mean over the batch
    grads = []
    for i in range(len(net.layers) - 1, -1, -1):
        grads.insert(0, (trace.input_of(i).T @ grad_a, grad_a.sum(axis=0)))
        if i == 0:
            break
        below = net.layers[i - 1]
        a, h, p = trace.a[i - 1], trace.h[i - 1], trace.p[i - 1]
        grad = grad_a @ net.layers[i].W.T
        if below.transmission == "sign":
            grad = grad * d(h, h, net.slope)
        if below.unit == "tanh":
            grad = grad * (1 - h * h)
        elif below.unit in ("bernoulli", "sign", "step"):
            grad = grad * d(a, p, net.slope)
        grad_a = grad
    return grads


@pytest.mark.parametrize(
    "spec, slope, surrogate",
    [
        ("3-4b-3b-2s", 1.7, "sigmoid"),
        ("3-4b-3t-2s", 1.0, "identity"),
        ("3-4n-3t:n-2s", 1.0, "identity"),
        ("3-4n-3t:n-2s", 1.0, "clipped"),
        ("3-4h-3t:n-2s", 1.0, "tanh"),
    ],
)
def test_straight_through_is_the_chain_rule_with_the_surrogate(spec, slope, surrogate):
    rng = np.random.default_rng(4)
    net = Network.from_spec(spec, seed=3, dtype=np.float64).replace(slope=slope)
    x, y = rng.normal(0, 1.5, (6, 3)), rng.integers(0, 2, 6)  # wide enough that |a| > 1 for some units
    method = methods.get("st", surrogate=surrogate)
    method.bind(net)
    got = method.gradient(net, x, y, seed=5, stream=7)
    expected = hand_written_straight_through(net, net.forward(x, 5, 7), y, surrogate)
    for (dW, db), (eW, eb) in zip(got, expected):
        np.testing.assert_allclose(dW, eW, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(db, eb, rtol=1e-12, atol=1e-15)
    assert all(np.abs(dW).max() > 0 for dW, _ in got)  # every layer learns


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("slope", [1.0, 1.7])
def test_the_sigmoid_surrogate_is_numpy_s_slope_p_1_minus_p_bit_for_bit(dtype, slope):
    p = np.random.default_rng(8).random((30, 7)).astype(dtype)
    got = units.get("bernoulli").surrogate_derivative("sigmoid", None, p, slope)
    assert got.dtype == dtype and got.shape == p.shape
    np.testing.assert_array_equal(got, slope * p * (1 - p))


def test_slope_annealing_grows_the_slope_per_epoch_up_to_its_cap_and_samples_with_it():
    net = Network.from_spec("3-4b-2s", seed=0, dtype=np.float64)
    method = methods.get("st", slope=1.0, slope_rate=0.5, slope_max=2.2)
    method.bind(net)
    slopes = []
    for epoch in (1, 2, 3, 4):
        method.start_epoch(net, epoch)
        slopes.append(method.inference_network(net).slope)
    assert slopes == [1.0, 1.5, 2.0, 2.2]  # k = min(slope_max, slope (1 + rate (epoch - 1)))
    assert net.slope == 1.0  # the network itself is left as it is
    sloped = method.inference_network(net)
    assert all(view.W is layer.W and view.b is layer.b for view, layer in zip(sloped.layers, net.layers))
    trace = sloped.forward(np.ones((2, 3)), seed=0)
    np.testing.assert_allclose(trace.p[0], 1 / (1 + np.exp(-2.2 * trace.a[0])), rtol=1e-12)  # fires with sigmoid(k a)
    x, y = np.ones((4, 3)), np.array([0, 1, 0, 1])
    expected = methods.get("st").gradient(sloped, x, y, seed=3, stream=4)  # the annealed step is ST at slope k
    for (dW, db), (eW, eb) in zip(method.gradient(net, x, y, seed=3, stream=4), expected):
        np.testing.assert_array_equal(dW, eW)
        np.testing.assert_array_equal(db, eb)
