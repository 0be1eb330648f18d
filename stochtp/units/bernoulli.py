"""The Bernoulli unit: h in {0, 1}, P(h = 1) = p = sigmoid(k a). Its bits are its values and
its mean is p, so every map of `StochasticUnit` is the identity here."""
from .base import StochasticUnit, register, sigmoid_slope


@register
class Bernoulli(StochasticUnit):
    name, letter = "bernoulli", "b"

    def values(self, bits):
        return bits

    def bits(self, h):
        return h

    def mean(self, p):
        return p

    def probability_from_mean(self, m):
        return m

    def mean_derivative(self, a, h, p, slope=1.0):
        return sigmoid_slope(p, slope)  # d sigmoid(k a) / d a = k p (1 - p)
