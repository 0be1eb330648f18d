"""The interface every credit-assignment method implements (docs/extending.md).

A method is built from options (a config section), owns its auxiliary parameters and
optimisers, and trains a network one epoch at a time:

    method = stochtp.methods.get("dtp", eta_hat=0.33, lr_f=0.015, lr_b=0.005)
    method.bind(net)                                  # creates optimisers, inverses, baselines
    stats = method.train_epoch(net, batches, seed, epoch)

`batches` is an iterable of `(stream, x, y)` (the loop gives a `batching.Batches`); `stream`
names the mini-batch's random numbers (see `stochtp.kernels.streams`). `train_epoch` prepares
them in chunks (`stochtp.batching`) and hands `step` one `MiniBatch` at a time, whose
`forward(net, seed)` is the training forward pass. Every method has `update(net, x, y, seed)`,
the per-layer `(dW, db)` direction its optimiser descends along; estimators (`GradientMethod`)
also expose `gradient(net, x, y, seed)`, an estimate of the gradient of the mini-batch mean loss.
"""
import abc
import math

import numpy as np

from .. import batching, losses, units
from ..errors import ConfigError
from ..network import Trace
from ..optim import make as make_optimiser


class Method(abc.ABC):
    """Base class: option handling, epoch loop over `step`, optimiser state for checkpoints.

    Subclasses list their options with defaults in `OPTIONS` and implement `bind`, `step` and
    `update`; `GradientMethod` is the base of estimators. A target-style method, registered:

    >>> import numpy as np, stochtp
    >>> from stochtp.methods.backprop import backward
    >>> from stochtp.methods.base import batch_stats
    >>> @stochtp.methods.register
    ... class SignDescent(stochtp.methods.Method):
    ...     # every parameter steps lr against the sign of its back-propagated gradient
    ...     name = "sign-descent"
    ...     OPTIONS = {"lr": 0.01}
    ...     def directions(self, net, batch, seed):
    ...         trace = batch.forward(net, seed)
    ...         return [(np.sign(dW), np.sign(db)) for dW, db in backward(net, trace, net.output_grad(trace, batch.y))], trace
    ...     def update(self, net, x, y, seed, stream=0):
    ...         return self.directions(net, stochtp.batching.MiniBatch(stream, *net.check_batch(x, y)), seed)[0]
    ...     def step(self, net, batch, seed):
    ...         directions, trace = self.directions(net, batch, seed)
    ...         for layer, (dW, db) in zip(net.layers, directions):
    ...             layer.W -= self.options["lr"] * dW
    ...             layer.b -= self.options["lr"] * db
    ...         return batch_stats(net, trace, batch.y)
    >>> net = stochtp.Network.from_spec("4-5t-2s", seed=0)
    >>> method = stochtp.methods.get("sign-descent", lr=0.05)
    >>> method.bind(net)
    >>> stats = method.train_epoch(net, [(k, np.eye(4)[[k % 4] * 8], np.full(8, k % 2)) for k in range(4)], seed=0, epoch=1)
    >>> sorted(stats)
    ['train_error', 'train_loss']
    """

    name = ""
    OPTIONS = {}
    needs_stochastic = False
    task = "classify"  # what the training loop measures: "classify" (errors) or "autoencode" (reconstruction errors, a linear probe)

    def __init__(self, **options):
        unknown = sorted(set(options) - set(self.OPTIONS))
        if unknown:
            raise ConfigError(
                f"method {self.name!r} has no option {', '.join(map(repr, unknown))}; "
                f"its options: {', '.join(sorted(self.OPTIONS))}"
            )
        for key, value in options.items():
            _check_option(self.name, key, value, self.OPTIONS[key])
            if type(self.OPTIONS[key]) is int:
                options[key] = int(value)  # a whole float from a config (2.0) counts as the int it equals
        self.options = {**self.OPTIONS, **options}
        self.optimisers = {}

    def check_network(self, net):
        """ConfigError where `net` does not suit the method: a method that `needs_stochastic`
        (the score-function estimators) needs stochastic hidden layers and a non-sampled output."""
        if not self.needs_stochastic:
            return
        if not net.stochastic:
            kinds = ", ".join(unit.name for unit in units.registered().values() if unit.stochastic)
            raise ConfigError(f"method {self.name!r} needs stochastic layers ({kinds}); network {net.spec} has none")
        if net.layers[-1].stochastic:
            raise ConfigError(f"method {self.name!r}: the output layer of {net.spec} must not be stochastic ({net.layers[-1].unit})")

    def bind(self, net, seed=0):
        """Prepare to train `net`: check it suits the method, create optimisers and auxiliary
        parameters (drawn from `seed`)."""
        self.check_network(net)
        self._bound_network = net

    def is_bound_to(self, net):
        """Whether `bind(net)` made this method's optimisers and auxiliary parameters for `net`."""
        return getattr(self, "_bound_network", None) is net

    def make_optimiser(self, params, lr):
        """The method's optimiser (`optimizer`, with the `optimizer_options` table, e.g. SGD's
        momentum) over `params` at learning rate `lr`; every parameter group of a method takes
        the same rule and options, each its own learning rate."""
        return make_optimiser(self.options["optimizer"], params, lr, **self.options["optimizer_options"])

    def start_epoch(self, net, epoch):
        """Hook for per-epoch schedules (noise level, slope annealing); epochs count from 1. It
        changes the method's own state only, never the network's."""

    def inference_network(self, net):
        """The network as evaluated after training with this method: `net` itself, or a view of
        it sharing its parameters (`Network.replace`), e.g. with straight-through's annealed slope."""
        return net

    @abc.abstractmethod
    def step(self, net, batch, seed):
        """Train on one `batching.MiniBatch`; return (sum of per-example losses, number of errors, batch size)."""

    def train_epoch(self, net, batches, seed, epoch):
        """One pass over `batches`; returns mean training loss and error of the forward passes it made."""
        self.start_epoch(net, epoch)
        return epoch_stats(self.step(net, batch, seed) for chunk in batching.chunks(batches) for batch in chunk)

    def passes_per_epoch(self):
        """How many times `train_epoch` goes through the epoch's mini-batches (a progress bar
        counts them); 1 unless a method's epoch has phases."""
        return 1

    def flops_per_batch(self, net, batch):
        """Floating-point operations of the matrix products one training mini-batch of `batch`
        examples costs (2 per multiply-add; element-wise work is not counted): the work against
        which `stochtp bench` measures speed. Default: a forward pass and back-propagation
        through every layer (`backward_flops`)."""
        return gemm_flops(net, batch) + backward_flops(net, batch)

    def diagnostics(self):
        """Per-layer diagnostics of the last epoch, name -> 1-D array (empty for most methods)."""
        return {}

    def aux_parameters(self):
        """Auxiliary parameters saved with the network, e.g. {"inverse_1/V": V}."""
        return {}

    def state_dict(self):
        """Everything needed to continue training bit for bit: optimiser states and auxiliary parameters."""
        return {
            "optimisers": {name: opt.state_dict() for name, opt in self.optimisers.items()},
            "aux": {name.replace("/", "."): value.copy() for name, value in self.aux_parameters().items()},
        }

    def load_state_dict(self, state):
        for name, opt in self.optimisers.items():
            opt.load_state_dict(state["optimisers"][name])
        for name, value in self.aux_parameters().items():
            value[...] = state["aux"][name.replace("/", ".")]

    @abc.abstractmethod
    def update(self, net, x, y, seed, stream=0):
        """The direction the optimiser descends along for this mini-batch, per layer [(dW, db), ...]
        in the layout and sign of a gradient (before the optimiser): what `stochtp estimators`
        scores, for direction only, of a method that is not a `GradientMethod`."""

    @classmethod
    def oracle_variants(cls, net, configured):
        """label -> options of each variant of this method that `stochtp estimators` scores on
        `net`; `configured` is the config's [method] table (its `name` and options). Default: the
        method with its default options. A variant that cannot train `net` (its `bind` refuses it)
        is left out by the caller."""
        return {cls.name: {}}


# What a run can represent. Integer options are stored in 64 bits; `samples` copies of a
# mini-batch are stacked as the rows of one array, so their number is bounded well below that.
INTEGER_LIMIT = 2**63
OPTION_BOUNDS = {"samples": (1, 2**24)}


def _check_option(method, key, value, default):
    """Options take the type of their default (ints allowed for floats) and lie within what a
    run can represent (no NaN, integers in 64 bits, `OPTION_BOUNDS`); a None default takes anything."""
    if default is None:
        return
    _check_option_type(method, key, value, default)
    low, high = OPTION_BOUNDS.get(key, (-INTEGER_LIMIT, INTEGER_LIMIT - 1) if type(default) is int else (-math.inf, math.inf))
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not low <= value <= high:
        raise ConfigError(f"method {method!r}: option {key!r} must be between {low} and {high}, got {value!r}")


def _check_option_type(method, key, value, default):
    if isinstance(default, bool):
        ok, kind = isinstance(value, bool), "true or false"
    elif isinstance(default, (int, float)):
        ok, kind = isinstance(value, (int, float)) and not isinstance(value, bool) and not (isinstance(value, float) and math.isnan(value)), "a number"
        if ok and isinstance(default, int) and not isinstance(default, bool) and not float(value).is_integer():
            ok, kind = False, "an integer"
    elif isinstance(default, dict):
        ok, kind = isinstance(value, dict), "a table (e.g. optimizer_options = {momentum = 0.9})"
    else:
        ok, kind = isinstance(value, type(default)), f"a {type(default).__name__}"
    if not ok:
        raise ConfigError(f"method {method!r}: option {key!r} must be {kind}, got {value!r}")


def batch_stats(net, trace, y):
    """(sum of per-example losses, number of errors, batch size) of a forward pass, for training curves."""
    return (*losses.totals(net.loss_name, trace.output, y), len(y))


def epoch_stats(batch_stats_seq):
    """Mean training loss and error over an epoch's (loss sum, errors, count) triples."""
    total_loss = total_errors = count = 0
    for loss_sum, n_errors, n in batch_stats_seq:
        total_loss, total_errors, count = total_loss + loss_sum, total_errors + n_errors, count + n
    return {"train_loss": total_loss / count, "train_error": total_errors / count}


def gemm_flops(net, rows, layers=None):
    """2 rows n_in n_out summed over `layers` (default all): one product of each layer's weights."""
    chosen = net.layers if layers is None else [net.layers[i] for i in layers]
    return sum(2 * rows * layer.n_in * layer.n_out for layer in chosen)


def backward_flops(net, rows, true_derivatives=False, injected=()):
    """The products `methods.backprop.backward` takes with gradients `injected` at these layers:
    from the top down, the weight gradient of every layer a gradient reaches (from above, or
    injected), and the gradient into the layer below unless one is injected there or, with the
    units' `true_derivatives` (no surrogate), that layer passes none on (`Layer.passes_gradient`).
    By default (a surrogate, or units that all have derivatives): every layer's weight gradient
    and the gradient into every layer but the first."""
    flops, reached = 0, True
    for i in range(len(net.layers) - 1, -1, -1):
        reached = reached or i in injected
        if not reached:
            continue
        flops += gemm_flops(net, rows, [i])
        reached = i > 0 and i - 1 not in injected and (not true_derivatives or net.layers[i - 1].passes_gradient())
        if reached:
            flops += gemm_flops(net, rows, [i])
    return flops


def flatten(grads):
    """[(dW_0, db_0), (dW_1, db_1), ...] -> [dW_0, db_0, dW_1, ...], the order of `Network.parameters()`."""
    return [g for pair in grads for g in pair]


def first_rows(trace, count):
    """The trace of the first `count` rows (sample 0 of every example), for training curves."""
    return Trace(
        trace.x[:count],
        [a[:count] for a in trace.a],
        [h[:count] for h in trace.h],
        [p[:count] for p in trace.p],
        [out[:count] for out in trace.out],
    )


class GradientMethod(Method):
    """A method that follows an estimate of the loss gradient with one optimiser over all layers
    (see `stochtp.methods.register` for one written from scratch).

    >>> import numpy as np, stochtp
    >>> net = stochtp.Network.from_spec("4-3b-2s", seed=0, dtype=np.float64)
    >>> x, y = np.ones((8, 4)), np.zeros(8, int)
    >>> reinforce = stochtp.methods.get("reinforce", baseline="loo", samples=2)
    >>> [dW.shape for dW, db in reinforce.gradient(net, x, y, seed=1)]
    [(4, 3), (3, 2)]

    Subclasses implement `estimate(net, batch, seed) -> (grads, trace)` for a `batching.MiniBatch`.
    With `samples` M > 1 they are given M copies of the mini-batch stacked as rows, row m B + b
    being sample m of example b, run through ONE forward pass of the mini-batch's stream: the
    gradient of the mean loss over the rows is the mean of M single-sample estimates. Sample 0
    takes the positions a single sample takes, so with M = 1 the sampled path is
    `net.forward(x, seed, stream)`'s, the one every other method sees (common random numbers).
    """

    OPTIONS = {"lr": 1e-3, "optimizer": "centred_rmsprop", "optimizer_options": {}, "samples": 1}
    # How `estimate` back-propagates, for `flops_per_batch`: with the units' true derivatives (the
    # gradient stops at a sample or a sign; else through every layer, as with a surrogate), and
    # with its own dL/da in place of the chain rule at the stochastic layers (score-function estimators).
    true_derivatives = False
    injects_at_stochastic = False

    def __init__(self, **options):
        super().__init__(**options)
        if self.options["samples"] < 1:
            raise ConfigError(f"method {self.name!r}: samples must be at least 1, got {self.options['samples']}")

    def bind(self, net, seed=0):
        super().bind(net, seed)
        lr = self.options["lr"]
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise ConfigError(f"method {self.name!r}: lr must be a positive number, got {lr!r}")
        self.optimisers["forward"] = self.make_optimiser(net.parameters(), lr)

    @abc.abstractmethod
    def estimate(self, net, batch, seed):
        """(per-layer [(dW, db), ...] estimate of the mini-batch mean loss gradient, the forward trace)."""

    def gradient(self, net, x, y, seed, stream=0):
        """Estimate of d(mean mini-batch loss)/d(W_i, b_i) for every layer i, as [(dW, db), ...]."""
        x, y = net.check_batch(x, y)
        grads, _ = self.sampled_estimate(net, batching.MiniBatch(stream, x, y), seed)
        return grads

    def update(self, net, x, y, seed, stream=0):
        """A gradient method descends along its gradient estimate."""
        return self.gradient(net, x, y, seed, stream)

    def sampled_estimate(self, net, batch, seed):
        """`estimate` over `samples` copies of the mini-batch; the trace of sample 0."""
        samples = self.options["samples"]
        if samples == 1:
            return self.estimate(net, batch, seed)
        copies = batching.MiniBatch(batch.stream, np.tile(batch.x, (samples, 1)), np.concatenate([batch.y] * samples))
        grads, trace = self.estimate(net, copies, seed)
        return grads, first_rows(trace, len(batch))

    def flops_per_batch(self, net, batch):
        """A forward pass and the back-propagation `estimate` runs (`backward_flops`, as
        `true_derivatives` and `injects_at_stochastic` say), on `samples` copies of the mini-batch."""
        rows = batch * self.options["samples"]
        injected = [i for i, layer in enumerate(net.layers) if layer.stochastic] if self.injects_at_stochastic else ()
        return gemm_flops(net, rows) + backward_flops(net, rows, self.true_derivatives, injected)

    def step(self, net, batch, seed):
        grads, trace = self.sampled_estimate(net, batch, seed)
        self.optimisers["forward"].step(flatten(grads))
        return batch_stats(net, trace, batch.y)
