"""The linear probe (docs/concepts.md): how well a linear classifier reads the classes off
learnt features.

`linear_probe(net, layer, dataset, seed)` computes the features h of every example, the value
of `layer` in a test-mode pass of the clean input (for an auto-encoder, layer 0: h = f(x)),
and trains a multinomial logistic regression on those of the training set: one softmax layer
`H-Cs` from zero weights, trained by stochtp's back-propagation (`bp`) on the negative
log-likelihood with Adam (learning rate LR, mini-batches of BATCH_SIZE) for EPOCHS epochs.
The epoch of lowest validation error is chosen (the earliest on ties) and the test error there
reported: {"probe_valid_error": ..., "probe_test_error": ...}, fractions in [0, 1]. Probe epoch
e shuffles from stream ("probe", e) of `seed`: reproducible, and none of the run's own draws.
"""
import math

import numpy as np

from . import kernels, losses, methods
from .batching import Batches
from .data.dataset import Split
from .network import Layer, Network

EPOCHS = 20
LR = 1e-3
BATCH_SIZE = 100
CHUNK = 2000  # examples encoded at a time


def features(net, layer, split):
    """`layer`'s value for every example of `split` (test mode: no noise), as a Split with its labels."""
    rows = [net.forward(split.features(slice(start, start + CHUNK), net.dtype), train=False, stop=layer + 1).h[layer] for start in range(0, len(split), CHUNK)]
    return Split(np.concatenate(rows), split.y)


def error(net, split):
    """Classification error of the softmax layer `net` on `split`'s features."""
    return float(losses.errors("nll", net.predict_proba(split.x), split.y).mean())


def linear_probe(net, layer, dataset, seed):
    """Validation error at the probe's best-validation epoch and test error there (see the module docstring)."""
    splits = {name: features(net, layer, getattr(dataset, name)) for name in ("train", "valid", "test")}
    width, dtype = splits["train"].x.shape[1], net.dtype
    classifier = Network([Layer(np.zeros((width, dataset.n_classes), dtype), np.zeros(dataset.n_classes, dtype), "softmax")])
    method = methods.get("bp", lr=LR, optimizer="adam")
    method.bind(classifier, seed)
    best = {"probe_valid_error": math.inf, "probe_test_error": math.nan}
    for epoch in range(1, EPOCHS + 1):
        stream = kernels.stream_id("probe", epoch)
        method.train_epoch(classifier, Batches(splits["train"], stream, seed, BATCH_SIZE, dtype), seed, epoch)
        valid = error(classifier, splits["valid"])
        if valid < best["probe_valid_error"]:
            best = {"probe_valid_error": valid, "probe_test_error": error(classifier, splits["test"])}
    return best
