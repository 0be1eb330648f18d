"""Dataset files written for tests, shared by the data tests and the presets' smoke test: the
names of the official MNIST files, a CIFAR-10 tarball in the official format, and a registry
entry that trusts the files at hand."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np

from stochtp.data import DATASETS

MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def trust_files(monkeypatch, name: str, folder: Path, **changes) -> None:
    """Make the registry expect the checksums of the files now in `folder` (and `changes`)."""
    entry = DATASETS[name]
    checksums = {file_name: sha256(folder / file_name) for file_name in entry.files}
    monkeypatch.setitem(DATASETS, name, dataclasses.replace(entry, files=checksums, **changes))


def write_cifar_tarball(path: Path, per_batch: int = 1001, n_test: int = 3, skip: str = "") -> dict:
    """A CIFAR-10-format tarball with small batches; returns the batches written."""
    batches = {}
    with tarfile.open(path, "w:gz") as archive:
        for number, batch_name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
            count = n_test if batch_name == "test_batch" else per_batch
            data = ((np.arange(count)[:, None] + np.arange(3072)[None, :] + number) % 256).astype(np.uint8)
            labels = [(i + number) % 10 for i in range(count)]
            batches[batch_name] = (data, labels)
            if batch_name == skip:
                continue
            payload = pickle.dumps({b"batch_label": batch_name.encode(), b"data": data, b"labels": labels})
            member = tarfile.TarInfo(f"cifar-10-batches-py/{batch_name}")
            member.size = len(payload)
            archive.addfile(member, io.BytesIO(payload))
    return batches
