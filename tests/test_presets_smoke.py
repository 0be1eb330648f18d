"""Every paper-* preset runs: one epoch of the preset as it is (network, initialisation, method
and its options), shrunk by overrides only (epochs, the K of the K-sample evaluation), on small
data of the preset's shape:

- MNIST presets: the first 300 / 100 / 100 images of the official files where they are present
  ($STOCHTP_DATA or data/), else random 28x28 pixels with labels 0-9, standing in
  for MNIST in the dataset registry;
- CIFAR-10 presets: always a small file set in the official format, built here: the python
  tarball cifar-10-python.tar.gz with data_batch_1..5 and test_batch (60 images each), read by
  the real reader once the registry trusts its checksum (as a download is trusted).

A cross-cutting test (presets, data, network, methods, training loop and results file together),
so it sits at the top of tests/ rather than beside one module.
"""
import os

import numpy as np
import pytest
from conftest import DEFAULT_DATA
from dataset_files import MNIST_FILES, trust_files, write_cifar_tarball

from stochtp import config, experiment, results, train
from stochtp.data import DATASETS, Dataset, Split, SyntheticDataset, load, locate

PAPER_PRESETS = [name for name in config.presets() if name.startswith("paper-")]
SHRINK = ["epochs=1", "eval_samples=2", "eval_samples_every=1"]
MNIST_SIZES = {"train": 300, "valid": 100, "test": 100}
CIFAR_PER_BATCH = 60


def small_split(split, size):
    return Split(split.x[:size], split.y[:size], split.scale)


@pytest.fixture(scope="module")
def mnist_stand_in():
    """A 784-feature, 10-class dataset of MNIST's pixel format: real MNIST's first images, or random ones."""
    roots = [os.environ["STOCHTP_DATA"]] if os.environ.get("STOCHTP_DATA") else []
    for folder in (locate("mnist", root) for root in [*roots, DEFAULT_DATA]):
        if all((folder / name).is_file() for name in MNIST_FILES):
            full = load("mnist", folder, download=False)
            return Dataset("mnist", 784, 10, **{name: small_split(getattr(full, name), size) for name, size in MNIST_SIZES.items()})
    rng = np.random.default_rng(0)
    splits = {name: Split(rng.integers(0, 256, size=(size, 784), dtype=np.uint8), np.arange(size) % 10, 1 / 255) for name, size in MNIST_SIZES.items()}
    return Dataset("mnist", 784, 10, **splits)


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    """A data folder holding a small CIFAR-10 tarball in cifar10/."""
    root = tmp_path_factory.mktemp("data")
    (root / "cifar10").mkdir()
    write_cifar_tarball(root / "cifar10" / "cifar-10-python.tar.gz", per_batch=CIFAR_PER_BATCH, n_test=CIFAR_PER_BATCH)
    return root


def test_the_paper_presets_are_all_here():
    assert {"paper-discrete-dtp", "paper-discrete-dtp-ortho", "paper-deep-relu-dtp", "paper-deep-relu-bp",
            "paper-cifar-dtp", "paper-cifar-bp", "paper-stochastic-arm", "paper-dae-dtp", "paper-dae-bp"} <= set(PAPER_PRESETS)


@pytest.mark.slow
@pytest.mark.parametrize("name", PAPER_PRESETS)
def test_preset_trains_one_epoch_on_small_data(name, tmp_path, monkeypatch, mnist_stand_in, cifar_root):
    cfg = config.load(preset=name, overrides=SHRINK)
    if cfg.dataset == "mnist":
        monkeypatch.setitem(DATASETS, "mnist", SyntheticDataset(lambda: mnist_stand_in))
    else:
        assert cfg.dataset == "cifar10"
        trust_files(monkeypatch, "cifar10", cifar_root / "cifar10", mirrors=())
    out = tmp_path / "run.h5"
    with train.thread_limit(1):  # the network's initialisation too (orthogonal: SVDs)
        summary = experiment.run(cfg, out=out, data_dir=cifar_root, threads=1, quiet=True)
    assert (summary.status, summary.epochs) == ("completed", 1)
    run = results.open(out).runs[0]
    assert run.config == config.load(preset=name, overrides=SHRINK).to_dict()
    autoencoder = experiment.build_method(cfg).task == "autoencode"
    measured = ("train_loss", "train_reconstruction", "valid_reconstruction", "test_reconstruction", "probe_valid_error", "probe_test_error") if autoencoder else ("train_loss", "valid_error", "test_error")
    for metric in measured:
        assert np.isfinite(run.metrics[metric]).all(), metric


def test_cifar_file_set_is_split_nine_tenths_to_one(cifar_root, monkeypatch):
    trust_files(monkeypatch, "cifar10", cifar_root / "cifar10", mirrors=())
    dataset = load("cifar10", cifar_root)
    assert (len(dataset.train), len(dataset.valid), len(dataset.test)) == (270, 30, 60)
    assert dataset.n_features == 3072 and dataset.train.features().max() <= 1.0
