"""As the user waits: the wall seconds per epoch of a real `stochtp run` of the stochastic network,
evaluations and results-file writes included, against the PyTorch peer's training epoch timed in
the same minutes. Prints a line per timing and a summary; `--json` prints the numbers instead.

    python benchmarks/user_wait.py [PRESET ...] [--epochs 10] [--threads 2] [--rounds 2] [--peer-python PY] [--data-dir DIR] [--json]

Each round runs the peer (`torch_peer.py`, best of its 2 epochs per method), then each preset for
`--epochs` epochs through the real loop (`stochtp.experiment.run`, into a results file in a
temporary folder), then the peer again. A preset's time is the wall time from the end of epoch 1
(its record written) to the end of the last epoch, over the epochs in between: epochs 2 to 10 by
default, each with its 1-sample evaluation and its writes, and the K-sample evaluation of the
last epoch (and of every `eval_samples_every`-th). Epoch 1, which loads the kernels, is left out.
Each preset is set against the faster of the two peer runs around it, so that load on the machine
favours the peer. The presets are those the peer trains: paper-stochastic-dtp and
paper-stochastic-st (the default, both).
"""
import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import stochtp

stochtp.configure_process()  # the command's tunings, before anything loads NumPy (OpenBLAS reads them as it loads)

from stochtp import bench, callbacks, config, experiment  # noqa: E402 (after the tunings)

PEER = Path(__file__).with_name("torch_peer.py")
PEER_EPOCHS = {"paper-stochastic-dtp": "dtp_epoch_s", "paper-stochastic-st": "st_epoch_s"}  # preset -> the peer's epoch of its method


class EpochEnds(callbacks.Callback):
    """The time at which each epoch's record was written (after its evaluations)."""

    def __init__(self):
        self.times = []

    def on_epoch_end(self, run, epoch, metrics):
        self.times.append(time.perf_counter())


def seconds_as_waited(preset, epochs, threads, data_dir):
    """Wall seconds per epoch of a real run of `preset`, epochs 2..`epochs`."""
    ends = EpochEnds()
    with tempfile.TemporaryDirectory() as folder:
        experiment.run(config.load(preset=preset, epochs=epochs), out=Path(folder) / "run.h5", data_dir=data_dir, threads=threads, callbacks=[ends])
    return (ends.times[-1] - ends.times[0]) / (epochs - 1)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("presets", nargs="*", default=list(PEER_EPOCHS), metavar="PRESET", help=f"one of {', '.join(PEER_EPOCHS)} (default both)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs per run, at least 2 (default 10)")
    parser.add_argument("--threads", type=int, default=2, help="threads of stochtp and of the peer (default 2)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of peer, presets, peer (default 2)")
    parser.add_argument("--peer-python", default=sys.executable, help="interpreter with torch (default this one)")
    parser.add_argument("--data-dir", default=os.environ.get("STOCHTP_DATA"), help="MNIST folder (default $STOCHTP_DATA, then data/)")
    parser.add_argument("--json", action="store_true", help="print the measurements as JSON")
    args = parser.parse_args(argv)
    unknown = [preset for preset in args.presets if preset not in PEER_EPOCHS]
    if unknown:
        parser.error(f"no peer epoch for {', '.join(unknown)}; the peer trains {', '.join(PEER_EPOCHS)}")
    if args.epochs < 2 or args.threads < 1 or args.rounds < 1:
        parser.error("--epochs must be at least 2, --threads and --rounds at least 1")
    try:
        bench.check_peer_python(args.peer_python)
    except ValueError as error:
        parser.error(str(error))
    return args


def main(argv=None):
    args = parse_args(argv)
    say = (lambda text: None) if args.json else (lambda text: print(text, flush=True))
    rounds = []
    peer_after = bench.peer_epochs(PEER, args.peer_python, args.threads, args.data_dir)
    for number in range(1, args.rounds + 1):
        peer_before = peer_after
        waited = {preset: seconds_as_waited(preset, args.epochs, args.threads, args.data_dir) for preset in args.presets}
        peer_after = bench.peer_epochs(PEER, args.peer_python, args.threads, args.data_dir)
        for preset, seconds in waited.items():
            peer = min(peer_before[PEER_EPOCHS[preset]], peer_after[PEER_EPOCHS[preset]])
            rounds.append({"round": number, "preset": preset, "s_per_epoch": seconds, "peer_s_per_epoch": peer, "speedup_vs_peer": peer / seconds})
            say(f"round {number} {preset}: {seconds:.3f} s per epoch as the user waits (epochs 2-{args.epochs}); "
                f"the peer's training epoch {peer:.3f} s: {peer / seconds:.2f}x")
    if args.json:
        print(json.dumps({"epochs": args.epochs, "threads": args.threads, "rounds": rounds}, indent=1))


if __name__ == "__main__":
    main()
