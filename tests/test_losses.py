"""The losses' totals and the labels the nll output kernels (`kernels.fused.nll_gradient`,
`nll_totals`) take; the nll gradient against its NumPy reference is in tests/kernels/test_fused.py."""
import numpy as np
import pytest

from stochtp import losses, units


def softmax_batch(rng, dtype, batch=37, classes=10):
    return units.softmax(rng.normal(scale=3.0, size=(batch, classes)).astype(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nll_totals_are_the_sums_of_the_per_example_losses_and_errors(dtype):
    """Ties go to the first largest entry and NaN to the first NaN, as NumPy's argmax; a zero
    probability of the label costs -log(1e-30), not infinity."""
    rng = np.random.default_rng(4)
    h = softmax_batch(rng, dtype)
    y = rng.integers(0, 10, len(h))
    h[0] = 0.1  # a tie of every class: class 0 is predicted
    y[0], y[1] = 0, 3
    h[1, 3] = 0  # the label impossible
    h[2, 5], y[2] = np.nan, 5  # NaN: the prediction is the first NaN, here the label
    h[3, [2, 6]], y[3] = np.nan, 6  # the first NaN is not the label
    loss_sum, n_errors = losses.totals("nll", h, y)
    expected_loss = losses.per_example("nll", h, y).astype(np.float64)
    assert np.isnan(loss_sum) and n_errors == losses.errors("nll", h, y).sum()
    keep = ~np.isnan(expected_loss)
    finite_sum, _ = losses.totals("nll", h[keep], y[keep])
    assert finite_sum == pytest.approx(expected_loss[keep].sum(), rel=1e-6)
    assert losses.errors("nll", h[:4], y[:4]).tolist() == [0.0, 1.0, 0.0, 1.0]


def test_mse_totals_are_the_summed_squared_errors_and_the_rows_off_by_more_than_a_half():
    h = np.array([[0.2, 0.9], [0.3, 0.0], [1.0, 1.0]])
    y = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 0.4]])
    loss_sum, n_errors = losses.totals("mse", h, y)
    assert loss_sum == pytest.approx(0.04 + 0.01 + 0.49 + 0.36) and n_errors == 2.0


@pytest.mark.parametrize("labels", [[0, 1, 10], [-1, 0, 1], [0, 1], [0.0, 1.0, 2.0]])
def test_nll_kernels_refuse_labels_that_are_not_a_class_of_each_row(labels):
    """NumPy's fancy indexing raised (or wrapped -1 around to the last class); the kernels, which
    index unchecked, refuse them instead of reading outside the output."""
    h = softmax_batch(np.random.default_rng(6), np.float32, batch=3)
    y = np.array(labels)
    for call in (lambda: losses.grad_output("nll", h, y), lambda: losses.totals("nll", h, y)):
        with pytest.raises(ValueError, match="class label"):
            call()
