"""The linear probe (docs/concepts.md): a logistic regression trained on a layer's features,
selected on validation, reported on test."""
import numpy as np

from stochtp import Network, probe
from stochtp.data import Dataset, Split
from stochtp.network import Layer


def blobs(size, rng):
    """Two classes of 4-D points around (+1, +1, -1, 0) and its negative, noise 0.5: linearly separable
    up to a tail of about 1e-4 of the points; chance is 1/2."""
    y = rng.integers(0, 2, size)
    centre = np.array([1.0, 1.0, -1.0, 0.0])
    return Split((np.where(y[:, None] == 1, centre, -centre) + rng.normal(0, 0.5, (size, 4))).astype(np.float32), y)


def test_the_probe_reads_separable_classes_off_the_features():
    rng = np.random.default_rng(0)
    dataset = Dataset("blobs", 4, 2, blobs(1000, rng), blobs(300, rng), blobs(300, rng))
    identity = Network([Layer(np.eye(4, dtype=np.float32), np.zeros(4, np.float32), "l")])  # features = inputs
    result = probe.linear_probe(identity, 0, dataset, seed=0)
    assert set(result) == {"probe_valid_error", "probe_test_error"}
    assert result["probe_valid_error"] <= 0.01 and result["probe_test_error"] <= 0.01  # chance: 0.5
    assert probe.linear_probe(identity, 0, dataset, seed=0) == result  # reproducible


def test_the_probe_reports_test_at_the_best_validation_epoch(monkeypatch):
    """Scripted errors whose validation and test minima fall on different epochs: test is read at
    the validation minimum (epoch 2 of 3), never chosen on test."""
    scripted = iter([0.3, 0.5, 0.1, 0.4, 0.2, 0.0])  # valid, test of epoch 1, of 2, of 3 (lowest test there)

    def error(net, split):
        return next(scripted)

    monkeypatch.setattr(probe, "error", error)
    monkeypatch.setattr(probe, "EPOCHS", 3)
    rng = np.random.default_rng(1)
    dataset = Dataset("blobs", 4, 2, blobs(200, rng), blobs(50, rng), blobs(40, rng))
    identity = Network([Layer(np.eye(4, dtype=np.float32), np.zeros(4, np.float32), "l")])
    assert probe.linear_probe(identity, 0, dataset, seed=0) == {"probe_valid_error": 0.1, "probe_test_error": 0.4}
