"""Speed-up of a sweep on local workers: 4 equal runs on 2 worker processes against the same
4 runs one after another, each run on one thread.

    python benchmarks/bench_sweep.py [--runs 4] [--workers 2] [--epochs 5] [--n-train 50000] [--json]

The runs are DTP on the stochastic network of the paper (784-200b-200b-10s) with the `teacher`
task standing in for MNIST (784 input bits, `--n-train` examples, so no download is needed):
about 3 s per epoch on one core, 10-20 s per run, so that starting worker processes is small
against the training. Both sides go through `stochtp
sweep` (`stochtp.sweep.run`) into fresh results files, `--workers 1` for the serial side, so they
differ only in parallelism. speed-up = serial seconds / parallel seconds (ideally the number of
workers, if the machine has that many idle cores).
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

from stochtp import sweep

SWEEP = """\
name = "bench-sweep"
dataset = "teacher"
network = "784-200b-200b-10s"
epochs = {epochs}
batch_size = 100
eval_samples = 10
eval_samples_every = {epochs}

[data]
n_in = 784
hidden = [64, 64]
n_classes = 10
n_train = {n_train}
n_valid = 2000
n_test = 2000

[method]
name = "dtp"
eta_hat = 1.0
lr_f = 1e-3
lr_b = 1e-3

[sweep]
seed = {seeds}
"""


def timed_sweep(path, out, workers):
    """Seconds taken by the sweep at `path` on `workers` local processes, into a new file `out`."""
    start = time.perf_counter()
    summary = sweep.run(path, out=out, workers=workers, say=None)
    seconds = time.perf_counter() - start
    if summary.failed or len(summary.completed) != summary.planned:
        raise SystemExit(f"the benchmark sweep did not complete: {summary}")
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--n-train", type=int, default=50000)
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as folder:
        path = Path(folder) / "bench.toml"
        path.write_text(SWEEP.format(epochs=args.epochs, n_train=args.n_train, seeds=list(range(args.runs))))
        serial = timed_sweep(path, Path(folder) / "serial.h5", 1)
        parallel = timed_sweep(path, Path(folder) / "parallel.h5", args.workers)
    row = {"runs": args.runs, "workers": args.workers, "serial_s": serial, "parallel_s": parallel, "speedup": serial / parallel}
    if args.json:
        print(json.dumps(row))
    else:
        print(f"{args.runs} runs: one after another {serial:.1f} s, on {args.workers} workers {parallel:.1f} s, speed-up {serial / parallel:.2f}x")


if __name__ == "__main__":
    main()
