"""Synthetic classification tasks for tests and exact-oracle work: parity, XOR, teacher.

Each task is a deterministic function of its options, `seed` included: the same options give
the same arrays on every machine. Random numbers come from NumPy's Philox generator, one
independent stream (a `SeedSequence` child) for the teacher's weights and one per split, so
changing the size of one split leaves the others as they were. Inputs are bits in {0, 1}
stored as float32 (scale 1.0).

- `parity`: n_bits uniform random bits, label = their parity (sum mod 2).
- `xor`: parity of 2 bits; every split is the 4 patterns repeated (in shuffled order), so the
  classes are exactly balanced.
- `teacher`: labels drawn from a random stochastic network n_in - hidden... - n_classes
  with Bernoulli(sigmoid) hidden units; the label is the argmax of the output
  pre-activation given one sample of the hidden units, so labels carry the teacher's noise.
"""

from __future__ import annotations

import math

import numpy as np

from stochtp.data.dataset import Dataset, Split
from stochtp.errors import ConfigError

TEACHER_STREAM = 0
SPLIT_STREAMS = {"train": 1, "valid": 2, "test": 3}


def parity(n_bits: int = 8, n_train: int = 1000, n_valid: int = 1000, n_test: int = 1000, seed: int = 0) -> Dataset:
    """The n-bit parity task: x uniform in {0,1}^n_bits, y = sum(x) mod 2."""
    _check_count("parity", "n_bits", n_bits, minimum=1)
    sizes = _split_sizes("parity", n_train, n_valid, n_test)
    _check_count("parity", "seed", seed, minimum=0)

    def make_split(split: str, size: int) -> Split:
        bits = _generator(seed, SPLIT_STREAMS[split]).integers(0, 2, size=(size, n_bits), dtype=np.int64)
        return Split(bits.astype(np.float32), bits.sum(axis=1) % 2)

    return Dataset("parity", n_bits, 2, **{split: make_split(split, size) for split, size in sizes.items()})


def xor(n_train: int = 100, n_valid: int = 100, n_test: int = 100, seed: int = 0) -> Dataset:
    """XOR: the four 2-bit patterns repeated to fill each split, shuffled, y = x0 xor x1."""
    sizes = _split_sizes("xor", n_train, n_valid, n_test)
    _check_count("xor", "seed", seed, minimum=0)
    patterns = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.int64)

    def make_split(split: str, size: int) -> Split:
        bits = patterns[_generator(seed, SPLIT_STREAMS[split]).permutation(np.arange(size) % 4)]
        return Split(bits.astype(np.float32), bits.sum(axis=1) % 2)

    return Dataset("xor", 2, 2, **{split: make_split(split, size) for split, size in sizes.items()})


def teacher(
    n_in: int = 8,
    hidden: tuple[int, ...] = (6, 6),
    n_classes: int = 3,
    weight_scale: float = 5.0,
    n_train: int = 1000,
    n_valid: int = 1000,
    n_test: int = 1000,
    seed: int = 0,
) -> Dataset:
    """A teacher-student task: labels from a random stochastic network (see module doc).

    The teacher's weights are N(0, weight_scale^2); its biases centre every pre-activation
    (b_j = -1/2 sum_i W_ij, as if the layer read bits as -1/2 and +1/2), which keeps hidden
    units from being stuck on or off and the classes roughly balanced. With the default
    8-6-6-3 teacher and weight_scale 5, a learner that knew the teacher would be right on
    75-78 % of examples against 37-46 % for the most frequent class (seeds 0-3, computed by
    enumerating the teacher's hidden states).
    """
    _check_count("teacher", "n_in", n_in, minimum=1)
    if not isinstance(hidden, (list, tuple)) or not all(_is_count(width) and width >= 1 for width in hidden):
        raise ConfigError(f"teacher option hidden must be a list of positive layer widths, not {hidden!r}.")
    _check_count("teacher", "n_classes", n_classes, minimum=2)
    if isinstance(weight_scale, bool) or not isinstance(weight_scale, (int, float)) or not 0 < weight_scale < math.inf:
        raise ConfigError(f"teacher option weight_scale must be a finite positive number, not {weight_scale!r}.")
    sizes = _split_sizes("teacher", n_train, n_valid, n_test)
    _check_count("teacher", "seed", seed, minimum=0)

    widths = (n_in, *hidden, n_classes)
    weight_rng = _generator(seed, TEACHER_STREAM)
    weights = [weight_rng.normal(0.0, weight_scale, size=shape) for shape in zip(widths[:-1], widths[1:])]
    biases = [-0.5 * weight.sum(axis=0) for weight in weights]

    def make_split(split: str, size: int) -> Split:
        rng = _generator(seed, SPLIT_STREAMS[split])
        x = rng.integers(0, 2, size=(size, n_in)).astype(np.float64)
        state = x
        for weight, bias in zip(weights[:-1], biases[:-1]):
            probability = 0.5 * (1.0 + np.tanh(0.5 * (state @ weight + bias)))
            state = (rng.random(probability.shape) < probability).astype(np.float64)
        output = state @ weights[-1] + biases[-1]
        return Split(x.astype(np.float32), np.argmax(output, axis=1).astype(np.int64))

    return Dataset("teacher", n_in, n_classes, **{split: make_split(split, size) for split, size in sizes.items()})


def _generator(seed: int, stream: int) -> np.random.Generator:
    """The Philox generator of stream `stream` (teacher or one split) for `seed`."""
    return np.random.Generator(np.random.Philox(np.random.SeedSequence(seed, spawn_key=(stream,))))


def _split_sizes(task: str, n_train, n_valid, n_test) -> dict[str, int]:
    """Check the three split sizes (non-negative ints, at least one training example)."""
    _check_count(task, "n_train", n_train, minimum=1)
    _check_count(task, "n_valid", n_valid, minimum=0)
    _check_count(task, "n_test", n_test, minimum=0)
    return {"train": n_train, "valid": n_valid, "test": n_test}


def _check_count(task: str, option: str, value, minimum: int) -> None:
    if not _is_count(value) or value < minimum:
        raise ConfigError(f"{task} option {option} must be an integer >= {minimum}, not {value!r}.")


def _is_count(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)
