"""The denoising auto-encoder of the paper (docs/concepts.md): trained by difference target propagation
(`dae-dtp`) or by back-propagation (`dae-bp`, the baseline), on the same network.

The network is `n-Hg-ng` (e.g. `784-500g-784g`): an encoder layer and a decoder layer of
sigmoid units. In training the input is corrupted by the network's Gaussian input noise,
x̃ = x + ε, ε ~ N(0, input_noise²) per pixel:

    h = f(x̃) = sigmoid(x̃ W + b)             encoder (layer 0)
    z = g(h) = sigmoid(h W' + c)             decoder (layer 1); W' = Wᵀ with `tied` (the default)
    L = mean over the mini-batch of ||z - x||²   reconstruction loss, summed over pixels

`dae-bp` descends dL/d(W, b, W', c), the chain rule through both layers.

`dae-dtp` lets no gradient cross from the decoder into the encoder:
    decoder:  dL/d(W', c), its own gradient;
    encoder:  the DTP target, with the decoder as the forward map, the encoder as its
              approximate inverse and the clean input x as the target of z:
                  ĥ = h + f(x) - f(z)
              and the local loss L_e = mean ||f(x̃) - ĥ||², x̃ and ĥ held constant.

Tied weights (both methods): W enters the encoder as W and the decoder as W' = Wᵀ, so its
update is the sum of the two: dW = (encoder's gradient w.r.t. W) + (decoder's gradient w.r.t.
W')ᵀ, one optimiser step on [W, b, c] with that sum (for `dae-bp` this sum is exactly dL/dW).
`bind` makes the decoder's W a view of the encoder's Wᵀ (its own initial draw is dropped), so
the network's forward pass, results file and checkpoints read the shared weights as they are.
With `tied = false` the decoder owns W' and the optimiser steps on [W, b, W', c].
"""
import abc
import math

from ..errors import ConfigError
from .backprop import backward
from .base import Method, batch_stats
from .registry import register


class AutoencoderMethod(Method):
    """Trains an auto-encoder `n-Hg-ng` on the reconstruction of its clean input (the task
    `autoencode`: the training loop reports reconstruction errors and a linear probe, not
    classification errors). Subclasses give the per-layer `directions`."""

    task = "autoencode"
    OPTIONS = {"lr": 1e-3, "optimizer": "centred_rmsprop", "optimizer_options": {}, "tied": True}

    def check_network(self, net):
        """ConfigError unless `net` is an encoder and a decoder of sigmoid units, back to the input's size."""
        n_in = net.layers[0].n_in
        shaped = len(net.layers) == 2 and net.layers[1].n_out == n_in
        if not (shaped and all(layer.unit == "sigmoid" and layer.transmission == "identity" for layer in net.layers)):
            raise ConfigError(f"method {self.name!r} trains an auto-encoder of sigmoid units, {n_in}-<hidden>g-{n_in}g (e.g. 784-500g-784g); network {net.spec} is not one")

    def bind(self, net, seed=0):
        super().bind(net, seed)
        lr = self.options["lr"]
        if not (math.isfinite(lr) and lr > 0):
            raise ConfigError(f"method {self.name!r}: lr must be a positive number, got {lr!r}")
        encoder, decoder = net.layers
        if self.options["tied"]:
            decoder.W = encoder.W.T  # W' = Wᵀ, a view: one array of weights
        self.optimisers["forward"] = self.make_optimiser(self.free_parameters(net), lr)

    def free_parameters(self, net):
        """The arrays the optimiser steps: [W, b, c] with tied weights, [W, b, W', c] without."""
        encoder, decoder = net.layers
        return [encoder.W, encoder.b, decoder.b] if self.options["tied"] else net.parameters()

    def free_gradients(self, directions):
        """Per-layer [(dW, db), (dW', dc)] as the directions of `free_parameters`."""
        (dW, db), (dW_decoder, dc) = directions
        if self.options["tied"]:
            return [dW + dW_decoder.T, db, dc]  # dW = encoder's + (decoder's dW')ᵀ
        return [dW, db, dW_decoder, dc]

    @abc.abstractmethod
    def directions(self, net, trace, x):
        """Per-layer [(dW, db), (dW', dc)] of the forward pass `trace` whose clean input is `x`."""

    def update(self, net, x, y, seed, stream=0):
        """The per-layer directions of a mini-batch; `y` is not read (the target is `x`)."""
        x = net.check_input(x)
        return self.directions(net, net.forward(x, seed, stream), x)

    def step(self, net, batch, seed):
        trace = batch.forward(net, seed)
        self.optimisers["forward"].step(self.free_gradients(self.directions(net, trace, batch.x)))
        return batch_stats(net, trace, batch.x)


@register
class AutoencoderBackprop(AutoencoderMethod):
    """The baseline: back-propagation of the reconstruction loss through decoder and encoder."""

    name = "dae-bp"

    def directions(self, net, trace, x):
        return backward(net, trace, net.output_grad(trace, x))  # dL/da_z = 2 (z - x) / B ⊙ z (1 - z), then the chain rule


@register
class AutoencoderTargetProp(AutoencoderMethod):
    """Difference target propagation: the decoder on its own gradient, the encoder on a local loss."""

    name = "dae-dtp"

    def directions(self, net, trace, x):
        encoder = net.layers[0]
        decoder_direction = backward(net, trace, net.output_grad(trace, x), bottom=1)[1]  # dL/dW' = hᵀ δ_z, dL/dc = Σ δ_z
        h, z = trace.h
        target = h + encode(net, x) - encode(net, z)  # ĥ = h + f(x) - f(z)
        delta = (2.0 / len(x)) * (h - target) * encoder.kind.derivative(trace.a[0], h, h)  # dL_e/da_h = 2 (f(x̃) - ĥ) / B ⊙ h (1 - h)
        return [(trace.x.T @ delta, delta.sum(axis=0)), decoder_direction]  # dL_e/dW = x̃ᵀ δ_h, dL_e/db = Σ δ_h


def encode(net, x):
    """f(x) = sigmoid(x W + b): the encoder alone, on `x` as given (no noise)."""
    return net.forward_fed(x, stop=1).h[0]
