"""The training loop and evaluation protocol (design section 9).

`run(config)` trains one network with one method and appends the run to a results file:

- each epoch is shuffled by a permutation drawn from stream ("shuffle", epoch) of the seed,
  mini-batch k of epoch e gets the stream stream_id(e, k): everything is replayable;
- after each epoch: training loss and error (of the forward passes made in training),
  validation and test error; for stochastic networks the 1-sample errors every epoch and the
  K-sample errors (K = eval_samples, class probabilities averaged) every `eval_samples_every`
  epochs and at the last one (NaN in between: K forward passes over 20 000 examples cost
  more than a training epoch);
- the best epoch is chosen on validation error (K-sample for stochastic networks), never on test;
- a non-finite loss or parameter stops the run with status `failed`, keeping what was logged;
- SIGINT / SIGTERM stop it with status `interrupted`; `resume=True` continues it from its
  checkpoint (written after every epoch) with the same numbers it would have drawn.
"""
import gc
import math
import signal
import sys
import threading
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import numba
import numba.core.event as numba_event
import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from . import data, kernels, losses, methods, results
from .errors import ConfigError, TrainingFailed
from .methods.base import CHUNK
from .network import Network

EVAL_CHUNK = 2000


@dataclass
class RunSummary:
    """What a finished run reports: where it went and its headline numbers."""

    run_id: str
    path: Path
    status: str
    epochs: int
    best_epoch: int
    test_error_at_best: float
    test_error_last: float
    seconds_per_epoch: float  # median over the run's logged epochs (a resumed run's earlier ones too)
    error: str = ""


def build_network(config):
    return Network.from_spec(config.network, seed=config.seed, init=config.init, dtype=np.dtype(config.dtype), input_noise=config.input_noise)


def build_method(config):
    options = dict(config.method)
    return methods.get(options.pop("name"), **options)


class Batches:
    """The epoch's mini-batches as (stream, x, y): a seeded permutation cut into full batches.

    Re-iterable (the alternating DTP schedule makes two passes) and lazy: each pass converts
    a chunk of `methods.base.CHUNK` mini-batches at a time, in one call, so no float copy of the
    training set is held; their inputs are consecutive row blocks of one array, which a method
    stacks without a copy (`network.stack_rows`). `limit` keeps only the first mini-batches
    (benchmarks time part of an epoch).
    """

    def __init__(self, split, epoch, seed, batch_size, dtype, limit=None):
        self.split, self.epoch, self.batch_size, self.dtype, self.limit = split, epoch, batch_size, dtype, limit
        self.order = np.argsort(kernels.uniform(len(split), seed, kernels.stream_id(epoch, "shuffle"), dtype=np.float64), kind="stable")

    def __len__(self):
        full = len(self.split) // self.batch_size
        return full if self.limit is None else min(full, self.limit)

    def __iter__(self):
        size = self.batch_size
        for first in range(0, len(self), CHUNK):
            ks = range(first, min(first + CHUNK, len(self)))
            index = np.concatenate([np.sort(self.order[k * size:(k + 1) * size]) for k in ks])
            x = self.split.features(index, self.dtype)
            for row, k in zip(range(0, len(index), size), ks):
                yield kernels.stream_id(self.epoch, k), x[row:row + size], self.split.y[index[row:row + size]]


def error_rate(net, split, seed, stream, samples):
    """Classification error of `net` on `split`, class probabilities averaged over `samples` passes."""
    wrong = 0.0
    for start in range(0, len(split), EVAL_CHUNK):
        index = slice(start, start + EVAL_CHUNK)
        proba = net.predict_proba(split.features(index, net.dtype), seed, kernels.stream_id(stream, start), samples)
        wrong += losses.errors(net.loss_name, proba, split.y[index]).sum()
    return wrong / len(split)


def evaluate(net, dataset, config, epoch):
    """Validation and test errors after `epoch`: 1-sample, and K-sample on its schedule (else NaN)."""
    metrics = {}
    stochastic = net.stochastic
    k_due = stochastic and (epoch % config.eval_samples_every == 0 or epoch == config.epochs)
    for name, split in (("valid", dataset.valid), ("test", dataset.test)):
        stream = kernels.stream_id(epoch, "evaluate", name)
        metrics[f"{name}_error"] = error_rate(net, split, config.seed, stream, 1)
        if stochastic:
            metrics[f"{name}_error_k"] = error_rate(net, split, config.seed, stream, config.eval_samples) if k_due else math.nan
    return metrics


def selection_metric(net):
    return "valid_error_k" if net.stochastic else "valid_error"


def network_arrays(net, method):
    arrays = {}
    for i, layer in enumerate(net.layers):
        arrays[f"layer_{i}/W"] = layer.W
        arrays[f"layer_{i}/b"] = layer.b
    arrays.update(method.aux_parameters())
    return arrays


def layer_state(net):
    """The forward parameters as a nested dict for checkpoints: {"layer_0": {"W": ..., "b": ...}, ...}."""
    return {f"layer_{i}": {"W": layer.W, "b": layer.b} for i, layer in enumerate(net.layers)}


def all_finite(net, method):
    return all(np.isfinite(array).all() for array in network_arrays(net, method).values())


@contextmanager
def thread_limit(threads):
    """Numba and BLAS threads for the run (None: leave both as they are)."""
    if threads is None:
        yield
        return
    previous = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        with threadpool_limits(threads):
            yield
    finally:
        numba.set_num_threads(previous)


class Interrupts(numba_event.Listener):
    """SIGINT and SIGTERM end a run as `interrupted` by raising KeyboardInterrupt; one that arrives
    inside `held()` (while an epoch is being recorded) is raised when the block is done, so the
    file never holds half of an epoch's record. One that arrives while Numba compiles a kernel or
    loads it from the cache is raised as the compiler lets go: thrown into the compiler, it would
    come out as an AttributeError from its broken state, failing the run instead of interrupting
    it. Outside the main thread, signals are left alone."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)
    COMPILER = "numba:compiler_lock"  # Numba's event around every compilation and cache load

    def __init__(self):
        self.holding = False
        self.compiling = 0  # how deep the main thread is in Numba's compiler
        self.pending = None
        self.previous = {}

    def __enter__(self):
        try:
            self.previous = {signum: signal.signal(signum, self.handle) for signum in self.SIGNALS}
        except ValueError:  # not the main thread
            pass
        else:
            numba_event.register(self.COMPILER, self)
        return self

    def __exit__(self, *exc_info):
        if self.previous:
            numba_event.unregister(self.COMPILER, self)
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def handle(self, signum, frame):
        if self.holding or self.compiling:
            self.pending = signum
        else:
            raise KeyboardInterrupt(f"signal {signum}")

    def on_start(self, event):
        if threading.current_thread() is threading.main_thread():
            self.compiling += 1

    def on_end(self, event):
        if threading.current_thread() is threading.main_thread():
            self.compiling -= 1
            if not (self.compiling or self.holding) and self.pending is not None:
                signum, self.pending = self.pending, None
                raise KeyboardInterrupt(f"signal {signum}")

    @contextmanager
    def held(self, raise_pending=True):
        """Hold signals during the block; raise a held one after it (or drop it: the run's final
        save, after which there is nothing left to stop)."""
        self.holding = True
        try:
            yield
        finally:
            self.holding = False
            signum, self.pending = self.pending, None  # raised or dropped once, also when the block fails
        if signum is not None and raise_pending:
            raise KeyboardInterrupt(f"signal {signum}")


class Progress:
    """A tqdm bar over epochs on a terminal; silent when quiet or not a TTY."""

    def __init__(self, config, first_epoch, quiet):
        enabled = not quiet and sys.stderr.isatty()
        self.bar = tqdm(total=config.epochs, initial=first_epoch - 1, desc=config.name, unit="epoch", disable=not enabled, leave=True)

    def update(self, metrics):
        shown = {k: f"{metrics[k]:.4f}" for k in ("train_loss", "valid_error", "test_error", "test_error_k") if k in metrics and not math.isnan(metrics[k])}
        self.bar.set_postfix(shown, refresh=False)
        self.bar.update(1)

    def close(self):
        self.bar.close()


def default_out(config):
    return Path("results") / f"{config.name}.h5"


def run(config, out=None, data_dir=None, threads=None, resume=False, quiet=True, source=None):
    """Train as `config` says, append the run to `out` (default results/<name>.h5), return a RunSummary.

    `source` (the config file or preset) is named in the ConfigErrors met while the dataset,
    network and method are built. Raises TrainingFailed (status `failed`) on non-finite values
    and KeyboardInterrupt (status `interrupted`) on SIGINT/SIGTERM, after recording them in the file.
    """
    if threads is not None and not 1 <= threads <= numba.config.NUMBA_NUM_THREADS:
        raise ConfigError(f"threads must be between 1 and {numba.config.NUMBA_NUM_THREADS}, got {threads}")
    if out is not None:
        results.check_results_path(out)  # before Path drops a trailing slash
    out = Path(out) if out is not None else default_out(config)
    if resume and not out.exists():  # checked before a Writer makes the file
        raise ConfigError(f"--resume: no interrupted run of this config in {out} (no such file)")
    dataset, net, method = build(config, data_dir, source)
    with thread_limit(threads), frozen_heap(), results.Writer(out) as writer, Interrupts() as interrupts:
        run_writer, first_epoch, best = _open_run(writer, config, net, method, resume, threads)
        return _train(config, dataset, net, method, run_writer, out, first_epoch, best, quiet, interrupts)


@contextmanager
def frozen_heap():
    """Keep Python's cycle collector off the objects made before training: NumPy's, Numba's and
    h5py's, about a million, which each full collection walked (64-71 ms, about once per 3 000
    stochastic DTP mini-batches: 2 % of the training time). They are collected first and
    released for collection afterwards, so that a process that trains again frees them as usual.
    Where something is frozen already (an enclosing `frozen_heap`, or the caller's own
    `gc.freeze()`), it is left as it is: unfreezing would undo the caller's freeze."""
    if gc.get_freeze_count():
        yield
        return
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def build(config, data_dir=None, source=None):
    """The dataset, network and bound method of `config`; their ConfigErrors name `source` when given."""
    try:
        dataset = data.load(config.dataset, data_dir, **config.data)
        net, method = build_model(config)
        check_fit(config, dataset, net)
    except ConfigError as error:
        if source is None:
            raise
        raise ConfigError(f"{source}: {error}") from None
    return dataset, net, method


def build_model(config):
    """The network of `config` and its method bound to it (no data): ConfigError where they cannot go together."""
    net, method = build_network(config), build_method(config)
    method.bind(net, config.seed)
    return net, method


def check_fit(config, dataset, net):
    """ConfigError unless `net` classifies `dataset` (its features in, a softmax over its classes
    out) and every split can be used: a full mini-batch of training data, validation and test
    examples to select and report epochs on."""
    misfit = f"network {config.network} does not fit dataset {config.dataset!r}: it has {dataset.n_features} features and {dataset.n_classes} classes"
    if net.layers[0].n_in != dataset.n_features:
        raise ConfigError(f"{misfit} (the network takes {net.layers[0].n_in} inputs)")
    if net.loss_name != "nll" or net.layers[-1].n_out != dataset.n_classes:
        raise ConfigError(f"{misfit} (the last layer must be {dataset.n_classes} softmax units, '{dataset.n_classes}s')")
    if len(dataset.train) < config.batch_size:
        raise ConfigError(f"dataset {config.dataset!r} has {len(dataset.train)} training examples, fewer than one mini-batch of {config.batch_size}")
    for name in ("valid", "test"):
        if len(getattr(dataset, name)) == 0:
            raise ConfigError(f"dataset {config.dataset!r} has no {name} examples; training selects and reports epochs on them")


NO_BEST = {"epoch": 0, "value": math.inf, "test_error": math.nan, "test_error_k": math.nan}


def _open_run(writer, config, net, method, resume, threads):
    """The run to write into, its first epoch to train and its best epoch so far: a new run, or
    the newest unfinished one with this config, restored from its checkpoint (epochs logged
    after the checkpoint are dropped: they are trained again)."""
    if resume:
        candidates = [r for r in results.open(writer.path).runs if r.attrs.get("config_hash") == config.hash and r.status in ("interrupted", "running")]
        if not candidates:
            raise ConfigError(f"--resume: no interrupted run of this config in {writer.path}")
        run_writer = writer.find_run(candidates[-1].id)
        checkpoint = run_writer.load_checkpoint() or {"epoch": 0, "best": NO_BEST}
        epoch = int(checkpoint["epoch"])
        if epoch:
            for i, layer in enumerate(net.layers):
                layer.W[...] = checkpoint["params"][f"layer_{i}"]["W"]
                layer.b[...] = checkpoint["params"][f"layer_{i}"]["b"]
            method.load_state_dict(checkpoint["method"])
        run_writer.truncate(epoch)
        return run_writer, epoch + 1, {key: float(value) for key, value in checkpoint["best"].items()}
    run_writer = start_run(writer, config, threads if threads is not None else numba.get_num_threads())
    return run_writer, 1, dict(NO_BEST)


def start_run(writer, config, threads, **attrs):
    """A new run of `config` in `writer`'s file, status "running", provenance for `threads` threads
    and the further run attributes `attrs` (a search trial's, from a sweep)."""
    return writer.start_run(
        name=config.name,
        method=config.method["name"],
        dataset=config.dataset,
        network=config.network,
        seed=config.seed,
        config=config.to_dict(),
        provenance={**results.provenance(threads), **attrs},
    )


def train_epoch(config, dataset, net, method, epoch):
    """Train one epoch; TrainingFailed when the training loss or the parameters are no longer
    finite, or when a kernel refuses what training produced (a ValueError: "a contains NaN")."""
    try:
        stats = method.train_epoch(net, Batches(dataset.train, epoch, config.seed, config.batch_size, net.dtype), config.seed, epoch)
    except ValueError as error:
        raise TrainingFailed(f"training failed at epoch {epoch}: {error}") from error
    if not (math.isfinite(stats["train_loss"]) and all_finite(net, method)):
        raise TrainingFailed(f"non-finite training loss or parameters at epoch {epoch}")
    return stats


def record_epoch(run_writer, net, method, metrics, best, selection):
    """Append the epoch's metrics, save the parameters if it is the best epoch so far, save the
    checkpoint; return the best epoch so far."""
    epoch = metrics["epoch"]
    run_writer.append(metrics, method.diagnostics())
    if metrics[selection] < best["value"]:
        best = {"epoch": epoch, "value": metrics[selection], "test_error": metrics["test_error"], "test_error_k": metrics.get("test_error_k", math.nan)}
        run_writer.save_params("best", network_arrays(net, method), attrs={"epoch": epoch})
    run_writer.save_checkpoint({"epoch": epoch, "params": layer_state(net), "method": method.state_dict(), "best": best})
    return best


def _train(config, dataset, net, method, run_writer, out, first_epoch, best, quiet, interrupts):
    progress = Progress(config, first_epoch, quiet)
    selection = selection_metric(net)
    previous_wall = run_writer.metrics_so_far().get("wall_time", np.zeros(0))
    wall_offset = float(previous_wall[-1]) if len(previous_wall) else 0.0
    started = time.perf_counter()
    recorded = first_epoch - 1  # the last epoch in the file, which a stop's message names
    try:
        for epoch in range(first_epoch, config.epochs + 1):
            tick = time.perf_counter()
            stats = train_epoch(config, dataset, net, method, epoch)
            epoch_time = time.perf_counter() - tick
            metrics = {"epoch": epoch, "wall_time": wall_offset + time.perf_counter() - started, "epoch_time": epoch_time, **stats, **evaluate(net, dataset, config, epoch)}
            with interrupts.held():
                best = record_epoch(run_writer, net, method, metrics, best, selection)
                recorded = epoch
            progress.update(metrics)
    except KeyboardInterrupt:
        run_writer.finish("interrupted", f"interrupted with {recorded} of {config.epochs} epochs logged")
        raise
    except OSError as error:  # the file system failed (a full disk): the last checkpoint is whole, so --resume can continue
        with suppress(OSError):
            run_writer.finish("interrupted", f"stopped with {recorded} of {config.epochs} epochs logged: {error}")
        raise
    except Exception as error:
        run_writer.finish("failed", str(error) or type(error).__name__)
        raise
    finally:
        progress.close()
    with interrupts.held(raise_pending=False):
        run_writer.save_params("params", network_arrays(net, method))
        run_writer.finish("completed")
    last = run_writer.metrics_so_far()
    key = "test_error_k" if net.stochastic else "test_error"
    return RunSummary(
        run_id=run_writer.id,
        path=out,
        status="completed",
        epochs=config.epochs,
        best_epoch=int(best["epoch"]),
        test_error_at_best=float(best[key]),
        test_error_last=float(last[key][-1]) if len(last.get(key, [])) else math.nan,
        seconds_per_epoch=float(np.median(last["epoch_time"])) if len(last.get("epoch_time", [])) else math.nan,
    )
