"""Back-propagation and the shared backward pass that straight-through reuses.

`backward` runs the chain rule from the output pre-activation down, with each layer's
d h / d a and d t(h) / d h given by its unit's `derivative` — the true derivative for `bp`, a
surrogate for `st`. Where the true derivative of a discrete unit is zero, everything below
gets a zero gradient: only layers above the first discrete one learn (the paper's baseline 1).
"""
import numpy as np

from .. import units
from .base import GradientMethod
from .registry import register


def backward(net, trace, grad_a_top, surrogate=None, bottom=0, injected=None):
    """Per-layer (dW, db) of the loss whose gradient w.r.t. the top pre-activation is `grad_a_top`.

    `injected` maps a layer index to a dL/da that replaces the chain rule at that layer (the
    score-function estimators inject their estimates at the stochastic layers, where the
    pathwise derivative is zero). Layers below `bottom` are not visited (their entries are None).
    The product that carries the gradient into layer i - 1 is taken only where it is used: not
    where that layer passes no gradient on (`Layer.passes_gradient`; it and the layers below it
    then get none, unless one is injected lower down) nor where `injected` replaces it.
    `methods.base.backward_flops` counts the products taken.
    """
    injected = {} if injected is None else injected
    grads = [None] * len(net.layers)
    grad_a = grad_a_top
    for i in range(len(net.layers) - 1, bottom - 1, -1):
        layer = net.layers[i]
        if i in injected:
            grad_a = injected[i]
        if grad_a is None:
            grads[i] = (np.zeros_like(layer.W), np.zeros_like(layer.b))
            continue
        grads[i] = (trace.input_of(i).T @ grad_a, grad_a.sum(axis=0))  # dL/dW_i = t(h_{i-1})^T dL/da_i
        if i > bottom and i - 1 not in injected and net.layers[i - 1].passes_gradient(surrogate):
            grad_a = chain_below(net.layers[i - 1], trace, i - 1, grad_a @ layer.W.T, surrogate, net.slope)
        else:
            grad_a = None  # replaced by an injected gradient, zero, or not needed
    return grads


def chain_below(layer, trace, i, grad_out, surrogate=None, slope=1.0):
    """dL/da_i from dL/d t(h_i): through the transmission, then the unit; None when it is exactly zero."""
    dt_dh = units.transmission_derivative(layer.transmission, trace.h[i], surrogate)
    dh_da = layer.kind.derivative(trace.a[i], trace.h[i], trace.p[i], surrogate, slope)
    if dt_dh is None or dh_da is None:
        return None
    grad_h = grad_out if layer.transmission == "identity" else grad_out * dt_dh  # dL/dh_i = dL/dt_i * dt/dh (1 for identity)
    return grad_h * dh_da  # dL/da_i = dL/dh_i * dh/da


@register
class Backprop(GradientMethod):
    """Plain back-propagation with the true derivatives (zero through sign, step and samples)."""

    name = "bp"
    OPTIONS = {**GradientMethod.OPTIONS, "train_transmission": True}
    true_derivatives = True

    def estimate(self, net, batch, seed):
        trained = self.training_network(net)
        trace = batch.forward(trained, seed)
        return backward(trained, trace, trained.output_grad(trace, batch.y)), trace

    def flops_per_batch(self, net, batch):
        """A forward pass and back-propagation of the network it trains (`training_network`)."""
        return super().flops_per_batch(self.training_network(net), batch)

    def training_network(self, net):
        """`net`, or with train_transmission=False a view of it whose sign transmissions are
        identities, forward and backward (the paper's `paper-discrete-bp-cont`: trained without
        sign, so that every layer learns, tested with it). The parameters are shared."""
        return net if self.options["train_transmission"] else net.replace(transmission="identity")
