"""CIFAR-10 from the official python tarball `cifar-10-python.tar.gz`.

The tarball holds six pickled batches (`data_batch_1` .. `data_batch_5`, `test_batch`), each
a dict with b"data" (10 000 x 3072 uint8, channel-major: 1024 red, 1024 green, 1024 blue
values, each a 32 x 32 image row by row) and b"labels". Pixels are kept as uint8 in that
order, scale 1/255. Split: train = the first nine tenths of the training images, valid = the
last tenth (45 000 and 5 000 of the official 50 000), test = the official 10 000 test images. A
smaller file set of the same format (a test's) is split in the same proportions.

The batches are Python pickles; they are only unpickled after the tarball's SHA-256 has been
checked against the official value, which is what makes reading them safe.
"""

from __future__ import annotations

import pickle
import tarfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np

from stochtp.data.dataset import Dataset, Split
from stochtp.errors import DataError

TARBALL = "cifar-10-python.tar.gz"
SHA256 = {TARBALL: "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"}

TRAIN_BATCHES = tuple(f"data_batch_{number}" for number in range(1, 6))
TEST_BATCH = "test_batch"
N_FEATURES = 3 * 32 * 32
N_CLASSES = 10
VALID_FRACTION = 10  # valid = the last 1/10 of the training images: 5 000 of CIFAR-10's 50 000


def read_cifar10(paths: dict[str, Path]) -> Dataset:
    """Build the CIFAR-10 `Dataset` from `paths`, a map from the tarball's name to its path."""
    tarball = paths[TARBALL]
    try:
        with tarfile.open(tarball, "r:gz") as archive:
            members = {PurePosixPath(member.name).name: member for member in archive.getmembers()}
            missing = [batch for batch in (*TRAIN_BATCHES, TEST_BATCH) if batch not in members]
            if missing:
                raise DataError(f"{tarball} lacks the CIFAR-10 batches {', '.join(missing)}.")
            train = [_read_batch(archive, members[batch], tarball) for batch in TRAIN_BATCHES]
            test_x, test_y = _read_batch(archive, members[TEST_BATCH], tarball)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        raise DataError(f"{tarball} is not a readable tar.gz file ({error}); it is truncated or corrupt.") from None
    train_x = np.concatenate([x for x, _ in train])
    train_y = np.concatenate([y for _, y in train])
    n_valid = len(train_y) // VALID_FRACTION
    if n_valid == 0:
        raise DataError(
            f"{tarball} holds only {len(train_y)} training images, too few to set a tenth aside for validation."
        )
    n_train = len(train_y) - n_valid
    scale = 1.0 / 255.0
    return Dataset(
        name="cifar10",
        n_features=N_FEATURES,
        n_classes=N_CLASSES,
        train=Split(train_x[:n_train], train_y[:n_train], scale),
        valid=Split(train_x[n_train:], train_y[n_train:], scale),
        test=Split(test_x, test_y, scale),
    )


def _read_batch(archive: tarfile.TarFile, member: tarfile.TarInfo, tarball: Path) -> tuple[np.ndarray, np.ndarray]:
    """Unpickle one batch; return its pixels as (N, 3072) uint8 and its labels as int64."""
    stream = archive.extractfile(member)
    if stream is None:
        raise DataError(f"{tarball} holds {member.name} but it is not a regular file.")
    try:
        batch = pickle.load(stream, encoding="bytes")
        x = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, N_FEATURES)
        y = np.asarray(batch[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, KeyError, TypeError, ValueError) as error:
        raise DataError(f"{tarball} holds a batch {member.name} that is not in CIFAR-10's format ({error}).") from None
    if len(x) != len(y) or (y.size and (y.min() < 0 or y.max() >= N_CLASSES)):
        raise DataError(f"{tarball} holds a batch {member.name} whose labels do not match its images.")
    return x, y
