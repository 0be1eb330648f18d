"""Target propagation (`tp`) and difference target propagation (`dtp`); see docs/concepts.md.

Notation of Lee et al. (2015), 0-based here: layer j = 0..M-1, output layer M-1, top hidden layer
`top` = M-2. Each layer has a value in its own "target space" `v_j`, the unit's mean
E[h_j | a_j] (`Unit.mean`): the value h_j for a deterministic layer, the probability
h^p_j = sigmoid(a_j) for a Bernoulli layer, 2 h^p_j - 1 for a stochastic sign layer.
Every hidden layer j >= 1 owns an approximate inverse g_j(v) = tanh(t(v) @ V_j + c_j) back
to layer j-1's space, where t is `inverse_transmission` (sign for the paper's discrete net);
`inverse_unit = "identity"` drops the tanh (linear inverses, used to test exact inversion).

Per mini-batch (forward step):
  1. first target  v_hat_top = v_top - eta_hat * dL/d t(h_top)   (the derivative is taken on the
     transmitted value, i.e. on the sample for a stochastic layer)
  2. lower targets TP:  v_hat_{j-1} = g_j(v_hat_j)
                   DTP: v_hat_{j-1} = v_{j-1} + g_j(v_hat_j) - g_j(v_j)
  3. layer j <= top descends ||v_j - v_hat_j||^2 with its input held fixed; the output layer
     descends L. No gradient crosses a layer.
Inverse step: for j >= 1, with h_tilde = v_{j-1} + eps, eps ~ N(0, sigma^2), g_j descends
  ||g_j(f_j(h_tilde)) - h_tilde||^2, where f_j feeds t_{j-1}(h_tilde) (for a stochastic layer
  j-1, a sample of its unit whose mean is h_tilde) through layer j. sigma = sigma0 / (1 + epoch / tau), epoch = 1, 2, ....
Schedules: `alternating` (the reference: per epoch, all inverse steps, then all forward
steps) or `parallel` (per mini-batch: inverse step, then forward step).
Losses are summed over units and averaged over the mini-batch (`stochtp.losses`).
"""
import math

import numpy as np

from .. import batching, kernels, units
from ..errors import ConfigError
from ..kernels.fused import local_target_gradient, reconstruction_gradient
from ..network import affine, init_weights
from .backprop import backward
from .base import Method, batch_stats, epoch_stats, gemm_flops
from .registry import register


@register
class TargetProp(Method):
    """Difference target propagation; `difference=False` (the `tp` method) drops the correction."""

    name = "dtp"
    difference = True
    top = None  # the top hidden layer's index, set by `bind`
    OPTIONS = {
        "eta_hat": 0.3,
        "lr_f": 1e-3,
        "lr_b": 1e-3,
        "sigma": 0.3,
        "sigma_tau": math.inf,
        "schedule": "alternating",
        "optimizer": "centred_rmsprop",
        "optimizer_options": {},
        "inverse_init": "glorot",
        "inverse_transmission": "identity",
        "inverse_unit": "tanh",
    }

    def bind(self, net, seed=0):
        super().bind(net, seed)
        if len(net.layers) < 2:
            raise ConfigError(f"method {self.name!r} needs at least one hidden layer; {net.spec} has none")
        if self.options["schedule"] not in ("alternating", "parallel"):
            raise ConfigError(f"method {self.name!r}: schedule must be 'alternating' or 'parallel', got {self.options['schedule']!r}")
        if self.options["inverse_unit"] not in ("tanh", "identity"):
            raise ConfigError(f"method {self.name!r}: inverse_unit must be 'tanh' or 'identity', got {self.options['inverse_unit']!r}")
        if self.options["inverse_transmission"] not in units.TRANSMISSIONS:
            raise ConfigError(f"method {self.name!r}: inverse_transmission must be one of {', '.join(units.TRANSMISSIONS)}")
        for key in ("eta_hat", "lr_f", "lr_b"):
            if not 0 < self.options[key] < math.inf:
                raise ConfigError(f"method {self.name!r}: {key} must be a finite number > 0, got {self.options[key]}")
        if not self.options["sigma_tau"] > 0:
            raise ConfigError(f"method {self.name!r}: sigma_tau must be positive (inf: a constant sigma), got {self.options['sigma_tau']}")
        if not (0 <= self.options["sigma"] < math.inf):
            raise ConfigError(f"method {self.name!r}: sigma must be a finite number >= 0, got {self.options['sigma']}")
        for j, layer in enumerate(net.layers[:-1]):
            if not (layer.kind.differentiable or layer.kind.stochastic):
                raise ConfigError(f"method {self.name!r}: hidden layer {j} has {layer.unit!r} units, which a local loss cannot train; use tanh units with sign transmission (e.g. '500t:n')")
        self.top = len(net.layers) - 2
        dtype = net.dtype
        self.V, self.c = {}, {}
        for j in range(1, self.top + 1):
            n_j, n_below = net.layers[j].n_out, net.layers[j].n_in
            self.V[j] = init_weights(n_j, n_below, seed, kernels.stream_id("inverse-init", j), self.options["inverse_init"], dtype)
            self.c[j] = np.zeros(n_below, dtype=dtype)
        self.optimisers["forward"] = self.make_optimiser(net.parameters(), self.options["lr_f"])
        if self.V:
            inverse_params = [p for j in self.V for p in (self.V[j], self.c[j])]
            self.optimisers["inverse"] = self.make_optimiser(inverse_params, self.options["lr_b"])
        self.sigma = self.options["sigma"]
        self._reset_diagnostics(len(net.layers), net)

    @classmethod
    def oracle_variants(cls, net, configured):
        """With the options of a configured tp or dtp, so that the two differ by the difference
        correction only (inverses at their initialisation); else with the defaults."""
        options = {key: value for key, value in configured.items() if key != "name"}
        return {cls.name: options if configured["name"] in (TargetProp.name, PlainTargetProp.name) else {}}

    def aux_parameters(self):
        params = {}
        for j in self.V:
            params[f"inverse_{j}/V"] = self.V[j]
            params[f"inverse_{j}/c"] = self.c[j]
        return params

    # ------------------------------------------------------------------ the inverses g_j

    def g(self, j, v):
        """g_j(v) = tanh(t(v) @ V_j + c_j): layer j's space back to layer j-1's."""
        z = affine(units.transmit(self.options["inverse_transmission"], v), self.V[j], self.c[j])
        return units.tanh(z) if self.options["inverse_unit"] == "tanh" else z

    def inverse_inputs(self, net, x, seed, streams, out=None):
        """Per inverse j: (h_tilde, f_j(h_tilde)), the corrupted layer-(j-1) value and layer j's answer
        to it, for mini-batches stacked as rows (mini-batch k draws from streams[k]); the noisy
        input of the forward pass is made in `out` where given (`Network.fed_input`).

        They depend on the forward layers only, which the alternating schedule holds fixed for a
        whole inverse phase: a chunk of mini-batches is computed at once, in large matrix products.
        """
        last = self.top - 1  # the layer below the top one: its value is needed, not a sample of it
        trace = net.forward_fed(net.fed_input(x, seed, streams, out=out), seed, streams, stop=last)
        below_top = net.layers[last]
        v = self.target_values(net, trace) + [self.value(net, below_top, affine(trace.input_of(last), below_top.W, below_top.b))]
        pairs = {}
        for j in self.V:
            below, layer = net.layers[j - 1], net.layers[j]
            v_below = v[j - 1]
            inverse_noise = kernels.derive(streams, "inverse-noise", j)
            h_tilde = kernels.normal(v_below.shape, seed, inverse_noise, v_below.dtype, loc=v_below, scale=self.sigma)  # h~ = v_{j-1} + eps
            if below.stochastic:
                h_tilde_sample = below.kind.sample_from_mean(h_tilde, seed, kernels.derive(streams, "inverse-sample", j))
                fed = units.transmit(below.transmission, h_tilde_sample)
            else:
                fed = units.transmit(below.transmission, h_tilde)
            pairs[j] = (h_tilde, self.value(net, layer, affine(fed, layer.W, layer.b)))  # f_j(h~) in layer j's space
        return pairs

    @staticmethod
    def value(net, layer, a):
        """A layer's value in its target space given its pre-activation `a`, drawing nothing: its
        unit's mean (with the network's slope, as its forward pass)."""
        return layer.kind.mean_from_preactivation(a, net.slope)

    @staticmethod
    def target_values(net, trace):
        """v_j for the layers of `trace`: each unit's mean given the trace's probabilities."""
        return [layer.kind.mean(p) for layer, p in zip(net.layers, trace.p)]

    def inverse_descent(self, pairs):
        """One descent step of every inverse g_j on ||g_j(f_j(h~)) - h~||^2, given one mini-batch's pairs."""
        grads = []
        for j, (h_tilde, v_j) in pairs.items():
            r = self.g(j, v_j)  # g_j(f_j(h~))
            grad_z, grad_c = np.empty_like(r), np.empty_like(self.c[j])
            through_tanh = self.options["inverse_unit"] == "tanh"
            squares = reconstruction_gradient(r, h_tilde, r.dtype.type(2.0 / len(r)), through_tanh, grad_z, grad_c)  # d||r - h~||^2 / dz, z = t(v) V + c
            self._inverse_error[j] += squares / len(r)
            grads += [units.transmit(self.options["inverse_transmission"], v_j).T @ grad_z, grad_c]
        self._inverse_batches += 1
        self.optimisers["inverse"].step(grads)

    def inverse_step(self, net, x, seed, stream):
        """One descent step of every inverse on its noise-corrupted reconstruction loss."""
        if self.V:
            self.inverse_descent(self.inverse_inputs(net, x, seed, [stream]))

    def inverse_phase(self, net, batches, seed):
        """The alternating schedule's inverse phase: a step per mini-batch, inputs computed a chunk
        at a time (one forward pass over the chunk's stacked inputs, `batching.Chunk.x`)."""
        if not self.V:
            return
        recycled = batching.Recycled()
        for chunk in batching.chunks(batches):
            streams = [kernels.stream_id(stream, "inverse-phase") for stream in chunk.streams]
            pairs = self.inverse_inputs(net, chunk.x, seed, streams, out=recycled.array(chunk.x.shape, net.dtype))
            for batch in chunk:
                self.inverse_descent({j: (h_tilde[batch.rows], v_j[batch.rows]) for j, (h_tilde, v_j) in pairs.items()})

    # ------------------------------------------------------------------ targets and forward step

    def targets(self, net, trace, y):
        """Targets v_hat_j for the hidden layers j = 0..top, in each layer's target space."""
        v = self.target_values(net, trace)
        return self.propagate(v, self.first_target(net, v, net.output_grad(trace, y)))

    def first_target(self, net, v, grad_output):
        """v_hat_top = v_top - eta_hat dL/dt(h_top): the loss gradient taken on the transmitted value.

        `v` holds the layers' target-space values, `grad_output` is dL/da of the output layer."""
        grad_out = grad_output @ net.layers[self.top + 1].W.T  # dL/d t(h_top)
        return v[self.top] - self.options["eta_hat"] * grad_out

    def propagate(self, v, v_hat_top):
        """Lower targets from the top one, through the inverses (with the difference correction for
        DTP), given the layers' target-space values `v` (`target_values`)."""
        v_hat = [None] * (self.top + 1)
        v_hat[self.top] = v_hat_top
        for j in range(self.top, 0, -1):
            if self.difference:
                both = self.g(j, np.concatenate([v_hat[j], v[j]]))  # one product for g(v_hat_j) and g(v_j)
                g_hat, g_v = both[: len(v_hat[j])], both[len(v_hat[j]):]
                v_hat[j - 1] = v[j - 1] + g_hat - g_v  # DTP: v_{j-1} + g(v_hat_j) - g(v_j)
            else:
                v_hat[j - 1] = self.g(j, v_hat[j])  # TP
        return v_hat

    def forward_gradients(self, net, batch, seed):
        """Per-layer (dW, db) of the local losses (hidden layers) and of L (output), and the trace,
        for a `batching.MiniBatch`."""
        trace = batch.forward(net, seed)
        grad_output = net.output_grad(trace, batch.y)
        v = self.target_values(net, trace)
        v_hat = self.propagate(v, self.first_target(net, v, grad_output))
        grads = backward(net, trace, grad_output, bottom=len(net.layers) - 1)
        rows = len(batch)
        for j in range(self.top + 1):
            layer = net.layers[j]
            dv_da = layer.kind.mean_derivative(trace.a[j], trace.h[j], trace.p[j], net.slope)
            grad_a, grad_b = np.empty_like(v[j]), np.empty_like(layer.b)
            distance = local_target_gradient(v[j], v_hat[j], dv_da, grad_a.dtype.type(2.0 / rows), grad_a, grad_b)  # d||v_j - v_hat_j||^2 / da_j
            self._target_distance[j] += distance / rows
            grads[j] = (trace.input_of(j).T @ grad_a, grad_b)
        self._forward_batches += 1
        return grads, trace

    def update(self, net, x, y, seed, stream=0):
        """The forward step's update direction per layer, [(dW, db), ...] (what the optimiser descends along)."""
        if self.top is None:
            raise ValueError(f"method {self.name!r} is not bound to a network: call bind(net) first")
        grads, _ = self.forward_gradients(net, batching.MiniBatch(stream, *net.check_batch(x, y)), seed)
        return grads

    def forward_step(self, net, batch, seed):
        grads, trace = self.forward_gradients(net, batch, seed)
        if self._angle_due:
            self._bp_angle = self._angles(net, trace, batch.y, grads)
            self._angle_due = False
        self.optimisers["forward"].step([g for pair in grads for g in pair])
        return batch_stats(net, trace, batch.y)

    def _angles(self, net, trace, y, grads):
        """Angle (degrees) between each layer's update and the back-prop gradient of the same batch."""
        if any(not layer.kind.differentiable or layer.transmission != "identity" for layer in net.layers):
            return np.full(len(net.layers), np.nan)
        exact = backward(net, trace, net.output_grad(trace, y))
        angles = []
        for (dW, db), (eW, eb) in zip(grads, exact):
            u, v = np.concatenate([dW.ravel(), db]), np.concatenate([eW.ravel(), eb])
            cosine = float(u @ v) / max(float(np.linalg.norm(u) * np.linalg.norm(v)), 1e-30)
            angles.append(math.degrees(math.acos(max(-1.0, min(1.0, cosine)))))
        return np.array(angles)

    # ------------------------------------------------------------------ epochs and schedules

    def flops_per_batch(self, net, batch):
        """Inverse step: the layers below the top one, then f_j, g_j and g_j's gradient for each
        inverse. Forward step: a forward pass, dL/dt(h_top), g_j on 2 batch rows (g(v_hat), g(v))
        for each inverse, and every layer's weight gradient."""
        inverses = range(1, self.top + 1)
        inverse = gemm_flops(net, batch, range(self.top)) + 3 * gemm_flops(net, batch, inverses)
        forward = 2 * gemm_flops(net, batch) + gemm_flops(net, batch, [self.top + 1]) + 2 * gemm_flops(net, batch, inverses)
        return inverse + forward

    def start_epoch(self, net, epoch):
        self.sigma = self.options["sigma"] / (1 + epoch / self.options["sigma_tau"])  # sigma0 / (1 + epoch / tau), epochs from 1 as in the paper's code

    def step(self, net, batch, seed):
        """Parallel schedule: inverse step, then forward step, on the same mini-batch."""
        self.inverse_step(net, batch.x, seed, kernels.stream_id(batch.stream, "inverse-phase"))
        return self.forward_step(net, batch, seed)

    def train_epoch(self, net, batches, seed, epoch):
        self._reset_diagnostics(len(net.layers), net)
        if self.options["schedule"] == "parallel":
            return super().train_epoch(net, batches, seed, epoch)
        self.start_epoch(net, epoch)
        self.inverse_phase(net, batches, seed)
        return epoch_stats(self.forward_step(net, batch, seed) for chunk in batching.chunks(batches) for batch in chunk)

    def passes_per_epoch(self):
        """Two with the alternating schedule (the inverse phase, then the forward one), else one."""
        return 2 if self.options["schedule"] == "alternating" and self.V else 1

    def _reset_diagnostics(self, n_layers, net):
        self._inverse_error = np.zeros(n_layers)
        self._target_distance = np.zeros(n_layers)
        self._inverse_batches = self._forward_batches = 0
        self._bp_angle = np.full(n_layers, np.nan)
        self._angle_due = True

    def diagnostics(self):
        """Per layer: mean inverse reconstruction error, mean target distance ||v_hat - v||, BP angle.

        NaN where a layer has no such quantity (no inverse on layer 0, no target on the output,
        no angle on networks with discrete units). The angle is taken on the epoch's first batch.
        """
        n = len(self._inverse_error)
        inverse = np.full(n, np.nan)
        distance = np.full(n, np.nan)
        for j in self.V:
            inverse[j] = self._inverse_error[j] / max(self._inverse_batches, 1)
        distance[: self.top + 1] = self._target_distance[: self.top + 1] / max(self._forward_batches, 1)
        return {"inverse_error": inverse, "target_distance": distance, "bp_angle": self._bp_angle}


@register
class PlainTargetProp(TargetProp):
    """Target propagation without the difference correction: v_hat_{j-1} = g_j(v_hat_j)."""

    name = "tp"
    difference = False
