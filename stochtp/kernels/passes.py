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
the K passes in order: it samples each layer as the Bernoulli kernels do, u < p with u the
float32 uniform of the same Philox word (position r n + j of the layer's stream in pass k, so the
same samples), as bits in position order, forms the next pre-activation row by row from the
row's bits (its table codes are their bytes), and adds the softmax output to `total` in float64,
pass by pass.

The Philox words of a group come in *word order* (position 4 l + k of the group from words[k, l]:
`philox4x32_lanes`). The Bernoulli kernels shuffle them into position order to compare them with
p; here p is put in word order instead: once per call for the first layer (`word_order`), whose p
is the same in every pass, and by the sigmoid pass for the layers above (`_logistic_word_order`),
so that the draws compare words and probabilities as they lie (`_draw_bits`).

A row's pre-activation is formed from reference samples and the pre-activation they give: for the
first product the first layer's likelier samples (p >= 1/2), the same in every pass, for the
products above the last pass's. Where the samples differ from the reference in a few units (a
trained network's units are mostly near 0 or 1: of 200, a few tens differ), it is the reference's
plus or minus the rows of W of those units; otherwise, and every REFRESH passes for a reference
that follows the passes, it is summed afresh from the tables. Narrow products (the softmax
layer's) always sum table rows. `chain_sum` splits the tiles over the run's threads
(`sampling.run_tasks`, a tile a task).

What differs from passes made with BLAS products is rounding only: the float32 sums run in
another order, a pre-activation that follows the passes carries its rounding for up to
REFRESH - 1 passes, the sigmoid and softmax take an exp of their own (`_exp_clamped`, within 2 ulp
of libm's), and the softmax sums sequentially where NumPy's sum is vectorised. A sample can flip
where u lies within rounding of p (about one draw in 10**7), and a K-sample error rate can differ
where an average's argmax is within rounding of a tie. `chain_totals_reference` is the NumPy
version the tests compare it with.
"""
import hashlib
import math

import numba
import numpy as np

from .bits import lowest_bit, set_bits
from .philox import LANES, philox4x32_lanes
from .sampling import _EXP_OVERFLOW_F32, _LN2_HI_F32, _LN2_LO_F32, _LOG2E_F32, _ONE_F32, _ROUNDER_F32, GROUP, _exp2_f32, _u24, run_tasks

BITS = 8  # inputs per table group, a byte of a row's sample bits: 256 patterns; a 200 x 200 layer's tables take 5 MB
PATTERNS = 1 << BITS
REFRESH = 16  # a row's pre-activations are summed afresh from the tables every REFRESH passes
SHORTCUT_CHANGES = 1.5  # up to this many changed units per table group, a pre-activation moves by their rows
SHORTCUT_MIN_OUTPUTS = 64  # narrower products always sum table rows: a row costs little more there than tracking changes
MAX_TABLE_BYTES = 64 << 20  # wider chains take the pass-by-pass path (BLAS), faster there anyway
MIN_SAMPLES = 32  # fewer passes take the pass-by-pass path: a first pass sums table rows for every row, slower than BLAS
BYTES_PER_GROUP = GROUP // 8  # a Philox group's samples as bits
_Z_LOW, _Z_HIGH = np.float32(-87.0), np.float32(88.0)  # `_exp_clamped`'s range: 2^n with n in [-126, 127], one normal power of two
_INF = np.float32(np.inf)
_R7 = np.float32(1.0 / math.factorial(7))
_HORNER = (*(np.float32(1.0 / math.factorial(k)) for k in range(6, 1, -1)), _ONE_F32)  # 1/6!, .., 1/2!, 1


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


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def chain_totals(first_tile, stop_tile, p_first, first_modes, weights, tables, table_starts, biases, bias_starts, widths, slope, key0, key1, stream0s, stream1s, rows_per_tile, total):
    """total[r] += softmax output of pass k for k = 0..K-1, on the tiles first_tile..stop_tile-1
    (rows_per_tile rows each) of a chain of len(widths) - 1 Bernoulli layers and a softmax layer of
    widths[-1] units; returns True if a probability of a Bernoulli layer above the first was NaN
    (its pre-activation, or the slope).

    p_first: the first layer's probabilities (N x widths[0], flat) in word order (`word_order`);
    first_modes: its likelier samples, 1[p >= 1/2], as bits in position order (`pack_bits`).
    Product j (from layer j to j + 1) has its weights (n_in x n_out), one after the other in
    `weights`, its `bit_tables` at tables[table_starts[j]:] and its bias at biases[bias_starts[j]:];
    Bernoulli layer j of pass k draws from stream (stream0s[k, j], stream1s[k, j]); p = sigmoid(slope
    a) after the first. A tile starts on a Philox group of every layer (`tile_rows`), so that its
    draws are whole groups of the stream, and its samples fill whole bytes.

    A row's samples of a layer are held as bits, 64 to a word (`_row_bits`): a product's table
    codes are their bytes. A product at least SHORTCUT_MIN_OUTPUTS wide has, per row, reference
    samples and the
    pre-activation they give (`_next_preactivation`): for the first product the first layer's
    likelier samples, the same in every pass (so that the samples of a pass differ from them in
    fewer units than from the last pass's), for the products above the last pass's. Narrower
    products sum table rows (`_lookup`). The sigmoid and the softmax take `_exp_clamped`.
    """
    n = total.shape[0]
    layers = widths.size - 1
    widest = widths.max()
    nan = False
    most_groups = (widest + BITS - 1) // BITS
    most_words = (widest + 63) // 64
    sample_bits = np.empty(most_words, np.uint64)  # a row's samples of a layer
    tile_groups = -(-rows_per_tile * widest // GROUP)  # the most Philox groups a layer of a tile draws
    packed = np.zeros(tile_groups * GROUP // 64 + 1, np.uint64)  # the tile's samples of a layer as bits in position order (and a word past them)
    packed_bytes = packed.view(np.uint8)  # written a byte at a time by the draws
    words = np.empty((4, LANES), np.uint32)  # a Philox group
    # Per product j and tile row, from position j * stride in pre and j * word_stride in reference (flat: int-bounded slices stay C-contiguous, so the loops vectorise):
    stride, word_stride = rows_per_tile * widest, rows_per_tile * most_words
    reference = np.zeros(layers * word_stride, np.uint64)  # the reference samples of layer j (the first layer's likelier ones; the last pass's above)
    pre = np.zeros(layers * stride, np.float32)  # the pre-activation of layer j + 1, this pass
    first_pre = np.zeros(rows_per_tile * widths[1], np.float32)  # the pre-activation the first layer's reference samples give
    softmax = np.empty(widths[-1], np.float32)  # a row's exp(logit - largest), each computed once
    moved = np.empty(int(SHORTCUT_CHANGES * most_groups) + 1, np.int64)  # a row's changed units: unit * 2 + (1 if it fired)
    probs = np.empty(tile_groups * GROUP, np.float32)  # a layer's probabilities in the tile's rows, one pass, in word order
    weight_starts = np.zeros(layers, np.int64)
    for j in range(1, layers):
        weight_starts[j] = weight_starts[j - 1] + widths[j - 1] * widths[j]
    for tile in range(first_tile, stop_tile):
        r0 = tile * rows_per_tile
        rows = min(rows_per_tile, n - r0)
        width, n_out = widths[0], widths[1]
        row_words = (width + 63) // 64
        for r in range(rows if n_out >= SHORTCUT_MIN_OUTPUTS else 0):
            first_bits = reference[r * row_words:(r + 1) * row_words]
            _row_bits(first_modes, (r0 + r) * width, width, first_bits)
            _lookup(tables, table_starts[0], biases[bias_starts[0]:bias_starts[0] + n_out], first_bits, (width + BITS - 1) // BITS, first_pre[r * n_out:(r + 1) * n_out])
        for k in range(stream0s.shape[0]):
            for j in range(layers):
                width, n_out = widths[j], widths[j + 1]
                groups, row_words = (width + BITS - 1) // BITS, (width + 63) // 64
                span = rows * width
                drawn = -(-span // GROUP) * GROUP  # whole groups: word order pads the last with p = 0
                if j == 0:
                    layer_probs = p_first[r0 * width:r0 * width + drawn]
                else:
                    layer_probs = probs[0:drawn]
                    nan |= _logistic_word_order(pre[(j - 1) * stride:(j - 1) * stride + drawn], span, slope, layer_probs)
                _draw_bits(r0 * width // GROUP, layer_probs, packed_bytes, words, key0, key1, stream0s[k, j], stream1s[k, j])
                product = weights[weight_starts[j]:weight_starts[j] + width * n_out]
                bias = biases[bias_starts[j]:bias_starts[j] + n_out]
                for r in range(rows):
                    row_bits = sample_bits[0:row_words]
                    _row_bits(packed, r * width, width, row_bits)
                    row_pre = pre[j * stride + r * n_out:j * stride + (r + 1) * n_out]
                    if n_out < SHORTCUT_MIN_OUTPUTS:
                        _lookup(tables, table_starts[j], bias, row_bits, groups, row_pre)
                    else:
                        follows = j > 0
                        _next_preactivation(k, row_bits, reference[j * word_stride + r * row_words:j * word_stride + (r + 1) * row_words], follows, product,
                                            tables, table_starts[j], groups, bias, row_pre if follows else first_pre[r * n_out:(r + 1) * n_out], row_pre, moved)
            out = widths[-1]
            for r in range(rows):
                logits = pre[(layers - 1) * stride + r * out:(layers - 1) * stride + (r + 1) * out]
                top = logits.max()
                norm = np.float32(0.0)
                for i in range(out):
                    softmax[i] = _exp_clamped(logits[i] - top)
                for i in range(out):
                    norm += softmax[i]
                for i in range(out):
                    total[r0 + r, i] += np.float64(softmax[i] / norm)
    return nan


@numba.njit(inline="always", cache=True, nogil=True, error_model="numpy")
def _logistic_word_order(a, count, slope, p):
    """p = 1 / (1 + e^z), z = -slope a, for a tile's pre-activations `a` in position order, in word
    order (`word_order`), whole groups; True if one of the first `count` values of slope a (the
    tile's rows; the rest of its last group is left from other rows, and its samples are not
    read) is NaN, and so its p. Each group's values are read four words at a time and stored a word row at a time, in a
    loop that vectorises.

    The sampling kernels' float32 sigmoid (`sampling.sigmoid_scalar`) rounds e^z near the ends of
    its range as libm does, two powers of two apart. Here only 1 + e^z matters: e^z is scaled by
    one power of two, with z clamped to [-87, 88] (a smaller e^z leaves 1 + e^z = 1, a larger one
    gives p below 2**-24, which only u = 0 lies under, as under the exact p), and p = 0 where e^z
    is infinite in float32, as there (`_exp_clamped`). p differs from the sampling kernels' in
    its last bits: a sample differs where u lies within that of p."""
    nan = False
    for i in range(count):
        scaled = a[i] * slope
        nan |= scaled != scaled
    for g in range(a.size // GROUP):
        values, group = a[g * GROUP:(g + 1) * GROUP], p[g * GROUP:(g + 1) * GROUP]
        for lane in range(LANES):
            for k in range(4):
                group[k * LANES + lane] = _ONE_F32 / (_ONE_F32 + _exp_clamped(-(values[4 * lane + k] * slope)))
    return nan


@numba.njit(inline="always", cache=True, nogil=True, error_model="numpy")
def _exp_clamped(z):
    """e^z in float32 as the passes need it, branch-free: for z clamped to [-87, 88], 2^n e^r with
    the sampling kernels' reduction (`sampling._exp_reduced_f32`) and e^r - 1 = r (1 + r/2! + ... +
    r^6/7!) in Horner form, which `chain_totals` compiles into one fused multiply-add a term (the
    sampling kernels' nested form takes two, and made the K-sample evaluation 3-5 % slower), and
    one power of two where `sampling._exp_f32` applies two (on [-87, 88], within 1 ulp of the
    exact value and 2 ulp of libm's); infinite above 88.72, as libm's, and NaN for NaN. Below -87 it is e^-87 and on (88, 88.72] it is e^88,
    where libm's is smaller or up to twice as large: next to 1 (the sigmoid's 1 + e^z) or next to a
    softmax's largest term, e^0 = 1, the first is lost in rounding, and the second gives a
    probability below 2**-24 either way (`_logistic_word_order`)."""
    clamped = min(max(z, _Z_LOW), _Z_HIGH)
    n = (clamped * _LOG2E_F32 + _ROUNDER_F32) - _ROUNDER_F32
    r = (clamped - n * _LN2_HI_F32) - n * _LN2_LO_F32
    series = _R7
    for coefficient in _HORNER:
        series = series * r + coefficient
    scale = _exp2_f32(n)
    value = scale + (series * r) * scale
    return z if z != z else (_INF if z > _EXP_OVERFLOW_F32 else value)


@numba.njit(inline="always", cache=True, nogil=True, error_model="numpy")
def _next_preactivation(k, bits, reference, follows, W, tables, table_start, groups, bias, reference_pre, pre, moved):
    """pre = samples @ W + bias for one row, given its samples as `bits` (`_row_bits`), reference
    samples (as bits) and the pre-activation they give, `reference_pre`. If the samples differ from
    the reference in few units (up to SHORTCUT_CHANGES per table group), pre is reference_pre plus
    or minus the rows of W of those units, four rows at a time in increasing unit order (a trained
    network's units are mostly near 0 or 1, and a few of 200 differ from pass to pass); otherwise
    it is the sum of the `groups` table rows (`bit_tables`).

    A reference that `follows` the passes is the last pass's (reference_pre is pre itself):
    reference = bits after the pass, and every REFRESH-th pass sums table rows, so that rounding
    does not pile up. `moved` is scratch for the units that differ."""
    changed = 0
    for i in range(bits.size):
        changed += np.int64(set_bits(bits[i] ^ reference[i]))
    if (follows and k % REFRESH == 0) or changed > SHORTCUT_CHANGES * groups:
        _lookup(tables, table_start, bias, bits, groups, pre)
    else:
        count = 0
        for i in range(bits.size):
            difference = bits[i] ^ reference[i]
            while difference:
                b = lowest_bit(difference)
                difference &= difference - np.uint64(1)
                moved[count] = (64 * i + np.int64(b)) * 2 + np.int64(bits[i] >> b & np.uint64(1))
                count += 1
        if not follows:
            for o in range(pre.size):
                pre[o] = reference_pre[o]
        _add_rows(W, moved[0:count], pre)
    if follows:
        for i in range(bits.size):
            reference[i] = bits[i]


@numba.njit(inline="always", cache=True, nogil=True, error_model="numpy")
def _add_rows(W, moved, pre):
    """pre += the rows of W (n_in x n_out, flat) of the units in `moved` (unit * 2 + 1 to add the
    row, unit * 2 to subtract it), four rows at a time so that pre is read and written once for
    four, in their order."""
    n_out = pre.size
    i = 0
    while i + 4 <= moved.size:
        r0, s0 = _signed_row(W, moved[i], n_out)
        r1, s1 = _signed_row(W, moved[i + 1], n_out)
        r2, s2 = _signed_row(W, moved[i + 2], n_out)
        r3, s3 = _signed_row(W, moved[i + 3], n_out)
        for o in range(n_out):
            pre[o] += ((s0 * r0[o] + s1 * r1[o]) + s2 * r2[o]) + s3 * r3[o]
        i += 4
    for i in range(i, moved.size):
        row, sign = _signed_row(W, moved[i], n_out)
        for o in range(n_out):
            pre[o] += sign * row[o]


@numba.njit(inline="always", cache=True, nogil=True, error_model="numpy")
def _signed_row(W, entry, n_out):
    """(row, +1 or -1) of an entry of `moved` (`_add_rows`)."""
    unit = entry >> 1
    return W[unit * n_out:(unit + 1) * n_out], np.float32(1.0) if entry & 1 else np.float32(-1.0)


@numba.njit(inline="always", cache=True, nogil=True, error_model="numpy")
def _draw_bits(first_group, p, packed, words, key0, key1, stream0, stream1):
    """The samples 1[u < p] of the groups first_group.. of a stream, for p in word order (whole
    groups), as bits in position order: bit b of byte packed[c] is the sample of position 8 c + b.
    Position 4 l + k is words[k, l] and p[LANES k + l]: a byte's 8 positions are lanes 2 c' and
    2 c' + 1 of the group, so that it gathers the word rows at even and odd lanes."""
    for g in range(p.size // GROUP):
        philox4x32_lanes((first_group + g) * LANES, key0, key1, stream0, stream1, words)
        group, codes = p[g * GROUP:(g + 1) * GROUP], packed[g * BYTES_PER_GROUP:(g + 1) * BYTES_PER_GROUP]
        for c in range(BYTES_PER_GROUP):
            code = 0
            for k in range(4):
                code |= np.int32(_u24(words[k, 2 * c]) < group[k * LANES + 2 * c]) << k
                code |= np.int32(_u24(words[k, 2 * c + 1]) < group[k * LANES + 2 * c + 1]) << (k + 4)
            codes[c] = code


@numba.njit(inline="always", cache=True, nogil=True, error_model="numpy")
def _row_bits(packed, first, width, out):
    """out = bits first .. first + width - 1 of `packed` (64 to a uint64 word, in position order),
    64 to a word from out[0] on, the bits of the last word past width cleared: a row's samples."""
    for i in range(out.size):
        position = first + 64 * i
        word, shift = position // 64, np.uint64(position % 64)
        bits = packed[word] >> shift
        if shift:
            bits |= packed[word + 1] << (np.uint64(64) - shift)
        out[i] = bits
    tail = width - 64 * (out.size - 1)
    if tail < 64:
        out[out.size - 1] &= (np.uint64(1) << np.uint64(tail)) - np.uint64(1)


@numba.njit(inline="always", cache=True, nogil=True, error_model="numpy")
def _lookup(tables, start, bias, bits, groups, pre):
    """pre = sum over groups g < `groups` of T[g, code_g] + bias for one row: the product of its
    0/1 samples (`bits`, `_row_bits`; code_g is their byte g) by the layer's weights (tables at
    tables[start:]). Four groups' rows are added together before they go to pre, which is read and
    written once per four groups."""
    codes = bits.view(np.uint8)
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
    p_first = np.ascontiguousarray(p_first, np.float32)
    if np.isnan(p_first).any():
        raise ValueError(_NAN_MESSAGE)
    arguments = (word_order(p_first.reshape(-1)), pack_bits(p_first.reshape(-1) >= 0.5),
                 np.concatenate([np.asarray(W, np.float32).ravel() for W in weights]), flat_tables, table_starts,
                 np.concatenate(biases).astype(np.float32), _starts(biases), widths, np.float32(slope), key0, key1,
                 np.ascontiguousarray(words[:, :, 0]), np.ascontiguousarray(words[:, :, 1]), rows, total)
    if run_tasks(chain_totals, -(-len(total) // rows), total.size * len(streams) * widths[:-1].sum(), *arguments):
        raise ValueError(_NAN_MESSAGE)
    return total


_NAN_MESSAGE = "a probability of the K-sample passes is NaN (p, or a pre-activation, contains NaN)"


def pack_bits(samples):
    """0/1 values (a flat array) as bits in position order, 64 to a uint64 word (bit b of word i is
    value 64 i + b), with a zero word past them."""
    packed = np.zeros(-(-samples.size // 64) * 8 + 8, np.uint8)
    packed[:-(-samples.size // 8)] = np.packbits(samples.astype(bool), bitorder="little")
    return packed.view(np.uint64)


def word_order(values):
    """A flat float32 array in the order of a Philox group's words: padded with 0 to whole groups
    (GROUP values), position 4 l + k of each group moved to LANES k + l, where
    `philox4x32_lanes` puts its word."""
    groups = -(-values.size // GROUP)
    padded = np.zeros(groups * GROUP, np.float32)
    padded[:values.size] = values
    return np.ascontiguousarray(padded.reshape(groups, LANES, 4).transpose(0, 2, 1)).reshape(-1)


_LAST_CHAIN = [(), None, None]  # the last chain's tables, their concatenation and offsets


def _flat_tables(tables):
    """The chain's tables one after the other, and where each starts: kept for the next call with
    the same tables (an evaluation's chunks), whose copy would cost a pass over megabytes."""
    if len(tables) != len(_LAST_CHAIN[0]) or any(new is not kept for new, kept in zip(tables, _LAST_CHAIN[0])):
        _LAST_CHAIN[:] = [tables, np.concatenate([t.ravel() for t in tables]), _starts(tables)]
    return _LAST_CHAIN[1], _LAST_CHAIN[2]


def _starts(arrays):
    return np.cumsum([0, *(a.size for a in arrays[:-1])]).astype(np.int64)
