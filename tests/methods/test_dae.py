"""The denoising auto-encoder's methods (docs/concepts.md): DTP's encoder target against a hand
computation, back-propagation against central finite differences in float64, the tied weights'
combined update, and the networks the methods refuse."""
import numpy as np
import pytest

from stochtp import Network, methods
from stochtp.errors import ConfigError
from stochtp.network import Layer


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def tiny_autoencoder(tied=True):
    """A 3-2g-3g auto-encoder with written-out weights, float64, no input noise."""
    W = np.array([[0.5, -1.0], [1.5, 0.25], [-0.5, 0.75]])
    b, c = np.array([0.1, -0.2]), np.array([0.3, 0.0, -0.3])
    decoder_W = W.T.copy() if tied else np.array([[1.0, -0.5, 0.25], [0.5, 2.0, -1.0]])
    return Network([Layer(W.copy(), b, "g"), Layer(decoder_W, c, "g")])


def test_dtp_encoder_target_and_directions_by_hand():
    net = tiny_autoencoder()
    method = methods.get("dae-dtp")
    method.bind(net)
    x = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.5]])
    W, b, c = net.layers[0].W, net.layers[0].b, net.layers[1].b
    h = sigmoid(x @ W + b)  # no noise: x~ = x
    z = sigmoid(h @ W.T + c)
    h_target = h + sigmoid(x @ W + b) - sigmoid(z @ W + b)  # h^ = h + f(x) - f(z)
    delta_h = 2 / 2 * (h - h_target) * h * (1 - h)  # d/da of mean ||f(x~) - h^||^2, B = 2
    delta_z = 2 / 2 * (z - x) * z * (1 - z)  # d/da of mean ||z - x||^2
    (dW, db), (dW_decoder, dc) = method.update(net, x, None, seed=0)
    np.testing.assert_allclose(dW, x.T @ delta_h, rtol=1e-12)
    np.testing.assert_allclose(db, delta_h.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(dW_decoder, h.T @ delta_z, rtol=1e-12)
    np.testing.assert_allclose(dc, delta_z.sum(axis=0), rtol=1e-12)
    # the encoder's target moves h by f(x) - f(z): here by what the encoder sees of z's error
    np.testing.assert_allclose(h - h_target, sigmoid(z @ W + b) - sigmoid(x @ W + b), rtol=1e-12)


def test_dtp_leaves_the_encoder_alone_where_the_decoder_reconstructs_exactly():
    """z = x makes f(z) = f(x), so h^ = h exactly: the encoder's local loss is zero and so is its step."""
    net = tiny_autoencoder(tied=False)
    method = methods.get("dae-dtp", tied=False)
    method.bind(net)
    x = np.array([[0.2, 0.9, 0.4]])
    net.layers[1].W[...] = 0.0
    net.layers[1].b[...] = np.log(x[0] / (1 - x[0]))  # z = sigmoid(c) = x, whatever h
    (dW, db), (dW_decoder, dc) = method.update(net, x, None, seed=0)
    assert not dW.any() and not db.any()
    np.testing.assert_allclose(dW_decoder, 0.0, atol=1e-15)  # z = x up to rounding
    np.testing.assert_allclose(dc, 0.0, atol=1e-15)


def reconstruction_loss(net, x):
    return float(((net.forward(x, train=False).output - x) ** 2).sum(axis=1).mean())


def finite_difference(net, x, arrays, eps=1e-6):
    grads = []
    for array in arrays:
        g = np.zeros_like(array)
        for idx in np.ndindex(array.shape):
            old = array[idx]
            array[idx] = old + eps
            up = reconstruction_loss(net, x)
            array[idx] = old - eps
            down = reconstruction_loss(net, x)
            array[idx] = old
            g[idx] = (up - down) / (2 * eps)
        grads.append(g)
    return grads


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("seed", [0, 1])
def test_bp_matches_finite_differences(tied, seed):
    """With tied weights the update of W is the encoder's gradient plus the decoder's, transposed:
    the gradient of the loss with respect to the one shared W."""
    rng = np.random.default_rng(seed)
    net = Network.from_spec("5-4g-5g", seed=seed, dtype=np.float64)
    method = methods.get("dae-bp", tied=tied)
    method.bind(net, seed)
    for layer in net.layers:
        layer.b[:] = rng.normal(0, 0.5, layer.b.shape)
    x = rng.random((7, 5))
    free = method.free_parameters(net)
    assert len(free) == (3 if tied else 4)
    for got, expected in zip(method.free_gradients(method.update(net, x, None, seed=0)), finite_difference(net, x, free)):
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9)


def test_tied_weights_are_one_array_that_both_updates_move():
    net = Network.from_spec("5-4g-5g", seed=0, dtype=np.float64)
    method = methods.get("dae-dtp", lr=0.01)
    method.bind(net)
    assert np.shares_memory(net.layers[1].W, net.layers[0].W) and (net.layers[1].W == net.layers[0].W.T).all()
    before = net.layers[0].W.copy()
    method.train_epoch(net, [(0, np.random.default_rng(0).random((10, 5)), np.zeros(10, int))], seed=0, epoch=1)
    assert not (net.layers[0].W == before).all() and (net.layers[1].W == net.layers[0].W.T).all()


@pytest.mark.parametrize("spec", ["5-4g-4g", "5-4t-5g", "5-4g-5s", "5-4g-4g-5g", "5-4g:n-5g"])
@pytest.mark.parametrize("name", ["dae-dtp", "dae-bp"])
def test_a_network_that_is_no_autoencoder_is_refused(spec, name):
    with pytest.raises(ConfigError, match="auto-encoder of sigmoid units"):
        methods.get(name).bind(Network.from_spec(spec))
