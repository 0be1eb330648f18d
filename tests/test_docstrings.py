"""Every public function and class of the Python API (docs/api.md) documents itself
with an example, and the examples run."""
import doctest
import importlib

import pytest

from stochtp.methods import registry
from stochtp.units import base as unit_base

PUBLIC = [
    "stochtp", "stochtp.Network", "stochtp.callbacks.Callback", "stochtp.Network.from_spec", "stochtp.Network.forward", "stochtp.Network.predict", "stochtp.Network.predict_proba",
    "stochtp.Network.replace", "stochtp.fit", "stochtp.configure_process", "stochtp.methods.get", "stochtp.methods.register",
    "stochtp.methods.Method", "stochtp.methods.GradientMethod", "stochtp.callbacks", "stochtp.callbacks.History",
    "stochtp.callbacks.History.to_dataframe", "stochtp.callbacks.CSVLogger", "stochtp.callbacks.TensorBoard",
    "stochtp.callbacks.EarlyStopping", "stochtp.units.register", "stochtp.units.Unit", "stochtp.units.StochasticUnit",
]


def resolve(dotted):
    """The object a dotted name refers to: the longest importable module, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            target = getattr(target, name)
        return target
    raise ImportError(dotted)


@pytest.fixture
def registries_restored(monkeypatch):
    """The examples register a method and a unit of their own: gone again after each test."""
    monkeypatch.setattr(registry, "_CLASSES", dict(registry._CLASSES))
    monkeypatch.setattr(unit_base, "_UNITS", dict(unit_base._UNITS))


@pytest.mark.parametrize("dotted", PUBLIC)
def test_the_docstring_has_an_example_that_runs(dotted, registries_restored):
    target = resolve(dotted)
    tests = [test for test in doctest.DocTestFinder(recurse=False).find(target, dotted) if test.examples]
    assert tests, f"{dotted} has no example in its docstring"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in tests:
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0, f"an example of {dotted} failed (output above)"
