"""MNIST from its four official IDX gzip files, split as in the paper's experiments (50 000 / 10 000 / 10 000).

train = the first 50 000 images of the official training set, valid = its last 10 000,
test = the official 10 000 test images. Pixels stay uint8 (N, 784), scale 1/255.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stochtp.data.dataset import Dataset, Split
from stochtp.data.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from stochtp.errors import DataError

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"

SHA256 = {
    TRAIN_IMAGES: "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    TRAIN_LABELS: "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    TEST_IMAGES: "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    TEST_LABELS: "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}

N_CLASSES = 10
N_VALID = 10_000


def read_mnist(paths: dict[str, Path]) -> Dataset:
    """Build the MNIST `Dataset` from `paths`, a map from official file name to its path."""
    train_x, train_y = _read_pair(paths[TRAIN_IMAGES], paths[TRAIN_LABELS])
    test_x, test_y = _read_pair(paths[TEST_IMAGES], paths[TEST_LABELS])
    if len(train_y) <= N_VALID:
        raise DataError(
            f"{paths[TRAIN_IMAGES]} holds only {len(train_y)} images, too few to set "
            f"{N_VALID} aside for validation."
        )
    scale = 1.0 / 255.0
    n_train = len(train_y) - N_VALID
    return Dataset(
        name="mnist",
        n_features=train_x.shape[1],
        n_classes=N_CLASSES,
        train=Split(train_x[:n_train], train_y[:n_train], scale),
        valid=Split(train_x[n_train:], train_y[n_train:], scale),
        test=Split(test_x, test_y, scale),
    )


def _read_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images as (N, rows * cols) uint8 and labels as int64, checked to belong together."""
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC)
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels."
        )
    if labels.size and labels.max() >= N_CLASSES:
        raise DataError(f"{labels_path} holds label {labels.max()}, outside MNIST's classes 0-9.")
    return images.reshape(len(images), -1), labels.astype(np.int64)
