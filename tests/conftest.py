"""Fixtures shared by the pipeline tests: small run configs on synthetic data, and real MNIST."""
import os
from pathlib import Path

import pytest
from hypothesis import settings

from stochtp.data import DATASETS, locate

# Property tests draw the same examples on every run (their seed is fixed), so that CI's verdict
# on a commit does not depend on the draw; HYPOTHESIS_PROFILE=explore searches afresh.
settings.register_profile("fixed", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fixed"))

SHARED_MNIST = Path(__file__).parents[1].parent / "shared/data/mnist"

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
    """The folder holding the four official MNIST files ($STOCHTP_DATA, else ../shared/data/mnist); skips when absent."""
    roots = [os.environ["STOCHTP_DATA"]] if os.environ.get("STOCHTP_DATA") else []
    for root in [*roots, SHARED_MNIST]:
        folder = locate("mnist", root)
        if all((folder / name).is_file() for name in DATASETS["mnist"].files):
            return folder
    pytest.skip("the official MNIST files are not in $STOCHTP_DATA or ../shared/data/mnist")
