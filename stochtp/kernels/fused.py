"""Fused element-wise kernels for the training loop: one pass over memory instead of a chain of
NumPy temporaries. Each kernel's NumPy reference, `<kernel>_reference`, sits right after it in this
module, and the tests compare the two. The centred RMSprop kernels' reference is the
optimiser's own NumPy rule, `optim.CentredRMSprop.reference_update`.
`error_model="numpy"` (IEEE results instead of Python's ZeroDivisionError check) lets the loops vectorise.
"""
import math

import numba
import numpy as np

from .sampling import run_tasks, sigmoid_tasks

_ONE = np.float32(1.0)  # keeps float32 arithmetic float32 (an integer 1 would make it float64)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def centred_rmsprop_step(param, grad, mean, mean_square, increment, lr, keep, take, eps, momentum):
    """Centred RMSprop with momentum on flat arrays, in place (`optim.CentredRMSprop`); scalars in param's dtype.

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


@numba.njit(cache=True, nogil=True, error_model="numpy")
def centred_rmsprop_steps(params, grads, means, mean_squares, increments, lr, keep, take, eps, momentum):
    """`centred_rmsprop_step` on every parameter, given as equal-length tuples of flat arrays: one
    call per optimiser step instead of one per parameter."""
    for i in range(len(params)):
        centred_rmsprop_step(params[i], grads[i], means[i], mean_squares[i], increments[i], lr, keep, take, eps, momentum)


@numba.njit(cache=True, nogil=True)
def add_to_rows(a, b):
    """a[r] += b for every row r of a 2-D array, in place: a layer's bias added to its product."""
    if b.shape[0] != a.shape[1]:
        raise ValueError("the bias needs one value per column of the product")
    for row in range(a.shape[0]):
        for k in range(a.shape[1]):
            a[row, k] += b[k]


@numba.njit(cache=True, nogil=True, error_model="numpy")
def local_target_gradient(v, v_hat, dv_da, scale, grad_a, grad_b):
    """grad_a = scale (v - v_hat) dv_da on (B, n) arrays and grad_b = its column sums, in place;
    returns the sum over rows of ||v - v_hat||.

    The gradient of a layer's local target loss ||v - v_hat||^2 (scale = 2 / B) w.r.t. its
    pre-activation and bias, and its target distance.
    """
    for row in range(v.shape[0]):
        for k in range(v.shape[1]):
            grad_a[row, k] = scale * (v[row, k] - v_hat[row, k]) * dv_da[row, k]
    column_sums(grad_a, grad_b)
    return row_distances(v, v_hat, True)


def local_target_gradient_reference(v, v_hat, dv_da, scale):
    """NumPy reference of `kernels.fused.local_target_gradient`: (scale (v - v_hat) dv_da, its column
    sums, sum of row norms of v - v_hat)."""
    diff = v - v_hat
    grad_a = scale * diff * dv_da
    return grad_a, grad_a.sum(axis=0), float(np.sqrt((diff * diff).sum(axis=1)).sum())


@numba.njit(cache=True, nogil=True, error_model="numpy")
def reconstruction_gradient(r, target, scale, through_tanh, grad_z, grad_c):
    """grad_z = scale (r - target), times (1 - r^2) if `through_tanh` (r = tanh(z)), on (B, n)
    arrays and grad_c = its column sums, in place; returns the sum of (r - target)^2.

    The gradient of an inverse's reconstruction loss ||r - target||^2 (scale = 2 / B) with
    respect to its pre-activation z and bias c, and the loss.
    """
    for row in range(r.shape[0]):
        for k in range(r.shape[1]):
            diff = r[row, k] - target[row, k]
            grad_z[row, k] = scale * diff * (_ONE - r[row, k] * r[row, k]) if through_tanh else scale * diff
    column_sums(grad_z, grad_c)
    return row_distances(r, target, False)


def reconstruction_gradient_reference(r, target, scale, through_tanh):
    """NumPy reference of `kernels.fused.reconstruction_gradient`: (d scaled ||r - target||^2 / dz, its
    column sums, ||r - target||^2)."""
    diff = r - target
    grad_z = scale * diff * (1 - r * r) if through_tanh else scale * diff
    return grad_z, grad_z.sum(axis=0), float((diff * diff).sum())


@numba.njit(inline="always", cache=True, nogil=True)
def column_sums(a, out):
    """out = a.sum(axis=0) of a (B, n) array, adding the rows in order: bit for bit NumPy's sum
    of a C-ordered array with more than one column (a single column NumPy sums pairwise)."""
    out[:] = 0
    if a.shape[0]:
        for k in range(a.shape[1]):  # element by element: an array assignment compiles a shape check and its message
            out[k] = a[0, k]
    for row in range(1, a.shape[0]):
        for k in range(a.shape[1]):
            out[k] += a[row, k]


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc"})
def row_distances(v, w, root):
    """Sum over the rows of (B, n) arrays of ||v_r - w_r|| (`root`) or ||v_r - w_r||^2: the
    diagnostics that go with the local and reconstruction gradients.

    The sums may be reassociated, so that they vectorise (a strict left-to-right float sum is
    bound by the adder's latency: 3x the time of the gradient itself); their last bits depend
    on the compiler, and nothing that training reads uses them.
    """
    total = 0.0
    for row in range(v.shape[0]):
        squares = 0.0
        for k in range(v.shape[1]):
            diff = v[row, k] - w[row, k]
            squares += diff * diff
        total += math.sqrt(squares) if root else squares
    return total


def sigmoid(a, out):
    """out = 1 / (1 + exp(-a)) on flat arrays, as the sigmoid-Bernoulli kernels compute it (a
    vectorised polynomial exp in float32, libm in float64); large arrays in parallel (DTP's
    inverse phase takes the probabilities of a chunk of 50 mini-batches at a time)."""
    run_tasks(sigmoid_tasks, a.size, a.size, a, out)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def sigmoid_slope(p, out, slope):
    """out = slope p (1 - p) on flat arrays: the derivative of sigmoid(slope a) given its value p
    (the straight-through surrogate of a Bernoulli sample); `slope` in p's dtype."""
    for i in range(p.size):
        out[i] = slope * p[i] * (_ONE - p[i])


@numba.njit(cache=True, nogil=True, error_model="numpy")
def sign(h, out):
    """out = +1 where h > 0, else -1 (sign(0) = -1, as everywhere in stochtp), on flat arrays."""
    for i in range(h.size):
        out[i] = 1.0 if h[i] > 0 else -1.0


def scaled_rows_reference(rows, scale):
    """NumPy reference of `kernels.fused.scaled_rows` (given the gathered rows): converted to
    scale's dtype, then scaled in it."""
    return np.multiply(rows, scale, dtype=scale.dtype)


@numba.njit(inline="always", cache=True, nogil=True)
def _scale_row(source, scale, out):
    for k in range(source.size):
        out[k] = source[k] * scale


@numba.njit(cache=True, nogil=True)
def _scaled_rows_tasks(first, stop, x, index, scale, out):
    """Rows first..stop-1 of `scaled_rows` (one row a task)."""
    for row in range(first, stop):
        _scale_row(x[index[row]], scale, out[row])
    return False


def scaled_rows(x, index, scale, out):
    """out[r] = x[index[r]] * scale: rows of raw pixels gathered, converted to out's dtype and
    scaled in one pass (NumPy takes three: the gather, the conversion, the product). `scale` is
    of out's dtype; `x` (N, d) and `out` (len(index), d) are C-contiguous and every index lies
    in [0, N) (the caller checks: the kernel does not). Large outputs are worked on in parallel.
    """
    run_tasks(_scaled_rows_tasks, index.size, out.size, x, index, scale, out)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def nll_gradient(h, y, grad):
    """grad = (h - onehot(y)) / B on a (B, n) softmax output `h` and B labels `y`, in place: the
    gradient of the mini-batch mean negative log-likelihood w.r.t. the output pre-activation."""
    _check_labels(h, y)
    batch = h.dtype.type(h.shape[0])
    for row in range(h.shape[0]):
        for k in range(h.shape[1]):
            grad[row, k] = (h[row, k] - _ONE if k == y[row] else h[row, k]) / batch


def nll_gradient_reference(h, y):
    """NumPy reference of `kernels.fused.nll_gradient`: (h - onehot(y)) / B."""
    g = h.copy()
    g[np.arange(len(y)), y] -= 1
    g /= len(y)
    return g


@numba.njit(cache=True, nogil=True, error_model="numpy")
def nll_totals(h, y, tiny):
    """(sum over rows of -log max(h[r, y_r], tiny), number of rows whose argmax is not y_r) for a
    (B, n) softmax output `h` and B labels `y`: a mini-batch's share of an epoch's training loss
    and error. The loss accumulates in float64; argmax as NumPy's (the first NaN, else the first
    largest entry)."""
    _check_labels(h, y)
    loss = 0.0
    errors = 0
    for row in range(h.shape[0]):
        loss -= math.log(max(np.float64(h[row, y[row]]), tiny))
        best = 0
        for k in range(1, h.shape[1]):
            if h[row, k] > h[row, best] or (math.isnan(h[row, k]) and not math.isnan(h[row, best])):
                best = k
        errors += best != y[row]
    return loss, errors


@numba.njit(inline="always", cache=True, nogil=True)
def _check_labels(h, y):
    """ValueError unless there is one label per row of h, each a column index of h (the nll
    kernels index with them, unchecked otherwise)."""
    if y.shape[0] != h.shape[0]:
        raise ValueError("need one class label per row of the output")
    for row in range(y.shape[0]):
        if not 0 <= y[row] < h.shape[1]:
            raise ValueError("class labels must lie in [0, number of classes)")
