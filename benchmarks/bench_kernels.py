"""Throughput of stochtp's sampling kernels against NumPy (and torch when installed), in one run.

    python benchmarks/bench_kernels.py [--n 10000000] [--repeat 7] [--threads T] [--json]

Each row times a stochtp kernel and its peer on the same n float32 values (best of `repeat`,
after one untimed warm-up call that also compiles; the two alternate so that background load
affects both alike). speed-up = peer seconds / stochtp seconds.
NumPy's generator is single-threaded; stochtp uses `threads` Numba threads (default: all).
"""
import argparse
import json
import time

import numba
import numpy as np

from stochtp.kernels import bernoulli, normal, sigmoid_bernoulli, uniform

SEED = 12345


def best_seconds(functions, repeat):
    """Minimum wall time of each function over `repeat` rounds, after one untimed warm-up call each.

    The functions alternate within a round, so background load affects them alike.
    """
    for function in functions:
        function()
    best = [float("inf")] * len(functions)
    for _ in range(repeat):
        for index, function in enumerate(functions):
            start = time.perf_counter()
            function()
            best[index] = min(best[index], time.perf_counter() - start)
    return best


def comparisons(n, threads):
    """(kernel, peer name, stochtp call, peer call) for every benchmarked kernel."""
    inputs = np.random.default_rng(0)
    p = inputs.random(n, dtype=np.float32)
    a = inputs.standard_normal(n, dtype=np.float32)
    rng = np.random.default_rng(SEED)

    def numpy_sigmoid_bernoulli():
        probability = 1 / (1 + np.exp(-a))
        return probability, probability > rng.random(n, dtype=np.float32)

    rows = [
        ("bernoulli", "numpy rng.random < p", lambda: bernoulli(p, SEED), lambda: rng.random(n, dtype=np.float32) < p),
        ("uniform", "numpy rng.random", lambda: uniform(n, SEED), lambda: rng.random(n, dtype=np.float32)),
        ("normal", "numpy rng.standard_normal", lambda: normal(n, SEED), lambda: rng.standard_normal(n, dtype=np.float32)),
        ("sigmoid_bernoulli", "numpy sigmoid, rng.random", lambda: sigmoid_bernoulli(a, SEED), numpy_sigmoid_bernoulli),
    ]
    try:
        import torch
    except ImportError:
        return rows
    torch.set_num_threads(threads)
    p_tensor = torch.from_numpy(p)
    generator = torch.Generator().manual_seed(SEED)
    rows.append(("bernoulli", "torch.bernoulli", lambda: bernoulli(p, SEED), lambda: torch.bernoulli(p_tensor, generator=generator)))
    return rows


def run(n=10_000_000, repeat=7, threads=None):
    """Benchmark every kernel on n values; one dict per (kernel, peer) with seconds, speed-up and values/s."""
    threads = numba.config.NUMBA_NUM_THREADS if threads is None else threads
    previous_threads = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        results = []
        for kernel, peer, stochtp_call, peer_call in comparisons(n, threads):
            stochtp_seconds, peer_seconds = best_seconds([stochtp_call, peer_call], repeat)
            results.append(
                {
                    "kernel": kernel,
                    "peer": peer,
                    "n": n,
                    "threads": threads,
                    "stochtp_s": stochtp_seconds,
                    "peer_s": peer_seconds,
                    "speedup": peer_seconds / stochtp_seconds,
                    "stochtp_values_per_s": n / stochtp_seconds,
                    "peer_values_per_s": n / peer_seconds,
                }
            )
        return results
    finally:
        numba.set_num_threads(previous_threads)


def format_table(results):
    """The results as a fixed-width text table."""
    header = f"{'kernel':<18} {'peer':<27} {'stochtp s':>10} {'peer s':>10} {'speed-up':>9} {'stochtp values/s':>17} {'peer values/s':>14}"
    lines = [header, "-" * len(header)]
    for row in results:
        lines.append(
            f"{row['kernel']:<18} {row['peer']:<27} {row['stochtp_s']:>10.4f} {row['peer_s']:>10.4f} "
            f"{row['speedup']:>9.2f} {row['stochtp_values_per_s']:>17.3e} {row['peer_values_per_s']:>14.3e}"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000_000, help="values per call (default 10^7)")
    parser.add_argument("--repeat", type=int, default=7, help="timed calls per kernel; the best is kept")
    parser.add_argument("--threads", type=int, default=None, help="Numba (and torch) threads; default all")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if args.n < 1 or args.repeat < 1:
        parser.error("--n and --repeat must be positive")
    results = run(n=args.n, repeat=args.repeat, threads=args.threads)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"n = {args.n}, best of {args.repeat}, {results[0]['threads']} Numba thread(s)")
        print(format_table(results))


if __name__ == "__main__":
    main()
