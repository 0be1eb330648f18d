"""Fixtures shared by the pipeline tests: small run configs on synthetic data, real MNIST, and a
method plug-in installed in a temporary folder."""
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings

from stochtp.data import DATASETS, locate

# Property tests draw the same examples on every run (their seed is fixed), so that CI's verdict
# on a commit does not depend on the draw; HYPOTHESIS_PROFILE=explore searches afresh.
settings.register_profile("fixed", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fixed"))

# The checkout the tests run from (test files sit one or two folders below it).
REPO_ROOT = Path(__file__).resolve().parents[1]
# The data folder stochtp reads when $STOCHTP_DATA is not set.
DEFAULT_DATA = REPO_ROOT / "data"

# A run that takes well under a second per epoch: a stochastic 8-6b-6b-3s network on the
# teacher task, so the Bernoulli kernels, the K-sample evaluation and its schedule all run.
TINY_RUN = """\
name = "tiny"
dataset = "teacher"
network = "8-6b-6b-3s"
epochs = 4
batch_size = 50
eval_samples = 4
eval_samples_every = 2

[data]
n_train = 400
n_valid = 200
n_test = 200

[method]
name = "bp"
optimizer = "centred_rmsprop"
lr = 0.01
"""


@pytest.fixture
def write_toml(tmp_path):
    """Write TOML text to a file in tmp_path (default name run.toml) and return its path."""

    def write(text, name="run.toml"):
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


@pytest.fixture
def tiny_config_path(write_toml):
    """A config file for the tiny stochastic run (see TINY_RUN)."""
    return write_toml(TINY_RUN, "tiny.toml")


@pytest.fixture
def mnist_dir():
    """The folder holding the four official MNIST files ($STOCHTP_DATA, else data/); skips when absent."""
    roots = [os.environ["STOCHTP_DATA"]] if os.environ.get("STOCHTP_DATA") else []
    for root in [*roots, DEFAULT_DATA]:
        folder = locate("mnist", root)
        if all((folder / name).is_file() for name in DATASETS["mnist"].files):
            return folder
    pytest.skip("the official MNIST files are not in $STOCHTP_DATA or data/")


# A package outside stochtp that adds one method of each kind through the entry-point group
# `stochtp.methods` (docs/extending.md), written by `write_method_plugin`.
PLUGIN_MODULE = """\
\"\"\"Two methods from outside stochtp: a gradient method and a target-style method.\"\"\"
import numpy as np

from stochtp.batching import MiniBatch
from stochtp.methods import GradientMethod, Method
from stochtp.methods.backprop import backward
from stochtp.methods.base import batch_stats


def straight_through(net, batch, seed):
    trace = batch.forward(net, seed)
    return backward(net, trace, net.output_grad(trace, batch.y), surrogate="identity"), trace


class HalfStraightThrough(GradientMethod):
    \"\"\"Half the identity-surrogate straight-through gradient.\"\"\"

    name = "plugin-grad"

    def estimate(self, net, batch, seed):
        grads, trace = straight_through(net, batch, seed)
        return [(dW / 2, db / 2) for dW, db in grads], trace


class SignDescent(Method):
    \"\"\"Every parameter steps `lr` against the sign of its straight-through gradient.\"\"\"

    name = "plugin-target"
    OPTIONS = {"lr": 0.01}

    def directions(self, net, batch, seed):
        grads, trace = straight_through(net, batch, seed)
        return [(np.sign(dW), np.sign(db)) for dW, db in grads], trace

    def update(self, net, x, y, seed, stream=0):
        return self.directions(net, MiniBatch(stream, *net.check_batch(x, y)), seed)[0]

    def step(self, net, batch, seed):
        grads, trace = self.directions(net, batch, seed)
        for layer, (dW, db) in zip(net.layers, grads):
            layer.W -= self.options["lr"] * dW
            layer.b -= self.options["lr"] * db
        return batch_stats(net, trace, batch.y)
"""

PLUGIN_ENTRY_POINTS = {"plugin-grad": "stochtp_method_plugin:HalfStraightThrough", "plugin-target": "stochtp_method_plugin:SignDescent"}


@dataclass
class MethodPlugin:
    """A plug-in package written into `folder`: `env` puts it (and this checkout's stochtp) on the
    path of a child process, whose importlib.metadata then finds its entry points."""

    folder: Path
    names: tuple

    @property
    def env(self):
        paths = [str(self.folder), str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]
        return {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in paths if path)}

    def run(self, *argv):
        """`python -m stochtp ARGV` with the plug-in installed."""
        return subprocess.run([sys.executable, "-m", "stochtp", *argv], env=self.env, capture_output=True, text=True, timeout=300)


def write_method_plugin(folder, module_text=PLUGIN_MODULE, entry_points=None, module="stochtp_method_plugin"):
    """Write module `module` (`module_text`) and a `*.dist-info` folder whose entry_points.txt names
    `entry_points` (method name -> "module:Class"; default PLUGIN_ENTRY_POINTS) in the group
    stochtp.methods; return the MethodPlugin."""
    entry_points = PLUGIN_ENTRY_POINTS if entry_points is None else entry_points
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{module}.py").write_text(module_text)
    info = folder / f"{module}-0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 0.1\n")
    lines = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[stochtp.methods]\n{lines}")
    return MethodPlugin(folder, tuple(entry_points))


@pytest.fixture
def make_method_plugin(tmp_path):
    """`write_method_plugin` into a fresh folder under tmp_path per call (arguments as it takes)."""
    folders = iter(range(1000))

    def make(module_text=PLUGIN_MODULE, entry_points=None):
        return write_method_plugin(tmp_path / f"plugin-{next(folders)}", module_text, entry_points)

    return make


@pytest.fixture
def method_plugin(make_method_plugin):
    """The plug-in package of PLUGIN_MODULE (methods plugin-grad and plugin-target)."""
    return make_method_plugin()
