"""Mini-batches as the training loop hands them to methods: the speed plumbing in one place.

An epoch is a seeded permutation of the training set cut into mini-batches (`Batches`);
mini-batch k of epoch e draws its random numbers from stream_id(e, k). Methods do not get the
mini-batches one at a time but in `Chunk`s of CHUNK consecutive ones, prepared together:

- the chunk's inputs are converted from the stored pixels in one call, into ONE array whose
  consecutive row blocks are the mini-batches (`Chunk.x`: the stacked inputs, no copy);
- the training input noise of the whole chunk, x + input_noise * N(0, 1) with each
  mini-batch's own stream, is drawn in one threaded kernel call the first time a mini-batch of
  the chunk asks for it (`MiniBatch.inputs`); one serial call per mini-batch would leave a core
  idle. It is exactly what `Network.forward(x, seed, stream)` draws for that mini-batch alone;
- DTP's inverse phase runs one forward pass over a chunk's stacked inputs (`Chunk.x`).

A method's per-batch code asks its `MiniBatch` for the forward pass (`batch.forward(net,
seed)`), which feeds the prepared noisy input; the network itself keeps no state between calls.

The chunk-sized arrays (converted inputs, noisy inputs: 15.7 MB each for 50 MNIST mini-batches)
are `Recycled`: a fresh array that large costs more in page faults than filling it does.
"""
import itertools
import sys
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from . import kernels

CHUNK = 50  # mini-batches prepared together: converted, noised, DTP's inverse-phase forward pass


class Recycled:
    """Arrays handed out again once nothing else refers to them (no view of them lives on), so
    that a loop asking for an array of the same shape every round reuses memory whose pages are
    already mapped; an array still in use is never written over (another one is made). Two are
    kept: the array of the round before is, as a rule, still referred to while the next is asked for.
    """

    KEPT = 2

    def __init__(self):
        self._arrays = []

    @staticmethod
    def _count_when_unreferenced():
        """sys.getrefcount of a list's item that nothing else refers to, read as `array` reads it
        (the list, the loop variable and the call's argument, as this interpreter counts them:
        versions that borrow references count fewer)."""
        for item in [object()]:
            return sys.getrefcount(item)

    def array(self, shape, dtype):
        """An uninitialised C-contiguous array of `shape` and `dtype` that nothing else refers to."""
        for array in self._arrays:
            if array.shape == shape and array.dtype == dtype and sys.getrefcount(array) == UNREFERENCED:
                return array
        array = np.empty(shape, dtype)
        self._arrays = [array, *self._arrays[: self.KEPT - 1]]
        return array


UNREFERENCED = Recycled._count_when_unreferenced()


class Batches:
    """The epoch's mini-batches as (stream, x, y): a seeded permutation cut into full batches.

    Re-iterable (the alternating DTP schedule makes two passes) and lazy: each pass converts a
    chunk of CHUNK mini-batches at a time, in one call, so no float copy of the training set is
    held; their inputs are consecutive row blocks of one array (`stack_rows` takes them back
    without a copy). `limit` keeps only the first mini-batches (benchmarks time part of an epoch).
    `progress(done)`, where given, is called as each chunk but a pass's first is prepared, with
    the number of mini-batches handed out before it, counted over every pass (a progress bar's
    count: once per CHUNK mini-batches, costing nothing next to them).
    """

    def __init__(self, split, epoch, seed, batch_size, dtype, limit=None, progress=None):
        self.split, self.epoch, self.batch_size, self.dtype, self.limit = split, epoch, batch_size, dtype, limit
        self.progress, self.passes = progress, 0
        self._inputs = Recycled()
        keys = kernels.uniform_reference(len(split), seed, kernels.stream_id(epoch, "shuffle"), dtype=np.float64)  # drawn once an epoch: by NumPy
        self.order = np.argsort(keys, kind="stable")

    def __len__(self):
        full = len(self.split) // self.batch_size
        return full if self.limit is None else min(full, self.limit)

    def __iter__(self):
        size = self.batch_size
        handed_out, self.passes = self.passes * len(self), self.passes + 1
        for first in range(0, len(self), CHUNK):
            if first and self.progress is not None:
                self.progress(handed_out + first)
            ks = range(first, min(first + CHUNK, len(self)))
            index = np.concatenate([np.sort(self.order[k * size:(k + 1) * size]) for k in ks])
            x = self.split.features(index, self.dtype, out=self._inputs.array((len(index), self.split.x.shape[1]), self.dtype))
            for row, k in zip(range(0, len(index), size), ks):
                yield kernels.stream_id(self.epoch, k), x[row:row + size], self.split.y[index[row:row + size]]


@dataclass
class MiniBatch:
    """One training mini-batch: its stream, clean inputs `x` (batch, n_in) and targets `y`.

    `inputs(net, seed)` is the input a training forward pass feeds (noise included), taken from
    the chunk's prepared array when the mini-batch belongs to one; `forward(net, seed)` is that
    pass. Both give exactly what `net.forward(x, seed, stream)` gives.
    """

    stream: int
    x: np.ndarray
    y: np.ndarray
    chunk: "Chunk" = None
    rows: slice = None

    def __len__(self):
        return len(self.x)

    def inputs(self, net, seed):
        """The training input, `net.fed_input(x, seed, stream)`: x + input_noise * N(0, 1) from
        stream_id(stream, "input-noise"), rows of the chunk's prepared array where there is one."""
        if net.input_noise > 0 and self.chunk is not None and self.chunk.noise_for(net, seed):
            return self.chunk.noisy_inputs[self.rows]
        return net.fed_input(self.x, seed, self.stream)

    def forward(self, net, seed, stop=None):
        """The training forward pass of this mini-batch (`net.forward(x, seed, stream)`)."""
        return net.forward_fed(self.inputs(net, seed), seed, self.stream, stop)


class Chunk:
    """Up to CHUNK consecutive mini-batches of equal size, prepared together (module docstring).

    `x` holds their inputs stacked as rows, `streams` their streams, `batches` the `MiniBatch`es
    (views of `x`, made at each access: a chunk does not refer to them, so that no reference
    cycle keeps a chunk's arrays, and its `Recycled` buffers, alive until Python's cycle
    collector runs). The noisy inputs are made for one dtype, noise level and seed: those of the
    first `noise_for` call, into an array of `recycled` (a `Recycled` that the chunks of a pass share).
    """

    def __init__(self, triples, recycled=None):
        self.recycled = Recycled() if recycled is None else recycled
        self.streams = [stream for stream, _, _ in triples]
        self.x = stack_rows([x for _, x, _ in triples])
        self.targets = [y for _, _, y in triples]
        bounds = np.cumsum([0] + [len(x) for _, x, _ in triples]).tolist()
        self.row_blocks = [slice(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]
        self._noise_key = None

    @property
    def batches(self):
        return [MiniBatch(stream, self.x[rows], y, self, rows) for stream, y, rows in zip(self.streams, self.targets, self.row_blocks)]

    def __iter__(self):
        return iter(self.batches)

    def __len__(self):
        return len(self.streams)

    def noise_for(self, net, seed):
        """Whether `noisy_inputs` holds `net`'s training inputs for `seed`: they depend on its dtype
        and noise level only, and the first call fixes those (another network or seed: False,
        and the mini-batch draws its own)."""
        key = (net.dtype, net.input_noise, seed)
        if self._noise_key is None:
            self._noise_key, self._noise_source = key, (net, seed)
        return key == self._noise_key

    @cached_property
    def noisy_inputs(self):
        """The whole chunk's training inputs, one kernel call with each mini-batch's stream."""
        net, seed = self._noise_source
        return net.fed_input(self.x, seed, self.streams, out=self.recycled.array(self.x.shape, net.dtype))


def chunks(batches, size=CHUNK):
    """`batches` (any iterable of (stream, x, y), e.g. `Batches`) as `Chunk`s of `size`
    mini-batches; a run of mini-batches of unequal sizes is split where the size changes. The
    chunks make their noisy inputs in the arrays of one `Recycled`."""
    recycled = Recycled()
    iterator = iter(batches)
    while group := list(itertools.islice(iterator, size)):
        start = 0
        for stop in range(1, len(group) + 1):
            if stop == len(group) or len(group[stop][1]) != len(group[start][1]):
                yield Chunk(group[start:stop], recycled)
                start = stop


def stack_rows(arrays):
    """The rows of a list of 2-D arrays as one array, as np.concatenate gives them; without a copy
    (a read-only view) when they are consecutive row blocks of one C-contiguous array, as
    `Batches` yields a chunk of mini-batches."""
    if not _consecutive_row_blocks(arrays):
        return np.concatenate(arrays)
    first = arrays[0]
    rows = sum(len(a) for a in arrays)
    return np.lib.stride_tricks.as_strided(first, (rows, *first.shape[1:]), first.strides, writeable=False)


def _consecutive_row_blocks(arrays):
    """True if each array is a C-contiguous view of one C-contiguous base, starting where the previous one ends."""
    first = arrays[0]
    base = first.base
    if not (isinstance(base, np.ndarray) and base.flags.c_contiguous):
        return False
    address = first.__array_interface__["data"][0]
    for a in arrays:
        same_layout = a.base is base and a.flags.c_contiguous and a.dtype == first.dtype and a.shape[1:] == first.shape[1:]
        if not same_layout or a.__array_interface__["data"][0] != address:
            return False
        address += a.nbytes
    return True
