"""Continuous units: identity, tanh, sigmoid, relu, and softmax for the output layer."""
import numpy as np

from ..errors import ConfigError
from .base import Unit, register
from .functions import sigmoid, softmax, tanh


@register
class Identity(Unit):
    name, letter = "identity", "l"

    def forward(self, a):
        return a

    def true_derivative(self, a, h):
        return np.ones_like(a)


@register
class Tanh(Unit):
    name, letter = "tanh", "t"

    def forward(self, a):
        return tanh(a)

    def true_derivative(self, a, h):
        return 1 - h * h


@register
class Sigmoid(Unit):
    name, letter = "sigmoid", "g"

    def forward(self, a):
        return sigmoid(a)

    def true_derivative(self, a, h):
        return h * (1 - h)


@register
class Relu(Unit):
    name, letter = "relu", "r"

    def forward(self, a):
        return np.maximum(a, 0)

    def true_derivative(self, a, h):
        return (a > 0).astype(a.dtype)


@register
class Softmax(Unit):
    """The output distribution over classes, trained on the negative log-likelihood."""

    name, letter = "softmax", "s"
    output_only = True
    output_loss = "nll"

    def forward(self, a):
        return softmax(a)

    def true_derivative(self, a, h):
        raise ConfigError(f"unit {self.name!r} has no element-wise derivative")
