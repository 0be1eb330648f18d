"""The training loop and evaluation protocol (docs/concepts.md), shared by `stochtp run` and `stochtp.fit`.

`train_run(config, dataset, net, method, ...)` trains a built network with a bound method, epoch
by epoch, and tells its callbacks (`stochtp.callbacks`) what happens; the results file and the
progress bar are callbacks like any other:

- each epoch is shuffled by a permutation drawn from stream ("shuffle", epoch) of the seed,
  mini-batch k of epoch e gets the stream stream_id(e, k): everything is replayable;
- after each epoch: training loss and error (of the forward passes made in training),
  validation and test error; for stochastic networks the 1-sample errors every epoch and the
  K-sample errors (K = eval_samples, class probabilities averaged) every `eval_samples_every`
  epochs and at the last one (NaN in between: K forward passes over 20 000 examples cost
  more than a training epoch);
- the best epoch is chosen on validation error (K-sample for stochastic networks), never on test;
- a method of the task `autoencode` (`stochtp.methods.dae`) is measured by reconstruction
  errors instead: per epoch the mean over examples of ||z - x||² (summed over pixels, z the
  reconstruction of the clean input x) on the training, validation and test sets
  (`train_reconstruction`, `valid_reconstruction`, `test_reconstruction`; the best epoch is
  chosen on the validation one), and at the last epoch the linear probe (`stochtp.probe`) of
  the features h = f(x), `probe_valid_error` and `probe_test_error` (NaN at the other epochs);
- a non-finite loss or parameter stops the run with status `failed`, keeping what was logged,
  and so does a callback that raises;
- SIGINT / SIGTERM stop it with status `interrupted`; `resume=True` continues it from its
  checkpoint (written after every epoch) with the same numbers it would have drawn.

`fit(net, method, train=(X, y), valid=..., test=...)` is the same loop for NumPy arrays.
This module takes the method as built (`stochtp.experiment` builds it from a config).
"""
import errno
import functools
import gc
import math
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numba
import numba.core.event as numba_event
import numpy as np
from threadpoolctl import threadpool_limits

from . import callbacks as callbacks_module
from . import kernels, losses, probe, results
from .kernels import ahead
from .batching import Batches
from .callbacks import network_arrays
from .config import Config, check_value
from .data.dataset import Dataset, Split
from .errors import ConfigError, DiskFull, ResultsError, TrainingFailed
from .network import PIXEL_SCALE

EVAL_CHUNK = 2000
NO_BEST = {"epoch": 0, "value": math.inf, "test_error": math.nan, "test_error_k": math.nan}
AUTOENCODE = "autoencode"  # the task of auto-encoder methods (`Method.task`)


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
    seconds_per_epoch: float  # `callbacks.seconds_per_epoch` of the run's logged epochs (a resumed run's earlier ones too)
    # test_error_at_best and test_error_last hold the run's test metric (`headline_metrics`):
    # the test reconstruction error for an auto-encoder
    error: str = ""
    test_samples: int = 1  # forward passes averaged in the test errors: K for a stochastic network
    first_epoch_seconds: float = math.nan  # epoch 1's time, Numba's compilation included
    test_metric: str = "test_error"  # the name of the metric test_error_at_best and test_error_last hold


class Run:
    """What the loop shares with its callbacks about one run.

    `config` (the resolved `Config`), `dataset`, `net`, `method`, `run_id` (None when the run is
    not written to a results file), `epoch` (the last epoch recorded), `best` (the best epoch so
    far: its number, validation value, test errors), `best_improved` (whether the epoch just
    ended is that best one), `epoch_times` (the training time of every epoch logged, from
    epoch 1, a resumed run's earlier ones too), `status` and `error` (once it ends). A callback
    sets `stop_training = True` to end the run after the current epoch (status `completed`).
    `phase_seconds` holds, for each epoch trained, the wall seconds of its phases: "train",
    "evaluate_1" (1-sample errors; every error of a deterministic network), "evaluate_k"
    (K-sample errors, on the epochs they are due) and "record" (the callbacks, results file first).
    """

    def __init__(self, config, dataset, net, method, run_id=None, first_epoch=1, best=None, wall_offset=0.0, epoch_times=()):
        self.config, self.dataset, self.net, self.method, self.run_id = config, dataset, net, method, run_id
        self.first_epoch, self.epoch, self.wall_offset = first_epoch, first_epoch - 1, wall_offset
        self.epoch_times = [float(seconds) for seconds in epoch_times]
        self.best = dict(NO_BEST) if best is None else dict(best)
        self.best_improved = False
        self.stop_training = False
        self.status, self.error = "running", ""
        self.phase_seconds = []

    @property
    def selection(self):
        """The metric the best epoch is chosen on: K-sample validation error for stochastic networks,
        validation reconstruction error for an auto-encoder."""
        return headline_metrics(self.net, self.method.task)[0]

    def update_best(self, metrics):
        """Record the epoch of `metrics` as the best one if its validation error is the lowest so far."""
        self.best_improved = metrics[self.selection] < self.best["value"]
        if self.best_improved:
            test_metric = headline_metrics(self.net, self.method.task)[1]
            self.best = {"epoch": metrics["epoch"], "value": metrics[self.selection], "test_error": metrics.get("test_error", math.nan), "test_error_k": metrics.get("test_error_k", math.nan), test_metric: metrics[test_metric]}


def error_rate(net, split, seed, stream, samples):
    """Classification error of `net` on `split`, class probabilities averaged over `samples` passes."""
    wrong = 0.0
    for start in range(0, len(split), EVAL_CHUNK):
        index = slice(start, start + EVAL_CHUNK)
        proba = net.predict_proba(split.features(index, net.dtype), samples=samples, seed=seed, stream=kernels.stream_id(stream, start))
        wrong += losses.errors(net.loss_name, proba, split.y[index]).sum()
    return wrong / len(split)


def reconstruction_error(net, split):
    """Mean over the examples of `split` of ||z - x||², summed over pixels: z the network's output
    for the clean input x (test mode, no input noise)."""
    total = 0.0
    for start in range(0, len(split), EVAL_CHUNK):
        x = split.features(slice(start, start + EVAL_CHUNK), net.dtype)
        total += losses.per_example("mse", net.predict_proba(x), x).sum()
    return total / len(split)


def evaluate(net, dataset, config, epoch, seconds=None, task="classify"):
    """Validation and test errors after `epoch`: 1-sample, and K-sample on its schedule (else NaN).
    An auto-encoder's: the reconstruction errors of the three sets, and the linear probe of its
    features h = f(x) (layer 0) after the last epoch. The wall seconds of each kind are added to
    `seconds` ("evaluate_1", "evaluate_k") when given."""
    seconds = {} if seconds is None else seconds
    if task == AUTOENCODE:
        with timed(seconds, "evaluate_1"):
            metrics = {f"{name}_reconstruction": reconstruction_error(net, getattr(dataset, name)) for name in ("train", "valid", "test")}
            if epoch == config.epochs:
                metrics.update(probe.linear_probe(net, 0, dataset, config.seed))
        return metrics
    metrics = {}
    stochastic = net.stochastic
    k_due = stochastic and (epoch % config.eval_samples_every == 0 or epoch == config.epochs)
    for name, split in (("valid", dataset.valid), ("test", dataset.test)):
        stream = kernels.stream_id(epoch, "evaluate", name)
        with timed(seconds, "evaluate_1"):
            metrics[f"{name}_error"] = error_rate(net, split, config.seed, stream, 1)
        if k_due:
            with timed(seconds, "evaluate_k"):
                metrics[f"{name}_error_k"] = error_rate(net, split, config.seed, stream, config.eval_samples)
        elif stochastic:
            metrics[f"{name}_error_k"] = math.nan
    return metrics


@contextmanager
def timed(seconds, phase):
    """Add the block's wall seconds to `seconds[phase]`."""
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds[phase] = seconds.get(phase, 0.0) + time.perf_counter() - start


def headline_metrics(net, task="classify"):
    """(the validation metric the best epoch is chosen on, the test metric reported there)."""
    if task == AUTOENCODE:
        return "valid_reconstruction", "test_reconstruction"
    return ("valid_error_k", "test_error_k") if net.stochastic else ("valid_error", "test_error")


def first_non_finite(net, method, stats):
    """The first quantity of a trained epoch that is not finite, named for a person: "training
    loss", or "parameter layer_1/W" in the order of `network_arrays`; None if all are finite."""
    if not math.isfinite(stats["train_loss"]):
        return "training loss"
    return next((f"parameter {name}" for name, array in network_arrays(net, method).items() if not np.isfinite(array).all()), None)


def check_threads(threads):
    if threads is not None and not (isinstance(threads, int) and 1 <= threads <= numba.config.NUMBA_NUM_THREADS):
        raise ConfigError(f"threads must be between 1 and {numba.config.NUMBA_NUM_THREADS}, got {threads}")


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


def check_fit(config, dataset, net, task="classify"):
    """ConfigError unless `net` classifies `dataset` (its features in, a softmax over its classes
    out), or for the task `autoencode` reconstructs them (its features in and out), and every
    split can be used: a full mini-batch of training data, validation and test examples to
    select and report epochs on."""
    misfit = f"network {config.network} does not fit dataset {config.dataset!r}: it has {dataset.n_features} features and {dataset.n_classes} classes"
    if net.layers[0].n_in != dataset.n_features:
        raise ConfigError(f"{misfit} (the network takes {net.layers[0].n_in} inputs)")
    if task == AUTOENCODE:
        if net.layers[-1].n_out != dataset.n_features:
            raise ConfigError(f"{misfit} (an auto-encoder's last layer must give back its {dataset.n_features} features)")
    elif net.loss_name != "nll" or net.layers[-1].n_out != dataset.n_classes:
        raise ConfigError(f"{misfit} (the last layer must be {dataset.n_classes} softmax units, '{dataset.n_classes}s')")
    if len(dataset.train) < config.batch_size:
        raise ConfigError(f"dataset {config.dataset!r} has {len(dataset.train)} training examples, fewer than one mini-batch of {config.batch_size}")
    for name in ("valid", "test"):
        if len(getattr(dataset, name)) == 0:
            raise ConfigError(f"dataset {config.dataset!r} has no {name} examples; training selects and reports epochs on them")


def _open_run(writer, config, net, method, resume, threads):
    """The run to write into, its first epoch to train and its best epoch so far: a new run, or
    the newest unfinished one with this config, restored from its checkpoint (epochs logged
    after the checkpoint are dropped: they are trained again)."""
    if resume:
        candidates = [r for r in results.open(writer.path).runs if r.attrs.get("config_hash") == config.hash and r.status in ("interrupted", "running")]
        if not candidates:
            raise ConfigError(f"--resume: no interrupted run of this config in {writer.path}")
        run_writer = writer.find_run(candidates[-1].id)
        try:
            epoch, best = restore(run_writer.load_checkpoint() or {"epoch": 0, "best": NO_BEST}, net, method)
        except (KeyError, IndexError, TypeError, ValueError) as error:
            raise ResultsError(f"run {run_writer.id} in {writer.path} cannot be continued: its checkpoint is damaged ({type(error).__name__}: {error})") from None
        run_writer.truncate(epoch)
        run_writer.note_resume(epoch + 1, results.provenance(threads if threads is not None else numba.get_num_threads()))
        return run_writer, epoch + 1, best
    run_writer = start_run(writer, config, threads if threads is not None else numba.get_num_threads())
    return run_writer, 1, dict(NO_BEST)


def restore(checkpoint, net, method):
    """Put a checkpoint's parameters and method state into `net` and `method`; return its epoch
    and best epoch so far. A checkpoint not of their shapes raises KeyError, TypeError or ValueError."""
    epoch = int(checkpoint["epoch"])
    if epoch:
        for i, layer in enumerate(net.layers):
            layer.W[...] = checkpoint["params"][f"layer_{i}"]["W"]
            layer.b[...] = checkpoint["params"][f"layer_{i}"]["b"]
        method.load_state_dict(checkpoint["method"])
    best = checkpoint["best"]
    return epoch, {key: float(best[key]) for key in (*NO_BEST, *(key for key in best if key not in NO_BEST))}


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


def train_epoch(config, dataset, net, method, epoch, progress=None):
    """Train one epoch; TrainingFailed when the training loss or the parameters are no longer
    finite (naming the first that is not), or when a kernel refuses what training produced (a
    ValueError: "a contains NaN"). NumPy's overflow and invalid-value warnings are kept off the
    terminal: the check after the epoch says what went wrong, once. `progress(done, steps)` is
    told every few mini-batches how many of the epoch's mini-batch steps are done."""
    batches = Batches(dataset.train, epoch, config.seed, config.batch_size, net.dtype)
    if progress is not None:
        steps = len(batches) * method.passes_per_epoch()
        batches.progress = lambda done: progress(done, steps)
    try:
        with np.errstate(all="ignore"):
            stats = method.train_epoch(net, batches, config.seed, epoch)
    except ValueError as error:
        raise TrainingFailed(f"training failed at epoch {epoch}: {error}") from error
    non_finite = first_non_finite(net, method, stats)
    if non_finite is not None:
        raise TrainingFailed(f"non-finite {non_finite} at epoch {epoch}")
    return stats


def train_run(config, dataset, net, method, out=None, callbacks=(), threads=None, resume=False, quiet=True):
    """Train `net` with the bound `method` as `config` says; return (RunSummary, History).

    With `out`, the run is appended to that results file (or, with `resume`, the newest
    unfinished run of the same config in it continues from its checkpoint); `callbacks` are told
    of every epoch after the results file and before the progress bar (shown unless `quiet`).
    Raises TrainingFailed (status `failed`) on non-finite values, a failing callback's own
    exception (status `failed`, its message kept), and KeyboardInterrupt (status `interrupted`)
    on SIGINT/SIGTERM, after recording them.
    """
    history = callbacks_module.History()
    ahead.start(net.kernels_to_compile(config.eval_samples))  # on a fresh install, the long sampling kernels compile alongside
    with thread_limit(threads), frozen_heap(), Interrupts() as interrupts:
        if out is None:
            run = Run(config, dataset, net, method)
            _loop(run, [*callbacks, history, callbacks_module.ProgressBar(quiet)], interrupts)
            return summary(run, None, history), history
        with results.Writer(out) as writer:
            run_writer, first_epoch, best = _open_run(writer, config, net, method, resume, threads)
            earlier = run_writer.metrics_so_far()
            wall_offset = float(earlier["wall_time"][-1]) if len(earlier.get("wall_time", [])) else 0.0
            run = Run(config, dataset, net, method, run_writer.id, first_epoch, best, wall_offset, earlier.get("epoch_time", ()))
            _loop(run, [callbacks_module.ResultsFile(run_writer), *callbacks, history, callbacks_module.ProgressBar(quiet)], interrupts)
            return summary(run, Path(out), history, run_writer.metrics_so_far()), history


def _loop(run, callbacks, interrupts):
    """The epochs of `run`, each recorded by `callbacks` while signals are held."""
    config, dataset, net, method = run.config, run.dataset, run.net, run.method
    started = time.perf_counter()
    try:
        for callback in callbacks:
            callback.on_train_begin(run)
        for epoch in range(run.first_epoch, config.epochs + 1):
            tick = time.perf_counter()
            stats = train_epoch(config, dataset, net, method, epoch, functools.partial(_tell_batches, run, callbacks, epoch))
            epoch_time = time.perf_counter() - tick
            metrics = {"epoch": epoch, "wall_time": run.wall_offset + time.perf_counter() - started, "epoch_time": epoch_time, **stats}
            seconds = {"train": epoch_time}
            metrics.update(evaluate(method.inference_network(net), dataset, config, epoch, seconds, method.task))
            with interrupts.held(), timed(seconds, "record"):
                run.epoch_times.append(epoch_time)
                run.update_best(metrics)
                for callback in callbacks:
                    callback.on_epoch_end(run, epoch, metrics)
                run.epoch = epoch
            run.phase_seconds.append(seconds)
            if run.stop_training:
                break
    except KeyboardInterrupt:
        _end(run, callbacks, "interrupted", f"interrupted with {run.epoch} of {config.epochs} epochs logged")
        raise
    except OSError as error:
        if not _disk_full(error):
            _end(run, callbacks, "failed", str(error) or type(error).__name__)
            raise
        # a full disk: the results file's last complete write is whole, so --resume can continue
        _end(run, callbacks, "interrupted", f"stopped with {run.epoch} of {config.epochs} epochs logged: {error}")
        error.resumable = True
        raise
    except Exception as error:
        _end(run, callbacks, "failed", str(error) or type(error).__name__)
        raise
    with interrupts.held(raise_pending=False):
        _end(run, callbacks, "completed", "")


def _tell_batches(run, callbacks, epoch, done, steps):
    for callback in callbacks:
        callback.on_batch_end(run, epoch, done, steps)


def _disk_full(error):
    """Whether an OSError says the disk (or the quota) is full: a fault that --resume recovers from."""
    return isinstance(error, DiskFull) or error.errno in (errno.ENOSPC, errno.EDQUOT)


def _end(run, callbacks, status, error):
    """Tell every callback the run ended with `status`, even when one of them fails to. When the
    run did not complete, the error that ended it is the one raised; when it did, the first
    callback's error is raised once all were told (the results file, told first, says completed)."""
    run.status, run.error = status, error
    first_error = None
    for callback in callbacks:
        try:
            callback.on_train_end(run, status)
        except Exception as callback_error:  # noqa: BLE001 (the others are told first)
            first_error = first_error or callback_error
    if first_error is not None and status == "completed":
        raise first_error


def summary(run, path, history, logged=None):
    """The RunSummary of a finished run; `logged` is every epoch in its results file (a resumed
    run's earlier ones too), else the epochs of this call (`history`)."""
    logged = history.metrics if logged is None else logged
    stochastic = run.net.stochastic
    key = headline_metrics(run.net, run.method.task)[1]
    return RunSummary(
        run_id=run.run_id,
        path=path,
        status=run.status,
        epochs=run.epoch,
        best_epoch=int(run.best["epoch"]),
        test_error_at_best=float(run.best.get(key, math.nan)),
        test_error_last=float(logged[key][-1]) if len(logged.get(key, [])) else math.nan,
        seconds_per_epoch=callbacks_module.seconds_per_epoch(run.epoch_times),
        test_samples=run.config.eval_samples if stochastic else 1,
        first_epoch_seconds=run.epoch_times[0] if run.epoch_times else math.nan,
        test_metric=key,
    )


def fit(net, method, train, valid, test, *, epochs=10, batch_size=100, seed=0, eval_samples=100, eval_samples_every=10,
        callbacks=(), out=None, name="fit", threads=None, quiet=True):
    """Train `net` with `method` on NumPy arrays; return the run's `History`.

    `train`, `valid` and `test` are `(X, y)` pairs: X float (n, d) features, or uint8 (n, d)
    pixels scaled to [0, 1] by 1/255; y integer class indices (n,). The loop, evaluation protocol
    and random numbers are those of `stochtp run` with the same settings: the method is bound to
    the network with `seed` (unless it is bound to it already), epoch e's mini-batch k draws from
    stream_id(e, k), the best epoch is chosen on validation error, K-sample
    (K = `eval_samples`, every `eval_samples_every` epochs and at the last) for stochastic
    networks. `out=PATH` also appends the run to a results file; `callbacks` (`stochtp.callbacks`)
    are told of every epoch. A ValueError names a bad argument. With straight-through slope
    annealing the network is evaluated at the method's slope: `method.inference_network(net)` is
    the network whose `predict` gives what the history measured.

    >>> import numpy as np, stochtp
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.random((300, 8)), rng.integers(0, 3, 300)
    >>> net = stochtp.Network.from_spec("8-16b-3s", seed=0)
    >>> method = stochtp.methods.get("st", lr=0.01)
    >>> history = stochtp.fit(net, method, train=(X[:200], y[:200]), valid=(X[200:250], y[200:250]),
    ...                       test=(X[250:], y[250:]), epochs=2, batch_size=20, eval_samples=5)
    >>> history.metrics["valid_error"].shape, history.status
    ((2,), 'completed')
    """
    for key, value in {"epochs": epochs, "batch_size": batch_size, "eval_samples": eval_samples, "eval_samples_every": eval_samples_every}.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{key} must be an integer >= 1, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**64:
        raise ValueError(f"seed must be an integer in [0, 2**64), got {seed!r}")
    check_threads(threads)
    check_value("name", name, "fit: name")
    if out is not None:
        results.check_results_path(out)
    if not all(callable(getattr(method, hook, None)) for hook in ("bind", "train_epoch", "inference_network")):
        raise ValueError(f"method must be a stochtp method (stochtp.methods.get(name, ...)), got {type(method).__name__}")
    callbacks = list(callbacks) if isinstance(callbacks, (list, tuple)) else callbacks
    if not (isinstance(callbacks, list) and all(isinstance(callback, callbacks_module.Callback) for callback in callbacks)):
        raise ValueError(f"callbacks must be a list of stochtp.callbacks.Callback objects, got {callbacks!r}")
    dataset = Dataset(
        "arrays", net.layers[0].n_in, net.layers[-1].n_out,
        _split(net, train, "train"), _split(net, valid, "valid"), _split(net, test, "test"),
    )
    if batch_size > len(dataset.train):
        raise ValueError(f"batch_size {batch_size} is larger than train, {len(dataset.train)} examples")
    config = Config(
        name=name, dataset="arrays", network=net.spec, init="given", input_noise=net.input_noise, dtype=net.dtype.name,
        seed=int(seed), epochs=int(epochs), batch_size=int(batch_size), eval_samples=int(eval_samples),
        eval_samples_every=int(eval_samples_every), method={"name": method.name, **method.options},
    )
    check_fit(config, dataset, net, method.task)
    if not method.is_bound_to(net):
        method.bind(net, int(seed))
    _, history = train_run(config, dataset, net, method, out=out, callbacks=callbacks, threads=threads, quiet=quiet)
    return history


def _split(net, pair, what):
    """A `Split` of an (X, y) pair for `net`, or ValueError naming `what`."""
    try:
        x, y = pair
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be an (X, y) pair of arrays, got {type(pair).__name__}") from None
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 2 or x.shape[1] != net.layers[0].n_in:
        raise ValueError(f"{what}: X must have shape (n, {net.layers[0].n_in}), got {x.shape}")
    if x.dtype != np.uint8 and x.dtype.kind not in "iuf":
        raise ValueError(f"{what}: X must hold float features or uint8 pixels, got {x.dtype}")
    if y.ndim != 1 or len(y) != len(x) or (len(y) and y.dtype.kind not in "iu"):
        raise ValueError(f"{what}: y must be integer class indices, one per row of X ({len(x)}), got a {y.dtype} array of shape {y.shape}")
    n_classes = net.layers[-1].n_out
    if len(y) and not (y.min() >= 0 and y.max() < n_classes):
        raise ValueError(f"{what}: class indices must lie in [0, {n_classes}), got values from {y.min()} to {y.max()}")
    if x.dtype == np.uint8:
        return Split(np.ascontiguousarray(x), y.astype(np.int64), PIXEL_SCALE)
    if not np.isfinite(x).all():
        raise ValueError(f"{what}: X holds non-finite values")
    return Split(x, y.astype(np.int64), 1.0)
