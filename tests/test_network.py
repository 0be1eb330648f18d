"""Network construction, spec strings, init schemes and the forward Trace."""
import numpy as np
import pytest

from stochtp import Network, data, exact, kernels, methods, network, train
from stochtp.errors import ConfigError
from stochtp.network import affine, init_weights, parse_spec


def test_spec_round_trip_and_layer_shapes():
    net = Network.from_spec("784-500t:n-500t-10s")
    assert net.spec == "784-500t:n-500t-10s"
    assert [(layer.W.shape, layer.b.shape) for layer in net.layers] == [((784, 500), (500,)), ((500, 500), (500,)), ((500, 10), (10,))]
    assert [layer.unit for layer in net.layers] == ["tanh", "tanh", "softmax"]
    assert [layer.transmission for layer in net.layers] == ["sign", "identity", "identity"]


@pytest.mark.parametrize(
    "spec, message",
    [
        ("784", "at least one layer"),
        ("x-10s", "input size"),
        ("784-10q", "unknown unit letter 'q'"),
        ("784-10", "cannot read layer"),
        ("784-0t-10s", "has no units"),
        ("784-10s-10s", "softmax is only allowed on the output"),
        ("784-10t:z-10s", "unknown transmission"),
    ],
)
def test_bad_specs_raise_config_error(spec, message):
    with pytest.raises(ConfigError, match=message):
        Network.from_spec(spec)


def test_size_mismatch_is_rejected():
    from stochtp.network import Layer

    a = Layer(np.zeros((4, 3)), np.zeros(3), "tanh")
    b = Layer(np.zeros((5, 2)), np.zeros(2), "softmax")
    with pytest.raises(ConfigError, match="layer 0 has 3 outputs but layer 1 expects 5"):
        Network([a, b])


def test_glorot_range_and_zero_bias():
    net = Network.from_spec("300-200b-10s", seed=4)
    r = np.sqrt(6 / 500)
    W = net.layers[0].W
    assert W.dtype == np.float32 and np.abs(W).max() <= r
    assert np.abs(W).max() > 0.99 * r  # the whole range is used
    assert abs(W.mean()) < 0.01 and abs(W.var() - r * r / 3) < 0.02 * r * r
    assert not net.layers[0].b.any()


def test_orthogonal_init_has_orthonormal_columns():
    net = Network.from_spec("240-240t-100t-10s", init="orthogonal", dtype=np.float64)
    for W in (net.layers[0].W, net.layers[1].W):
        assert np.allclose(W.T @ W, np.eye(W.shape[1]), atol=1e-10)


def test_init_is_deterministic_in_seed():
    a, b, c = (Network.from_spec("20-10t-3s", seed=s) for s in (1, 1, 2))
    assert np.array_equal(a.layers[0].W, b.layers[0].W)
    assert not np.array_equal(a.layers[0].W, c.layers[0].W)


@pytest.mark.parametrize("init", ["glorot", "orthogonal"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_init_weights_are_those_of_the_uniform_kernel_bit_for_bit(init, dtype):
    """init_weights draws by NumPy the numbers the Numba `uniform` kernel draws: the weights of
    a fixed seed are those the kernel gave."""
    n_in, n_out, stream = 784, 200, kernels.stream_id("init", 0)
    W = (2 * kernels.uniform((n_in, n_out), 3, stream, dtype=np.float64) - 1) * np.sqrt(6.0 / (n_in + n_out))
    if init == "orthogonal":
        left, _, right = np.linalg.svd(W, full_matrices=False)
        W = left @ right
    np.testing.assert_array_equal(init_weights(n_in, n_out, 3, stream, init, dtype), np.ascontiguousarray(W, dtype=dtype))


def test_float64_is_selectable_and_float32_default():
    assert Network.from_spec("5-3t-2s").dtype == np.float32
    net = Network.from_spec("5-3b-2s", dtype=np.float64)
    trace = net.forward(np.ones((4, 5)), seed=1)
    assert all(a.dtype == np.float64 for a in trace.a + trace.h + trace.p)


def test_forward_trace_contents():
    net = Network.from_spec("6-5b-4t:n-3s", seed=2)
    x = np.random.default_rng(0).random((7, 6)).astype(np.float32)
    trace = net.forward(x, seed=9, stream=3)
    a0 = x @ net.layers[0].W + net.layers[0].b
    np.testing.assert_allclose(trace.a[0], a0, rtol=1e-6)
    np.testing.assert_allclose(trace.p[0], 1 / (1 + np.exp(-a0)), rtol=1e-6)
    assert set(np.unique(trace.h[0])) <= {0.0, 1.0}
    assert set(np.unique(trace.out[1])) <= {-1.0, 1.0}  # sign transmission
    np.testing.assert_allclose(trace.h[1], np.tanh(trace.a[1]), rtol=1e-6)
    np.testing.assert_allclose(trace.output.sum(axis=1), 1, rtol=1e-6)
    again = net.forward(x, seed=9, stream=3)
    other = net.forward(x, seed=9, stream=4)
    assert np.array_equal(trace.h[0], again.h[0])
    assert not np.array_equal(trace.h[0], other.h[0])


def test_input_noise_only_in_training():
    net = Network.from_spec("50-4t-2s", input_noise=0.3)
    x = np.zeros((200, 50), dtype=np.float32)
    noisy = net.forward(x, seed=1, train=True).x
    assert abs(noisy.std() - 0.3) < 0.01
    assert not net.forward(x, seed=1, train=False).x.any()


def test_wrong_input_shape_is_a_value_error():
    net = Network.from_spec("5-3t-2s")
    with pytest.raises(ValueError, match=r"shape \(batch, 5\)"):
        net.forward(np.ones((4, 6)))


@pytest.mark.parametrize("y, message", [
    ([0, 5], r"class labels must lie in \[0, 2\), got values from 0 to 5"),
    ([0, -1], r"class labels must lie in \[0, 2\), got values from -1 to 0"),
    ([0.5, 1.0], "needs integer class labels"),
    ([0], "one target per example, got 2 inputs and 1 targets"),
])
@pytest.mark.parametrize("call", ["exact", "bp", "dtp"])
def test_bad_labels_given_to_the_api_are_value_errors(y, message, call):
    """Out-of-range, negative (which NumPy indexing would take silently) or non-integer labels."""
    net = Network.from_spec("3-2b-2s", seed=0, dtype=np.float64)
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match=message):
        if call == "exact":
            exact.expected_loss(net, x, y)
        elif call == "bp":
            methods.get("bp").gradient(net, x, y, seed=0)
        else:
            method = methods.get("dtp")
            method.bind(net)
            method.update(net, x, y, seed=0)


def test_mse_targets_must_be_rows_of_the_output_width():
    net = Network.from_spec("3-4t-2g", seed=0, dtype=np.float64)
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"target rows of 2 numbers, got a int64 array of shape \(2,\)"):
        methods.get("bp").gradient(net, x, np.array([0, 1]), seed=0)
    assert len(methods.get("bp").gradient(net, x, np.ones((2, 2)), seed=0)) == 2


def test_parse_spec_units():
    n_in, layers = parse_spec("3-2l-2t-2g-2r-2n-2h-2b-2s")
    assert n_in == 3
    assert [unit for _, unit, _ in layers] == ["identity", "tanh", "sigmoid", "relu", "sign", "step", "bernoulli", "softmax"]


def test_stacked_mini_batches_with_a_stream_each_get_what_each_gets_alone():
    """forward(x, seed, [s_0, .., s_{C-1}]) on C mini-batches stacked as rows draws, for each, the
    input noise and the samples of forward(x_k, seed, s_k)."""
    net = Network.from_spec("7-5b-4b-3s", seed=2, dtype=np.float64, input_noise=0.3)
    x = np.random.default_rng(0).random((4 * 6, 7))
    streams = [11, 12, 13, 14]
    stacked = net.forward(x, 5, streams)
    alone = [net.forward(x[6 * k:6 * (k + 1)], 5, s) for k, s in enumerate(streams)]
    np.testing.assert_allclose(stacked.x, np.concatenate([t.x for t in alone]), rtol=1e-14)
    for i in range(3):
        np.testing.assert_allclose(stacked.p[i], np.concatenate([t.p[i] for t in alone]), rtol=1e-12)
    for i in range(2):  # the Bernoulli samples
        np.testing.assert_array_equal(stacked.h[i], np.concatenate([t.h[i] for t in alone]))


def test_k_sample_prediction_is_the_mean_of_k_test_passes():
    """predict_proba shares the deterministic layers and the first Bernoulli layer's probabilities
    across its K passes; it must equal the mean of K forward passes on the test-sample streams."""
    net = Network.from_spec("7-5t-6b-4b-3s", seed=3, dtype=np.float64, input_noise=0.3)
    x = np.random.default_rng(2).random((9, 7))
    passes = [net.forward(x, 4, kernels.stream_id(8, "test-sample", k), train=False).output for k in range(5)]
    np.testing.assert_allclose(net.predict_proba(x, seed=4, stream=8, samples=5), np.mean(passes, axis=0), rtol=1e-12)
    assert not np.allclose(passes[0], passes[1])


def numpy_k_sample_reference(net, x, samples, seed, stream):
    """`predict_proba` written out in NumPy, one pass at a time: pass k draws the bits of layer i
    as 1[u < sigmoid(a)], u the float32 uniforms of stream ((stream, "test-sample", k), "forward-sample", i)."""
    total = np.zeros((len(x), net.layers[-1].n_out))
    for k in range(samples):
        pass_stream = kernels.stream_id(stream, "test-sample", k)
        h = x
        for i, layer in enumerate(net.layers):
            a = h @ layer.W + layer.b
            if layer.unit == "bernoulli":
                u = kernels.uniform(a.shape, seed, kernels.stream_id(pass_stream, "forward-sample", i))
                h = (u < 1 / (1 + np.exp(-a))).astype(a.dtype)
            elif layer.unit == "tanh":
                h = np.tanh(a)
            else:
                e = np.exp(a - a.max(axis=1, keepdims=True))
                h = e / e.sum(axis=1, keepdims=True)
        total += h
    return total / samples


@pytest.mark.parametrize("stacked_rows", [1, 30, network.STACKED_ROWS])
def test_k_sample_prediction_equals_a_pass_by_pass_numpy_reference(stacked_rows, monkeypatch):
    """Stacking the passes (groups of 1, 3 with a shorter last group, all 10) draws every pass's
    bits from its own stream: the probabilities equal the NumPy loop's to float64 precision (the
    sigmoids differ in the last bits; one bit drawn otherwise would move them by about 1e-2)."""
    monkeypatch.setattr(network, "STACKED_ROWS", stacked_rows)
    net = Network.from_spec("9-7t-8b-6b-4s", seed=3, dtype=np.float64, input_noise=0.3)
    x = np.random.default_rng(5).random((10, 9))
    expected = numpy_k_sample_reference(net, x, 10, seed=6, stream=2)
    np.testing.assert_allclose(net.predict_proba(x, samples=10, seed=6, stream=2), expected, rtol=1e-12)


def test_k_sample_evaluation_keeps_the_numbers_of_one_pass_at_a_time():
    """Errors and probabilities of a small float32 net on synthetic data, recorded from the
    computation that ran one forward pass per sample: the errors exactly, the probabilities to
    float32 precision (the stacked products give the same bits with OpenBLAS, not a promise of
    every BLAS)."""
    dataset = data.load("teacher", n_train=10, n_valid=300, n_test=300, seed=1)
    net = Network.from_spec("8-12b-10b-3s", seed=2)
    schedule = type("Schedule", (), {"seed": 5, "eval_samples": 100, "eval_samples_every": 1, "epochs": 1})
    assert train.evaluate(net, dataset, schedule, 1) == {"valid_error": 0.63, "valid_error_k": 184 / 300, "test_error": 191 / 300, "test_error_k": 0.63}
    proba = net.predict_proba(dataset.valid.features(None, net.dtype), samples=37, seed=4, stream=9)  # groups of 27 and 10 passes
    expected = [[0.43512062728405, 0.3517492423589165, 0.21313012592695854], [0.4784887388751313, 0.3327962625268343, 0.18871498973788442],
                [0.42370678927447347, 0.38101355066976034, 0.19527966508994232]]
    np.testing.assert_allclose(proba[[0, 150, 299]], expected, rtol=1e-6)


@pytest.mark.parametrize("noise", [float("nan"), -1.0, float("inf")])
def test_input_noise_must_be_a_finite_non_negative_number(noise):
    """NaN and negative noise are refused, not taken as no noise (as the config refuses them)."""
    with pytest.raises(ValueError, match="input_noise must be a finite number >= 0"):
        Network.from_spec("8-6b-3s", input_noise=noise)


@pytest.mark.parametrize("name", ["bp", "st", "reinforce", "arm", "disarm", "dtp", "tp"])
def test_an_empty_batch_or_an_unbound_method_is_one_clear_error(name):
    """A mean over no examples is refused by every method alike (ARM and DTP divided by zero,
    the others returned zeros); DTP asked for an update before `bind` says to bind first."""
    net = Network.from_spec("8-6b-6b-3s")
    method = methods.get(name)
    if name in ("dtp", "tp"):
        with pytest.raises(ValueError, match="not bound to a network: call bind"):
            method.update(net, np.zeros((4, 8), np.float32), np.zeros(4, int), 0)
        method.bind(net)
    estimate = method.update if name in ("dtp", "tp") else method.gradient
    with pytest.raises(ValueError, match="need a non-empty batch"):
        estimate(net, np.zeros((0, 8), np.float32), np.zeros(0, int), 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_affine_is_the_product_plus_the_bias_bit_for_bit(dtype):
    rng = np.random.default_rng(6)
    x = rng.normal(size=(40, 7)).astype(dtype)[::2]  # rows of a strided view
    W, b = rng.normal(size=(7, 5)).astype(dtype), rng.normal(size=5).astype(dtype)
    np.testing.assert_array_equal(affine(x, W, b), x @ W + b)
    np.testing.assert_array_equal(affine(x, W.T.copy().T, b), x @ W + b)  # W in Fortran order


def test_affine_refuses_a_bias_that_does_not_fit_the_product():
    x, W = np.ones((3, 4), np.float32), np.ones((4, 5), np.float32)
    with pytest.raises(ValueError, match="one value per column"):
        affine(x, W, np.ones(4, np.float32))


@pytest.mark.parametrize("samples", [0, -1, 1.5, True])
def test_predict_proba_refuses_a_sample_count_that_is_not_a_positive_integer(samples):
    with pytest.raises(ValueError, match="samples must be an integer >= 1"):
        Network.from_spec("4-3b-2s").predict_proba(np.ones((2, 4)), samples=samples)


def test_a_view_leaves_the_layers_of_the_network_it_shares_as_they_were():
    net = Network.from_spec("4-3b:n-2s", seed=0)
    layers = list(net.layers)
    net.replace(transmission="identity", slope=2.0)
    assert net.layers == layers and [layer.transmission for layer in net.layers] == ["sign", "identity"]
