"""ARM and DisARM (docs/concepts.md): antithetic estimators for stochastic layers.

Yin & Zhou 2019, "ARM: augment-REINFORCE-merge"; Dong, Mnih & Tucker 2020, "DisARM". Applied
layer by layer with the lower samples held fixed. For stochastic layer i, with logits
phi = k a_i given the sampled input (p = sigmoid(phi), k = `net.slope`), one u ~ U(0, 1) per
unit (stream stream_id(stream, "estimator", i)) gives an antithetic pair of full-layer bits

    b = 1[u < p],   b~ = 1[1 - u < p]                 (each distributed as the bits of h_i)

each mapped to the unit's values (`values`: the bits themselves for Bernoulli units, 2 b - 1 for
stochastic signs) and fed through the layers above to get per-example losses f(b), f(b~). The layers above
sample from ONE stream, stream_id(stream, "estimator", i, "above"), for both members of the
pair: common random numbers, so f(b) - f(b~) carries no noise from above where b = b~. Per
unit j, the estimate of d E[l | lower samples] / d phi_j is

    ARM:     (f(b) - f(b~)) (1/2 - u_j)
    DisARM:  1/2 (f(b) - f(b~)) (-1)^{b~_j} 1[b_j != b~_j] sigmoid(|phi_j|)

(DisARM is ARM's expectation over u given the pair, so it never has more variance.) Yin & Zhou
write ARM as (f(1[u > sigmoid(-phi)]) - f(1[u < sigmoid(phi)])) (u - 1/2) = (f(b~) - f(b)) (u - 1/2):
the same estimator. Both are unbiased given the lower samples, hence unbiased. The output layer and the deterministic layers get the
exact gradient given the base sample, chained as in REINFORCE (`backprop.backward` with injected estimates).
Cost per mini-batch: one forward pass plus two passes through the layers above every
stochastic layer.
"""
import numpy as np

from .. import kernels, units
from ..network import Trace
from .base import GradientMethod, gemm_flops
from .backprop import backward
from .registry import register


@register
class Arm(GradientMethod):
    """ARM; `DisArm` changes only the per-unit weight of f(b) - f(b~)."""

    name = "arm"
    needs_stochastic = True
    true_derivatives = injects_at_stochastic = True

    @staticmethod
    def unit_weight(u, b, b_tilde, phi):
        return 0.5 - u  # ARM: (f(b) - f(b~)) (1/2 - u)

    def estimate(self, net, batch, seed):
        self.check_network(net)
        y = batch.y
        trace = batch.forward(net, seed)
        grad_a = {len(net.layers) - 1: net.output_grad(trace, y)}  # exact given the samples
        for i, layer in enumerate(net.layers):
            if layer.stochastic:
                grad_a[i] = self.logit_gradient(net, trace, y, i, seed, batch.stream) * (net.slope / len(batch))  # d/da = k d/dphi; batch mean
        return backward(net, trace, grad_a[len(net.layers) - 1], injected=grad_a), trace

    def flops_per_batch(self, net, batch):
        """Forward and backward passes, plus two passes through the layers above each stochastic layer."""
        rows = batch * self.options["samples"]
        above = sum(gemm_flops(net, rows, range(i + 1, len(net.layers))) for i, layer in enumerate(net.layers) if layer.stochastic)
        return super().flops_per_batch(net, batch) + 2 * above

    def logit_gradient(self, net, trace, y, i, seed, stream):
        """Per example and unit, the antithetic estimate of d E[l | samples below i] / d phi_i."""
        p = trace.p[i]
        phi = net.slope * trace.a[i]
        u = kernels.uniform(p.shape, seed, kernels.stream_id(stream, "estimator", i), dtype=np.float64)
        b = (u < p).astype(p.dtype)  # b = 1[u < p]
        b_tilde = (1 - u < p).astype(p.dtype)  # b~ = 1[1 - u < p]
        above = kernels.stream_id(stream, "estimator", i, "above")
        values = net.layers[i].kind.values
        difference = loss_with_sample(net, trace, y, i, values(b), seed, above) - loss_with_sample(net, trace, y, i, values(b_tilde), seed, above)
        return (difference[:, None] * self.unit_weight(u, b, b_tilde, phi)).astype(p.dtype)


@register
class DisArm(Arm):
    """DisARM: ARM Rao-Blackwellised over u given the antithetic pair."""

    name = "disarm"

    @staticmethod
    def unit_weight(u, b, b_tilde, phi):
        return 0.5 * (1 - 2 * b_tilde) * (b != b_tilde) * units.sigmoid(np.abs(phi))  # 1/2 (-1)^b~ 1[b != b~] sigmoid(|phi|)


def loss_with_sample(net, trace, y, i, h_i, seed, stream):
    """Per-example loss when layer i's sample is replaced by `h_i`, the layers above sampling from `stream`."""
    layer = net.layers[i]
    path = Trace(trace.x, trace.a[: i + 1], trace.h[:i] + [h_i], trace.p[: i + 1], trace.out[:i] + [units.transmit(layer.transmission, h_i)])
    net.continue_forward(path, i + 1, len(net.layers), seed, stream)
    return net.per_example_loss(path, y)
