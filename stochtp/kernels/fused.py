"""Fused element-wise kernels for the training loop: one pass over memory instead of a chain of
NumPy temporaries. Each has a NumPy reference in the module that uses it, and a test comparing both.
`error_model="numpy"` (IEEE results instead of Python's ZeroDivisionError check) lets the loops vectorise.
"""
import math

import numba


@numba.njit(cache=True, nogil=True, error_model="numpy")
def centred_rmsprop_step(param, grad, mean, mean_square, increment, lr, keep, take, eps, momentum):
    """Centred RMSprop with momentum on flat arrays, in place (design section 7); scalars in param's dtype.

    m <- keep m + take g; v <- keep v + take g^2 (keep = decay, take = 1 - decay);
    inc <- momentum inc - lr g / sqrt(v - m^2 + eps); theta <- theta + inc.
    """
    for i in range(param.size):
        g = grad[i]
        m = mean[i] * keep + g * take
        v = mean_square[i] * keep + (g * g) * take
        mean[i] = m
        mean_square[i] = v
        inc = increment[i] * momentum - (g / math.sqrt(v - m * m + eps)) * lr
        increment[i] = inc
        param[i] += inc
