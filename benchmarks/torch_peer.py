"""The PyTorch peer of `stochtp bench --peer`: the stochastic network's DTP and straight-through
epochs (presets paper-stochastic-dtp and paper-stochastic-st) written the usual way in PyTorch,
on the CPU in float32, on MNIST, for the speed ratio. Prints one JSON line last.

    python benchmarks/torch_peer.py [--threads 1] [--epochs 2] [--method dtp|st|both] [--data-dir DIR] [--seed 0]

The mathematics is stochtp's (docs/concepts.md: DTP, straight-through, centred RMSprop), with PyTorch's own random numbers:
  network 784-200b-200b-10s, Glorot-uniform weights, zero biases; Bernoulli hidden units,
  h^p = sigmoid(a), h ~ Bernoulli(h^p); input noise N(0, 0.3^2) in training (the inverse phase
  too); mini-batches of 100 from a fresh permutation of the 50 000 training images each epoch;
  mean cross-entropy over the mini-batch; centred RMSprop with momentum (`CentredRMSprop`).
  DTP, alternating schedule: per epoch every mini-batch's inverse step, then every mini-batch's
    forward step. Inverse g(v) = tanh(v V + c) from layer 2 back to layer 1, trained with
    h~ = h^p_1 + eps, eps ~ N(0, sigma^2), sigma = 0.5 / (1 + epoch / 100) (epochs from 1), on
    ||g(sigmoid(bernoulli(h~) W_2 + b_2)) - h~||^2, lr_b = 2.716e-6. Forward step: first target
    h^_2 = h^p_2 - eta_hat dL/dh_2 (the derivative taken on the sample, eta_hat = 58.44), lower
    target h^_1 = h^p_1 + g(h^_2) - g(h^p_2); hidden layer i descends ||h^p_i - h^_i||^2 with its
    input held fixed, the output layer descends L; lr_f = 3.087e-3.
  ST: back-propagation with the sample treated as its probability (dh/da = sigmoid'(a)), lr 4.585e-3.
Local losses are summed over units and averaged over the mini-batch. Each epoch is timed alone;
after it, the 1-sample test error (no input noise, hidden units sampled) is measured, untimed.
"""
import argparse
import gzip
import json
import os
import struct
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

MNIST_FILES = {"images": "train-images-idx3-ubyte.gz", "labels": "train-labels-idx1-ubyte.gz",
               "test_images": "t10k-images-idx3-ubyte.gz", "test_labels": "t10k-labels-idx1-ubyte.gz"}
N_TRAIN = 50_000  # the first 50 000 training images; the last 10 000 are stochtp's validation set
SIZES = (784, 200, 200, 10)
BATCH = 100
INPUT_NOISE = 0.3
DTP = {"eta_hat": 58.44, "lr_f": 3.087e-3, "lr_b": 2.716e-6, "sigma": 0.5, "sigma_tau": 100.0}
ST_LR = 4.585e-3


def read_idx(path):
    """An IDX file (gzip) as a uint8 array: (n, rows * cols) for images, (n,) for labels."""
    with gzip.open(path, "rb") as stream:
        _, _, _, dims = struct.unpack(">BBBB", stream.read(4))
        shape = struct.unpack(">" + "I" * dims, stream.read(4 * dims))
        values = np.frombuffer(stream.read(), dtype=np.uint8)
    return values.reshape(shape[0], -1) if dims > 1 else values


def mnist_folder(data_dir):
    """The folder with the four MNIST files: --data-dir, else $STOCHTP_DATA, else data/; or its mnist/ subfolder."""
    root = Path(data_dir or os.environ.get("STOCHTP_DATA") or "data")
    for folder in (root, root / "mnist"):
        if all((folder / name).is_file() for name in MNIST_FILES.values()):
            return folder
    raise SystemExit(f"torch_peer: the MNIST files ({', '.join(MNIST_FILES.values())}) are not in {root} or {root / 'mnist'}")


def load_mnist(data_dir):
    """(train x, train y, test x, test y): pixels scaled to float32 [0, 1], labels int64."""
    folder = mnist_folder(data_dir)
    arrays = {key: read_idx(folder / name) for key, name in MNIST_FILES.items()}
    x, test_x = (torch.from_numpy(arrays[key].astype(np.float32) / 255) for key in ("images", "test_images"))
    y, test_y = (torch.from_numpy(arrays[key].astype(np.int64)) for key in ("labels", "test_labels"))
    return x[:N_TRAIN], y[:N_TRAIN], test_x, test_y


class CentredRMSprop(torch.optim.Optimizer):
    """m <- decay m + (1-decay) g; v <- decay v + (1-decay) g^2; step = g / sqrt(v - m^2 + eps);
    inc <- momentum inc - lr step; theta <- theta + inc (eps inside the square root, unlike
    torch.optim.RMSprop(centered=True), which adds it outside)."""

    def __init__(self, params, lr, decay=0.95, eps=1e-3, momentum=0.9):
        super().__init__(params, {"lr": lr, "decay": decay, "eps": eps, "momentum": momentum})

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                if not state:
                    state.update(mean=torch.zeros_like(p), mean_square=torch.zeros_like(p), increment=torch.zeros_like(p))
                g = p.grad
                state["mean"].mul_(group["decay"]).add_(g, alpha=1 - group["decay"])
                state["mean_square"].mul_(group["decay"]).addcmul_(g, g, value=1 - group["decay"])
                std = state["mean_square"].addcmul(state["mean"], state["mean"], value=-1).add_(group["eps"]).sqrt_()
                state["increment"].mul_(group["momentum"]).addcdiv_(g, std, value=-group["lr"])
                p.add_(state["increment"])


def glorot(layer):
    nn.init.xavier_uniform_(layer.weight)  # U[-r, r], r = sqrt(6 / (n_in + n_out))
    nn.init.zeros_(layer.bias)
    return layer


class StochasticNet(nn.Module):
    """784-200b-200b-10s: two layers of Bernoulli units and a softmax output."""

    def __init__(self):
        super().__init__()
        self.hidden1 = glorot(nn.Linear(SIZES[0], SIZES[1]))
        self.hidden2 = glorot(nn.Linear(SIZES[1], SIZES[2]))
        self.out = glorot(nn.Linear(SIZES[2], SIZES[3]))

    @torch.no_grad()
    def test_error(self, x, y):
        """1-sample error: no input noise, every hidden unit sampled."""
        h1 = torch.bernoulli(torch.sigmoid(self.hidden1(x)))
        h2 = torch.bernoulli(torch.sigmoid(self.hidden2(h1)))
        return (self.out(h2).argmax(1) != y).float().mean().item()


def noisy(x):
    return x + INPUT_NOISE * torch.randn_like(x)


def straight_through(p):
    """A Bernoulli sample of `p` in the forward pass, dh/da = sigmoid'(a) in the backward one."""
    return p + (torch.bernoulli(p.detach()) - p).detach()


class StraightThrough:
    def __init__(self, net):
        self.net = net
        self.optimiser = CentredRMSprop(net.parameters(), ST_LR)

    def epoch(self, batches, epoch):
        for x, y in batches:
            h1 = straight_through(torch.sigmoid(self.net.hidden1(noisy(x))))
            h2 = straight_through(torch.sigmoid(self.net.hidden2(h1)))
            loss = F.cross_entropy(self.net.out(h2), y)
            self.optimiser.zero_grad()
            loss.backward()
            self.optimiser.step()


class DifferenceTargetProp:
    def __init__(self, net):
        self.net = net
        self.inverse = glorot(nn.Linear(SIZES[2], SIZES[1]))  # g(v) = tanh(v V + c), layer 2 back to layer 1
        self.forward_optimiser = CentredRMSprop(net.parameters(), DTP["lr_f"])
        self.inverse_optimiser = CentredRMSprop(self.inverse.parameters(), DTP["lr_b"])

    def g(self, v):
        return torch.tanh(self.inverse(v))

    def epoch(self, batches, epoch):
        sigma = DTP["sigma"] / (1 + epoch / DTP["sigma_tau"])
        for x, _ in batches:
            self.inverse_step(x, sigma)
        for x, y in batches:
            self.forward_step(x, y)

    def inverse_step(self, x, sigma):
        with torch.no_grad():
            p1 = torch.sigmoid(self.net.hidden1(noisy(x)))
            h_tilde = p1 + sigma * torch.randn_like(p1)
            p2 = torch.sigmoid(self.net.hidden2(torch.bernoulli(h_tilde.clamp(0, 1))))
        loss = (self.g(p2) - h_tilde).pow(2).sum(1).mean()
        self.inverse_optimiser.zero_grad()
        loss.backward()
        self.inverse_optimiser.step()

    def forward_step(self, x, y):
        p1 = torch.sigmoid(self.net.hidden1(noisy(x)))
        h1 = torch.bernoulli(p1.detach())
        p2 = torch.sigmoid(self.net.hidden2(h1))
        h2 = torch.bernoulli(p2.detach()).requires_grad_()
        loss = F.cross_entropy(self.net.out(h2), y)
        (dloss_dh2,) = torch.autograd.grad(loss, h2, retain_graph=True)
        with torch.no_grad():
            target2 = p2 - DTP["eta_hat"] * dloss_dh2
            target1 = p1 + self.g(target2) - self.g(p2)
        local = (p2 - target2).pow(2).sum(1).mean() + (p1 - target1).pow(2).sum(1).mean()
        self.forward_optimiser.zero_grad()
        (loss + local).backward(inputs=list(self.net.parameters()))
        self.forward_optimiser.step()


METHODS = {"dtp": DifferenceTargetProp, "st": StraightThrough}


def train(method_name, data, epochs):
    """(seconds of each training epoch, 1-sample test error after each)."""
    x, y, test_x, test_y = data
    net = StochasticNet()
    method = METHODS[method_name](net)
    seconds, errors = [], []
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        order = torch.randperm(len(x))
        batches = [(x[index], y[index]) for index in order[: len(x) // BATCH * BATCH].split(BATCH)]
        method.epoch(batches, epoch)
        seconds.append(time.perf_counter() - start)
        errors.append(net.test_error(test_x, test_y))
        print(f"{method_name} epoch {epoch}: {seconds[-1]:.2f} s, test error (1 sample) {100 * errors[-1]:.2f} %", flush=True)
    return seconds, errors


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per method (default 2)")
    parser.add_argument("--method", choices=["dtp", "st", "both"], default="both")
    parser.add_argument("--data-dir", help="folder with the MNIST files (default $STOCHTP_DATA, then data/)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data = load_mnist(args.data_dir)
    report = {}
    for name in ("dtp", "st") if args.method == "both" else (args.method,):
        seconds, errors = train(name, data, args.epochs)
        report.update({f"{name}_epoch_s": min(seconds), f"{name}_epochs_s": seconds, f"{name}_test_error": errors})
    report.update(threads=torch.get_num_threads(), torch=torch.__version__, epochs=args.epochs)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
