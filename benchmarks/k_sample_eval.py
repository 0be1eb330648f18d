"""The K-sample evaluation of valid + test (K = 100 by default) of the stochastic network, with
the table-lookup kernel (`stochtp.kernels.passes`) and with the pass-by-pass path (stacked BLAS
products), timed alternately in one process on 1 and 2 threads. Prints a line per timing and
whether the error rates of the two agree.

    python benchmarks/k_sample_eval.py [--reps 2] [--samples 100] [--data-dir DIR] [--trained FILE.h5] [--as-is [--threads T]]

With `--as-is` it times `train.evaluate` as the stochtp on the path runs it, without choosing a
path, on `--threads` threads (default 2): with PYTHONPATH set to each, it compares two checkouts
of stochtp, each timing in its own process.

The network is `784-200b-200b-10s` as paper-stochastic-dtp initialises it (seed 0), or with
--trained the best parameters of the first run of a results file of that network; on MNIST from
--data-dir or $STOCHTP_DATA. An untrained network's probabilities are near 1/2, so its samples
vary most from pass to pass; a trained one's are mostly near 0 or 1.
"""
import argparse
import os
import time

import stochtp

stochtp.configure_process()  # the command's tunings, before anything loads NumPy (OpenBLAS reads them as it loads)

import h5py  # noqa: E402 (after the tunings)
import numba  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from stochtp import data, train  # noqa: E402
from stochtp.network import Network  # noqa: E402


class Schedule:
    """What `train.evaluate` reads of a run config: a K-sample evaluation at this epoch."""
    seed, eval_samples_every, epochs = 3, 10, 10

    def __init__(self, samples):
        self.eval_samples = samples


def time_as_is(net, dataset, config, threads, reps):
    """`reps` timings of the K-sample evaluation after an untimed one, with the error rates."""
    numba.set_num_threads(threads)
    with threadpool_limits(threads):
        train.evaluate(net, dataset, config, 10)
        for rep in range(reps):
            seconds = {}
            metrics = train.evaluate(net, dataset, config, 10, seconds)
            errors = " ".join(f"{name}={value:.4f}" for name, value in sorted(metrics.items()))
            print(f"{stochtp.__file__}: threads={threads} rep={rep} K-sample evaluation {seconds['evaluate_k']:6.2f} s; {errors}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--data-dir", default=os.environ.get("STOCHTP_DATA", "data"))
    parser.add_argument("--trained", help="a results file whose first run's best parameters to evaluate")
    parser.add_argument("--as-is", action="store_true", help="time the stochtp on the path as it runs, without choosing a path")
    parser.add_argument("--threads", type=int, default=2, help="threads with --as-is (default 2)")
    args = parser.parse_args()
    dataset = data.load("mnist", args.data_dir, download=False)
    net = Network.from_spec("784-200b-200b-10s", seed=0)
    if args.trained:
        with h5py.File(args.trained, "r") as results:
            best = next(iter(results["runs"].values()))["best"]
            for i, layer in enumerate(net.layers):
                layer.W[...], layer.b[...] = best[f"layer_{i}/W"][()], best[f"layer_{i}/b"][()]
    config = Schedule(args.samples)
    if args.as_is:
        time_as_is(net, dataset, config, args.threads, args.reps)
        return
    kernel_chain = Network._bernoulli_chain
    paths = {"kernel": kernel_chain, "pass-by-pass": lambda self, first: None}
    for threads in (1, 2):
        numba.set_num_threads(threads)
        with threadpool_limits(threads):
            for choose in paths.values():  # compiles and warms both paths
                Network._bernoulli_chain = choose
                train.evaluate(net, dataset, config, 10)
            for rep in range(args.reps):
                metrics = {}
                for name, choose in paths.items():
                    Network._bernoulli_chain = choose
                    tick = time.perf_counter()
                    metrics[name] = train.evaluate(net, dataset, config, 10)
                    print(f"threads={threads} rep={rep} {name:12s} {time.perf_counter() - tick:6.2f} s", flush=True)
                print(f"threads={threads} rep={rep} same error rates: {metrics['kernel'] == metrics['pass-by-pass']}", flush=True)
    Network._bernoulli_chain = kernel_chain


if __name__ == "__main__":
    main()
