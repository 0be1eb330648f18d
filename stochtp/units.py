"""Unit types and transmissions (design section 5): forward maps, true derivatives, ST surrogates.

A unit maps a layer's pre-activation `a` to its value `h`. Units with no useful derivative
(`sign`, `step`, `bernoulli`) have a true derivative of zero almost everywhere; straight-through
training replaces it by a *surrogate* (section 6.3). A transmission maps a layer's value into
the next layer (`identity`, or `sign` for the discrete network of the paper).
"""
import numpy as np

from . import kernels
from .kernels import fused
from .errors import ConfigError

UNIT_LETTERS = {
    "l": "identity",
    "t": "tanh",
    "g": "sigmoid",
    "r": "relu",
    "n": "sign",
    "h": "step",
    "b": "bernoulli",
    "s": "softmax",
}
UNITS = tuple(UNIT_LETTERS.values())
DISCRETE_UNITS = ("sign", "step", "bernoulli")
TRANSMISSIONS = ("identity", "sign")
SURROGATES = {
    "bernoulli": ("sigmoid", "identity"),
    "sign": ("identity", "clipped", "tanh"),
    "step": ("identity", "clipped", "tanh"),
}


def check_unit(unit):
    if unit not in UNITS:
        raise ConfigError(f"unknown unit {unit!r}; known units: {', '.join(UNITS)}")
    return unit


def _elementwise(kernel, a, *scalars):
    """A new array of kernel(a, *scalars) element-wise, in a's dtype (float64 for non-float a),
    the scalars converted to that dtype as NumPy would."""
    a = np.asarray(a)
    a = np.ascontiguousarray(a, dtype=a.dtype if a.dtype.kind == "f" else np.float64)
    out = np.empty_like(a)
    kernel(a.reshape(-1), out.reshape(-1), *(a.dtype.type(scalar) for scalar in scalars))
    return out


def tanh(a):
    """tanh(a) by NumPy, whose float32 loop is SIMD (3x the Numba polynomial kernel stochtp had,
    on the AVX-512 test machine); float64 for non-float input."""
    return np.tanh(a)


def sign(h):
    """+1 where h > 0, else -1."""
    return _elementwise(fused.sign, h)


def sigmoid(a):
    """1 / (1 + exp(-a)) by the fused kernel, the same function as the Bernoulli layers' probabilities."""
    return _elementwise(fused.sigmoid, a)


def softmax(a):
    z = np.exp(a - a.max(axis=1, keepdims=True))
    z /= z.sum(axis=1, keepdims=True)
    return z


def _sloped(a, slope):
    """slope * a in a's dtype (a itself for slope 1): what a Bernoulli unit's sigmoid reads."""
    return a if slope == 1.0 else a * a.dtype.type(slope)


def bernoulli_probability(a, slope=1.0):
    """sigmoid(slope * a): a Bernoulli unit's firing probability, the p of `activate`, without a draw."""
    return sigmoid(_sloped(a, slope))


def activate(unit, a, seed=0, stream=0, slope=1.0):
    """Forward map of `unit`: returns (h, p), p = sigmoid(slope * a) for `bernoulli` and h itself otherwise."""
    if unit == "bernoulli":
        p, h = kernels.sigmoid_bernoulli(_sloped(a, slope), seed, stream)
        return h, p
    if unit == "identity":
        h = a
    elif unit == "tanh":
        h = tanh(a)
    elif unit == "sigmoid":
        h = sigmoid(a)
    elif unit == "relu":
        h = np.maximum(a, 0)
    elif unit == "sign":
        h = sign(a)
    elif unit == "step":
        h = (a > 0).astype(a.dtype)
    elif unit == "softmax":
        h = softmax(a)
    else:
        raise ConfigError(f"unknown unit {unit!r}")
    return h, h


def transmit(transmission, h):
    """The value a layer sends to the next one."""
    if transmission == "identity":
        return h
    if transmission == "sign":
        return sign(h)
    raise ConfigError(f"unknown transmission {transmission!r}; known: {', '.join(TRANSMISSIONS)}")


def surrogate_derivative(surrogate, a, p, slope=1.0):
    """d h / d a that straight-through uses in place of the true zero derivative (section 6.3)."""
    if surrogate == "sigmoid":
        return _elementwise(fused.sigmoid_slope, p, slope)  # sigma'(k a) = k p (1 - p) with p = sigma(k a)
    if surrogate == "identity":
        return np.ones_like(a)
    if surrogate == "clipped":
        return (np.abs(a) <= 1).astype(a.dtype)
    if surrogate == "tanh":
        return 1 - np.tanh(a) ** 2
    raise ConfigError(f"unknown surrogate {surrogate!r}; known: sigmoid, identity, clipped, tanh")


def derivative(unit, a, h, p, surrogate=None, slope=1.0):
    """d h / d a for back-propagation, or None where it is exactly zero.

    Differentiable units give their true derivative. Discrete units give None (true zero
    derivative, the reference "baseline 1") unless a straight-through `surrogate` is named.
    """
    if unit in DISCRETE_UNITS:
        return None if surrogate is None else surrogate_derivative(surrogate, a, p, slope)
    if unit == "identity":
        return np.ones_like(a)
    if unit == "tanh":
        return 1 - h * h
    if unit == "sigmoid":
        return h * (1 - h)
    if unit == "relu":
        return (a > 0).astype(a.dtype)
    raise ConfigError(f"unit {unit!r} has no element-wise derivative")


def transmission_derivative(transmission, h, surrogate=None):
    """d t(h) / d h, or None where it is exactly zero (sign without a surrogate)."""
    if transmission == "identity":
        return 1
    if surrogate is None:
        return None
    return surrogate_derivative(surrogate, h, h)
