"""Deterministic discrete units: sign (+1 / -1) and step (1 / 0). Their true derivative is zero
almost everywhere; straight-through passes them with `identity` (1), `clipped` (1[|a| <= 1]) or
`tanh` (1 - tanh(a)^2)."""
import numpy as np

from .base import Unit, ones, register
from .functions import sign


def clipped(unit, a, p, slope):
    return (np.abs(a) <= 1).astype(a.dtype)


def tanh_slope(unit, a, p, slope):
    return 1 - np.tanh(a) ** 2


class Discrete(Unit):
    differentiable = False
    surrogates = {"identity": ones, "clipped": clipped, "tanh": tanh_slope}


@register
class Sign(Discrete):
    """+1 where a > 0, else -1 (also the `sign` transmission)."""

    name, letter = "sign", "n"

    def forward(self, a):
        return sign(a)


@register
class Step(Discrete):
    """1 where a > 0, else 0."""

    name, letter = "step", "h"

    def forward(self, a):
        return (a > 0).astype(a.dtype)
