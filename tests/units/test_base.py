"""Units as registered classes: the registry of stochtp.units.base."""
import numpy as np
import pytest

from stochtp import Network, exact, methods, units
from stochtp.errors import ConfigError
from stochtp.units import base


@pytest.fixture
def registry(monkeypatch):
    """The registry as it is, restored after the test (a unit registered inside stays there)."""
    monkeypatch.setattr(base, "_UNITS", dict(base._UNITS))


def test_units_are_found_by_name_and_by_letter():
    assert units.get("stochastic_sign") is units.get("p") and units.get("p").stochastic
    assert [unit.name for unit in units.registered().values()] == [
        "identity", "tanh", "sigmoid", "relu", "softmax", "sign", "step", "bernoulli", "stochastic_sign"
    ]
    with pytest.raises(ConfigError, match=r"unknown unit 'x'; known units: l=identity, .*p=stochastic_sign"):
        units.get("x")
    with pytest.raises(ConfigError, match="unknown unit letter 'x'"):
        Network.from_spec("3-4x-2s")


def test_a_unit_registered_in_one_place_is_usable_from_a_spec_string(registry):
    @units.register
    class Softsign(units.Unit):
        name, letter = "softsign", "q"

        def forward(self, a):
            return a / (1 + np.abs(a))

        def true_derivative(self, a, h):
            return 1 / (1 + np.abs(a)) ** 2

    net = Network.from_spec("3-4q-2s", seed=1, dtype=np.float64)
    assert net.layers[0].unit == "softsign" and net.spec == "3-4q-2s"
    x, y = np.random.default_rng(0).normal(size=(5, 3)), np.array([0, 1, 1, 0, 1])
    trace = net.forward(x)
    a = x @ net.layers[0].W
    np.testing.assert_allclose(trace.h[0], a / (1 + np.abs(a)), rtol=1e-15)
    method = methods.get("bp")
    method.bind(net)
    (dW, _), _ = method.gradient(net, x, y, seed=0)
    eps, index = 1e-6, (1, 2)
    net.layers[0].W[index] += eps
    up = net.loss(net.forward(x), y)
    net.layers[0].W[index] -= 2 * eps
    down = net.loss(net.forward(x), y)
    assert dW[index] == pytest.approx((up - down) / (2 * eps), rel=1e-6)


def test_registering_refuses_taken_or_malformed_letters_and_names(registry):
    for letter, name, message in [("b", "other", "already the bernoulli unit's"), ("q", "tanh", "already the tanh"),
                                  ("Q", "other", "one lowercase letter"), ("q", "q", "two characters")]:
        unit = type("Other", (units.Unit,), {"name": name, "letter": letter})
        with pytest.raises(ValueError, match=message):
            units.register(unit)


def test_a_stochastic_unit_is_refused_as_the_oracle_s_output_by_name():
    with pytest.raises(ConfigError, match="ends with stochastic_sign units"):
        exact.expected_loss(Network.from_spec("3-2p-2p"), np.zeros((1, 3)), np.zeros((1, 2)))
