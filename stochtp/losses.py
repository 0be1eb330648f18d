"""Output losses: summed over units, averaged over the mini-batch.

`nll` is the negative log-likelihood of a softmax output given integer labels; `mse` is the
squared error of any other output given target rows. Each returns the per-example loss and,
on request, the gradient of the mini-batch mean loss w.r.t. the output layer's pre-activation.
"""
import numpy as np

from .errors import ConfigError
from .kernels.fused import nll_gradient, nll_totals

LOSSES = ("nll", "mse")
_TINY = 1e-30


def per_example(loss, h, y):
    """Loss of each example, shape (B,). `h` is the output layer's value (softmax probabilities for nll)."""
    if loss == "nll":
        return -np.log(np.maximum(h[np.arange(len(y)), y], _TINY))
    if loss == "mse":
        return ((h - y) ** 2).sum(axis=1)
    raise ConfigError(f"unknown loss {loss!r}; known: {', '.join(LOSSES)}")


def grad_output(loss, h, y, dh_da=None):
    """Gradient of the mini-batch mean loss w.r.t. the output pre-activation.

    For nll with a softmax output this is (softmax - onehot) / B; for mse it is
    2 (h - y) / B times `dh_da`, the output unit's derivative (1 for identity).
    """
    batch = len(y)
    if loss == "nll":
        grad = np.empty_like(h)
        nll_gradient(h, _class_labels(y), grad)
        return grad
    if loss == "mse":
        g = (2.0 / batch) * (h - y)
        return g if dh_da is None else g * dh_da
    raise ConfigError(f"unknown loss {loss!r}; known: {', '.join(LOSSES)}")


def totals(loss, h, y):
    """(sum of the per-example losses, number of errors) of a mini-batch, as floats: what the
    training loss and error of an epoch sum (one kernel call for nll)."""
    if loss == "nll":
        loss_sum, n_errors = nll_totals(h, _class_labels(y), _TINY)
        return loss_sum, float(n_errors)
    return float(per_example(loss, h, y).sum()), float(errors(loss, h, y).sum())


def _class_labels(y):
    """`y` as an integer array, or ValueError (the nll kernels index with the labels)."""
    y = np.asarray(y)
    if y.dtype.kind not in "iu":
        raise ValueError(f"class labels must be integers, got {y.dtype}")
    return y


def errors(loss, h, y):
    """Per-example 0/1 classification error (nll); for mse outputs, the rounded output differs from y."""
    if loss == "nll":
        return (h.argmax(axis=1) != y).astype(np.float64)
    return (np.abs(h - y) > 0.5).any(axis=1).astype(np.float64)
