"""Datasets for stochtp: MNIST and CIFAR-10 from checksummed files, and synthetic tasks.

    ds = load("mnist")                # Dataset: ds.train / ds.valid / ds.test are Splits
    batch = ds.train.features(idx)    # float32 features in [0, 1] for the rows idx
    load("parity", n_bits=4, seed=1)  # synthetic tasks take their options as keywords

Files are looked up in the data folder: the `data_dir` argument, else `$STOCHTP_DATA`, else
the project's `data/`; within it in `<folder>/<name>/` and directly in `<folder>/` (see
`stochtp.data.files`). Missing files are downloaded from public mirrors and verified by
SHA-256 (`fetch`); `check` reports the state of each file without downloading.
"""

from stochtp.data.dataset import Dataset, Split
from stochtp.data.registry import DATASETS, FileDataset, SyntheticDataset, check, fetch, load, locate

__all__ = ["DATASETS", "Dataset", "FileDataset", "Split", "SyntheticDataset", "check", "fetch", "load", "locate"]
