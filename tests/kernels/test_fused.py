"""The fused kernels (stochtp.kernels.fused) against their NumPy references, in the order of
fused.py: the centred RMSprop step, the DTP local-target and reconstruction gradients, the
sigmoid and sign units, the scaled rows of a data split's features, and the nll gradient."""
import numpy as np
import pytest
from kernel_statistics import SEED
from test_losses import softmax_batch

from stochtp import losses
from stochtp.data import Split
from stochtp.kernels import fused, sigmoid_bernoulli
from stochtp.kernels.fused import scaled_rows_reference


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_centred_rmsprop_kernel_matches_the_numpy_reference(dtype):
    """The Numba kernel the hot loop uses (one call for all parameters) and the ufunc chain compute
    the same update, step after step; so does a step whose gradients the kernel cannot take."""
    from stochtp.optim import CentredRMSprop

    rng = np.random.default_rng(5)
    shapes = [(30, 7), (7,), (7, 3)]
    fused_params = [rng.normal(size=shape).astype(dtype) for shape in shapes]
    reference_params = [param.copy() for param in fused_params]
    fused, reference = CentredRMSprop(fused_params, 0.01), CentredRMSprop(reference_params, 0.01)
    assert fused._flat is not None  # the parameters are ones the fused kernel takes
    scratch = [np.empty_like(param) for param in reference_params]
    for step in range(20):
        grads = [rng.normal(size=shape).astype(dtype) for shape in shapes]
        if step % 5 == 3:
            grads[0] = np.asfortranarray(grads[0])  # not C-contiguous: the whole step takes the NumPy path
        if step % 5 == 4:
            grads[1].flags.writeable = False  # read-only: another Numba type, so the NumPy path too
        fused.step(grads)
        for param, grad, state, buffer in zip(reference_params, grads, reference._state, scratch):
            reference.reference_update(param, grad, state, buffer)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    for fused_param, reference_param in zip(fused_params, reference_params):
        np.testing.assert_allclose(fused_param, reference_param, rtol=tolerance, atol=tolerance)
        assert fused_param.dtype == dtype


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-5), (np.float64, 1e-12)])
def test_fused_local_target_gradient_matches_its_numpy_reference(dtype, rtol):
    from stochtp.kernels.fused import local_target_gradient
    from stochtp.kernels.fused import local_target_gradient_reference

    rng = np.random.default_rng(3)
    v, v_hat, dv_da = (rng.random((37, 23)).astype(dtype) for _ in range(3))
    grad_a, grad_b = np.empty_like(v), np.empty(23, dtype)
    distance = local_target_gradient(v, v_hat, dv_da, dtype(2 / 37), grad_a, grad_b)
    expected_grad, expected_bias_grad, expected_distance = local_target_gradient_reference(v, v_hat, dv_da, dtype(2 / 37))
    np.testing.assert_allclose(grad_a, expected_grad, rtol=rtol)
    np.testing.assert_array_equal(grad_b, grad_a.sum(axis=0))  # the bias gradient: bit for bit NumPy's sum of grad_a
    np.testing.assert_allclose(grad_b, expected_bias_grad, rtol=rtol, atol=rtol)
    assert distance == pytest.approx(expected_distance, rel=rtol)


@pytest.mark.parametrize("through_tanh", [False, True])
@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-5), (np.float64, 1e-12)])
def test_fused_reconstruction_gradient_matches_its_numpy_reference(dtype, rtol, through_tanh):
    from stochtp.kernels.fused import reconstruction_gradient
    from stochtp.kernels.fused import reconstruction_gradient_reference

    rng = np.random.default_rng(4)
    r, target = (rng.uniform(-1, 1, (29, 31)).astype(dtype) for _ in range(2))
    grad_z, grad_c = np.empty_like(r), np.empty(31, dtype)
    squares = reconstruction_gradient(r, target, dtype(2 / 29), through_tanh, grad_z, grad_c)
    expected_grad, expected_bias_grad, expected_squares = reconstruction_gradient_reference(r, target, dtype(2 / 29), through_tanh)
    np.testing.assert_allclose(grad_z, expected_grad, rtol=rtol)
    np.testing.assert_array_equal(grad_c, grad_z.sum(axis=0))
    np.testing.assert_allclose(grad_c, expected_bias_grad, rtol=rtol, atol=rtol)
    assert squares == pytest.approx(expected_squares, rel=rtol)
    if through_tanh:  # the tanh's derivative is applied: not the plain difference
        assert not np.allclose(grad_z, reconstruction_gradient_reference(r, target, dtype(2 / 29), False)[0])


def test_fused_sigmoid_matches_numpy_and_is_the_sigmoid_bernoulli_probability():
    """units.sigmoid is the sigmoid-Bernoulli kernels' function: float32 relative error below 1e-6
    against float64 NumPy, float64 to the last bits, integers promoted to float64."""
    from stochtp import units

    a = np.concatenate([np.linspace(-80, 80, 200001), [-88.0, 88.0, 0.0]])
    expected = 1 / (1 + np.exp(-a))
    a32 = a.astype(np.float32)
    np.testing.assert_allclose(units.sigmoid(a32), 1 / (1 + np.exp(-a32.astype(np.float64))), rtol=1e-6, atol=0)
    np.testing.assert_allclose(units.sigmoid(a), expected, rtol=1e-15, atol=0)
    np.testing.assert_array_equal(units.sigmoid(a32.reshape(-1, 1)), sigmoid_bernoulli(a32.reshape(-1, 1), SEED)[0])
    assert units.sigmoid(np.array([0, 2])).dtype == np.float64


def test_fused_sign_is_plus_one_only_above_zero():
    from stochtp import units

    h = np.array([[0.0, -0.0, 1e-30, -1e-30], [3.0, -2.0, np.inf, -np.inf]], np.float32)
    np.testing.assert_array_equal(units.sign(h), np.where(h > 0, 1, -1).astype(np.float32))
    assert units.sign(h).dtype == np.float32 and units.sign(np.array([0, 2], np.uint8)).tolist() == [-1.0, 1.0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows", [7, 600])  # the calling thread's kernel, and the parallel one (>= 2^16 values)
def test_split_features_kernel_matches_numpy_reference(dtype, rows):
    rng = np.random.default_rng(3)
    split = Split(rng.integers(0, 256, (1000, 784), dtype=np.uint8), np.zeros(1000, dtype=np.int64), scale=1 / 255)
    index = rng.integers(0, 1000, rows)
    expected = scaled_rows_reference(split.x[index], np.dtype(dtype).type(split.scale))
    got = split.features(index, dtype)
    assert got.dtype == dtype and got.flags.c_contiguous
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("label_dtype", [np.int64, np.int32, np.uint8])
def test_nll_gradient_is_the_numpy_reference_bit_for_bit(dtype, label_dtype):
    rng = np.random.default_rng(3)
    h = softmax_batch(rng, dtype)
    y = rng.integers(0, 10, len(h)).astype(label_dtype)
    grad = losses.grad_output("nll", h, y)
    assert grad.dtype == dtype
    np.testing.assert_array_equal(grad, fused.nll_gradient_reference(h, y))
