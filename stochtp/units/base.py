"""The unit interface and its registry (docs/concepts.md, docs/extending.md).

A unit maps a layer's pre-activation `a` to its value `h`. A deterministic unit returns (h, h)
from `activate`; a stochastic one returns (h, p), h a sample and p its firing probability.
Units whose true derivative is zero almost everywhere (sign, step, the stochastic units) are
not `differentiable`: back-propagation gets None from `derivative` and straight-through
(`methods.straight_through`) names one of the unit's `surrogates` instead.

Every stochastic unit is a function of one binary bit per unit, c ~ Bernoulli(p),
p = sigmoid(k a) (k = the network's slope): h = values(c). So the score of a sample is
d log P(h | a) / d a = k (c - p) for every such unit, and methods that work in bits (ARM's
antithetic pairs, the oracle's enumeration) map bits to values with `values`.

A unit is registered under a one-letter spec code (`784-200b-10s`) by the `register` class
decorator; `get` finds it by name or letter.
"""
import numpy as np

from .. import kernels
from ..errors import ConfigError
from ..kernels import fused
from .functions import elementwise, log_sigmoid, sigmoid, sloped

_UNITS = {}  # letter -> unit and name -> unit, one instance per class


def register(cls):
    """Class decorator: make the unit usable by name and spec letter (one lowercase letter, free;
    a new definition of the same class, as a notebook cell run again, replaces it).

    >>> import numpy as np, stochtp
    >>> from stochtp import units
    >>> @units.register
    ... class Softplus(units.Unit):
    ...     # log(1 + exp(a)), whose derivative is sigmoid(a)
    ...     name, letter = "softplus", "y"
    ...     def forward(self, a):
    ...         return np.logaddexp(0, a)
    ...     def true_derivative(self, a, h):
    ...         return units.sigmoid(a)
    >>> net = stochtp.Network.from_spec("4-3y-2s", seed=0)
    >>> net.layers[0].unit, net.forward(np.ones((2, 4))).h[0].shape
    ('softplus', (2, 3))
    """
    letter, name = cls.letter, cls.name
    if not (isinstance(letter, str) and len(letter) == 1 and letter.islower()):
        raise ValueError(f"unit {cls.__name__}: letter must be one lowercase letter, got {letter!r}")
    if not (isinstance(name, str) and len(name) > 1):
        raise ValueError(f"unit {cls.__name__}: name must be a string of two characters or more, got {name!r}")
    for key in (letter, name):
        known = _UNITS.get(key)
        redefined = known is not None and (type(known).__module__, type(known).__qualname__) == (cls.__module__, cls.__qualname__)
        if known is not None and not redefined:
            raise ValueError(f"unit {cls.__name__}: {key!r} is already the {known.name} unit's")
    unit = cls()
    _UNITS[letter] = _UNITS[name] = unit
    return cls


def get(name_or_letter):
    """The registered unit of this name or spec letter; ConfigError listing the known ones otherwise."""
    unit = _UNITS.get(name_or_letter) if isinstance(name_or_letter, str) else None
    if unit is None:
        known = ", ".join(f"{unit.letter}={unit.name}" for unit in registered().values())
        raise ConfigError(f"unknown unit {name_or_letter!r}; known units: {known}")
    return unit


def registered():
    """letter -> unit, in registration order."""
    return {key: unit for key, unit in _UNITS.items() if key == unit.letter}


def ones(unit, a, p, slope):
    """d h / d a = 1: the `identity` surrogate."""
    return np.ones_like(a)


def mean_slope(unit, a, p, slope):
    """d E[h | a] / d a: the `sigmoid` surrogate of a stochastic unit (the sample treated as its mean)."""
    return unit.mean_derivative(a, None, p, slope)


class Unit:
    """A deterministic element-wise unit; subclasses set `name`, `letter` and `forward` (and
    `derivative`; see `register` for a whole one).

    >>> from stochtp import units
    >>> tanh = units.get("t")
    >>> tanh.name, tanh.stochastic, tanh.differentiable
    ('tanh', False, True)
    """

    name = None
    letter = None
    stochastic = False
    differentiable = True  # False: the true derivative is zero almost everywhere
    surrogates = {}  # straight-through surrogate name -> d h / d a as a function of (unit, a, p, slope)
    output_only = False  # allowed on the output layer only
    output_loss = "mse"  # the loss of a network ending with this unit

    def forward(self, a):
        raise NotImplementedError

    def true_derivative(self, a, h):
        """d h / d a given a and h = forward(a), for a differentiable unit."""
        raise NotImplementedError

    def activate(self, a, seed=0, stream=0, slope=1.0):
        """(h, p): the value and, for a stochastic unit, its firing probability (h itself otherwise)."""
        h = self.forward(a)
        return h, h

    def derivative(self, a, h, p, surrogate=None, slope=1.0):
        """d h / d a for back-propagation, or None where it is exactly zero: the true derivative of
        a differentiable unit; a straight-through `surrogate` for the others where one is named."""
        if self.differentiable:
            return self.true_derivative(a, h)
        return None if surrogate is None else self.surrogate_derivative(surrogate, a, p, slope)

    def surrogate_derivative(self, surrogate, a, p, slope=1.0):
        """d h / d a that straight-through uses in place of the true zero derivative."""
        if surrogate not in self.surrogates:
            raise ConfigError(f"unknown surrogate {surrogate!r} for {self.name} units; known: {', '.join(self.surrogates)}")
        return self.surrogates[surrogate](self, a, p, slope)

    def mean(self, p):
        """E[h | a] from a trace's `p` entry, which for a deterministic unit is h itself."""
        return p

    def mean_from_preactivation(self, a, slope=1.0):
        """E[h | a], drawing nothing."""
        return self.forward(a)

    def mean_derivative(self, a, h, p, slope=1.0):
        """d E[h | a] / d a (None where it is zero almost everywhere)."""
        return self.derivative(a, h, p)


class StochasticUnit(Unit):
    """h = values(c), c ~ Bernoulli(p), p = sigmoid(k a) (module docstring); subclasses give
    `values`, `bits`, `mean`, `probability_from_mean` and `mean_derivative`.

    >>> import numpy as np
    >>> from stochtp import units
    >>> sign = units.get("stochastic_sign")
    >>> h, p = sign.activate(np.zeros((1, 4), np.float32), seed=0, stream=1)
    >>> sorted(set(h.ravel().tolist()) | {-1.0, 1.0}), p.tolist(), sign.values(np.array([0.0, 1.0])).tolist()
    ([-1.0, 1.0], [[0.5, 0.5, 0.5, 0.5]], [-1.0, 1.0])
    """

    stochastic = True
    differentiable = False
    surrogates = {"sigmoid": mean_slope, "identity": ones}

    def values(self, bits):
        """The unit's values for an array of {0, 1} bits."""
        raise NotImplementedError

    def bits(self, h):
        """The bits of an array of the unit's values (the inverse of `values`)."""
        raise NotImplementedError

    def mean(self, p):
        """E[h | a] given the firing probability p."""
        raise NotImplementedError

    def probability_from_mean(self, m):
        """The firing probability whose mean is m (the inverse of `mean`)."""
        raise NotImplementedError

    def mean_derivative(self, a, h, p, slope=1.0):
        raise NotImplementedError

    def probability(self, a, slope=1.0):
        """p = sigmoid(k a), without a draw."""
        return sigmoid(sloped(a, slope))

    def log_probabilities(self, a, slope=1.0):
        """(log p, log(1 - p)) of p = sigmoid(k a), accurate for large |k a| (the oracle's float64)."""
        phi = slope * a
        return log_sigmoid(phi), log_sigmoid(-phi)

    def activate(self, a, seed=0, stream=0, slope=1.0):
        """(h, p): p = sigmoid(k a) and a sample of the unit drawn from (seed, stream) in one pass."""
        p, bits = kernels.sigmoid_bernoulli(sloped(a, slope), seed, stream)
        return self.values(bits), p

    def sample(self, p, seed, stream, repeats=1):
        """A sample given the firing probability p (values of p's dtype), from (seed, stream);
        `repeats` samples stacked as rows, given as many streams (`kernels.bernoulli`)."""
        stacked = None if repeats == 1 else np.empty((repeats * len(p), *p.shape[1:]), p.dtype)
        return self.values(kernels.bernoulli(p, seed, stream, out=stacked, dtype=p.dtype))

    def sample_from_mean(self, m, seed, stream):
        """A sample whose expectation is m (clipped to the unit's range), from (seed, stream)."""
        return self.sample(self.probability_from_mean(m), seed, stream)

    def score(self, h, p, slope=1.0):
        """d log P(h | a) / d a = k (c - p), c the bits of the sample h."""
        return slope * (self.bits(h) - p)

    def mean_from_preactivation(self, a, slope=1.0):
        return self.mean(self.probability(a, slope))


def sigmoid_slope(p, scale):
    """scale p (1 - p) by the fused kernel, in p's dtype: k p (1 - p) = d sigmoid(k a) / d a for scale k."""
    return elementwise(fused.sigmoid_slope, p, scale)
