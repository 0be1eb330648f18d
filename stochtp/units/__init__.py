"""Units and transmissions (docs/concepts.md, docs/extending.md).

A unit is one class registered under a spec letter (`base.register`); `get(name_or_letter)`
returns it. The families: `continuous` (identity, tanh, sigmoid, relu, softmax), `discrete`
(sign, step), `bernoulli` and `stochastic_sign`. A transmission maps a layer's value into the
next layer: `identity`, or `sign` (the sign unit's forward map) for the discrete network of the
paper.
"""
from ..errors import ConfigError
from . import continuous, discrete  # registers the units, in the order error messages list them
from . import bernoulli, stochastic_sign
from .base import StochasticUnit, Unit, get, register, registered
from .functions import sigmoid, sign, softmax, tanh

TRANSMISSIONS = ("identity", "sign")

__all__ = [
    "continuous", "discrete", "bernoulli", "stochastic_sign",  # the families (importing them registers their units)
    "StochasticUnit", "Unit", "get", "register", "registered",
    "sigmoid", "sign", "softmax", "tanh", "TRANSMISSIONS", "transmit", "transmission_derivative",
]


def transmit(transmission, h):
    """The value a layer sends to the next one: h, or the forward map of the transmission's unit."""
    if transmission == "identity":
        return h
    if transmission not in TRANSMISSIONS:
        raise ConfigError(f"unknown transmission {transmission!r}; known: {', '.join(TRANSMISSIONS)}")
    return get(transmission).forward(h)


def transmission_derivative(transmission, h, surrogate=None):
    """d t(h) / d h, or None where it is exactly zero (sign without a surrogate)."""
    if transmission == "identity":
        return 1
    return get(transmission).derivative(h, h, h, surrogate)
