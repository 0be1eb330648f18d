"""Exact oracle (docs/concepts.md): E[L] and its gradient for small stochastic networks.

Everything is summed over all configurations of the stochastic units, in float64, with no
sampling: the expectation is over the hidden units for the inputs given (no input noise).

Let s_1 < ... < s_K be the stochastic layers (n_k units in layer s_k). A stochastic unit's
value is a function of one bit (`units.StochasticUnit`), so level 0 holds the examples and
level k the 2^{n_k} bit configurations c of layer s_k, whose values `values(c)` the layer
above reads. Segment k is layers s_{k-1}+1 .. s_k: deterministic layers (any unit, sign
transmissions included), then the stochastic layer s_k, whose logits kappa a_{s_k}(r)
(kappa = `net.slope`) are a deterministic function of the state r of level k-1. The layers
above s_K form the top segment. So

    T_k[r, c] = P(h_{s_k} = c | r) = prod_j p_j(r)^{c_j} (1 - p_j(r))^{1 - c_j}
    pi_0 = I,    pi_k = pi_{k-1} T_k           pi_k[b, c] = P(level k = c | example b)
    V_K[b, c] = l(c, y_b),  V_{k-1} = V_k T_k^T    V_k[b, c] = E[l_b | level k = c]
    E[L] = 1/B sum_{b, c} pi_K[b, c] V_K[b, c]

and, exactly (the parameters of segment k enter only T_k, and dP(c | a)/da = kappa P(c | a) (c - p)):

    top segment: back-propagate sum_{b, c} pi_K[b, c] / B  dl(c, y_b)/da_out over the configurations;
    segment k:   back-propagate dE/da_{s_k}[r] = kappa sum_c T_k[r, c] U_k[r, c] (c - p(r)),
                 U_k = pi_{k-1}^T V_k / B, through the deterministic layers of the segment.

Every step is a matrix product over configurations (BLAS), so there is no per-configuration
loop to compile with Numba. Examples are processed in chunks so that no matrix holds more
than CHUNK_ENTRIES numbers (level 0 of a chunk is its examples).
"""
import numpy as np

from .errors import ConfigError
from .methods.backprop import backward
from .network import Layer, Network
from .units import transmit

MAX_BITS = 20
CHUNK_ENTRIES = 1 << 22
MAX_CHUNK = 2048


def expected_loss(net, x, y, max_bits=MAX_BITS):
    """E[L]: the mini-batch mean loss averaged over every configuration of the stochastic units."""
    return expectation(net, x, y, max_bits, with_gradient=False)[0]


def expected_gradient(net, x, y, max_bits=MAX_BITS):
    """d E[L] / d(W_i, b_i) for every layer, as [(dW, db), ...] in float64 (a method's layout)."""
    return expectation(net, x, y, max_bits)[1]


def expectation(net, x, y, max_bits=MAX_BITS, with_gradient=True):
    """(E[L], gradient or None); ConfigError for a network over `max_bits` stochastic units."""
    stochastic = check_network(net, max_bits)
    net = float64_copy(net)
    x, y = net.check_batch(x, y)
    x = x.astype(np.float64)
    if len(x) == 0:
        raise ValueError("need a non-empty batch")
    widest = max((2 ** net.layers[s].n_out for s in stochastic), default=1)
    chunk = max(1, min(MAX_CHUNK, CHUNK_ENTRIES // widest))  # bounds chunk x 2^n and chunk x chunk matrices
    loss_sum, grads = 0.0, None
    for start in range(0, len(x), chunk):
        chunk_loss, chunk_grads = _summed(net, stochastic, x[start : start + chunk], y[start : start + chunk], with_gradient)
        loss_sum += chunk_loss
        if with_gradient:
            grads = chunk_grads if grads is None else [(W + dW, b + db) for (W, b), (dW, db) in zip(grads, chunk_grads)]
    if with_gradient:
        grads = [(dW / len(x), db / len(x)) for dW, db in grads]
    return loss_sum / len(x), grads


def check_network(net, max_bits):
    """Indices of the stochastic layers, or ConfigError when the network cannot be enumerated."""
    if isinstance(max_bits, bool) or not isinstance(max_bits, (int, np.integer)) or max_bits < 0:
        raise ConfigError(f"max_bits must be a non-negative integer, got {max_bits!r}")
    stochastic = [i for i, layer in enumerate(net.layers) if layer.stochastic]
    bits = sum(net.layers[i].n_out for i in stochastic)
    if bits > max_bits:
        raise ConfigError(
            f"the exact oracle would enumerate 2^{bits} configurations of the {bits} stochastic units of "
            f"{net.spec}; the limit is max_bits = {max_bits} (2^{max_bits} configurations)"
        )
    if net.layers[-1].stochastic:
        raise ConfigError(f"the exact oracle needs a non-stochastic output layer; {net.spec} ends with {net.layers[-1].unit} units")
    return stochastic


def float64_copy(net):
    layers = [Layer(layer.W.astype(np.float64), layer.b.astype(np.float64), layer.unit, layer.transmission) for layer in net.layers]
    return Network(layers, slope=net.slope)


def segment(net, lo, hi):
    """Layers lo..hi as a network of their own (sharing the arrays), to run and back-propagate over states."""
    return Network(net.layers[lo : hi + 1], slope=net.slope)


def all_configurations(n):
    """The 2^n binary vectors of length n as rows, float64; row c has bit j of c in column j."""
    return ((np.arange(2**n)[:, None] >> np.arange(n)) & 1).astype(np.float64)


def _summed(net, stochastic, x, y, with_gradient):
    """Sum over the examples of E[l_b] and of its gradient (module docstring)."""
    states, pi, levels, lo = x, np.eye(len(x)), [], 0
    for s in stochastic:
        seg = segment(net, lo, s)
        trace = seg.forward(states, train=False)
        unit = net.layers[s].kind
        log_p, log_q = unit.log_probabilities(trace.a[-1], net.slope)  # log p, log(1 - p)
        configs = all_configurations(net.layers[s].n_out)
        T = np.exp(log_p @ configs.T + log_q @ (1 - configs).T)  # prod p^c (1-p)^(1-c)
        levels.append((lo, seg, trace, T, pi, configs))
        pi = pi @ T  # pi_k = pi_{k-1} T_k
        states, lo = transmit(net.layers[s].transmission, unit.values(configs)), s + 1
    top = segment(net, lo, len(net.layers) - 1)
    top_trace = top.forward(states, train=False)
    rows = len(states)
    V = np.empty((len(x), rows))
    grad_out = np.zeros_like(top_trace.a[-1])
    for b in range(len(x)):
        y_b = np.repeat(y[b : b + 1], rows, axis=0)
        V[b] = top.per_example_loss(top_trace, y_b)  # V_K[b, c] = l(c, y_b)
        if with_gradient:
            grad_out += pi[b][:, None] * (rows * top.output_grad(top_trace, y_b))  # pi_K[b, c] dl(c, y_b)/da_out
    loss_sum = float((pi * V).sum())  # sum_{b, c} pi_K V_K
    if not with_gradient:
        return loss_sum, None
    grads = [None] * lo + backward(top, top_trace, grad_out)
    for first, seg, trace, T, pi_below, configs in reversed(levels):
        weighted = T * (pi_below.T @ V)  # T_k[r, c] U_k[r, c] (times B)
        grad_a = net.slope * (weighted @ configs - weighted.sum(axis=1)[:, None] * trace.p[-1])  # kappa sum_c T U (c - p)
        grads[first : first + len(seg.layers)] = backward(seg, trace, grad_a)
        V = V @ T.T  # V_{k-1} = V_k T_k^T
    return loss_sum, grads
