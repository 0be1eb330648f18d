"""Straight-through estimators (design section 6.3).

Back-propagation in which every non-differentiable element (a Bernoulli sample, a sign or
step unit, a sign transmission) passes the gradient on with a surrogate derivative:
  stochastic units: `sigmoid` (dh/da = sigma'(a): the sample is treated as its probability,
                    the paper's baseline) or `identity` (dh/da = 1);
  sign/step:        `identity`, `clipped` (1[|a| <= 1]) or `tanh` (1 - tanh(a)^2).
Slope annealing (Chung et al. 2017): Bernoulli layers fire with probability sigmoid(k a),
k = min(slope_max, slope * (1 + slope_rate * (epoch - 1))); the default rate 0 keeps k = 1. A
network without Bernoulli layers refuses slope options (sign and step surrogates have no slope).
"""
from .. import units
from ..errors import ConfigError
from .backprop import backward
from .base import GradientMethod
from .registry import register


@register
class StraightThrough(GradientMethod):
    name = "st"
    OPTIONS = {**GradientMethod.OPTIONS, "surrogate": "sigmoid", "slope": 1.0, "slope_rate": 0.0, "slope_max": 5.0}

    def bind(self, net, seed=0):
        super().bind(net, seed)
        o = self.options
        if not (0 < o["slope"] <= o["slope_max"] and o["slope_rate"] >= 0):
            raise ConfigError(f"method 'st': need 0 < slope <= slope_max and slope_rate >= 0, got slope {o['slope']}, slope_max {o['slope_max']}, slope_rate {o['slope_rate']}")
        annealed = (o["slope"], o["slope_rate"]) != (self.OPTIONS["slope"], self.OPTIONS["slope_rate"])
        if annealed and not net.stochastic:
            raise ConfigError(f"method 'st': slope annealing acts on Bernoulli layers; network {net.spec} has none")
        surrogate = self.options["surrogate"]
        for i, layer in enumerate(net.layers):
            kinds = [layer.unit] if layer.unit in units.SURROGATES else []
            kinds += ["sign"] if layer.transmission == "sign" else []
            for kind in kinds:
                if surrogate not in units.SURROGATES[kind]:
                    raise ConfigError(
                        f"method 'st': surrogate {surrogate!r} does not apply to the {kind} units of layer {i}; "
                        f"choose one of {', '.join(units.SURROGATES[kind])}"
                    )

    @classmethod
    def oracle_variants(cls, net, configured):
        """One variant per surrogate that suits every non-differentiable element of `net`."""
        return {f"{cls.name}-{surrogate}": {"surrogate": surrogate} for surrogate in surrogates_for(net)}

    def start_epoch(self, net, epoch):
        o = self.options
        net.slope = min(o["slope_max"], o["slope"] * (1 + o["slope_rate"] * (epoch - 1)))  # k grows linearly per epoch

    def estimate(self, net, x, y, seed, stream):
        trace = net.forward(x, seed, stream)
        return backward(net, trace, net.output_grad(trace, y), surrogate=self.options["surrogate"]), trace


def surrogates_for(net):
    """The surrogates that apply to every non-differentiable element of `net` (none if it has none)."""
    kinds = {layer.unit for layer in net.layers if layer.unit in units.SURROGATES}
    kinds |= {"sign" for layer in net.layers if layer.transmission == "sign"}
    everything = dict.fromkeys(s for allowed in units.SURROGATES.values() for s in allowed)
    return [s for s in everything if kinds and all(s in units.SURROGATES[kind] for kind in kinds)]
