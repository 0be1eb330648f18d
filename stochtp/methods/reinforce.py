"""REINFORCE, the score-function estimator (docs/concepts.md).

A stochastic layer i fires with p_i = sigmoid(k a_i) (k = `net.slope`), and its unit gives
the score of its sample, d log P(h_i | a_i) / d a_i = k (c_i - p_i) with c_i the sample's bits
(c_i = h_i for a Bernoulli unit, (h_i + 1) / 2 for a stochastic sign). For a per-example loss l
on the sampled path and any baseline c that does not depend on that path,

    d E[l] / d a_i  ~  (l - c) k (c_i - p_i)                        (one sample, unbiased)
    dW_i            ~  mean over examples and samples of t(h_{i-1})^T (l - c) k (c_i - p_i)

Layers above the top stochastic layer get their exact gradient given the samples
(back-propagation from the loss). A deterministic layer below a stochastic layer s shapes
a_s, so it gets the score of s chained down through its true derivative (zero through sign):
`backprop.backward` with the estimates injected at the stochastic layers does both in one sweep; ARM/DisARM do the same.

Samples: `estimate` is given M copies of the mini-batch stacked as rows, row m*B + b being
sample m of example b (`GradientMethod.sampled_estimate`).

Baselines c:
  none  c = 0;
  ema   c = bias-corrected exponential moving average of the batch-mean loss of the EARLIER
        batches (updated after use, so c never depends on the samples it multiplies);
        0 on the first batch; saved in `state_dict` for checkpoints;
  loo   for sample m of example b, c = mean loss of the other M - 1 samples of b (M >= 2).
"""
from ..errors import ConfigError
from .backprop import backward
from .base import GradientMethod
from .registry import register

BASELINES = ("none", "ema", "loo")


@register
class Reinforce(GradientMethod):
    """Score-function gradient of the mini-batch mean expected loss, with a baseline."""

    name = "reinforce"
    needs_stochastic = True
    true_derivatives = injects_at_stochastic = True
    OPTIONS = {**GradientMethod.OPTIONS, "baseline": "none", "ema_decay": 0.99}

    def __init__(self, **options):
        super().__init__(**options)
        o = self.options
        if o["baseline"] not in BASELINES:
            raise ConfigError(f"method 'reinforce': baseline must be one of {', '.join(BASELINES)}, got {o['baseline']!r}")
        if o["baseline"] == "loo" and o["samples"] < 2:
            raise ConfigError(f"method 'reinforce': baseline 'loo' needs samples >= 2, got {o['samples']}")
        if not 0 <= o["ema_decay"] < 1:
            raise ConfigError(f"method 'reinforce': ema_decay must be in [0, 1), got {o['ema_decay']}")
        self.ema_mean, self.ema_steps = 0.0, 0

    def estimate(self, net, batch, seed):
        self.check_network(net)
        samples, rows, y = self.options["samples"], len(batch), batch.y
        trace = batch.forward(net, seed)  # row m*B + b: sample m of example b
        loss = net.per_example_loss(trace, y)  # l on each sampled path
        weight = (loss - self.baseline(loss, samples, rows // samples)) / rows  # (l - c), for the mean over rows
        grad_a = {len(net.layers) - 1: net.output_grad(trace, y)}  # exact given the samples
        for i, layer in enumerate(net.layers):
            if layer.stochastic:
                grad_a[i] = weight[:, None] * layer.kind.score(trace.h[i], trace.p[i], net.slope)  # (l - c) k (c_i - p_i)
        return backward(net, trace, grad_a[len(net.layers) - 1], injected=grad_a), trace

    @classmethod
    def oracle_variants(cls, net, configured):
        """Each baseline: none and ema with one sample per example, leave-one-out with two."""
        return {f"{cls.name}-none": {"baseline": "none"}, f"{cls.name}-ema": {"baseline": "ema"}, f"{cls.name}-loo-M2": {"baseline": "loo", "samples": 2}}

    def baseline(self, loss, samples, batch):
        """c for every row of `loss` (see the module docstring); updates the ema after computing it."""
        kind = self.options["baseline"]
        if kind == "none":
            return 0.0
        if kind == "loo":
            per_sample = loss.reshape(samples, batch)
            return ((per_sample.sum(axis=0) - per_sample) / (samples - 1)).reshape(-1)  # mean of the other samples
        decay = self.options["ema_decay"]
        c = self.ema_mean / (1 - decay**self.ema_steps) if self.ema_steps else 0.0  # bias-corrected average
        self.ema_mean = decay * self.ema_mean + (1 - decay) * float(loss.mean())  # updated after use
        self.ema_steps += 1
        return c

    def state_dict(self):
        return {**super().state_dict(), "baseline": {"ema_mean": self.ema_mean, "ema_steps": self.ema_steps}}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.ema_mean = float(state["baseline"]["ema_mean"])
        self.ema_steps = int(state["baseline"]["ema_steps"])
