"""Optimisers: first-order update rules applied in place to lists of NumPy parameter arrays.

The parameters are updated in place and never rebound, because the network's `W` and `b` arrays
are shared with other code. The state (moment estimates, velocities) lives in arrays with the
shape and dtype of each parameter, allocated once. The hot loop calls `step` once per mini-batch,
so each rule is a chain of `out=` ufunc calls through one scratch buffer per parameter and
allocates no parameter-sized array.

`make(name, params, lr, **options)` builds an optimiser by name; `OPTIMISERS` maps the names to
the classes.
"""

import abc
import functools
import inspect
import math

import numpy as np

from stochtp.errors import ConfigError
from stochtp.kernels.fused import centred_rmsprop_steps


def _positive_finite(name, value):
    """`value` as a float, or ConfigError unless it is finite and > 0 (learning rates, epsilons)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"optimiser option {name} must be a number, got {value!r}") from None
    if not (math.isfinite(number) and number > 0):
        raise ConfigError(f"optimiser option {name} must be finite and > 0, got {value!r}")
    return number


def _fraction(name, value):
    """`value` as a float, or ConfigError unless 0 <= value < 1 (decay rates and momenta)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"optimiser option {name} must be a number, got {value!r}") from None
    if not 0 <= number < 1:
        raise ConfigError(f"optimiser option {name} must be in [0, 1), got {value!r}")
    return number


@functools.lru_cache(maxsize=64)
def _scalars(dtype, *values):
    """`values` as `dtype` scalars, the fused kernel's arguments: converted once, not at every step."""
    return tuple(dtype(value) for value in values)


def _moving_average(average, value, decay, scratch):
    """Update `average` in place to decay * average + (1 - decay) * value; `value` may be `scratch`."""
    np.multiply(value, 1 - decay, out=scratch)
    np.multiply(average, decay, out=average)
    np.add(average, scratch, out=average)


def _momentum_step(param, velocity, momentum, descent):
    """Heavy-ball step in place: velocity <- momentum * velocity - descent; param <- param + velocity."""
    np.multiply(velocity, momentum, out=velocity)
    np.subtract(velocity, descent, out=velocity)
    np.add(param, velocity, out=param)


class Optimiser(abc.ABC):
    """Shared machinery: parameter and learning-rate checks, state buffers, the step loop, checkpoints.

    A subclass lists the names of its per-parameter state buffers in `state_names` (each starts
    at zero) and implements `_update(param, grad, state, scratch)`, which updates one parameter
    in place; `state` maps each name to that parameter's buffer and `scratch` is a buffer of the
    same shape to compute into. `step_count` is already incremented when `_update` runs. A
    subclass may also override `_update_all(grads)` to update every parameter in one go (a
    fused kernel), falling back to the per-parameter loop.
    """

    state_names = ()

    def __init__(self, params, lr):
        self.params = list(params)
        for index, param in enumerate(self.params):
            if not (isinstance(param, np.ndarray) and param.dtype in (np.float32, np.float64)):
                raise ConfigError(
                    f"optimiser parameter {index} must be a float32 or float64 NumPy array, "
                    f"got {getattr(param, 'dtype', type(param).__name__)}"
                )
            if not param.flags.writeable:
                raise ConfigError(f"optimiser parameter {index} is read-only; it is updated in place")
        self.lr = lr
        self.step_count = 0
        self._state = [{name: np.zeros_like(param) for name in self.state_names} for param in self.params]
        self._scratch = [np.empty_like(param) for param in self.params]

    @property
    def lr(self):
        """Learning rate; may be changed between steps (schedules). Must be finite and > 0."""
        return self._lr

    @lr.setter
    def lr(self, value):
        self._lr = _positive_finite("lr", value)

    def step(self, grads):
        """Update every parameter in place by one step, `grads[i]` being the loss gradient w.r.t. `params[i]`."""
        grads = list(grads)
        if len(grads) != len(self.params):
            raise ValueError(f"optimiser got {len(grads)} gradients for {len(self.params)} parameters")
        for index, (param, grad) in enumerate(zip(self.params, grads)):
            if np.shape(grad) != param.shape:
                raise ValueError(
                    f"gradient {index} has shape {np.shape(grad)}, its parameter has shape {param.shape}"
                )
        self.step_count += 1
        self._update_all(grads)

    def _update_all(self, grads):
        """Update every parameter from its gradient (already checked); by default one `_update` each."""
        for param, grad, state, scratch in zip(self.params, grads, self._state, self._scratch):
            self._update(param, grad, state, scratch)

    @abc.abstractmethod
    def _update(self, param, grad, state, scratch):
        """Update one parameter in place from its gradient and state."""

    def state_dict(self):
        """A snapshot for checkpoints: copies of the state buffers keyed `"<buffer>.<param index>"`,
        plus the scalars `step_count` and `lr`.

        Loading it into an optimiser of the same kind and options over parameters equal to the
        ones at the snapshot continues bit-identically to the uninterrupted run.
        """
        snapshot = {"step_count": self.step_count, "lr": self.lr}
        for index, state in enumerate(self._state):
            for name, buffer in state.items():
                snapshot[f"{name}.{index}"] = buffer.copy()
        return snapshot

    def load_state_dict(self, snapshot):
        """Restore a `state_dict()` snapshot (copied into the existing buffers, cast to their dtype).

        Everything is checked before anything changes: missing or unexpected keys and wrong
        shapes raise ConfigError naming them.
        """
        buffers = {
            f"{name}.{index}": buffer for index, state in enumerate(self._state) for name, buffer in state.items()
        }
        expected = set(buffers) | {"step_count", "lr"}
        missing, unexpected = sorted(expected - set(snapshot)), sorted(set(snapshot) - expected)
        if missing or unexpected:
            raise ConfigError(
                f"{type(self).__name__} state does not match: missing {missing or 'nothing'}, "
                f"unexpected {unexpected or 'nothing'}"
            )
        for key, buffer in buffers.items():
            if np.shape(snapshot[key]) != buffer.shape:
                raise ConfigError(
                    f"{type(self).__name__} state {key} has shape {np.shape(snapshot[key])}, expected {buffer.shape}"
                )
        step_count = int(snapshot["step_count"])
        if step_count < 0:
            raise ConfigError(f"{type(self).__name__} state step_count must be >= 0, got {step_count}")
        self.lr = snapshot["lr"]
        self.step_count = step_count
        for key, buffer in buffers.items():
            np.copyto(buffer, snapshot[key])


class SGD(Optimiser):
    """Stochastic gradient descent with optional heavy-ball or Nesterov momentum.

    Heavy ball: v <- momentum v - lr g; theta <- theta + v (momentum 0 is plain gradient descent).
    Nesterov, in the form that stores the parameters themselves rather than the look-ahead
    point: the same v, then theta <- theta + momentum v - lr g.
    """

    state_names = ("velocity",)

    def __init__(self, params, lr, momentum=0.0, nesterov=False):
        super().__init__(params, lr)
        self.momentum = _fraction("momentum", momentum)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise ConfigError(f"optimiser option nesterov must be true or false, got {nesterov!r}")
        self.nesterov = bool(nesterov)

    def _update(self, param, grad, state, scratch):
        velocity = state["velocity"]
        np.multiply(grad, self.lr, out=scratch)  # scratch = lr g
        if self.nesterov:
            np.multiply(velocity, self.momentum, out=velocity)
            np.subtract(velocity, scratch, out=velocity)  # v <- momentum v - lr g
            np.subtract(param, scratch, out=param)  # theta <- theta - lr g ...
            np.multiply(velocity, self.momentum, out=scratch)
            np.add(param, scratch, out=param)  # ... + momentum v
        else:
            _momentum_step(param, velocity, self.momentum, scratch)  # v <- momentum v - lr g; theta <- theta + v


class Adam(Optimiser):
    """Adam (Kingma & Ba 2015) with bias-corrected moment estimates.

    m <- beta1 m + (1-beta1) g; v <- beta2 v + (1-beta2) g²; after t steps
    theta <- theta - lr * (m / (1-beta1^t)) / (sqrt(v / (1-beta2^t)) + eps).
    """

    state_names = ("first_moment", "second_moment")

    def __init__(self, params, lr, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(params, lr)
        self.beta1 = _fraction("beta1", beta1)
        self.beta2 = _fraction("beta2", beta2)
        self.eps = _positive_finite("eps", eps)

    def _update(self, param, grad, state, scratch):
        first_moment, second_moment = state["first_moment"], state["second_moment"]
        _moving_average(first_moment, grad, self.beta1, scratch)  # m <- beta1 m + (1-beta1) g
        np.multiply(grad, grad, out=scratch)
        _moving_average(second_moment, scratch, self.beta2, scratch)  # v <- beta2 v + (1-beta2) g²
        np.divide(second_moment, 1 - self.beta2**self.step_count, out=scratch)  # v_hat = v / (1-beta2^t)
        np.sqrt(scratch, out=scratch)
        np.add(scratch, self.eps, out=scratch)
        np.divide(first_moment, scratch, out=scratch)
        np.multiply(scratch, self.lr / (1 - self.beta1**self.step_count), out=scratch)  # lr m_hat / (sqrt(v_hat)+eps)
        np.subtract(param, scratch, out=param)


class RMSprop(Optimiser):
    """RMSprop (Tieleman & Hinton 2012): scale each step by a running root mean square of the gradient.

    v <- decay v + (1-decay) g²; theta <- theta - lr g / (sqrt(v) + eps), with decay 0.9 and
    eps 1e-8 (added outside the square root) by default.
    """

    state_names = ("mean_square",)

    def __init__(self, params, lr, decay=0.9, eps=1e-8):
        super().__init__(params, lr)
        self.decay = _fraction("decay", decay)
        self.eps = _positive_finite("eps", eps)

    def _update(self, param, grad, state, scratch):
        mean_square = state["mean_square"]
        np.multiply(grad, grad, out=scratch)
        _moving_average(mean_square, scratch, self.decay, scratch)  # v <- decay v + (1-decay) g²
        np.sqrt(mean_square, out=scratch)
        np.add(scratch, self.eps, out=scratch)
        np.divide(grad, scratch, out=scratch)
        np.multiply(scratch, self.lr, out=scratch)
        np.subtract(param, scratch, out=param)  # theta <- theta - lr g / (sqrt(v) + eps)


class CentredRMSprop(Optimiser):
    """Centred RMSprop with momentum, the rule of the paper's experiments.

    The step is the gradient divided by a running estimate of its standard deviation (not its
    root mean square, hence "centred"), smoothed by momentum:
    m <- decay m + (1-decay) g; v <- decay v + (1-decay) g²; step = g / sqrt(v - m² + eps);
    inc <- momentum inc - lr step; theta <- theta + inc. Defaults decay .95, eps 1e-3 (inside
    the square root), momentum .9.
    """

    state_names = ("mean", "mean_square", "increment")

    def __init__(self, params, lr, decay=0.95, eps=1e-3, momentum=0.9):
        super().__init__(params, lr)
        self.decay = _fraction("decay", decay)
        self.eps = _positive_finite("eps", eps)
        self.momentum = _fraction("momentum", momentum)
        self._dtype = self.params[0].dtype if self.params else None
        fused = self.params and all(param.flags.c_contiguous and param.dtype == self._dtype for param in self.params)
        # (params, means, mean squares, increments) as tuples of flat views for the fused kernel, made once.
        views = [(param, state["mean"], state["mean_square"], state["increment"]) for param, state in zip(self.params, self._state)]
        self._flat = tuple(tuple(a.reshape(-1) for a in column) for column in zip(*views)) if fused else None

    def _update_all(self, grads):
        """One fused kernel call for all parameters when they and the gradients are C-contiguous,
        aligned, writeable arrays of one dtype (the training loop's case: the kernel takes the
        gradients as one tuple, whose arrays must share a Numba type); the NumPy reference,
        parameter by parameter, otherwise."""
        if self._flat is not None and all(_fused_kernel_takes(grad, self._dtype) for grad in grads):
            scalars = _scalars(self._dtype.type, self.lr, self.decay, 1 - self.decay, self.eps, self.momentum)
            thetas, means, mean_squares, increments = self._flat
            centred_rmsprop_steps(thetas, tuple(grad.reshape(-1) for grad in grads), means, mean_squares, increments, *scalars)
        else:
            super()._update_all(grads)

    def reference_update(self, param, grad, state, scratch):
        """The same update as NumPy ufuncs (for arrays the fused kernel does not take, and for tests)."""
        mean, mean_square = state["mean"], state["mean_square"]
        _moving_average(mean, grad, self.decay, scratch)  # m <- decay m + (1-decay) g
        np.multiply(grad, grad, out=scratch)
        _moving_average(mean_square, scratch, self.decay, scratch)  # v <- decay v + (1-decay) g²
        np.multiply(mean, mean, out=scratch)
        np.subtract(mean_square, scratch, out=scratch)
        np.add(scratch, self.eps, out=scratch)
        np.sqrt(scratch, out=scratch)
        np.divide(grad, scratch, out=scratch)  # step = g / sqrt(v - m² + eps)
        np.multiply(scratch, self.lr, out=scratch)
        _momentum_step(param, state["increment"], self.momentum, scratch)  # inc <- momentum inc - lr step; theta += inc

    _update = reference_update


def _fused_kernel_takes(grad, dtype):
    """Whether `grad` has the one array type the fused optimiser kernel is given."""
    if not (isinstance(grad, np.ndarray) and grad.dtype == dtype):
        return False
    return grad.flags.c_contiguous and grad.flags.aligned and grad.flags.writeable


OPTIMISERS = {"sgd": SGD, "adam": Adam, "rmsprop": RMSprop, "centred_rmsprop": CentredRMSprop}


def make(name, params, lr, **options):
    """Build the optimiser called `name` (a key of OPTIMISERS) over `params` with learning rate `lr`.

    An unknown name or option raises ConfigError naming it and listing the valid ones, so a typo
    in a config file fails loudly instead of silently running with a default.
    """
    if not isinstance(name, str) or name not in OPTIMISERS:
        raise ConfigError(f"unknown optimiser {name!r}; valid: {', '.join(OPTIMISERS)}")
    optimiser_class = OPTIMISERS[name]
    valid_options = list(inspect.signature(optimiser_class).parameters)[2:]  # after params, lr
    unknown = sorted(set(options) - set(valid_options))
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(unknown)} for optimiser {name!r}; valid: {', '.join(valid_options)}"
        )
    return optimiser_class(params, lr, **options)
