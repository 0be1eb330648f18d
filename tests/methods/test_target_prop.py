"""Target propagation and DTP: the mathematics each test pins is in its docstring."""
import copy
import math

import numpy as np
import pytest

from stochtp import Network, data, kernels, methods
from stochtp.batching import CHUNK, Batches, MiniBatch
from stochtp.errors import ConfigError
from stochtp.methods.backprop import backward


def bound(name, spec, seed=0, init="glorot", **options):
    net = Network.from_spec(spec, seed=seed, dtype=np.float64, init=init)
    method = methods.get(name, **options)
    method.bind(net, seed)
    return net, method


def batch(net, n=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, net.layers[0].n_in)), rng.integers(0, net.layers[-1].n_out, size=n)


@pytest.mark.parametrize("spec", ["5-6t-7t-4t-3s", "5-6b-7b-3s", "5-6t:n-7t-3s"])
def test_difference_correction_leaves_lower_layers_on_target_when_the_top_is(spec):
    """DTP: v_hat_{i-1} = v_{i-1} + g(v_hat_i) - g(v_i) equals v_{i-1} whenever v_hat_i = v_i, whatever g is."""
    net, dtp = bound("dtp", spec, inverse_transmission="sign" if ":n" in spec else "identity")
    x, _ = batch(net)
    trace = net.forward(x, seed=1)
    v_hat = dtp.propagate(trace.p, trace.p[dtp.top].copy())
    for j in range(dtp.top + 1):
        np.testing.assert_allclose(v_hat[j], trace.p[j], rtol=0, atol=1e-12)
    _, tp = bound("tp", spec)
    plain = tp.propagate(trace.p, trace.p[tp.top].copy())
    assert not np.allclose(plain[0], trace.p[0], atol=1e-3)  # plain TP has no such guarantee


def test_tp_and_dtp_targets_coincide_with_an_exact_inverse():
    """With linear layers and g_j = f_j^{-1} exactly (V = W^-1, c = -b W^-1), TP and DTP targets are equal."""
    spec = "4-4l-4l-4l-3s"
    targets = []
    for name in ("tp", "dtp"):
        net, method = bound(name, spec, seed=3, inverse_unit="identity", eta_hat=0.5)
        rng = np.random.default_rng(0)
        for layer in net.layers[:-1]:
            layer.b[:] = rng.normal(size=layer.b.shape)
        for j in method.V:
            inverse = np.linalg.inv(net.layers[j].W)
            method.V[j][:] = inverse
            method.c[j][:] = -net.layers[j].b @ inverse
        x, y = batch(net)
        targets.append(method.targets(net, net.forward(x), y))
    for tp_target, dtp_target in zip(*targets):
        np.testing.assert_allclose(tp_target, dtp_target, rtol=1e-9, atol=1e-9)
    assert not np.allclose(targets[0][0], net.forward(x).p[0])  # the targets did move


def test_inverse_training_drives_the_reconstruction_error_to_zero():
    """A learnable (linear) inverse of an invertible (orthogonal) linear layer learns to reconstruct noisy inputs exactly."""
    net, dtp = bound("dtp", "6-6l-6l-3s", seed=2, init="orthogonal", inverse_unit="identity", lr_b=0.02, sigma=0.5, optimizer="sgd")
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 6))
    errors = []
    for step in range(1500):
        dtp._reset_diagnostics(len(net.layers), net)
        dtp.inverse_step(net, x, seed=0, stream=step)
        errors.append(dtp.diagnostics()["inverse_error"][1])
    assert errors[0] > 1.0
    assert np.mean(errors[-50:]) < 1e-9 * errors[0]


@pytest.mark.slow
def test_dtp_learns_parity_through_sign_units_where_zero_derivative_backprop_cannot():
    """3-bit parity through a layer that transmits sign(h): DTP trains the first layer, BP leaves it random."""
    ds = data.load("parity", n_bits=3, n_train=400, n_valid=8, n_test=8)
    accuracy = {"dtp": [], "bp": []}
    options = {"dtp": dict(eta_hat=2.0, lr_f=1e-3, lr_b=1e-2, sigma=0.3, schedule="parallel"), "bp": dict(lr=1e-3)}
    x = ds.train.features(dtype=np.float64)
    for seed in range(5):
        for name in accuracy:
            net, method = bound(name, "3-6t:n-8t-2s", seed=seed, **options[name])
            for epoch in range(1, 101):
                method.train_epoch(net, Batches(ds.train, epoch, seed, 10, np.float64), seed, epoch)
            accuracy[name].append((net.predict_proba(x).argmax(axis=1) == ds.train.y).mean())
    assert min(accuracy["dtp"]) == 1.0, accuracy
    assert np.mean(accuracy["bp"]) < 0.9, accuracy


def test_dtp_update_points_along_the_backprop_gradient_on_continuous_nets():
    """Top hidden layer: the DTP update is 2 eta_hat / B times the BP gradient (cosine 1); after inverse
    training the lower layers' updates have positive cosine with BP's."""
    net, dtp = bound("dtp", "6-12t-10t-8t-3s", seed=4, eta_hat=0.1, lr_b=3e-3, sigma=0.1)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(200, 6))
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0)
    for step in range(1500):
        dtp.inverse_step(net, x[(step % 10) * 20:(step % 10 + 1) * 20], seed=0, stream=step)
    update = dtp.update(net, x, y, seed=0)
    trace = net.forward(x)
    exact = backward(net, trace, net.output_grad(trace, y))
    cosines = []
    for (dW, db), (eW, eb) in zip(update, exact):
        u, v = np.concatenate([dW.ravel(), db]), np.concatenate([eW.ravel(), eb])
        cosines.append(u @ v / np.linalg.norm(u) / np.linalg.norm(v))
    np.testing.assert_allclose(cosines[dtp.top], 1.0, atol=1e-9)
    np.testing.assert_allclose(cosines[-1], 1.0, atol=1e-12)  # the output layer follows L exactly
    assert min(cosines) > 0.1, cosines
    np.testing.assert_allclose(update[dtp.top][0], 2 * 0.1 / len(x) * exact[dtp.top][0], rtol=1e-9)


def test_diagnostics_have_one_value_per_layer_and_nan_where_undefined():
    ds = data.load("teacher", n_train=200, n_valid=10, n_test=10)
    net = Network.from_spec("8-6t-6t-5t-3s", seed=0)
    dtp = methods.get("dtp", eta_hat=0.1)
    dtp.bind(net, 0)
    dtp.train_epoch(net, Batches(ds.train, 1, 0, 20, np.float32), 0, 1)
    d = dtp.diagnostics()
    assert set(d) == {"inverse_error", "target_distance", "bp_angle"}
    assert all(v.shape == (4,) for v in d.values())
    assert np.isnan(d["inverse_error"][[0, 3]]).all() and (d["inverse_error"][1:3] > 0).all()
    assert np.isnan(d["target_distance"][3]) and (d["target_distance"][:3] > 0).all()
    assert (d["bp_angle"] >= 0).all() and (d["bp_angle"] <= 180).all()


@pytest.mark.parametrize("schedule", ["alternating", "parallel"])
def test_sigma_schedule_is_the_one_training_uses(schedule):
    """sigma = sigma0 / (1 + epoch / tau), epochs counted from 1 (the paper's 0.5 / (1 + e / 50)),
    constant for tau = inf; an epoch's inverse training draws its corruption with that sigma."""
    ds = data.load("teacher", n_train=40, n_valid=10, n_test=10)
    net, dtp = bound("dtp", "8-6t-6t-3s", sigma=0.5, sigma_tau=50.0, schedule=schedule)
    drawn = []
    real_normal = kernels.normal

    def spy(shape, seed, stream, dtype, loc=None, scale=1.0):
        drawn.append(scale)
        return real_normal(shape, seed, stream, dtype, loc=loc, scale=scale)

    for epoch, expected in [(1, 0.5 / 1.02), (50, 0.25), (100, 0.5 / 3)]:
        drawn.clear()
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(kernels, "normal", spy)
            dtp.train_epoch(net, Batches(ds.train, epoch, 0, 20, np.float64), 0, epoch)
        assert dtp.sigma == pytest.approx(expected) and drawn and set(drawn) == {dtp.sigma}
    net, dtp = bound("dtp", "4-4t-4t-2s", sigma=0.5)
    dtp.start_epoch(net, 1000)
    assert dtp.sigma == 0.5


def test_alternating_and_parallel_schedules_differ_and_are_deterministic():
    ds = data.load("teacher", n_train=200, n_valid=10, n_test=10)
    finals = []
    for schedule in ("alternating", "parallel", "alternating"):
        net, dtp = bound("dtp", "8-6b-6b-3s", seed=1, schedule=schedule, lr_b=1e-3)
        for epoch in (1, 2):
            dtp.train_epoch(net, Batches(ds.train, epoch, 1, 20, np.float64), 1, epoch)
        finals.append(net.layers[0].W.copy())
    assert np.array_equal(finals[0], finals[2])
    assert not np.array_equal(finals[0], finals[1])


@pytest.mark.parametrize("spec", ["8-6b-6b-5b-3s", "8-6t:n-6t-3s"])
def test_chunked_inverse_phase_takes_the_steps_of_one_mini_batch_at_a_time(spec):
    """The alternating inverse phase computes its inputs a chunk of mini-batches at once; the
    inverses must end where one inverse_step per mini-batch (same streams) takes them."""
    from stochtp import kernels

    ds = data.load("teacher", n_train=1300, n_valid=10, n_test=10)
    batches = Batches(ds.train, 1, 1, 20, np.float64)
    assert len(batches) > CHUNK  # two chunks, the second one short
    net, chunked = bound("dtp", spec, seed=1, lr_b=1e-2)
    chunked.inverse_phase(net, batches, 1)
    _, single = bound("dtp", spec, seed=1, lr_b=1e-2)
    for stream, x, _ in batches:
        single.inverse_step(net, x, 1, kernels.stream_id(stream, "inverse-phase"))
    for j in chunked.V:
        assert not np.allclose(chunked.V[j], bound("dtp", spec, seed=1)[1].V[j])
        np.testing.assert_allclose(chunked.V[j], single.V[j], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(chunked.c[j], single.c[j], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(chunked.diagnostics()["inverse_error"], single.diagnostics()["inverse_error"], rtol=1e-10)


@pytest.mark.parametrize(
    "spec, options, message",
    [
        ("4-3s", {}, "needs at least one hidden layer"),
        ("4-4n-4t-2s", {}, "which a local loss cannot train"),
        ("4-4t-4t-2s", {"schedule": "sometimes"}, "schedule must be"),
        ("4-4t-4t-2s", {"inverse_unit": "relu"}, "inverse_unit must be"),
        ("4-4t-4t-2s", {"eta_hat": -1.0}, "eta_hat must be a finite number > 0"),
        ("4-4t-4t-2s", {"eta_hat": math.inf}, "eta_hat must be a finite number > 0"),
        ("4-4t-4t-2s", {"lr_b": math.inf}, "lr_b must be a finite number > 0"),
        ("4-4t-4t-2s", {"sigma_tau": 0.0}, "sigma_tau must be positive"),
        ("4-4t-4t-2s", {"sigma": -0.5}, "sigma must be a finite number >= 0"),
    ],
)
def test_bad_dtp_setups_are_config_errors(spec, options, message):
    with pytest.raises(ConfigError, match=message):
        bound("dtp", spec, **options)


def test_inverse_training_feeds_a_stochastic_layer_s_sample_through_its_transmission():
    """f_j(h~) = sigmoid(t(sample of h~) W_j + b_j): with sign transmission, W_1 = I, b_1 = 0 and
    sigma = 0 the answers are sigmoid(+-1), never sigmoid(0) (the untransmitted 0 sample)."""
    net, method = bound("dtp", "4-3b:n-3b-3b-2s", sigma=0.0)
    net.layers[1].W[...] = np.eye(3)
    net.layers[1].b[...] = 0
    x = np.random.default_rng(0).normal(size=(50, 4))
    h_tilde, f_1 = method.inverse_inputs(net, x, seed=0, streams=[7])[1]
    assert np.all((h_tilde > 0) & (h_tilde < 1))
    np.testing.assert_allclose(np.unique(np.round(f_1, 12)), 1 / (1 + np.exp([1.0, -1.0])))


@pytest.mark.parametrize("slope", [1.0, 2.0])
@pytest.mark.parametrize("spec", ["6-5b-4b-2s", "6-5b-4b-3b-2s", "6-5t-4t-3t-2s", "6-5b-4t-3b-2s"])
def test_inverse_inputs_corrupt_the_values_of_a_forward_pass_on_the_same_streams(spec, slope):
    """With sigma = 0, h~ for inverse j is v_{j-1} of the training forward pass with the same
    streams (input noise and samples of the layers below), the layer below the top one included
    (whose value the inverse phase computes without drawing its sample), at the network's slope;
    f_j(h~) is layer j's value on a sample of h~ (on h~ itself below a deterministic layer)."""
    net, method = bound("dtp", spec, sigma=0.0)
    net = Network(net.layers, input_noise=0.3, slope=slope)
    rng = np.random.default_rng(1)
    for layer in net.layers:
        layer.b[...] = rng.normal(size=layer.b.shape)
    x = rng.normal(size=(40, 6))
    trace = net.forward(x, seed=4, stream=[9])
    pairs = method.inverse_inputs(net, x, seed=4, streams=[9])
    assert sorted(pairs) == list(range(1, len(net.layers) - 1))
    for j, (h_tilde, f_j) in pairs.items():
        np.testing.assert_array_equal(h_tilde, trace.p[j - 1])
        below, layer = net.layers[j - 1], net.layers[j]
        fed = kernels.bernoulli(h_tilde, 4, kernels.derive([9], "inverse-sample", j), dtype=np.float64) if below.stochastic else h_tilde
        a = fed @ layer.W.astype(np.float64) + layer.b
        expected = 1 / (1 + np.exp(-slope * a)) if layer.stochastic else np.tanh(a)
        np.testing.assert_allclose(f_j, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("schedule, expected", [("alternating", "iiifff"), ("parallel", "ififif")])
def test_schedules_order_inverse_and_forward_steps(schedule, expected):
    """alternating: every inverse step of the epoch, then every forward step; parallel: per
    mini-batch, the inverse step, then the forward step (3 mini-batches here)."""
    ds = data.load("teacher", n_train=60, n_valid=10, n_test=10)
    net, dtp = bound("dtp", "8-6t-6t-3s", schedule=schedule)
    steps = []
    real_inverse, real_forward = dtp.inverse_descent, dtp.forward_step
    dtp.inverse_descent = lambda pairs: (steps.append("i"), real_inverse(pairs))[1]
    dtp.forward_step = lambda *args: (steps.append("f"), real_forward(*args))[1]
    dtp.train_epoch(net, Batches(ds.train, 1, 0, 20, np.float64), 0, 1)
    assert "".join(steps) == expected


def test_stochastic_dtp_update_by_hand():
    """Bernoulli layers (the paper's stochastic formulation), written out in NumPy: the first target
    on the sample, moved to probability space (v_hat_1 = p_1 - eta_hat dL/dh_1), the difference
    correction on probabilities, each layer descending ||p_j - v_hat_j||^2 / B through
    p_j (1 - p_j) with its sampled input held fixed, the output layer on L."""
    net, dtp = bound("dtp", "5-6b-7b-3s", eta_hat=0.7)
    x, y = batch(net, n=8)
    trace = net.forward(x, seed=3, stream=4)
    (W0, b0), (W1, b1), (W2, b2) = [(layer.W, layer.b) for layer in net.layers]
    p0, h0, p1, h1 = trace.p[0], trace.h[0], trace.p[1], trace.h[1]
    logits = h1 @ W2 + b2
    softmax = np.exp(logits - logits.max(axis=1, keepdims=True))
    softmax /= softmax.sum(axis=1, keepdims=True)
    grad_a2 = (softmax - np.eye(3)[y]) / len(x)  # dL/da_2, L the batch mean of -log softmax_y
    v_hat1 = p1 - 0.7 * (grad_a2 @ W2.T)
    g = lambda v: np.tanh(v @ dtp.V[1] + dtp.c[1])  # noqa: E731
    v_hat0 = p0 + g(v_hat1) - g(p1)
    grad_a1 = 2 / len(x) * (p1 - v_hat1) * p1 * (1 - p1)
    grad_a0 = 2 / len(x) * (p0 - v_hat0) * p0 * (1 - p0)
    expected = [(x.T @ grad_a0, grad_a0.sum(0)), (h0.T @ grad_a1, grad_a1.sum(0)), (h1.T @ grad_a2, grad_a2.sum(0))]
    for (dW, db), (eW, eb) in zip(dtp.update(net, x, y, seed=3, stream=4), expected):
        np.testing.assert_allclose(dW, eW, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(db, eb, rtol=1e-12, atol=1e-15)


def test_stochastic_sign_dtp_update_and_inverse_inputs_by_hand():
    """Stochastic sign layers: the targets live in the space of the means m_j = 2 p_j - 1
    (v_hat_1 = m_1 - eta_hat dL/dh_1, v_hat_0 = m_0 + g(v_hat_1) - g(m_1)), each layer descends
    ||m_j - v_hat_j||^2 / B through dm_j/da_j = 2 k p_j (1 - p_j); the inverse is trained on
    h~ = m_0 + eps and feeds layer 1 a sample of +-1 with P(+1) = (h~ + 1) / 2."""
    net, dtp = bound("dtp", "5-6p-7p-3s", eta_hat=0.7, sigma=0.2)
    net = net.replace(slope=1.3)
    x, y = batch(net, n=8)
    trace = net.forward(x, seed=3, stream=4)
    (W0, b0), (W1, b1), (W2, b2) = [(layer.W, layer.b) for layer in net.layers]
    p0, h0, p1, h1 = trace.p[0], trace.h[0], trace.p[1], trace.h[1]
    m0, m1 = 2 * p0 - 1, 2 * p1 - 1
    logits = h1 @ W2 + b2
    softmax = np.exp(logits - logits.max(axis=1, keepdims=True))
    softmax /= softmax.sum(axis=1, keepdims=True)
    grad_a2 = (softmax - np.eye(3)[y]) / len(x)
    v_hat1 = m1 - 0.7 * (grad_a2 @ W2.T)
    g = lambda v: np.tanh(v @ dtp.V[1] + dtp.c[1])  # noqa: E731
    v_hat0 = m0 + g(v_hat1) - g(m1)
    grad_a1 = 2 / len(x) * (m1 - v_hat1) * 2 * 1.3 * p1 * (1 - p1)
    grad_a0 = 2 / len(x) * (m0 - v_hat0) * 2 * 1.3 * p0 * (1 - p0)
    expected = [(x.T @ grad_a0, grad_a0.sum(0)), (h0.T @ grad_a1, grad_a1.sum(0)), (h1.T @ grad_a2, grad_a2.sum(0))]
    for (dW, db), (eW, eb) in zip(dtp.update(net, x, y, seed=3, stream=4), expected):
        np.testing.assert_allclose(dW, eW, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(db, eb, rtol=1e-12, atol=1e-15)
    h_tilde, f_1 = dtp.inverse_inputs(net, x, seed=3, streams=[4])[1]
    eps = kernels.normal(m0.shape, 3, kernels.derive([4], "inverse-noise", 1), np.float64)
    np.testing.assert_allclose(h_tilde, m0 + 0.2 * eps, rtol=1e-12, atol=1e-15)
    sample = 2 * kernels.bernoulli((h_tilde + 1) / 2, 3, kernels.derive([4], "inverse-sample", 1), dtype=np.float64) - 1
    np.testing.assert_allclose(f_1, 2 / (1 + np.exp(-1.3 * (sample @ W1 + b1))) - 1, rtol=1e-12, atol=1e-15)


def test_diagnostics_values_by_hand():
    """One inverse step, then one forward step, on a tanh net: inverse_error = mean over rows of
    ||g_j(f_j(h~)) - h~||^2 (measured before the step), target_distance = mean over rows of
    ||h_j - v_hat_j||, bp_angle = the angle (degrees) between a layer's DTP update and its
    back-prop gradient on the same batch."""
    net, dtp = bound("dtp", "5-6t-7t-4t-3s")
    x, y = batch(net, n=8)
    pairs = dtp.inverse_inputs(net, x, 5, [6])  # what inverse_step(net, x, 5, 6) trains on
    inverse_error = {j: ((dtp.g(j, v_j) - h_tilde) ** 2).sum(axis=1).mean() for j, (h_tilde, v_j) in pairs.items()}
    dtp.inverse_step(net, x, 5, 6)
    trace = net.forward(x, seed=5, stream=7)
    v_hat = dtp.targets(net, trace, y)
    update = copy.deepcopy(dtp).update(net, x, y, 5, 7)  # a copy: update() counts into the diagnostics too
    exact = backward(net, trace, net.output_grad(trace, y))
    dtp.forward_step(net, MiniBatch(7, x, y), 5)
    d = dtp.diagnostics()
    for j, error in inverse_error.items():
        assert d["inverse_error"][j] == pytest.approx(error, rel=1e-12)
    for j in range(dtp.top + 1):
        assert d["target_distance"][j] == pytest.approx(np.linalg.norm(trace.p[j] - v_hat[j], axis=1).mean(), rel=1e-12)
    for j, ((dW, db), (eW, eb)) in enumerate(zip(update, exact)):
        u, v = np.concatenate([dW.ravel(), db]), np.concatenate([eW.ravel(), eb])
        angle = math.degrees(math.acos(u @ v / (np.linalg.norm(u) * np.linalg.norm(v))))
        assert d["bp_angle"][j] == pytest.approx(angle, rel=1e-9)
    assert d["bp_angle"][-1] == pytest.approx(0, abs=1e-6)  # the output layer descends L itself


def test_a_sign_reading_inverse_by_hand():
    """The paper's discrete net reads its inverses through sign (`inverse_transmission = "sign"`):
    g_j(v) = tanh(sign(v) V_j + c_j), and one SGD inverse step moves V_j by
    -lr sign(v_j)^T dz and c_j by -lr sum(dz), dz = (2/B) (r - h~) (1 - r^2), r = g_j(v_j)."""
    net = Network.from_spec("4-3t:n-3t-2s", seed=1, dtype=np.float64)
    dtp = methods.get("dtp", inverse_transmission="sign", optimizer="sgd", lr_b=0.1)
    dtp.bind(net, seed=2)
    rng = np.random.default_rng(3)
    v, h_tilde = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    V, c = dtp.V[1].copy(), dtp.c[1].copy()
    signs = np.where(v > 0, 1.0, -1.0)
    r = np.tanh(signs @ V + c)
    np.testing.assert_allclose(dtp.g(1, v), r, rtol=1e-12)
    dz = (2 / 5) * (r - h_tilde) * (1 - r * r)
    dtp.inverse_descent({1: (h_tilde, v)})
    np.testing.assert_allclose(dtp.V[1], V - 0.1 * signs.T @ dz, rtol=1e-12)
    np.testing.assert_allclose(dtp.c[1], c - 0.1 * dz.sum(axis=0), rtol=1e-12)
