"""Tests for stochtp.optim: convergence, exact update arithmetic, in-place updates, checkpoints, bad input."""

import math
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from stochtp.errors import ConfigError
from stochtp.optim import OPTIMISERS, SGD, Adam, CentredRMSprop, RMSprop, make

# name, learning rate, options: one configuration per rule, sgd both with and without momentum.
CONFIGURATIONS = [
    ("sgd", 0.2, {}),
    ("sgd", 0.1, {"momentum": 0.9}),
    ("sgd", 0.1, {"momentum": 0.9, "nesterov": True}),
    ("adam", 0.1, {}),
    ("rmsprop", 0.02, {}),
    ("centred_rmsprop", 0.003, {}),
]
CONFIGURATION_IDS = [name + ("-" + "-".join(options) if options else "") for name, _, options in CONFIGURATIONS]


def test_make_builds_each_named_class():
    assert set(OPTIMISERS) == {"sgd", "adam", "rmsprop", "centred_rmsprop"}
    classes = {"sgd": SGD, "adam": Adam, "rmsprop": RMSprop, "centred_rmsprop": CentredRMSprop}
    for name, optimiser_class in classes.items():
        assert type(make(name, [np.zeros(3)], 0.1)) is optimiser_class


@pytest.mark.parametrize("name, lr, options", CONFIGURATIONS, ids=CONFIGURATION_IDS)
def test_minimises_convex_quadratic(name, lr, options):
    """0.5 (θ-θ*)ᵀ A (θ-θ*) over a matrix and a vector parameter, A with condition number 8."""
    rng = np.random.default_rng(0)
    rotation, _ = np.linalg.qr(rng.normal(size=(9, 9)))
    curvature = rotation @ np.diag(np.linspace(0.5, 4.0, 9)) @ rotation.T
    minimiser = rng.normal(size=9)
    weights, bias = np.zeros((2, 3)), np.zeros(3)
    optimiser = make(name, [weights, bias], lr, **options)
    for step in range(2000):
        gradient = curvature @ (np.concatenate([weights.ravel(), bias]) - minimiser)
        optimiser.step([gradient[:6].reshape(2, 3), gradient[6:]])
        if name in ("adam", "rmsprop"):  # their steps stay ~lr near the minimum unless lr decays
            optimiser.lr = lr * 0.993**step
    np.testing.assert_allclose(np.concatenate([weights.ravel(), bias]), minimiser, rtol=0, atol=1e-6)


def test_centred_rmsprop_first_two_steps_match_hand_arithmetic():
    """Centred RMSprop with lr 0.1 on two elements starting at 1.0, gradients (2, 0) then (-1, 3).

    m <- .95 m + .05 g; v <- .95 v + .05 g²; step = g / sqrt(v - m² + 1e-3); inc <- .9 inc - lr step.
    Element 0, step 1 (g = 2): m = .1, v = .2, v - m² + 1e-3 = .2 - .01 + .001 = .191,
      inc = -.1 * 2 / sqrt(.191), θ = 1 - .2 / sqrt(.191).
    Element 0, step 2 (g = -1): m = .095 - .05 = .045, v = .19 + .05 = .24,
      v - m² + 1e-3 = .24 - .002025 + .001 = .238975, inc = .9 * (-.2 / sqrt(.191)) + .1 / sqrt(.238975).
    Element 1, step 1 (g = 0): everything stays 0, θ = 1.
    Element 1, step 2 (g = 3): m = .15, v = .45, v - m² + 1e-3 = .45 - .0225 + .001 = .4285,
      inc = -.1 * 3 / sqrt(.4285).
    """
    theta = np.array([1.0, 1.0])
    optimiser = make("centred_rmsprop", [theta], 0.1)

    optimiser.step([np.array([2.0, 0.0])])
    increment_0 = -0.2 / math.sqrt(0.191)
    np.testing.assert_allclose(theta, [1.0 + increment_0, 1.0], rtol=1e-14, atol=0)

    optimiser.step([np.array([-1.0, 3.0])])
    expected = [1.0 + increment_0 + (0.9 * increment_0 + 0.1 / math.sqrt(0.238975)), 1.0 - 0.3 / math.sqrt(0.4285)]
    np.testing.assert_allclose(theta, expected, rtol=1e-14, atol=0)
    state = optimiser.state_dict()
    np.testing.assert_allclose(state["mean.0"], [0.045, 0.15], rtol=1e-14)
    np.testing.assert_allclose(state["mean_square.0"], [0.24, 0.45], rtol=1e-14)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_matches_closed_form(nesterov):
    """v_t = -lr Σ_{k<=t} μ^(t-k) g_k; θ_t = θ_0 + Σ_{s<=t} v_s (heavy ball)
    or θ_0 + Σ_{s<=t} (μ v_s - lr g_s) (Nesterov)."""
    lr, momentum = 0.1, 0.8
    gradients = np.random.default_rng(1).normal(size=(5, 4))
    theta_0 = np.random.default_rng(2).normal(size=4)
    theta = theta_0.copy()
    optimiser = make("sgd", [theta], lr, momentum=momentum, nesterov=nesterov)
    for t in range(1, len(gradients) + 1):
        optimiser.step([gradients[t - 1]])
        velocities = [
            -lr * sum(momentum ** (s - k) * gradients[k - 1] for k in range(1, s + 1)) for s in range(1, t + 1)
        ]
        if nesterov:
            expected = theta_0 + sum(momentum * velocities[s - 1] - lr * gradients[s - 1] for s in range(1, t + 1))
        else:
            expected = theta_0 + sum(velocities)
        np.testing.assert_allclose(theta, expected, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(optimiser.state_dict()["velocity.0"], velocities[-1], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    "name, first_step_per_unit_lr",
    [
        ("adam", 1.0),  # bias-corrected: m_hat = g, v_hat = g², step = lr g / (|g| + eps)
        ("rmsprop", 1 / math.sqrt(0.1)),  # v = .1 g², step = lr g / (sqrt(.1) |g| + eps)
    ],
)
def test_adaptive_first_step_size(name, first_step_per_unit_lr):
    """The scaled step of large gradients, and of a tiny one (1e-6) where eps = 1e-8 added to the
    root (not inside it, where it would make the floor 1e-4) takes 1 % of it off."""
    theta = np.zeros(4)
    gradient = np.array([4.0, -0.5, 2.0, 1e-6])
    make(name, [theta], 0.01).step([gradient])
    root = np.abs(gradient) / first_step_per_unit_lr  # sqrt(v_hat) for Adam, sqrt(v) for RMSprop
    np.testing.assert_allclose(theta, -0.01 * gradient / (root + 1e-8), rtol=1e-6)
    assert abs(theta[3]) > 0.9 * 0.01 * first_step_per_unit_lr


@pytest.mark.parametrize("name, lr, options", CONFIGURATIONS, ids=CONFIGURATION_IDS)
def test_updates_in_place(name, lr, options):
    weights = np.ones((3, 4))
    base = np.ones((2, 6))
    strided = base[:, ::2]  # a non-contiguous parameter: the update must reach `base`
    weights_column = weights[:, 1]
    optimiser = make(name, [weights, strided], lr, **options)
    optimiser.step([np.full((3, 4), 0.5), np.full((2, 3), -0.5)])
    assert optimiser.params[0] is weights and optimiser.params[1] is strided
    assert np.all(weights < 1) and np.array_equal(weights_column, weights[:, 1])
    assert np.all(base[:, ::2] > 1) and np.all(base[:, 1::2] == 1)


@pytest.mark.parametrize("name, lr, options", CONFIGURATIONS, ids=CONFIGURATION_IDS)
def test_step_allocates_no_parameter_sized_array(name, lr, options):
    params = [np.ones((200, 100)), np.ones(100)]
    grads = [np.full((200, 100), 0.5), np.full(100, 0.5)]
    optimiser = make(name, params, lr, **options)
    optimiser.step(grads)
    tracemalloc.start()
    try:
        optimiser.step(grads)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < params[0].nbytes / 10


@pytest.mark.parametrize("name, lr, options", CONFIGURATIONS, ids=CONFIGURATION_IDS)
def test_state_dict_resume_is_bit_identical(name, lr, options):
    rng = np.random.default_rng(3)
    gradients = [[rng.normal(size=(4, 5)).astype(np.float32), rng.normal(size=5).astype(np.float32)] for _ in range(10)]
    params = [rng.normal(size=(4, 5)).astype(np.float32), rng.normal(size=5).astype(np.float32)]
    uninterrupted = make(name, params, lr, **options)
    for step, grads in enumerate(gradients[:4]):
        uninterrupted.lr = lr / (1 + step)  # a schedule: the snapshot must carry the current lr
        uninterrupted.step(grads)
    snapshot = uninterrupted.state_dict()
    resumed_params = [param.copy() for param in params]
    for grads in gradients[4:]:  # keep going: the snapshot must not alias the live state
        uninterrupted.step(grads)

    resumed = make(name, resumed_params, 1.0, **options)
    resumed.load_state_dict(snapshot)
    assert resumed.step_count == 4 and resumed.lr == lr / 4
    for grads in gradients[4:]:
        resumed.step(grads)
    for param, resumed_param in zip(params, resumed_params):
        assert np.array_equal(param, resumed_param)
    for key, value in uninterrupted.state_dict().items():
        assert np.array_equal(value, resumed.state_dict()[key])


def test_load_state_dict_rejects_mismatched_state():
    adam_state = make("adam", [np.zeros(3)], 0.1).state_dict()
    with pytest.raises(ConfigError, match="velocity.0"):
        make("sgd", [np.zeros(3)], 0.1).load_state_dict(adam_state)
    with pytest.raises(ConfigError, match="first_moment.0"):
        make("adam", [np.zeros(4)], 0.1).load_state_dict(adam_state)


@pytest.mark.parametrize("name, lr, options", CONFIGURATIONS, ids=CONFIGURATION_IDS)
def test_float32_parameters_stay_float32(name, lr, options):
    param = np.ones(5, dtype=np.float32)
    optimiser = make(name, [param], lr, **options)
    for _ in range(3):
        optimiser.step([np.linspace(-1, 1, 5)])  # a float64 gradient must not promote anything
    assert param.dtype == np.float32 and optimiser.params[0] is param
    assert all(value.dtype == np.float32 for value in optimiser.state_dict().values() if isinstance(value, np.ndarray))


def test_unknown_name_or_option_is_config_error_listing_valid_ones():
    with pytest.raises(ConfigError, match=r"'adamw'.*sgd, adam, rmsprop, centred_rmsprop"):
        make("adamw", [np.zeros(2)], 0.1)
    with pytest.raises(ConfigError, match=r"momentun.*momentum, nesterov"):
        make("sgd", [np.zeros(2)], 0.1, momentun=0.9)
    with pytest.raises(ConfigError, match=r"beta1.*decay, eps, momentum"):
        make("centred_rmsprop", [np.zeros(2)], 0.1, beta1=0.9)


@pytest.mark.parametrize("lr", [0, -0.1, float("nan"), float("inf"), "fast", None])
def test_bad_learning_rate_is_config_error(lr):
    with pytest.raises(ConfigError, match="lr"):
        make("sgd", [np.zeros(2)], lr)
    optimiser = make("adam", [np.zeros(2)], 0.1)
    with pytest.raises(ConfigError, match="lr"):
        optimiser.lr = lr
    assert optimiser.lr == 0.1


@pytest.mark.parametrize(
    "name, options",
    [
        ("sgd", {"momentum": 1.0}),
        ("sgd", {"nesterov": "yes"}),
        ("adam", {"beta2": -0.1}),
        ("rmsprop", {"eps": 0}),
        ("centred_rmsprop", {"decay": "high"}),
    ],
)
def test_bad_option_value_is_config_error(name, options):
    with pytest.raises(ConfigError, match=next(iter(options))):
        make(name, [np.zeros(2)], 0.1, **options)


def test_bad_parameters_and_gradients():
    with pytest.raises(ConfigError, match="parameter 1"):
        make("sgd", [np.zeros(2), np.zeros(2, dtype=np.int64)], 0.1)
    with pytest.raises(ConfigError, match="parameter 0"):
        make("sgd", [[0.0, 1.0]], 0.1)
    optimiser = make("sgd", [np.zeros(2), np.zeros(3)], 0.1)
    with pytest.raises(ValueError, match="1 gradients for 2"):
        optimiser.step([np.zeros(2)])
    with pytest.raises(ValueError, match="gradient 1"):
        optimiser.step([np.zeros(2), np.zeros(4)])
    assert optimiser.step_count == 0


@settings(max_examples=50, deadline=None)
@given(
    config=st.sampled_from(CONFIGURATIONS),
    first=hnp.arrays(np.float64, st.integers(1, 6), elements=st.floats(-10, 10)),
    second=hnp.arrays(np.float64, st.integers(1, 6), elements=st.floats(-10, 10)),
)
def test_rules_act_element_wise(config, first, second):
    """Two parameters stepped together evolve exactly like their concatenation: no state leaks between them."""
    name, lr, options = config
    split = [np.zeros_like(first), np.zeros_like(second)]
    joined = np.zeros(first.size + second.size)
    split_optimiser, joined_optimiser = make(name, split, lr, **options), make(name, [joined], lr, **options)
    for scale in (1.0, -0.5, 2.0):
        split_optimiser.step([scale * first, scale * second])
        joined_optimiser.step([scale * np.concatenate([first, second])])
    assert np.array_equal(np.concatenate(split), joined)


# ---------------------------------------------------------------- options from a method's config


def test_a_methods_optimizer_options_reach_every_optimiser_it_makes(write_toml):
    """`[method.optimizer_options]` in a config file sets the rule's options (here SGD's momentum)
    for every parameter group of the method, each at its own learning rate."""
    from stochtp import Network, config, experiment

    path = write_toml('dataset = "teacher"\nnetwork = "8-6t-6t-3s"\n[method]\nname = "dtp"\noptimizer = "sgd"\nlr_f = 0.1\nlr_b = 0.01\n[method.optimizer_options]\nmomentum = 0.9\nnesterov = true\n')
    method = experiment.build_method(config.load(path))
    method.bind(Network.from_spec("8-6t-6t-3s"))
    forward, inverse = method.optimisers["forward"], method.optimisers["inverse"]
    assert isinstance(forward, SGD) and isinstance(inverse, SGD)
    assert (forward.momentum, forward.nesterov, forward.lr) == (0.9, True, 0.1)
    assert (inverse.momentum, inverse.nesterov, inverse.lr) == (0.9, True, 0.01)


@pytest.mark.parametrize(
    "options, message",
    [({"optimizer_options": {"momentum": 0.9}}, "unknown option.*momentum.*'adam'"), ({"optimizer_options": {"beta1": 1.5}}, r"beta1 must be in \[0, 1\)"), ({"optimizer_options": 0.9}, "must be a table")],
)
def test_bad_optimizer_options_are_refused(options, message):
    from stochtp import Network, methods

    with pytest.raises(ConfigError, match=message):
        methods.get("bp", optimizer="adam", **options).bind(Network.from_spec("4-3t-2s"))
