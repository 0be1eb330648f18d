"""Straight-through estimators (docs/concepts.md).

Back-propagation in which every non-differentiable element (a stochastic sample, a sign or
step unit, a sign transmission) passes the gradient on with a surrogate derivative, one of
those its unit accepts (`Unit.surrogates`):
  stochastic units: `sigmoid` (dh/da = d E[h | a] / da: the sample is treated as its mean,
                    sigma'(a) for a Bernoulli unit, the paper's baseline) or `identity` (dh/da = 1);
  sign/step:        `identity`, `clipped` (1[|a| <= 1]) or `tanh` (1 - tanh(a)^2).
Slope annealing (Chung et al. 2017): stochastic layers fire with probability sigmoid(k a),
k = min(slope_max, slope * (1 + slope_rate * (epoch - 1))); the default rate 0 keeps k = 1. A
network without stochastic layers refuses slope options (sign and step surrogates have no slope).
"""
from ..errors import ConfigError
from .backprop import backward
from .base import GradientMethod
from .registry import register


@register
class StraightThrough(GradientMethod):
    name = "st"
    OPTIONS = {**GradientMethod.OPTIONS, "surrogate": "sigmoid", "slope": 1.0, "slope_rate": 0.0, "slope_max": 5.0}
    slope = None  # the slope k stochastic layers fire with now; None: the network's own

    def bind(self, net, seed=0):
        super().bind(net, seed)
        o = self.options
        if not (0 < o["slope"] <= o["slope_max"] and o["slope_rate"] >= 0):
            raise ConfigError(f"method 'st': need 0 < slope <= slope_max and slope_rate >= 0, got slope {o['slope']}, slope_max {o['slope_max']}, slope_rate {o['slope_rate']}")
        annealed = (o["slope"], o["slope_rate"]) != (self.OPTIONS["slope"], self.OPTIONS["slope_rate"])
        if annealed and not net.stochastic:
            raise ConfigError(f"method 'st': slope annealing acts on stochastic layers; network {net.spec} has none")
        self.slope = o["slope"] if annealed else None  # the first epoch's k from the start (the oracle scores before any epoch)
        surrogate = self.options["surrogate"]
        for i, layer in enumerate(net.layers):
            for unit in layer.surrogate_units:
                if surrogate not in unit.surrogates:
                    raise ConfigError(
                        f"method 'st': surrogate {surrogate!r} does not apply to the {unit.name} units of layer {i}; "
                        f"choose one of {', '.join(unit.surrogates)}"
                    )

    @classmethod
    def oracle_variants(cls, net, configured):
        """One variant per surrogate that suits every non-differentiable element of `net`."""
        return {f"{cls.name}-{surrogate}": {"surrogate": surrogate} for surrogate in surrogates_for(net)}

    def start_epoch(self, net, epoch):
        o = self.options
        self.slope = min(o["slope_max"], o["slope"] * (1 + o["slope_rate"] * (epoch - 1)))  # k grows linearly per epoch

    def inference_network(self, net):
        """`net` with the current slope: stochastic layers fire with probability sigmoid(k a) in
        training and at test time. For a network without stochastic layers, or before the first
        epoch of a method that does not anneal (slope 1, rate 0), `net` as it is."""
        return net.replace(slope=self.slope) if net.stochastic and self.slope is not None else net

    def estimate(self, net, batch, seed):
        sloped = self.inference_network(net)
        trace = batch.forward(sloped, seed)
        return backward(sloped, trace, sloped.output_grad(trace, batch.y), surrogate=self.options["surrogate"]), trace


def surrogates_for(net):
    """The straight-through surrogates that apply to every non-differentiable element of `net` (none if it has none)."""
    kinds = [unit for layer in net.layers for unit in layer.surrogate_units]
    return [s for s in kinds[0].surrogates if all(s in kind.surrogates for kind in kinds)] if kinds else []
