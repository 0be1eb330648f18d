"""K sampled passes through a chain of Bernoulli layers and a softmax output, in one kernel.

The K-sample evaluation of a stochastic network averages the softmax output of K forward passes.
For a chain first Bernoulli layer (its probabilities p known) -> more Bernoulli layers -> softmax,
everything a pass does after the first layer's draw works on 0/1 vectors, and a product of a 0/1
vector by a weight matrix W (n_in x n_out) is a sum of rows of W. `bit_tables` precomputes, for
each group of BITS consecutive inputs, the sum of W's rows for every pattern of those bits:

    T[g, c, :] = sum over bits b set in c of W[BITS g + b, :]        (2**BITS patterns c)

so that h @ W = sum over groups g of T[g, code_g(h)], where code_g(h) packs h's bits
BITS g .. BITS g + BITS - 1: n_in / BITS table rows added instead of n_in multiply-adds per
output. The tables serve every pass; `tables_of` keeps the latest ones, keyed by a hash of the
weights, so that an evaluation's chunks of examples share them.

`chain_totals` works through the examples a tile of rows at a time and, for each tile, through
the K passes in order: it samples each layer with the Bernoulli kernels' own routine at the
positions `bernoulli`/`sigmoid_bernoulli` use (r n + j of the layer's stream in pass k, so the
same numbers), into scratch of the tile's size, packs each row's samples into its codes, forms
the next pre-activation, and adds the softmax output to `total` in float64, pass by pass. A row
keeps its last pass's codes and pre-activations: the bits where the codes differ are the units
whose sample changed. Where only a few did (a trained network's units are mostly near 0 or 1,
and a few of 200 change from pass to pass), the pre-activation moves by the rows of W of those
units, added or subtracted; otherwise, and every REFRESH passes, it is summed afresh from the
tables. `chain_sum` splits the tiles over the run's threads (`sampling.run_tasks`, a tile a task).

What differs from passes made with BLAS products is rounding only: the float32 sums run in
another order, a shortcut pre-activation carries its rounding for up to REFRESH - 1 passes, and
the softmax takes a scalar exp and a sequential sum where NumPy's are vectorised. A sample can
flip where u lies within rounding of p (about one draw in 10**7), and a K-sample error rate can
differ where an average's argmax is within rounding of a tie. `chain_totals_reference` is the
NumPy version the tests compare it with.
"""
import hashlib
import math

import numba
import numpy as np

from .sampling import GROUP, bernoulli_span, run_tasks, sigmoid_scalar

BITS = 8  # inputs per table group: 256 patterns; a 200 x 200 layer's tables take 5 MB
PATTERNS = 1 << BITS
REFRESH = 16  # a row's pre-activations are summed afresh from the tables every REFRESH passes
MAX_TABLE_BYTES = 64 << 20  # wider chains take the pass-by-pass path (BLAS), faster there anyway
MIN_SAMPLES = 32  # fewer passes take the pass-by-pass path: a first pass sums table rows for every row, slower than BLAS
_POWERS = np.float32(2.0) ** np.arange(BITS, dtype=np.float32)  # a group's bit weights
_LOWEST = np.array([(c & -c).bit_length() - 1 for c in range(PATTERNS)], np.int64)  # each pattern's lowest set bit (-1 for none)
_POPCOUNT = np.array([bin(c).count("1") for c in range(PATTERNS)], np.int64)  # set bits of each pattern


def bit_tables(W):
    """The (groups, 2**BITS, n_out) float32 tables of W (n_in x n_out) described above; inputs past
    n_in (the last group's padding) have zero rows. A pattern's row is the row of the pattern
    without its highest bit h plus row h of W, T[c] = T[c - 2**h] + W[h]: each row adds W's rows in
    increasing bit order, whatever BLAS the machine has, in BITS array operations."""
    n_in, n_out = W.shape
    groups = -(-n_in // BITS)
    padded = np.zeros((groups, BITS, n_out), np.float32)
    padded.reshape(groups * BITS, n_out)[:n_in] = W
    tables = np.empty((groups, PATTERNS, n_out), np.float32)
    tables[:, 0] = 0
    for bit in range(BITS):
        half = 1 << bit
        np.add(tables[:, :half], padded[:, bit, None, :], out=tables[:, half:2 * half])
    return tables


_TABLES = {}  # digest of a weight matrix -> its tables, the most recent within MAX_TABLE_BYTES


def tables_of(W):
    """`bit_tables(W)`, made once for weights whose bytes are unchanged: an evaluation calls the
    kernel once per chunk of examples with the same weights, and hashing them (about 0.1 ms for
    200 x 200) costs far less than building the tables (about 8 ms)."""
    W = np.ascontiguousarray(W, np.float32)
    key = (W.shape, hashlib.blake2b(W.data, digest_size=16).digest())
    if key not in _TABLES:
        tables = bit_tables(W)
        while _TABLES and sum(kept.nbytes for kept in _TABLES.values()) + tables.nbytes > MAX_TABLE_BYTES:
            _TABLES.pop(next(iter(_TABLES)))  # the oldest first
        _TABLES[key] = tables
    return _TABLES[key]


def table_bytes(weights):
    """The bytes `bit_tables` takes for every product of `weights`: 2**BITS / BITS = 32 times the
    weights themselves."""
    return sum(-(-W.shape[0] // BITS) * PATTERNS * W.shape[1] * 4 for W in weights)


def tile_rows(widths):
    """Rows per tile such that every Bernoulli layer's tile starts on a Philox group boundary
    (GROUP words): the least common multiple over those widths of GROUP / gcd(width, GROUP)."""
    rows = 1
    for width in widths:
        rows = math.lcm(rows, GROUP // math.gcd(width, GROUP))
    return rows


@numba.njit(cache=True, nogil=True, error_model="numpy")
def chain_totals(first_tile, stop_tile, p_first, weights, tables, table_starts, biases, bias_starts, widths, slope, key0, key1, stream0s, stream1s, rows_per_tile, total):
    """total[r] += softmax output of pass k for k = 0..K-1, on the tiles first_tile..stop_tile-1
    (rows_per_tile rows each) of a chain of len(widths) - 1 Bernoulli layers and a softmax layer of
    widths[-1] units; returns True if a probability was NaN.

    p_first: the first layer's probabilities (N x widths[0], flat). Product j (from layer j to
    j + 1) has its weights (n_in x n_out), one after the other in `weights`, its `bit_tables` at
    tables[table_starts[j]:] and its bias at biases[bias_starts[j]:]; Bernoulli layer j of pass k
    draws from stream (stream0s[k, j], stream1s[k, j]); p = sigmoid(slope a) after the first. The
    draws are made by the Bernoulli kernels' own routine, `bernoulli_span`, on the tile's Philox
    groups (a tile starts on a group boundary of every layer: `tile_rows`).

    Each row keeps, per product, the pre-activation of its last pass and the codes it came from
    (`_next_preactivation`).
    """
    n = total.shape[0]
    layers = widths.size - 1
    widest = widths.max()
    nan = False
    most_groups = (widest + BITS - 1) // BITS
    codes = np.empty(most_groups, np.int64)  # a row's samples of a layer, packed
    # Per product j and tile row, from position j * stride in pre and j * code_stride in previous (flat: int-bounded slices stay C-contiguous, so the loops vectorise):
    stride, code_stride = rows_per_tile * widest, rows_per_tile * most_groups
    previous = np.zeros(layers * code_stride, np.int64)  # the codes of layer j in the row's last pass
    pre = np.zeros(layers * stride, np.float32)  # the pre-activation of layer j + 1 they gave
    softmax = np.empty(widths[-1], np.float32)  # a row's exp(logit - largest), each computed once
    probs = np.empty(rows_per_tile * widest, np.float32)  # a layer's probabilities in the tile's rows, one pass
    fired = np.empty(rows_per_tile * widest, np.float32)  # and its samples
    weight_starts = np.zeros(layers, np.int64)
    for j in range(1, layers):
        weight_starts[j] = weight_starts[j - 1] + widths[j - 1] * widths[j]
    for tile in range(first_tile, stop_tile):
        r0 = tile * rows_per_tile
        rows = min(rows_per_tile, n - r0)
        for k in range(stream0s.shape[0]):
            for j in range(layers):
                width, n_out = widths[j], widths[j + 1]
                groups = (width + BITS - 1) // BITS
                span = rows * width
                if j == 0:
                    layer_probs = p_first[r0 * width:r0 * width + span]
                else:
                    layer_probs = probs[0:span]
                    _sigmoid_rows(pre[(j - 1) * stride:(j - 1) * stride + span], slope, layer_probs)
                nan |= bernoulli_span(r0 * width // GROUP, layer_probs, fired[0:span], key0, key1, stream0s[k, j], stream1s[k, j])  # the tile starts on a Philox group
                product = weights[weight_starts[j]:weight_starts[j] + width * n_out]
                for r in range(rows):
                    _pack(fired[r * width:(r + 1) * width], codes)
                    _next_preactivation(k, codes[0:groups], previous[j * code_stride + r * groups:j * code_stride + (r + 1) * groups],
                                        product, tables, table_starts[j], biases[bias_starts[j]:bias_starts[j] + n_out], pre[j * stride + r * n_out:j * stride + (r + 1) * n_out])
            out = widths[-1]
            for r in range(rows):
                logits = pre[(layers - 1) * stride + r * out:(layers - 1) * stride + (r + 1) * out]
                top = logits.max()
                norm = np.float32(0.0)
                for i in range(out):
                    softmax[i] = np.float32(math.exp(logits[i] - top))
                    norm += softmax[i]
                for i in range(out):
                    total[r0 + r, i] += np.float64(softmax[i] / norm)
    return nan


@numba.njit(inline="always", cache=True, nogil=True, error_model="numpy")
def _sigmoid_rows(a, slope, p):
    """p = sigmoid(slope a) on 1-D views indexed from 0 (a loop that vectorises)."""
    for i in range(a.size):
        p[i] = sigmoid_scalar(a[i] * slope)


@numba.njit(inline="always", cache=True, nogil=True, error_model="numpy")
def _next_preactivation(k, codes, previous, W, tables, table_start, bias, pre):
    """pre = samples @ W + bias for one row, given its samples packed into `codes` (`_pack`) and
    its last pass (previous: its codes then, pre: the pre-activation they gave); previous = codes.
    If few samples changed since (the bits where the codes differ), pre moves by + or - the rows
    of W of those that did, in increasing unit order (a trained network's samples change in a
    few units from pass to pass); otherwise, and on every REFRESH-th pass, it is the sum of table
    rows (`bit_tables`), so that rounding does not pile up."""
    groups, n_out = codes.size, pre.size
    changed = 0
    for g in range(groups):
        changed += _POPCOUNT[codes[g] ^ previous[g]]
    if k % REFRESH == 0 or changed > groups:
        _lookup(tables, table_start, bias, codes, pre)
    else:
        for g in range(groups):
            difference = codes[g] ^ previous[g]
            while difference:
                b = _LOWEST[difference]
                difference &= difference - 1
                step = np.float32(1.0) if codes[g] >> b & 1 else np.float32(-1.0)
                row = W[(g * BITS + b) * n_out:(g * BITS + b + 1) * n_out]
                for o in range(n_out):
                    pre[o] += step * row[o]
    for g in range(groups):
        previous[g] = codes[g]


@numba.njit(inline="always", cache=True, nogil=True, error_model="numpy")
def _pack(samples, codes):
    """codes[g] = the bits of one row's samples BITS g .. BITS g + BITS - 1 (0.0 or 1.0 each), as
    the sum of sample_b 2**b, exact in float32."""
    width = samples.size
    whole = width // BITS
    for g in range(whole):
        value = np.float32(0.0)
        for b in range(BITS):
            value += samples[g * BITS + b] * _POWERS[b]
        codes[g] = np.int64(value)
    if whole * BITS < width:
        value = np.float32(0.0)
        for b in range(width - whole * BITS):
            value += samples[whole * BITS + b] * _POWERS[b]
        codes[whole] = np.int64(value)


@numba.njit(inline="always", cache=True, nogil=True, error_model="numpy")
def _lookup(tables, start, bias, codes, pre):
    """pre = sum over groups g of T[g, codes[g]] + bias for one row: the product of its packed 0/1
    samples by the layer's weights (tables at tables[start:]). Four groups' rows are added together
    before they go to pre, which is read and written once per four groups."""
    groups = codes.size
    n_out = pre.size
    for i in range(n_out):
        pre[i] = np.float32(0.0)
    g = 0
    while g + 4 <= groups:
        t0 = tables[start + (g * PATTERNS + codes[g]) * n_out:]
        t1 = tables[start + ((g + 1) * PATTERNS + codes[g + 1]) * n_out:]
        t2 = tables[start + ((g + 2) * PATTERNS + codes[g + 2]) * n_out:]
        t3 = tables[start + ((g + 3) * PATTERNS + codes[g + 3]) * n_out:]
        for i in range(n_out):
            pre[i] += ((t0[i] + t1[i]) + t2[i]) + t3[i]
        g += 4
    for g in range(g, groups):
        t0 = tables[start + (g * PATTERNS + codes[g]) * n_out:]
        for i in range(n_out):
            pre[i] += t0[i]
    for i in range(n_out):
        pre[i] += bias[i]


def chain_totals_reference(p_first, weights, biases, slope, seed, streams):
    """`chain_totals`'s sum of K softmax outputs by NumPy products and the sampling kernels:
    `weights`/`biases` of the products, `streams[k][j]` the stream of Bernoulli layer j in pass k."""
    from . import bernoulli, sigmoid_bernoulli  # the public kernels (this module is imported by their package)

    total = np.zeros((p_first.shape[0], weights[-1].shape[1]))
    for layer_streams in streams:
        h = bernoulli(p_first, seed, layer_streams[0], dtype=np.float32)
        for j, (W, b) in enumerate(zip(weights, biases)):
            a = h @ W + b
            if j + 1 < len(weights):
                h = sigmoid_bernoulli(a * np.float32(slope), seed, layer_streams[j + 1])[1]
        z = np.exp(a - a.max(axis=1, keepdims=True))
        total += z / z.sum(axis=1, keepdims=True)
    return total


def chain_sum(p_first, weights, biases, slope, seed, streams):
    """The sum over K passes of the softmax output (N, n_out), float64, by `chain_totals`: the
    arguments as `chain_totals_reference` takes them (float32 arrays, `streams[k][j]` ints)."""
    from .streams import check_uint64, split64

    flat_tables, table_starts = _flat_tables(tuple(tables_of(W) for W in weights))
    widths = np.array([p_first.shape[1], *(W.shape[1] for W in weights)], np.int64)
    words = np.array([[split64(s) for s in layer_streams] for layer_streams in streams], np.uint64)  # (K, L, 2)
    key0, key1 = split64(check_uint64(seed, "seed"))
    total = np.zeros((p_first.shape[0], widths[-1]))
    rows = tile_rows(widths[:-1])
    arguments = (np.ascontiguousarray(p_first, np.float32).reshape(-1),
                 np.concatenate([np.asarray(W, np.float32).ravel() for W in weights]), flat_tables, table_starts,
                 np.concatenate(biases).astype(np.float32), _starts(biases), widths, np.float32(slope), key0, key1,
                 np.ascontiguousarray(words[:, :, 0]), np.ascontiguousarray(words[:, :, 1]), rows, total)
    if run_tasks(chain_totals, -(-len(total) // rows), total.size * len(streams) * widths[:-1].sum(), *arguments):
        raise ValueError("a probability of the K-sample passes is NaN (p, or a pre-activation, contains NaN)")
    return total


_LAST_CHAIN = [(), None, None]  # the last chain's tables, their concatenation and offsets


def _flat_tables(tables):
    """The chain's tables one after the other, and where each starts: kept for the next call with
    the same tables (an evaluation's chunks), whose copy would cost a pass over megabytes."""
    if len(tables) != len(_LAST_CHAIN[0]) or any(new is not kept for new, kept in zip(tables, _LAST_CHAIN[0])):
        _LAST_CHAIN[:] = [tables, np.concatenate([t.ravel() for t in tables]), _starts(tables)]
    return _LAST_CHAIN[1], _LAST_CHAIN[2]


def _starts(arrays):
    return np.cumsum([0, *(a.size for a in arrays[:-1])]).astype(np.int64)
