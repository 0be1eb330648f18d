"""The stochastic sign unit of binary networks: h in {-1, +1}, P(h = +1) = p = sigmoid(k a).

    h = 2 c - 1 for the bit c ~ Bernoulli(p),  c = (h + 1) / 2
    E[h | a] = 2 p - 1,  d E[h | a] / d a = 2 k p (1 - p)
    score d log P(h | a) / d a = k (c - p)
"""
from .base import StochasticUnit, register, sigmoid_slope


@register
class StochasticSign(StochasticUnit):
    name, letter = "stochastic_sign", "p"

    def values(self, bits):
        return 2 * bits - 1

    def bits(self, h):
        return (h + 1) / 2

    def mean(self, p):
        return 2 * p - 1

    def probability_from_mean(self, m):
        return (m + 1) / 2

    def mean_derivative(self, a, h, p, slope=1.0):
        return sigmoid_slope(p, 2 * slope)  # 2 k p (1 - p)
