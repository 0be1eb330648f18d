"""Tests for stochtp.data: IDX reader, checksums, download, folder resolution, CIFAR-10,
synthetic tasks, and (marked `mnist`) the real MNIST files when they can be found."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import os
import struct
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import DEFAULT_DATA
from dataset_files import MNIST_FILES, trust_files, write_cifar_tarball

from stochtp.data import DATASETS, Dataset, Split, check, fetch, load, locate
from stochtp.data import files as data_files
from stochtp.data.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from stochtp.errors import ConfigError, DataError


# ---------------------------------------------------------------- helpers


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    """An uncompressed IDX file holding uint8 `array` (header sizes taken from its shape)."""
    return struct.pack(f">{1 + array.ndim}I", magic, *array.shape) + array.astype(np.uint8).tobytes()


def write_gzip(path: Path, payload: bytes) -> Path:
    path.write_bytes(gzip.compress(payload))
    return path


def write_small_mnist(folder: Path, n_train: int = 10_012, n_test: int = 7) -> dict[str, np.ndarray]:
    """Write four MNIST-format files with 2x2 images; return the arrays written."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, size=(n_train, 2, 2), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, size=(n_test, 2, 2), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": (np.arange(n_test) * 3 % 10).astype(np.uint8),
    }
    for name, array in arrays.items():
        write_gzip(folder / name, idx_bytes(array, IMAGES_MAGIC if array.ndim == 3 else LABELS_MAGIC))
    return arrays


@pytest.fixture
def small_mnist(tmp_path, monkeypatch):
    """A small MNIST in tmp_path/data/mnist that the registry trusts; no mirror is reachable."""
    folder = tmp_path / "data" / "mnist"
    arrays = write_small_mnist(folder)
    trust_files(monkeypatch, "mnist", folder, mirrors=())
    monkeypatch.delenv("STOCHTP_DATA", raising=False)
    return folder, arrays


class FakeResponse(io.BytesIO):
    """What urlopen returns, serving fixed bytes."""


def serve(monkeypatch, contents: dict[str, bytes], fail_after_first_chunk: bool = False) -> list[str]:
    """Replace urllib's urlopen by one serving `contents` (URL -> bytes); return the URLs asked.

    An unknown URL raises URLError, as an unreachable host would.
    """
    requested = []

    def fake_urlopen(url, timeout=None):
        requested.append(url)
        if url not in contents:
            raise urllib.error.URLError("[Errno -2] Name or service not known")
        response = FakeResponse(contents[url])
        if fail_after_first_chunk:
            first = response.read
            calls = []

            def read(size=-1):
                calls.append(size)
                if len(calls) > 1:
                    raise ConnectionResetError("connection reset by peer")
                return first(min(size, 100))

            response.read = read
        return response

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    return requested


# ---------------------------------------------------------------- IDX reader


def test_idx_round_trip(tmp_path):
    images = np.random.default_rng(1).integers(0, 256, size=(5, 3, 4), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    write_gzip(tmp_path / "images.gz", idx_bytes(images, IMAGES_MAGIC))
    write_gzip(tmp_path / "labels.gz", idx_bytes(labels, LABELS_MAGIC))

    read_images = read_idx(tmp_path / "images.gz", IMAGES_MAGIC)
    read_labels = read_idx(tmp_path / "labels.gz", LABELS_MAGIC)

    assert read_images.dtype == np.uint8 and read_images.shape == (5, 3, 4)
    np.testing.assert_array_equal(read_images, images)
    np.testing.assert_array_equal(read_labels, labels)
    read_images[0, 0, 0] = 7  # the arrays are the caller's to modify


def test_idx_payload_shorter_than_header_says(tmp_path):
    images = np.zeros((5, 2, 2), dtype=np.uint8)
    path = write_gzip(tmp_path / "short.gz", idx_bytes(images, IMAGES_MAGIC)[:-3])
    with pytest.raises(DataError, match=r"short\.gz is truncated.*20 bytes.*only 17"):
        read_idx(path, IMAGES_MAGIC)


def test_idx_header_cut_short(tmp_path):
    path = write_gzip(tmp_path / "stub.gz", struct.pack(">2I", IMAGES_MAGIC, 5))
    with pytest.raises(DataError, match=r"stub\.gz is truncated.*header"):
        read_idx(path, IMAGES_MAGIC)


def test_idx_truncated_gzip_stream(tmp_path):
    images = np.random.default_rng(2).integers(0, 256, size=(50, 8, 8), dtype=np.uint8)
    compressed = gzip.compress(idx_bytes(images, IMAGES_MAGIC))
    path = tmp_path / "cut.gz"
    path.write_bytes(compressed[: len(compressed) // 2])
    with pytest.raises(DataError, match=r"cut\.gz is not a complete gzip file"):
        read_idx(path, IMAGES_MAGIC)


def test_idx_not_gzip(tmp_path):
    path = tmp_path / "plain.gz"
    path.write_bytes(idx_bytes(np.zeros(4, dtype=np.uint8), LABELS_MAGIC))
    with pytest.raises(DataError, match=r"plain\.gz"):
        read_idx(path, LABELS_MAGIC)


def test_idx_wrong_magic(tmp_path):
    path = write_gzip(tmp_path / "labels.gz", idx_bytes(np.zeros(4, dtype=np.uint8), LABELS_MAGIC))
    with pytest.raises(DataError, match=r"labels\.gz .*magic number is 2049 where 2051"):
        read_idx(path, IMAGES_MAGIC)


def test_idx_more_data_than_header_says(tmp_path):
    path = write_gzip(tmp_path / "long.gz", idx_bytes(np.zeros(4, dtype=np.uint8), LABELS_MAGIC) + b"\x00")
    with pytest.raises(DataError, match=r"long\.gz .*more data than"):
        read_idx(path, LABELS_MAGIC)


# ---------------------------------------------------------------- MNIST files, checksums, splits


def test_load_small_mnist_splits(small_mnist):
    folder, arrays = small_mnist
    dataset = load("mnist", folder.parent)

    train_images = arrays["train-images-idx3-ubyte.gz"].reshape(-1, 4)
    train_labels = arrays["train-labels-idx1-ubyte.gz"]
    assert isinstance(dataset, Dataset)
    assert (dataset.name, dataset.n_features, dataset.n_classes) == ("mnist", 4, 10)
    assert (len(dataset.train), len(dataset.valid), len(dataset.test)) == (12, 10_000, 7)
    assert dataset.train.x.dtype == np.uint8 and dataset.train.y.dtype == np.int64
    np.testing.assert_array_equal(dataset.train.x, train_images[:12])
    np.testing.assert_array_equal(dataset.valid.x, train_images[12:])
    np.testing.assert_array_equal(dataset.valid.y, train_labels[12:])
    np.testing.assert_array_equal(dataset.test.x, arrays["t10k-images-idx3-ubyte.gz"].reshape(-1, 4))
    np.testing.assert_array_equal(dataset.test.y, arrays["t10k-labels-idx1-ubyte.gz"])
    assert dataset.test.scale == pytest.approx(1 / 255)


def test_missing_files_message_names_files_and_folder(small_mnist):
    folder, _ = small_mnist
    (folder / "t10k-images-idx3-ubyte.gz").unlink()
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()

    with pytest.raises(DataError) as raised:
        load("mnist", folder.parent, download=False)

    message = str(raised.value)
    assert "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz" in message
    assert "train-images" not in message
    assert str(folder) in message and "STOCHTP_DATA" in message


def test_corrupt_file_is_rejected_by_checksum(small_mnist):
    folder, _ = small_mnist
    labels = folder / "train-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(idx_bytes(np.ones(10_012, dtype=np.uint8), LABELS_MAGIC)))

    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz in .*mnist is corrupt: its sha256 does not match"):
        load("mnist", folder.parent)
    assert dict(check("mnist", folder.parent))["train-labels-idx1-ubyte.gz"] == "corrupt (sha256 mismatch)"


def test_check_reports_each_file(small_mnist):
    folder, _ = small_mnist
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(b"not mnist")

    assert check("mnist", folder.parent) == [
        ("train-images-idx3-ubyte.gz", "ok"),
        ("train-labels-idx1-ubyte.gz", "ok"),
        ("t10k-images-idx3-ubyte.gz", "corrupt (sha256 mismatch)"),
        ("t10k-labels-idx1-ubyte.gz", "missing"),
    ]
    assert check("parity") == []


def test_official_checksums_reject_other_files(tmp_path):
    write_small_mnist(tmp_path)
    assert {status for _, status in check("mnist", tmp_path)} == {"corrupt (sha256 mismatch)"}


def test_digest_is_cached_per_path_size_and_mtime(tmp_path):
    path = tmp_path / "file.bin"
    path.write_bytes(b"first")
    first_digest = data_files.sha256_of(path)
    stamp = path.stat().st_mtime_ns

    path.write_bytes(b"other")  # same size; restoring the mtime makes it look unchanged
    os.utime(path, ns=(stamp, stamp))
    assert data_files.sha256_of(path) == first_digest

    os.utime(path, ns=(stamp + 10**9, stamp + 10**9))
    assert data_files.sha256_of(path) == hashlib.sha256(b"other").hexdigest()


# ---------------------------------------------------------------- download


@pytest.fixture
def mnist_mirror(tmp_path, monkeypatch):
    """Official-format MNIST files on a file:// mirror the registry trusts; an empty root."""
    mirror = tmp_path / "mirror"
    write_small_mnist(mirror)
    trust_files(monkeypatch, "mnist", mirror, mirrors=(mirror.as_uri() + "/",))
    monkeypatch.delenv("STOCHTP_DATA", raising=False)
    return mirror, tmp_path / "root"


def test_download_from_file_mirror(mnist_mirror):
    mirror, root = mnist_mirror
    folder = fetch("mnist", root)

    assert folder == root / "mnist"
    assert sorted(path.name for path in folder.iterdir()) == sorted(MNIST_FILES)
    for name in MNIST_FILES:
        assert (folder / name).read_bytes() == (mirror / name).read_bytes()
    assert len(load("mnist", root, download=False).valid) == 10_000


def test_load_downloads_only_missing_files(mnist_mirror, monkeypatch):
    mirror, root = mnist_mirror
    (root / "mnist").mkdir(parents=True)
    for name in MNIST_FILES[:3]:
        (root / "mnist" / name).write_bytes((mirror / name).read_bytes())
    base = DATASETS["mnist"].mirrors[0]
    requested = serve(monkeypatch, {base + MNIST_FILES[3]: (mirror / MNIST_FILES[3]).read_bytes()})

    assert len(load("mnist", root).test) == 7
    assert requested == [base + MNIST_FILES[3]]


def test_download_tries_next_mirror(mnist_mirror, monkeypatch):
    mirror, root = mnist_mirror
    good = "https://second.example/mnist/"
    entry = DATASETS["mnist"]
    monkeypatch.setitem(DATASETS, "mnist", dataclasses.replace(entry, mirrors=("https://down.example/", good)))
    requested = serve(monkeypatch, {good + name: (mirror / name).read_bytes() for name in MNIST_FILES})

    fetch("mnist", root)

    assert requested[:2] == ["https://down.example/" + MNIST_FILES[0], good + MNIST_FILES[0]]
    assert check("mnist", root) == [(name, "ok") for name in MNIST_FILES]


def test_corrupt_download_leaves_no_file(mnist_mirror):
    mirror, root = mnist_mirror
    (mirror / MNIST_FILES[1]).write_bytes(b"tampered")

    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz .*does not match its expected sha256"):
        fetch("mnist", root)
    assert sorted(path.name for path in (root / "mnist").iterdir()) == [MNIST_FILES[0]]


def test_interrupted_download_leaves_no_file(mnist_mirror, monkeypatch):
    mirror, root = mnist_mirror
    base = DATASETS["mnist"].mirrors[0]
    serve(monkeypatch, {base + name: (mirror / name).read_bytes() for name in MNIST_FILES}, fail_after_first_chunk=True)

    with pytest.raises(DataError, match="download failed"):
        fetch("mnist", root)
    assert not (root / "mnist").exists()  # neither a partial file nor the folder made for it


def test_offline_download_fails_with_one_message(mnist_mirror, monkeypatch):
    _, root = mnist_mirror
    serve(monkeypatch, {})

    with pytest.raises(DataError) as raised:
        load("mnist", root)

    message = str(raised.value)
    assert message.startswith("MNIST files missing: " + ", ".join(MNIST_FILES))
    assert "download failed (no network?" in message
    assert str(root / "mnist") in message and "STOCHTP_DATA" in message
    assert not (root / "mnist").exists()


# ---------------------------------------------------------------- folder resolution


def test_folder_resolution_order(tmp_path, monkeypatch):
    argument, environment = tmp_path / "argument", tmp_path / "environment"
    monkeypatch.setenv("STOCHTP_DATA", str(environment))
    assert data_files.data_root(argument) == argument
    assert data_files.data_root() == environment

    monkeypatch.delenv("STOCHTP_DATA")
    project_data = Path(data_files.__file__).resolve().parents[2] / "data"
    assert data_files.data_root() == project_data
    assert locate("mnist").parent in (project_data, project_data.parent)  # <root>/mnist, or <root> itself


def test_a_dataset_folder_is_root_slash_name_unless_the_files_sit_in_root(tmp_path):
    files = DATASETS["mnist"].files
    assert locate("mnist", tmp_path) == tmp_path / "mnist"  # nothing there yet: where a download goes
    (tmp_path / next(iter(files))).write_bytes(b"")
    assert locate("mnist", tmp_path) == tmp_path  # the files directly in the root
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / next(iter(files))).write_bytes(b"")
    assert locate("mnist", tmp_path) == tmp_path / "mnist"  # <root>/<name> comes first


def test_environment_variable_finds_files(small_mnist, monkeypatch):
    folder, _ = small_mnist
    monkeypatch.setenv("STOCHTP_DATA", str(folder.parent))
    assert len(load("mnist").test) == 7
    monkeypatch.setenv("STOCHTP_DATA", str(folder))  # pointing at the dataset folder itself
    assert len(load("mnist").test) == 7
    assert locate("mnist") == folder


def test_argument_beats_environment(small_mnist, monkeypatch, tmp_path):
    folder, _ = small_mnist
    monkeypatch.setenv("STOCHTP_DATA", str(tmp_path / "empty"))
    assert len(load("mnist", folder, download=False).test) == 7
    with pytest.raises(DataError, match="empty"):
        load("mnist", download=False)


# ---------------------------------------------------------------- CIFAR-10


def test_cifar10_small_tarball(tmp_path, monkeypatch):
    folder = tmp_path / "cifar10"
    folder.mkdir()
    batches = write_cifar_tarball(folder / "cifar-10-python.tar.gz")
    trust_files(monkeypatch, "cifar10", folder, mirrors=())

    dataset = load("cifar10", tmp_path)

    train_x = np.concatenate([batches[f"data_batch_{i}"][0] for i in range(1, 6)])
    train_y = np.concatenate([batches[f"data_batch_{i}"][1] for i in range(1, 6)])
    assert (dataset.name, dataset.n_features, dataset.n_classes) == ("cifar10", 3072, 10)
    assert (len(dataset.train), len(dataset.valid), len(dataset.test)) == (4505, 500, 3)  # valid: the last tenth
    assert dataset.train.x.dtype == np.uint8 and dataset.train.y.dtype == np.int64
    np.testing.assert_array_equal(dataset.train.x, train_x[:4505])
    np.testing.assert_array_equal(dataset.valid.x, train_x[4505:])
    np.testing.assert_array_equal(dataset.valid.y, train_y[4505:])
    np.testing.assert_array_equal(dataset.test.x, batches["test_batch"][0])
    assert dataset.test.features().max() <= 1.0


def test_cifar10_wrong_checksum_is_rejected(tmp_path):
    (tmp_path / "cifar10").mkdir()
    write_cifar_tarball(tmp_path / "cifar10" / "cifar-10-python.tar.gz", per_batch=2)
    with pytest.raises(DataError, match=r"cifar-10-python\.tar\.gz in .*cifar10 is corrupt: its sha256"):
        load("cifar10", tmp_path, download=False)


def test_cifar10_missing_batch(tmp_path, monkeypatch):
    write_cifar_tarball(tmp_path / "cifar-10-python.tar.gz", skip="data_batch_3")
    trust_files(monkeypatch, "cifar10", tmp_path, mirrors=())
    with pytest.raises(DataError, match=r"cifar-10-python\.tar\.gz lacks the CIFAR-10 batches data_batch_3"):
        load("cifar10", tmp_path)


def test_cifar10_truncated_tarball(tmp_path, monkeypatch):
    path = tmp_path / "cifar-10-python.tar.gz"
    write_cifar_tarball(path, per_batch=50)
    path.write_bytes(path.read_bytes()[:-2000])
    trust_files(monkeypatch, "cifar10", tmp_path, mirrors=())
    with pytest.raises(DataError, match=r"cifar-10-python\.tar\.gz is not a readable tar\.gz file"):
        load("cifar10", tmp_path)


# ---------------------------------------------------------------- Split


def test_split_features_scale_and_copy():
    x = np.array([[0, 255], [51, 102], [255, 0]], dtype=np.uint8)
    split = Split(x, np.array([0, 1, 0]), scale=1 / 255)

    features = split.features()
    assert features.dtype == np.float32
    np.testing.assert_allclose(features, x / 255, rtol=1e-6)
    assert features.min() == 0.0 and features.max() == 1.0
    np.testing.assert_allclose(split.features(np.array([2, 0])), features[[2, 0]])
    np.testing.assert_allclose(split.features(slice(1, 2), dtype=np.float64), [[0.2, 0.4]])
    assert split.features(dtype=np.float64).dtype == np.float64
    features[:] = 9
    assert split.x[0, 1] == 255 and len(split) == 3
    np.testing.assert_array_equal(split.features(), x.astype(np.float32) * np.float32(1 / 255))  # rounded as that


def test_split_features_out_of_range_rows_as_numpy_indexing():
    split = Split(np.arange(6, dtype=np.uint8).reshape(3, 2), np.zeros(3, dtype=np.int64), scale=0.5)
    np.testing.assert_array_equal(split.features(np.array([-1, 0])), [[2.0, 2.5], [0.0, 0.5]])
    with pytest.raises(IndexError):
        split.features(np.array([0, 3]))


# ---------------------------------------------------------------- synthetic tasks


@pytest.mark.parametrize("name", ["parity", "xor", "teacher"])
def test_synthetic_tasks_are_deterministic(name):
    first, again, other = load(name, seed=3), load(name, seed=3), load(name, seed=4)
    for part in ("train", "valid", "test"):
        np.testing.assert_array_equal(getattr(first, part).x, getattr(again, part).x)
        np.testing.assert_array_equal(getattr(first, part).y, getattr(again, part).y)
        assert getattr(first, part).x.dtype == np.float32 and getattr(first, part).y.dtype == np.int64
    assert not np.array_equal(first.train.x, other.train.x) or not np.array_equal(first.train.y, other.train.y)


@pytest.mark.parametrize("name", ["parity", "teacher"])
def test_split_size_does_not_change_other_splits(name):
    small, large = load(name, n_test=10), load(name, n_test=500)
    np.testing.assert_array_equal(small.train.x, large.train.x)
    np.testing.assert_array_equal(small.train.y, large.train.y)
    np.testing.assert_array_equal(small.test.x, large.test.x[:10])


def test_parity_labels_are_the_parity():
    dataset = load("parity", n_bits=5, n_train=300, n_valid=7, n_test=40, seed=1)
    assert (dataset.n_features, dataset.n_classes) == (5, 2)
    assert dataset.train.x.shape == (300, 5) and len(dataset.valid) == 7 and len(dataset.test) == 40
    for split in (dataset.train, dataset.valid, dataset.test):
        assert set(np.unique(split.x)) <= {0.0, 1.0}
        expected = np.array([int(sum(row)) % 2 for row in split.x.tolist()])
        np.testing.assert_array_equal(split.y, expected)
    assert len(np.unique(dataset.train.x, axis=0)) == 32  # uniform bits: all patterns show up


def test_xor_repeats_the_four_patterns():
    dataset = load("xor", n_train=10, n_valid=4, n_test=8)
    assert (dataset.n_features, dataset.n_classes) == (2, 2)
    patterns, counts = np.unique(dataset.test.x, axis=0, return_counts=True)
    np.testing.assert_array_equal(patterns, [[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(counts, [2, 2, 2, 2])
    np.testing.assert_array_equal(dataset.train.y, np.logical_xor(*dataset.train.x.T.astype(bool)))
    assert len(np.unique(dataset.valid.x, axis=0)) == 4 and len(dataset.train) == 10


def test_teacher_labels_are_learnable():
    dataset = load("teacher", n_train=20_000, n_test=5_000)
    assert (dataset.n_features, dataset.n_classes) == (8, 3)
    assert set(np.unique(dataset.train.x)) == {0.0, 1.0}
    weights = 2 ** np.arange(8)
    train_codes, test_codes = dataset.train.x @ weights, dataset.test.x @ weights
    # the best guess per input pattern, learnt on train, must beat guessing the commonest class
    votes = np.zeros((256, 3))
    np.add.at(votes, (train_codes.astype(int), dataset.train.y), 1)
    lookup_accuracy = np.mean(votes.argmax(axis=1)[test_codes.astype(int)] == dataset.test.y)
    majority_accuracy = np.bincount(dataset.test.y, minlength=3).max() / len(dataset.test)
    assert majority_accuracy < 0.6
    assert lookup_accuracy > majority_accuracy + 0.15
    assert lookup_accuracy < 0.95  # the hidden units are stochastic: labels are noisy


def test_teacher_classes_are_roughly_balanced():
    majority_shares = [
        np.bincount(load("teacher", n_train=2000, n_valid=0, n_test=0, seed=seed).train.y, minlength=3).max() / 2000
        for seed in range(8)
    ]
    assert np.mean(majority_shares) < 0.55


def test_teacher_shape_options():
    dataset = load("teacher", n_in=5, hidden=[4], n_classes=4, n_train=50, n_valid=0, n_test=9)
    assert (dataset.n_features, dataset.n_classes) == (5, 4)
    assert dataset.train.x.shape == (50, 5) and len(dataset.valid) == 0 and len(dataset.test) == 9
    assert dataset.train.y.min() >= 0 and dataset.train.y.max() < 4


# ---------------------------------------------------------------- bad names and options


def test_unknown_dataset_is_named_with_the_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown dataset 'mnsit'.*mnist, cifar10, parity, xor, teacher"):
        load("mnsit")


def test_unknown_option_is_named_with_the_valid_ones():
    with pytest.raises(ConfigError, match=r"'xor' has no option n_bits; its options are n_train, n_valid, n_test, seed"):
        load("xor", n_bits=3)
    with pytest.raises(ConfigError, match=r"'mnist' takes no options.*n_bits"):
        load("mnist", n_bits=3)


@pytest.mark.parametrize(
    ("name", "options", "pattern"),
    [
        ("parity", {"n_bits": 0}, "n_bits must be an integer >= 1"),
        ("parity", {"n_train": 2.5}, "n_train must be an integer"),
        ("xor", {"seed": -1}, "seed must be an integer >= 0"),
        ("teacher", {"hidden": "6"}, "hidden must be a list of positive layer widths"),
        ("teacher", {"hidden": [6, 0]}, "hidden must be a list of positive layer widths"),
        ("teacher", {"n_classes": 1}, "n_classes must be an integer >= 2"),
        ("teacher", {"weight_scale": 0}, "weight_scale must be a finite positive number"),
    ],
)
def test_bad_option_values(name, options, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load(name, **options)


def test_synthetic_datasets_have_nothing_to_fetch():
    with pytest.raises(ConfigError, match="'teacher' is generated on the fly"):
        fetch("teacher")


# ---------------------------------------------------------------- the real MNIST


def real_mnist_folder() -> Path | None:
    """The folder holding the official MNIST files: $STOCHTP_DATA or data/."""
    candidates = [DEFAULT_DATA / "mnist", DEFAULT_DATA]
    if os.environ.get("STOCHTP_DATA"):
        root = Path(os.environ["STOCHTP_DATA"])
        candidates[:0] = [root / "mnist", root]
    for candidate in candidates:
        if all((candidate / name).is_file() for name in MNIST_FILES):
            return candidate
    return None


@pytest.fixture(scope="module")
def real_mnist():
    folder = real_mnist_folder()
    if folder is None:
        pytest.skip("the official MNIST files are not in $STOCHTP_DATA or data/")
    return load("mnist", folder, download=False)


@pytest.mark.mnist
def test_real_mnist_shapes(real_mnist):
    assert (real_mnist.n_features, real_mnist.n_classes) == (784, 10)
    assert real_mnist.train.x.shape == (50_000, 784)
    assert real_mnist.valid.x.shape == (10_000, 784)
    assert real_mnist.test.x.shape == (10_000, 784)
    assert real_mnist.train.x.dtype == np.uint8 and real_mnist.test.y.dtype == np.int64
    assert real_mnist.train.x.max() == 255 and real_mnist.train.x.min() == 0
    features = real_mnist.test.features(slice(0, 100))
    assert features.dtype == np.float32 and 0.0 <= features.min() and features.max() == 1.0


@pytest.mark.mnist
def test_real_mnist_label_counts(real_mnist):
    np.testing.assert_array_equal(
        np.bincount(real_mnist.test.y), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    )
    np.testing.assert_array_equal(
        np.bincount(real_mnist.train.y) + np.bincount(real_mnist.valid.y),
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
    )


@pytest.mark.mnist
def test_real_mnist_checksums():
    folder = real_mnist_folder()
    if folder is None:
        pytest.skip("the official MNIST files are not in $STOCHTP_DATA or data/")
    assert check("mnist", folder) == [(name, "ok") for name in MNIST_FILES]
