"""Throughput of stochtp's sampling kernels against NumPy (and torch when installed), in one run.

    python benchmarks/bench_kernels.py [--n 10000000] [--repeat 7] [--threads T] [--json]

Part (b) of `stochtp bench` on its own (`stochtp.bench.kernel_throughput`): each row times a
stochtp kernel and its peer on the same n float32 values (best of `repeat`, after one untimed
warm-up call that also compiles; the two alternate so that background load affects both
alike). speed-up = peer seconds / stochtp seconds. NumPy's generator is single-threaded;
stochtp uses `threads` Numba threads (default: all).
"""
import argparse
import json

import stochtp

stochtp.configure_process()  # the command's tunings, before anything loads NumPy (OpenBLAS reads them as it loads)

import numba  # noqa: E402 (after the tunings)

from stochtp.bench import format_report, kernel_throughput  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000_000, help="values per call (default 10^7)")
    parser.add_argument("--repeat", type=int, default=7, help="timed calls per kernel; the best is kept")
    parser.add_argument("--threads", type=int, default=None, help="Numba (and torch) threads; default all")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if args.n < 1 or args.repeat < 1:
        parser.error("--n and --repeat must be positive")
    if args.threads is not None:
        numba.set_num_threads(args.threads)
    rows = kernel_throughput(n=args.n, repeat=args.repeat)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"n = {args.n}, best of {args.repeat}, {rows[0]['threads']} Numba thread(s)")
        print(format_report({"machine": {}, "kernels": rows}, parts="b"))


if __name__ == "__main__":
    main()
