"""Methods as plug-ins (docs/extending.md): the registry, its entry-point group, and a method from
another package trained by name and scored by the oracle with no file of stochtp edited."""
import re
import subprocess
import sys
from importlib import metadata

import numpy as np
import pytest

from stochtp import methods, results
from stochtp.errors import PluginError
from stochtp.methods import GradientMethod, Method, registry


@pytest.fixture
def clean_registry(monkeypatch):
    """The registry as built-ins left it, restored after the test."""
    monkeypatch.setattr(registry, "_CLASSES", dict(registry._CLASSES))
    monkeypatch.setattr(registry, "_plugins_loaded", True)


def entry_points_of(monkeypatch, **named):
    """Have the registry find these entry points (name -> "module:Class") in its group, and none other."""
    found = [metadata.EntryPoint(name, value, registry.ENTRY_POINT_GROUP) for name, value in named.items()]
    monkeypatch.setattr(registry.metadata, "entry_points", lambda group: found if group == registry.ENTRY_POINT_GROUP else [])
    monkeypatch.setattr(registry, "_plugins_loaded", False)


class Halved(GradientMethod):
    name = "halved"

    def estimate(self, net, batch, seed):
        raise NotImplementedError


def test_builtins_register_themselves_by_kind():
    known = methods.classes()
    assert set(known) == {"bp", "tp", "dtp", "st", "reinforce", "arm", "disarm", "dae-bp", "dae-dtp"}
    assert {name for name, cls in known.items() if issubclass(cls, GradientMethod)} == {"bp", "st", "reinforce", "arm", "disarm"}
    assert all(issubclass(cls, Method) for cls in known.values())


def test_register_makes_a_class_usable_by_name(clean_registry):
    assert methods.register(Halved) is Halved and methods.register(Halved) is Halved  # again: nothing changes
    assert "halved" in methods.names() and isinstance(methods.get("halved", lr=0.5), Halved)


def test_register_refuses_a_taken_name_a_non_method_and_an_abstract_class(clean_registry):
    class Impostor(GradientMethod):
        name = "bp"

        def estimate(self, net, x, y, seed, stream):
            raise NotImplementedError

    with pytest.raises(PluginError, match=r"'bp' .*Impostor.*taken by stochtp\.methods\.backprop\.Backprop"):
        methods.register(Impostor)
    with pytest.raises(PluginError, match="not a class deriving from stochtp.methods.Method"):
        methods.register(dict)
    with pytest.raises(PluginError, match="not a class deriving"):
        methods.register(lambda: None)

    class Unfinished(Method):
        name = "unfinished"

    with pytest.raises(PluginError, match="'unfinished'.*does not implement step, update"):
        methods.register(Unfinished)

    class Nameless(Halved):
        pass

    with pytest.raises(PluginError, match="class attribute `name`"):
        methods.register(Nameless)
    assert methods.classes()["bp"].__name__ == "Backprop" and "unfinished" not in methods.names()


@pytest.mark.parametrize(
    "value, pattern",
    [
        ("no_such_module_for_stochtp:Cls", r"entry point 'broken' = 'no_such_module_for_stochtp:Cls' \(group stochtp.methods\) cannot be loaded: ModuleNotFoundError"),
        ("stochtp.methods.backprop:NoSuchClass", r"entry point 'broken' = .* cannot be loaded: AttributeError"),
        ("stochtp.methods.backprop:backward", r"entry point 'broken' = .*: cannot register <function backward"),
        ("test_registry:Halved", r"entry point 'broken' = .*: the class is named 'halved'"),
    ],
)
def test_a_broken_entry_point_is_one_message_naming_it(clean_registry, monkeypatch, value, pattern):
    entry_points_of(monkeypatch, broken=value)
    with pytest.raises(PluginError, match=pattern) as caught:
        methods.get("bp")
    assert "\n" not in str(caught.value)
    with pytest.raises(PluginError, match=pattern):  # asked again, the same message
        methods.names()


def test_an_entry_point_registers_its_class_once(clean_registry, monkeypatch):
    entry_points_of(monkeypatch, halved="test_registry:Halved")
    assert methods.names()[-1] == "halved" and methods.classes()["halved"] is Halved
    assert methods.get("halved").options["samples"] == 1


def test_a_broken_plugin_stops_the_command_with_one_line(make_method_plugin, tiny_config_path, tmp_path):
    plugin = make_method_plugin("raise RuntimeError('plugin import failed')\n", {"broken": "stochtp_method_plugin:Nothing"})
    finished = plugin.run("run", str(tiny_config_path), "--epochs", "1", "--out", str(tmp_path / "r.h5"), "--threads", "1", "--quiet")
    assert finished.returncode == 2 and finished.stderr.count("\n") == 1, finished.stderr
    assert re.search(r"entry point 'broken' = 'stochtp_method_plugin:Nothing' .*RuntimeError: plugin import failed", finished.stderr)


@pytest.mark.slow
def test_a_plugin_method_trains_by_name_from_the_command(method_plugin, tiny_config_path, tmp_path):
    """Both kinds train through `stochtp run` (the tiny stochastic config), named by --set; the
    command's help lists them."""
    config = tiny_config_path
    out = tmp_path / "plugin.h5"
    for name in method_plugin.names:
        finished = method_plugin.run("run", str(config), "--set", f"method.name={name}", "--epochs", "2", "--out", str(out), "--threads", "1", "--quiet")
        assert finished.returncode == 0 and finished.stdout.startswith("completed: run "), finished.stderr
    runs = results.open(out).runs
    assert [run.attrs["method"] for run in runs] == list(method_plugin.names) and all(run.status == "completed" for run in runs)
    assert all(len(run.metrics["train_loss"]) == 2 and np.isfinite(run.metrics["train_loss"]).all() for run in runs)
    helped = method_plugin.run("run", "--help")
    assert all(name in helped.stdout for name in method_plugin.names), helped.stdout


ORACLE_CONFIG = """\
name = "plugin"
dataset = "teacher"
network = "8-4b-4b-3s"
dtype = "float64"
batch_size = 8

[data]
n_train = 40
n_valid = 20
n_test = 20

[method]
name = "plugin-target"
lr = 0.5
"""


@pytest.mark.slow
def test_the_oracle_scores_a_plugin_by_its_kind(method_plugin, tmp_path):
    """`stochtp estimators` with a config naming the target-style plug-in scores it for direction
    (bias NaN, cosine finite), and the gradient plug-in, a registered GradientMethod, for bias and
    variance beside the built-ins."""
    config = tmp_path / "estimators.toml"
    config.write_text(ORACLE_CONFIG)
    out = tmp_path / "scores.h5"
    finished = method_plugin.run("estimators", str(config), "--samples", "20", "--out", str(out))
    assert finished.returncode == 0, finished.stderr
    assert "plugin-grad" in finished.stdout and "plugin-target" in finished.stdout
    (run,) = results.open(out).runs
    labels = run.config["estimators"]["methods"]
    assert {"plugin-grad", "plugin-target", "bp", "reinforce-none", "dtp"} <= set(labels)
    variance, cosine = run.diagnostics["variance"], run.diagnostics["cos_mean"]
    assert np.isfinite(variance[labels.index("plugin-grad")]).all()
    assert np.isnan(variance[labels.index("plugin-target")]).all() and np.isfinite(cosine[labels.index("plugin-target")]).all()


FIT_PLUGIN = """
import numpy as np, stochtp
rng = np.random.default_rng(0)
pairs = [(rng.random((rows, 8)), rng.integers(0, 3, rows)) for rows in (100, 40, 40)]
for name in ("plugin-grad", "plugin-target"):
    history = stochtp.fit(stochtp.Network.from_spec("8-6b-3s", seed=0), stochtp.methods.get(name), *pairs, epochs=2, batch_size=20, eval_samples=2)
    print(name, history.status, history.epochs, bool(np.isfinite(history.metrics["train_loss"]).all()))
"""


def test_a_plugin_method_trains_by_name_through_fit(method_plugin):
    finished = subprocess.run([sys.executable, "-c", FIT_PLUGIN], env=method_plugin.env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.split("\n")[:2] == ["plugin-grad completed 2 True", "plugin-target completed 2 True"]


def test_the_bench_times_a_registered_gradient_method_on_the_stochastic_network(clean_registry):
    from stochtp import bench

    methods.register(Halved)
    configs = bench.bench_configs(["paper-stochastic-halved"])
    assert configs["paper-stochastic-halved"].method["name"] == "halved"
    assert configs["paper-stochastic-halved"].network == bench.bench_configs(["paper-stochastic-disarm"])["paper-stochastic-disarm"].network
