"""Where a training epoch's time goes: each call of a kernel, a layer's product (`affine`), NumPy's
element-wise functions and the optimiser timed where it runs in the loop, summed per epoch.

    python benchmarks/epoch_pieces.py [PRESET] [--batches 200] [--rounds 4] [--data-dir DIR]

The preset (default paper-stochastic-dtp) trains `--rounds` timed epochs of its first `--batches`
mini-batches after an untimed one, as `stochtp bench` times its rounds; the seconds are scaled to
a whole epoch. Every stochtp module's reference to a timed function is replaced by a timing
wrapper (about a microsecond a call). What no wrapper times is "the rest": products a method
writes inline (`x.T @ grad`, as the weight gradients), NumPy arithmetic between the calls, stream
ids, and Python. A piece's time in the loop can exceed its time alone: it runs after other work has swept
its operands out of the caches.
"""
import argparse
import os
import sys
import time
from collections import defaultdict

import stochtp

stochtp.configure_process()  # the command's tunings, before anything loads NumPy (OpenBLAS reads them as it loads)

from stochtp import bench, config, experiment, kernels, network, optim, train  # noqa: E402 (after the tunings)
from stochtp.data.dataset import Split  # noqa: E402
from stochtp.kernels import fused  # noqa: E402
from stochtp.units import base, functions  # noqa: E402

SECONDS, CALLS = defaultdict(float), defaultdict(int)


def timed(name, function):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            SECONDS[name] += time.perf_counter() - start
            CALLS[name] += 1
    return wrapper


def timed_functions():
    """name -> function: a layer's product with its bias, the public sampling kernels, the fused
    kernels that Python calls, the element-wise functions the units share. None calls another."""
    chosen = {"affine (a layer's product and bias)": network.affine, "sigmoid_slope": base.sigmoid_slope}
    chosen.update({name: getattr(kernels, name) for name in ("normal", "bernoulli", "sigmoid_bernoulli")})
    chosen.update({name: getattr(fused, name) for name in ("local_target_gradient", "reconstruction_gradient", "nll_gradient", "nll_totals")})
    chosen.update({name: getattr(functions, name) for name in ("tanh", "softmax", "sigmoid", "sign")})
    return chosen


def install():
    """Replace, in every loaded stochtp module, each reference to a timed function by its wrapper;
    and time the optimiser steps and the input conversion, which are methods."""
    originals = timed_functions()
    wrappers = {id(function): timed(name, function) for name, function in originals.items()}
    for module in [m for name, m in sys.modules.items() if name.startswith("stochtp") and m is not None]:
        for attribute, value in list(vars(module).items()):
            if id(value) in wrappers and not attribute.startswith("__"):
                setattr(module, attribute, wrappers[id(value)])
    optim.Optimiser.step = timed("optimiser step", optim.Optimiser.step)
    Split.features = timed("input conversion (Split.features)", Split.features)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset", nargs="?", default="paper-stochastic-dtp")
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--data-dir", default=os.environ.get("STOCHTP_DATA"))
    args = parser.parse_args()
    cfg = config.load(preset=args.preset)
    dataset, net, method = experiment.build(cfg, args.data_dir)
    install()
    per_epoch = len(dataset.train) // cfg.batch_size
    batches = min(args.batches, per_epoch)
    scale = per_epoch / batches / args.rounds
    with train.frozen_heap():
        bench.epoch_round(net, method, cfg, dataset.train, 1, batches)  # compiles and warms
        SECONDS.clear(), CALLS.clear()
        total = sum(bench.epoch_round(net, method, cfg, dataset.train, 2 + r, batches)[1] for r in range(args.rounds))
    print(f"{args.preset}: {total * scale * 1e3:.0f} ms a training epoch ({batches} of {per_epoch} mini-batches timed, {args.rounds} rounds)")
    print(f"  {'piece':40s} {'ms/epoch':>9s} {'calls/batch':>11s}")
    for name, seconds in sorted(SECONDS.items(), key=lambda item: -item[1]):
        print(f"  {name:40s} {seconds * scale * 1e3:9.1f} {CALLS[name] / batches / args.rounds:11.2f}")
    print(f"  {'the rest':40s} {(total - sum(SECONDS.values())) * scale * 1e3:9.1f}")


if __name__ == "__main__":
    main()
