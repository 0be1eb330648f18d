"""Back-propagation (design section 6.1) and the shared backward pass that straight-through reuses.

`backward` runs the chain rule from the output pre-activation down, with each layer's
d h / d a and d t(h) / d h given by `units.derivative` — the true derivative for `bp`, a
surrogate for `st`. Where the true derivative of a discrete unit is zero, everything below
gets a zero gradient: only layers above the first discrete one learn (the paper's baseline 1).
"""
import contextlib

import numpy as np

from .. import units
from .base import GradientMethod
from .registry import register


def backward(net, trace, grad_a_top, surrogate=None, bottom=0, injected=None):
    """Per-layer (dW, db) of the loss whose gradient w.r.t. the top pre-activation is `grad_a_top`.

    `injected` maps a layer index to a dL/da that replaces the chain rule at that layer (the
    score-function estimators inject their estimates at the stochastic layers, where the
    pathwise derivative is zero). Layers below `bottom` are not visited (their entries are None).
    """
    grads = [None] * len(net.layers)
    grad_a = grad_a_top
    for i in range(len(net.layers) - 1, bottom - 1, -1):
        layer = net.layers[i]
        if injected is not None and i in injected:
            grad_a = injected[i]
        if grad_a is None:
            grads[i] = (np.zeros_like(layer.W), np.zeros_like(layer.b))
            continue
        grads[i] = (trace.input_of(i).T @ grad_a, grad_a.sum(axis=0))  # dL/dW_i = t(h_{i-1})^T dL/da_i
        if i > bottom:
            below = net.layers[i - 1]
            grad_a = chain_below(below, trace, i - 1, grad_a @ layer.W.T, surrogate, net.slope)
    return grads


def chain_below(layer, trace, i, grad_out, surrogate=None, slope=1.0):
    """dL/da_i from dL/d t(h_i): through the transmission, then the unit; None when it is exactly zero."""
    dt_dh = units.transmission_derivative(layer.transmission, trace.h[i], surrogate)
    dh_da = units.derivative(layer.unit, trace.a[i], trace.h[i], trace.p[i], surrogate, slope)
    if dt_dh is None or dh_da is None:
        return None
    grad_h = grad_out if layer.transmission == "identity" else grad_out * dt_dh  # dL/dh_i = dL/dt_i * dt/dh (1 for identity)
    return grad_h * dh_da  # dL/da_i = dL/dh_i * dh/da


@register
class Backprop(GradientMethod):
    """Plain back-propagation with the true derivatives (zero through sign, step and samples)."""

    name = "bp"
    OPTIONS = {**GradientMethod.OPTIONS, "train_transmission": True}

    def estimate(self, net, x, y, seed, stream):
        with self._training_transmissions(net):
            trace = net.forward(x, seed, stream)
            return backward(net, trace, net.output_grad(trace, y)), trace

    @contextlib.contextmanager
    def _training_transmissions(self, net):
        """With train_transmission=False the sign transmissions are identities while a mini-batch
        trains, forward and backward (the paper's `paper-discrete-bp-cont`: trained without sign,
        so that every layer learns, tested with it); otherwise nothing changes."""
        if self.options["train_transmission"]:
            yield
            return
        saved = [layer.transmission for layer in net.layers]
        for layer in net.layers:
            layer.transmission = "identity"
        try:
            yield
        finally:
            for layer, transmission in zip(net.layers, saved):
                layer.transmission = transmission
