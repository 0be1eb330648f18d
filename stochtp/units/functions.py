"""Element-wise functions the units, transmissions and methods share."""
import numpy as np

from ..kernels import fused


def elementwise(kernel, a, *scalars):
    """A new array of kernel(a, *scalars) element-wise, in a's dtype (float64 for non-float a),
    the scalars converted to that dtype as NumPy would."""
    a = np.asarray(a)
    a = np.ascontiguousarray(a, dtype=a.dtype if a.dtype.kind == "f" else np.float64)
    out = np.empty_like(a)
    kernel(a.reshape(-1), out.reshape(-1), *(a.dtype.type(scalar) for scalar in scalars))
    return out


def tanh(a):
    """tanh(a) by NumPy, whose float32 loop is SIMD; float64 for non-float input."""
    return np.tanh(a)


def sign(h):
    """+1 where h > 0, else -1."""
    return elementwise(fused.sign, h)


def sigmoid(a):
    """1 / (1 + exp(-a)) by the fused kernel, the same function as the stochastic layers' probabilities."""
    return elementwise(fused.sigmoid, a)


def softmax(a):
    z = np.exp(a - a.max(axis=1, keepdims=True))
    z /= z.sum(axis=1, keepdims=True)
    return z


def sloped(a, slope):
    """slope * a in a's dtype (a itself for slope 1): what a stochastic unit's sigmoid reads."""
    return a if slope == 1.0 else a * a.dtype.type(slope)


def log_sigmoid(z):
    """log sigmoid(z), without overflow for large |z|."""
    return -np.logaddexp(0.0, -z)
