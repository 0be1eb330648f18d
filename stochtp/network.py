"""Dense networks of continuous, discrete and stochastic units (docs/concepts.md).

Layer i computes a_i = t_{i-1}(h_{i-1}) @ W_i + b_i and h_i = s_i(a_i), with W_i of shape
(n_in, n_out) and mini-batches as rows. `Network.forward` returns a `Trace` holding what every
credit-assignment method needs: pre-activations, probabilities of stochastic layers, values
and transmitted values.

Spec strings: `784-200b-200b-10s` = input of 784, two layers of 200 Bernoulli units, a softmax
output of 10. Unit letters: l identity, t tanh, g sigmoid, r relu, n sign, h step, b bernoulli,
p stochastic sign ("plus-minus": +1 / -1 with P(+1) = sigmoid(k a)), s softmax, and the letter
of any unit registered with `units.register`. A `:n` suffix makes a layer transmit sign(h) to the next one, so the paper's
discrete network is `784-500t:n-500t-10s`.
"""
import dataclasses
import math
import re
from dataclasses import dataclass, field

import numpy as np

from . import kernels, losses, units
from .kernels import ahead, fused, passes
from .errors import ConfigError

INITS = ("glorot", "orthogonal")
PIXEL_SCALE = 1 / 255  # uint8 pixels to features in [0, 1]
_TOKEN = re.compile(r"^(\d+)([a-z])(?::([a-z]))?$")
_TRANSMISSION_LETTERS = {"n": "sign", "l": "identity"}
# Rows of one stacked product in `Network.predict_proba` (passes times examples): products of a
# K-sample evaluation large enough to split well over BLAS threads and Python's per-call costs
# negligible, while one layer's array stays a few MB (6.5 MB for 200 float32 units).
STACKED_ROWS = 8192


@dataclass
class Layer:
    """One dense layer: parameters `W` (n_in, n_out) and `b` (n_out,), its unit and its transmission."""

    W: np.ndarray
    b: np.ndarray
    unit: str
    transmission: str = "identity"

    def __post_init__(self):
        self.unit = units.get(self.unit).name  # a spec letter names its unit; an unknown one is a ConfigError

    @property
    def n_in(self):
        return self.W.shape[0]

    @property
    def n_out(self):
        return self.W.shape[1]

    @property
    def kind(self):
        """The unit object of `unit` (a name)."""
        return units.get(self.unit)

    @property
    def stochastic(self):
        return self.kind.stochastic

    @property
    def surrogate_units(self):
        """The units straight-through passes with a surrogate derivative: the layer's unit and its
        transmission's (a transmission is a unit's forward map), where their true derivative is zero."""
        return [unit for unit in (self.kind, units.get(self.transmission)) if not unit.differentiable]

    def passes_gradient(self, surrogate=None):
        """Whether back-propagation carries a gradient down through this layer: its unit and its
        transmission are differentiable, or `surrogate` (straight-through's) stands in for the
        derivative that is zero almost everywhere (`Unit.derivative` returns None exactly where
        neither holds)."""
        return surrogate is not None or not self.surrogate_units


@dataclass
class Trace:
    """What one forward pass computed, per layer i (0-based): `a[i]`, `h[i]`, `p[i]`, `out[i]`.

    `x` is the input actually fed (noise included), `h[i]` the unit's value (the sample for a
    stochastic layer), `p[i]` the firing probability sigmoid(k a) of a stochastic layer (h[i]
    itself otherwise) and `out[i]` = t(h[i]) what layer i sends to layer i+1.
    """

    x: np.ndarray
    a: list = field(default_factory=list)
    h: list = field(default_factory=list)
    p: list = field(default_factory=list)
    out: list = field(default_factory=list)

    def input_of(self, i):
        """The value entering layer i."""
        return self.x if i == 0 else self.out[i - 1]

    @property
    def output(self):
        return self.h[-1]


def parse_spec(spec):
    """`784-200b-10s` -> (784, [(200, "bernoulli", "identity"), (10, "softmax", "identity")])."""
    if not isinstance(spec, str):
        raise ConfigError(f"network spec must be a string like '784-200b-10s', got {spec!r}")
    tokens = spec.strip().split("-")
    if len(tokens) < 2 or not tokens[0].isdigit() or int(tokens[0]) < 1:
        raise ConfigError(f"network spec {spec!r} must start with the input size and have at least one layer")
    layers = []
    for token in tokens[1:]:
        match = _TOKEN.match(token)
        if not match:
            raise ConfigError(f"network spec {spec!r}: cannot read layer {token!r} (expected e.g. '200b' or '500t:n')")
        size, letter, transmission = match.groups()
        known_units = units.registered()
        if letter not in known_units:
            known = ", ".join(f"{k}={unit.name}" for k, unit in known_units.items())
            raise ConfigError(f"network spec {spec!r}: unknown unit letter {letter!r} ({known})")
        if transmission is not None and transmission not in _TRANSMISSION_LETTERS:
            raise ConfigError(f"network spec {spec!r}: unknown transmission {transmission!r} (n = sign)")
        if int(size) < 1:
            raise ConfigError(f"network spec {spec!r}: layer {token!r} has no units")
        layers.append((int(size), known_units[letter].name, _TRANSMISSION_LETTERS.get(transmission, "identity")))
    for _, unit, _ in layers[:-1]:
        if units.get(unit).output_only:
            raise ConfigError(f"network spec {spec!r}: {unit} is only allowed on the output layer")
    return int(tokens[0]), layers


def init_weights(n_in, n_out, seed, stream, init, dtype):
    """Glorot uniform U[-r, r], r = sqrt(6 / (n_in + n_out)), drawn from (seed, stream);
    `orthogonal` replaces the draw by its orthogonal (polar) factor. Drawn once, by NumPy
    (`kernels.uniform_reference`: the kernel's numbers without compiling it)."""
    r = np.sqrt(6.0 / (n_in + n_out))
    u = kernels.uniform_reference((n_in, n_out), seed, stream, dtype=np.float64)
    W = (2 * u - 1) * r
    if init == "orthogonal":
        left, _, right = np.linalg.svd(W, full_matrices=False)
        W = left @ right
    elif init != "glorot":
        raise ConfigError(f"unknown init {init!r}; known: {', '.join(INITS)}")
    return np.ascontiguousarray(W, dtype=dtype)


def affine(x, W, b):
    """x @ W + b: the product by BLAS, the bias added in place by one kernel pass (NumPy's
    broadcast add is a chain of calls, slow when run cold after every product)."""
    a = x @ W
    fused.add_to_rows(a, b)
    return a


def check_input_noise(value, what="input_noise"):
    """The input noise's standard deviation as a float; ConfigError naming `what` unless it is
    finite and >= 0 (a config checks its key with it too)."""
    noise = float(value)
    if not (math.isfinite(noise) and noise >= 0):
        raise ConfigError(f"{what} must be a finite number >= 0, got {value}")
    return noise


class Network:
    """A stack of dense layers with an output loss (`nll` for a softmax output, `mse` otherwise).

    `input_noise` is the standard deviation of Gaussian noise added to the input in training
    (the stochastic experiment of the paper uses 0.3). `slope` k makes stochastic layers fire
    with probability sigmoid(k a), in training and test (straight-through slope annealing).

    >>> layers = [Layer(np.zeros((3, 2)), np.zeros(2), "b"), Layer(np.zeros((2, 2)), np.zeros(2), "softmax")]
    >>> net = Network(layers, input_noise=0.1)
    >>> net.spec, net.loss_name, net.stochastic
    ('3-2b-2s', 'nll', True)
    """

    def __init__(self, layers, input_noise=0.0, name=None, slope=1.0):
        if not layers:
            raise ConfigError("a network needs at least one layer")
        for i, (below, above) in enumerate(zip(layers, layers[1:])):
            if below.n_out != above.n_in:
                raise ConfigError(f"layer {i} has {below.n_out} outputs but layer {i + 1} expects {above.n_in} inputs")
        for layer in layers:
            if layer.transmission not in units.TRANSMISSIONS:
                raise ConfigError(f"unknown transmission {layer.transmission!r}")
        self.layers = list(layers)
        self.input_noise = check_input_noise(input_noise)
        self.loss_name = layers[-1].kind.output_loss
        self.name = name
        self.slope = float(slope)

    @classmethod
    def from_spec(cls, spec, seed=0, init="glorot", dtype=np.float32, input_noise=0.0):
        """Build a network from a spec string, weights drawn from stream ("init", layer) of `seed`, biases zero.

        >>> net = Network.from_spec("784-200b-200b-10s", seed=0, input_noise=0.3)
        >>> net.layers[0].W.shape, net.layers[0].unit, net.layers[2].unit, net.input_noise
        ((784, 200), 'bernoulli', 'softmax', 0.3)
        """
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise ConfigError(f"dtype must be float32 or float64, got {dtype}")
        n_in, specs = parse_spec(spec)
        layers = []
        for i, (n_out, unit, transmission) in enumerate(specs):
            W = init_weights(n_in, n_out, seed, kernels.stream_id("init", i), init, dtype)
            layers.append(Layer(W, np.zeros(n_out, dtype=dtype), unit, transmission))
            n_in = n_out
        return cls(layers, input_noise=input_noise, name=spec)

    @property
    def spec(self):
        tokens = [str(self.layers[0].n_in)]
        for layer in self.layers:
            suffix = ":n" if layer.transmission == "sign" else ""
            tokens.append(f"{layer.n_out}{layer.kind.letter}{suffix}")
        return "-".join(tokens)

    @property
    def dtype(self):
        return self.layers[0].W.dtype

    @property
    def stochastic(self):
        return any(layer.stochastic for layer in self.layers)

    def parameters(self):
        """Flat list [W_0, b_0, W_1, b_1, ...] of the live arrays (optimisers update them in place)."""
        return [array for layer in self.layers for array in (layer.W, layer.b)]

    def check_input(self, x):
        """`x` as an array of shape (batch, n_in), or ValueError. uint8 input is read as pixels:
        scaled by 1/255 into [0, 1] in the network's dtype, as the datasets' `Split.features` does."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.layers[0].n_in:
            raise ValueError(f"input must have shape (batch, {self.layers[0].n_in}), got {x.shape}")
        if x.dtype == np.uint8:
            return np.multiply(x, self.dtype.type(PIXEL_SCALE), dtype=self.dtype)
        if x.dtype.kind not in "iuf":
            raise ValueError(f"input must hold numbers (float, or uint8 pixels), got a {x.dtype} array")
        return x

    def check_batch(self, x, y):
        """(x, y) as arrays, or ValueError: `check_input`'s x and one target per row, class labels
        in [0, n_out) for a softmax output (nll), rows of n_out numbers otherwise (mse)."""
        x, y = self.check_input(x), np.asarray(y)
        if not len(x):
            raise ValueError("need a non-empty batch (a mean over no examples is undefined)")
        n_out = self.layers[-1].n_out
        if len(y) != len(x):
            raise ValueError(f"need one target per example, got {len(x)} inputs and {len(y)} targets")
        if self.loss_name == "nll":
            if y.ndim != 1 or y.dtype.kind not in "iu":
                raise ValueError(f"a softmax output needs integer class labels, one per example, got a {y.dtype} array of shape {y.shape}")
            if len(y) and not (y.min() >= 0 and y.max() < n_out):
                raise ValueError(f"class labels must lie in [0, {n_out}), got values from {y.min()} to {y.max()}")
        elif y.shape != (len(x), n_out) or y.dtype.kind not in "iuf":
            raise ValueError(f"a {self.layers[-1].unit} output (mse loss) needs target rows of {n_out} numbers, got a {y.dtype} array of shape {y.shape}")
        return x, y

    def forward(self, x, seed=0, stream=0, train=True, stop=None):
        """Forward pass; stochastic layer i samples from stream_id(stream, "forward-sample", i) of `seed`.

        In training (`train=True`) the input gets N(0, input_noise^2) noise from
        stream_id(stream, "input-noise"). With `stop`, only layers 0..stop-1 run. `stream` may be
        a list of C streams for C mini-batches stacked as rows: each draws what it would alone.
        The result depends only on the parameters and the arguments.

        >>> net = Network.from_spec("4-3b-2s", seed=0)
        >>> trace = net.forward(np.ones((5, 4)), seed=1, stream=2)
        >>> trace.h[0].shape, sorted(set(trace.h[0].ravel().tolist())), trace.output.sum(axis=1).round(6).tolist()
        ((5, 3), [0.0, 1.0], [1.0, 1.0, 1.0, 1.0, 1.0])
        >>> bool((net.forward(np.ones((5, 4)), seed=1, stream=2).h[0] == trace.h[0]).all())
        True
        """
        return self.forward_fed(self.fed_input(x, seed, stream, train), seed, stream, stop)

    def fed_input(self, x, seed=0, stream=0, train=True, out=None):
        """What a pass feeds its first layer: `x` in the network's dtype and, in training, plus
        input_noise * N(0, 1) from stream_id(stream, "input-noise"), made in one kernel pass
        (into `out` where given, an array like x in the network's dtype). `stream` may be a
        list (stacked mini-batches)."""
        x = self.check_input(x).astype(self.dtype, copy=False)
        if not (train and self.input_noise > 0):
            return x
        return kernels.normal(x.shape, seed, kernels.derive(stream, "input-noise"), dtype=self.dtype, loc=x, scale=self.input_noise, out=out)

    def forward_fed(self, x_fed, seed=0, stream=0, stop=None):
        """The forward pass from `x_fed`, an input as `fed_input` makes it (noise included)."""
        return self.continue_forward(Trace(x=x_fed), 0, len(self.layers) if stop is None else stop, seed, stream)

    def continue_forward(self, trace, start, stop, seed, stream):
        """Run layers start..stop-1 on top of `trace` (which holds layers before `start`), e.g. to
        propagate a replaced sample of layer start-1 upwards (ARM's antithetic pairs)."""
        for i in range(start, stop):
            self._activate(trace, i, affine(trace.input_of(i), self.layers[i].W, self.layers[i].b), seed, stream)
        return trace

    def _activate(self, trace, i, a, seed, stream, p=None, repeats=1):
        """Append layer i's pre-activation `a`, value, probability and transmitted value to `trace`.
        `p`: the probabilities of stochastic layer i when already known (only the sample is drawn,
        for `repeats` passes stacked as rows, one stream each)."""
        layer = self.layers[i]
        unit = layer.kind
        if p is None:
            sample_stream = kernels.derive(stream, "forward-sample", i) if unit.stochastic else 0  # a deterministic unit draws nothing
            h, p = unit.activate(a, seed, sample_stream, self.slope)
        else:
            h = unit.sample(p, seed, kernels.derive(stream, "forward-sample", i), repeats)
        trace.a.append(a)
        trace.h.append(h)
        trace.p.append(p)
        trace.out.append(units.transmit(layer.transmission, h))

    def per_example_loss(self, trace, y):
        return losses.per_example(self.loss_name, trace.output, y)

    def loss(self, trace, y):
        """Mini-batch mean of the output loss (summed over units)."""
        return float(self.per_example_loss(trace, y).mean())

    def output_grad(self, trace, y):
        """Gradient of the mini-batch mean loss w.r.t. the output layer's pre-activation."""
        top = self.layers[-1]
        dh_da = None
        if self.loss_name == "mse":
            dh_da = top.kind.derivative(trace.a[-1], trace.h[-1], trace.p[-1])
            if dh_da is None:
                raise ConfigError(f"an mse output needs a differentiable unit, not {top.unit!r}")
        return losses.grad_output(self.loss_name, trace.output, y, dh_da)

    def predict(self, x, *, samples=1, seed=0, stream=0):
        """Class indices (argmax of `predict_proba`) for a softmax output, else the averaged output.

        >>> net = Network.from_spec("4-3b-2s", seed=0)
        >>> net.predict(np.ones((5, 4)), samples=10).shape
        (5,)
        """
        proba = self.predict_proba(x, seed=seed, stream=stream, samples=samples)
        return proba.argmax(axis=1) if self.loss_name == "nll" else proba

    def predict_proba(self, x, *, samples=1, seed=0, stream=0):
        """Output averaged over `samples` forward passes in test mode (no input noise), float64.

        >>> net = Network.from_spec("4-3b-2s", seed=0)
        >>> proba = net.predict_proba(np.ones((2, 4)), samples=100)
        >>> proba.shape, proba.sum(axis=1).round(6).tolist()
        ((2, 2), [1.0, 1.0])
        >>> bool((net.predict_proba(np.full((2, 4), 255, np.uint8), samples=100) == proba).all())  # uint8 pixels / 255
        True

        Pass k uses stream stream_id(stream, "test-sample", k). The layers below the first
        stochastic one, and its probabilities, do not depend on the sample: computed once. Where
        the layers from there up are Bernoulli layers and a softmax output (float32) and there
        are `passes.MIN_SAMPLES` passes or more, the passes run in one kernel (`kernels.passes`:
        the same draws, its products as sums of table rows, rounded in another order). Otherwise
        the passes run a group at a time, their rows stacked (at most STACKED_ROWS, or one pass's) so
        that each layer above is one product and one kernel call for the group; every pass draws
        from its own stream what it would alone (see `forward`) and the outputs are summed in pass
        order, so the numbers are those of one pass at a time.
        """
        if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
            raise ValueError(f"samples must be an integer >= 1, got {samples!r}")
        n = len(self.layers)
        first = self._first_stochastic()
        x = self.fed_input(x, train=False)
        if first is None:
            return self.forward(x, seed, stream, train=False).output.astype(np.float64)
        shared = self.continue_forward(Trace(x=x), 0, first, seed, stream)
        layer = self.layers[first]
        a_first = affine(shared.input_of(first), layer.W, layer.b)
        p_first = layer.kind.probability(a_first, self.slope)
        chain = self._bernoulli_chain(first) if samples >= passes.MIN_SAMPLES else None
        if chain is not None:
            pass_streams = [kernels.stream_id(stream, "test-sample", k) for k in range(samples)]
            streams = list(zip(*(kernels.derive(pass_streams, "forward-sample", i) for i in range(first, n - 1))))  # [k][layer]
            return passes.chain_sum(p_first, *chain, self.slope, seed, streams) / samples
        total = np.zeros((len(x), self.layers[-1].n_out))
        group = max(1, STACKED_ROWS // max(1, len(x)))
        for start in range(0, samples, group):
            streams = [kernels.stream_id(stream, "test-sample", k) for k in range(start, min(start + group, samples))]
            # a[first], p[first] and the layers below hold the shared rows, the rest the group's stacked rows
            trace = Trace(shared.x, [*shared.a], [*shared.h], [*shared.p], [*shared.out])
            self._activate(trace, first, a_first, seed, streams, p_first, repeats=len(streams))
            outputs = self.continue_forward(trace, first + 1, n, seed, streams).output
            for rows in np.split(outputs, len(streams)):
                total += rows
        return total / samples

    def kernels_to_compile(self, samples):
        """The `kernels.ahead` items that training this network and its `samples`-pass evaluation
        call: the Bernoulli draws where a layer is stochastic, and the K-sample passes kernel
        where `predict_proba` runs it."""
        first = self._first_stochastic()
        if first is None:
            return []
        return ahead.items(self.dtype, chain=samples >= passes.MIN_SAMPLES and self._bernoulli_chain(first) is not None)

    def _first_stochastic(self):
        return next((i for i, layer in enumerate(self.layers) if layer.stochastic), None)

    def _bernoulli_chain(self, first):
        """(weights, biases) of the products above stochastic layer `first` where `kernels.passes`
        runs the K-sample passes: float32, the layers from `first` below the output Bernoulli
        ones sending their 0/1 values on, a softmax output, and tables within
        `passes.MAX_TABLE_BYTES`; else None."""
        hidden, top = self.layers[first:-1], self.layers[-1]
        if self.dtype != np.float32 or self.loss_name != "nll" or top.unit != "softmax":
            return None
        if any(layer.kind.name != "bernoulli" or layer.transmission != "identity" for layer in hidden):
            return None
        above = self.layers[first + 1:]
        weights = [layer.W for layer in above]
        if passes.table_bytes(weights) > passes.MAX_TABLE_BYTES:
            return None
        return weights, [layer.b for layer in above]

    def replace(self, slope=None, transmission=None):
        """A network sharing this one's parameter arrays (every W and b) with another stochastic-unit
        `slope` and/or every layer's transmission set to `transmission`: how a method trains or
        evaluates a variant of the network (straight-through slope annealing, back-propagation
        without sign transmissions) without changing the network. Returns `self` when nothing changes.

        >>> net = Network.from_spec("4-3b:n-2s", seed=0)
        >>> view = net.replace(slope=2.0, transmission="identity")
        >>> view.slope, view.layers[0].transmission, view.layers[0].W is net.layers[0].W, net.slope
        (2.0, 'identity', True, 1.0)
        """
        slope = self.slope if slope is None else float(slope)
        same_transmissions = transmission is None or all(layer.transmission == transmission for layer in self.layers)
        if slope == self.slope and same_transmissions:
            return self
        layers = self.layers if same_transmissions else [dataclasses.replace(layer, transmission=transmission) for layer in self.layers]
        return Network(layers, input_noise=self.input_noise, name=self.name, slope=slope)

    def copy(self):
        layers = [Layer(layer.W.copy(), layer.b.copy(), layer.unit, layer.transmission) for layer in self.layers]
        return Network(layers, input_noise=self.input_noise, name=self.name, slope=self.slope)
