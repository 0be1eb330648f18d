"""Callbacks: what the training loop tells about a run, and the built-in listeners.

One small protocol serves `stochtp run` and `stochtp.fit` alike. The loop calls, on every
callback in order:

    on_train_begin(run)                    before the first epoch it trains
    on_batch_end(run, epoch, done, steps)  every few mini-batches (`batching.CHUNK`) of an
                                           epoch: `done` of its `steps` mini-batch steps
    on_epoch_end(run, epoch, metrics)      after each epoch, `metrics` the epoch's record
                                           (the names of the results file's metrics/)
    on_train_end(run, status)              "completed", "failed" or "interrupted"

`run` (`stochtp.train.Run`) exposes the network, the method, the resolved config, the run id,
the best epoch so far, and `stop_training` (set it to end the run after this epoch). A callback
that raises stops the run with status `failed`, its message kept, and what was recorded before
stays recorded (an OSError saying the disk is full leaves it `interrupted`, for `--resume`).
The results file (`ResultsFile`) and the progress bar (`ProgressBar`) are callbacks too; the
results file always hears of an epoch first.

    >>> import numpy as np, stochtp
    >>> class Losses(stochtp.callbacks.Callback):
    ...     def __init__(self):
    ...         self.seen = []
    ...     def on_epoch_end(self, run, epoch, metrics):
    ...         self.seen.append(round(metrics["train_loss"], 3))
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.random((100, 4)), rng.integers(0, 2, 100)
    >>> net = stochtp.Network.from_spec("4-8t-2s", seed=0)
    >>> losses = Losses()
    >>> _ = stochtp.fit(net, stochtp.methods.get("bp", lr=0.01), (X[:60], y[:60]), (X[60:80], y[60:80]),
    ...                 (X[80:], y[80:]), epochs=3, batch_size=10, callbacks=[losses])
    >>> len(losses.seen)
    3
"""
import csv
import math
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import results
from .errors import ConfigError
from .extras import require


class Callback:
    """Base class with hooks that do nothing; override the ones you need.

    >>> import stochtp
    >>> class StopAtHalfError(stochtp.callbacks.Callback):
    ...     # ends the run once the validation error falls below 0.5
    ...     def on_epoch_end(self, run, epoch, metrics):
    ...         run.stop_training = metrics["valid_error"] < 0.5
    >>> StopAtHalfError().on_train_begin(None)  # the hooks it does not override do nothing
    """

    def on_train_begin(self, run):
        """Before the first epoch that this call trains (`run.first_epoch`)."""

    def on_batch_end(self, run, epoch, done, steps):
        """While epoch `epoch` trains, every few mini-batches: `done` of its `steps` mini-batch
        steps are done (a method that goes through the mini-batches twice, as DTP's alternating
        schedule does, has twice as many steps as mini-batches). Not called at the epoch's end."""

    def on_epoch_end(self, run, epoch, metrics):
        """After epoch `epoch`, with its metrics (floats; NaN where not measured this epoch)."""

    def on_train_end(self, run, status):
        """Once, when the run ends; `run.error` holds the message of a failed or interrupted run."""


class History(Callback):
    """The epochs of a run: `metrics` and `diagnostics` as per-epoch NumPy arrays.

    `stochtp.fit` returns one. `metrics["valid_error"]` is the validation error of each epoch
    trained; `diagnostics["inverse_error"]` is epochs x layers where the method gives it.
    `best_epoch`, `status` and `run_id` describe the run; `to_dataframe()` needs pandas.

    >>> history = History()
    >>> history.on_epoch_end(None, 1, {"epoch": 1, "valid_error": 0.25})
    >>> history.metrics["valid_error"]
    array([0.25])
    """

    def __init__(self):
        self._rows = []
        self._diagnostics = []
        self.best_epoch = 0
        self.status = None
        self.run_id = None

    def on_epoch_end(self, run, epoch, metrics):
        self._rows.append(dict(metrics))
        if run is not None:
            self._diagnostics.append({name: np.array(values, dtype=np.float64) for name, values in run.method.diagnostics().items()})
            self.best_epoch, self.run_id = int(run.best["epoch"]), run.run_id

    def on_train_end(self, run, status):
        self.status = status

    @property
    def epochs(self):
        return len(self._rows)

    @property
    def metrics(self):
        """Metric name -> (epochs,) array, in the order epochs were trained."""
        names = dict.fromkeys(name for row in self._rows for name in row)
        return {name: np.array([row.get(name, math.nan) for row in self._rows], dtype=np.int64 if name == "epoch" else np.float64) for name in names}

    @property
    def diagnostics(self):
        """Diagnostic name -> (epochs, layers) array."""
        names = dict.fromkeys(name for row in self._diagnostics for name in row)
        return {name: np.stack([row[name] for row in self._diagnostics]) for name in names}

    def to_dataframe(self):
        """The metrics as a pandas DataFrame indexed by epoch (needs pandas: `pip install 'stochtp[pandas]'`).

        >>> import numpy as np, stochtp
        >>> rng = np.random.default_rng(0)
        >>> splits = [(rng.random((rows, 4)), rng.integers(0, 2, rows)) for rows in (60, 20, 20)]
        >>> history = stochtp.fit(stochtp.Network.from_spec("4-3t-2s"), stochtp.methods.get("bp"), *splits, epochs=2, batch_size=10)
        >>> history.to_dataframe()[["train_loss", "valid_error"]].shape
        (2, 2)
        """
        pandas = require("pandas", "pandas")
        return pandas.DataFrame(self.metrics).set_index("epoch")


class ResultsFile(Callback):
    """Records the run in a results file (docs/results-format.md) through its `results.RunWriter`:
    each epoch's metrics and diagnostics, the parameters of the best epoch, the checkpoint that
    `--resume` reads; at the end the final parameters and the status."""

    def __init__(self, run_writer):
        self.run_writer = run_writer

    def on_epoch_end(self, run, epoch, metrics):
        self.run_writer.append(metrics, run.method.diagnostics(), results.training_columns(run.net.loss_name))
        if run.best_improved:
            self.run_writer.save_params("best", network_arrays(run.net, run.method), attrs={"epoch": epoch})
        self.run_writer.save_checkpoint({"epoch": epoch, "params": layer_state(run.net), "method": run.method.state_dict(), "best": run.best})

    def on_train_end(self, run, status):
        if status == "completed":
            self.run_writer.save_params("params", network_arrays(run.net, run.method))
        self.run_writer.finish(status, run.error)


def network_arrays(net, method):
    """What a results file's params/ and best/ hold: layer_<i>/W, layer_<i>/b and the method's own
    parameters (e.g. inverse_<j>/V, inverse_<j>/c)."""
    arrays = {}
    for i, layer in enumerate(net.layers):
        arrays[f"layer_{i}/W"] = layer.W
        arrays[f"layer_{i}/b"] = layer.b
    arrays.update(method.aux_parameters())
    return arrays


def layer_state(net):
    """The forward parameters as a nested dict for checkpoints: {"layer_0": {"W": ..., "b": ...}, ...}."""
    return {f"layer_{i}": {"W": layer.W, "b": layer.b} for i, layer in enumerate(net.layers)}


def timed_epochs(epoch_times):
    """The epoch times that measure training speed: all but epoch 1's, which pays the
    compilation of the Numba kernels. `epoch_times[i]` is epoch i + 1's time; NaN ones are left out."""
    timed = np.asarray(epoch_times, dtype=np.float64)[1:]
    return timed[np.isfinite(timed)]


def seconds_per_epoch(epoch_times):
    """The training speed a run reports everywhere (progress bar, run summary, report): the
    median of its `timed_epochs`; NaN for a run of one epoch."""
    timed = timed_epochs(epoch_times)
    return float(np.median(timed)) if timed.size else math.nan


def seconds_text(seconds):
    """A time as the bar, the run summary and the report print it: three significant digits."""
    return f"{seconds:.0f}" if seconds >= 100 else f"{seconds:.3g}"


class ProgressBar(Callback):
    """A tqdm bar over a run's mini-batches on a terminal, moved every few mini-batches, and after
    each epoch its status: "ep 3/10 loss 0.2345 valid 0.0456 1.23 s/ep", the training loss and
    1-sample validation error of the epoch, and `seconds_per_epoch` (from epoch 2 on: epoch 1
    compiles). The run's name is cut to what leaves the line within `WIDTH` columns. Silent
    when `quiet` or when `file` (default stderr) is not a TTY."""

    WIDTH = 80
    MIN_BAR = 6
    FORMAT = "{desc} |{bar}| {remaining} left{postfix}"
    TIME_WIDTH = 5  # tqdm's time left, "01:23"; over an hour the bar gives up two columns

    def __init__(self, quiet=False, file=None):
        self.file = sys.stderr if file is None else file
        self.enabled = not quiet and self.file.isatty()
        self.bar = None
        self.name = ""
        self.batches = 1  # mini-batches per epoch: the bar's unit

    def on_train_begin(self, run):
        config = run.config
        self.name, self.batches = config.name, max(len(run.dataset.train) // config.batch_size, 1)
        status = f"ep {run.first_epoch - 1}/{config.epochs}"
        self.bar = tqdm(total=config.epochs * self.batches, initial=(run.first_epoch - 1) * self.batches, desc=self._fitted_name(status), postfix=status,
                        bar_format=self.FORMAT, ncols=self.WIDTH, disable=not self.enabled, leave=True, file=self.file)

    def on_batch_end(self, run, epoch, done, steps):
        if self.enabled:
            self._move_to((epoch - 1) * self.batches + min(done, steps) * self.batches // steps)

    def on_epoch_end(self, run, epoch, metrics):
        if not self.enabled:
            return
        status = self.status(run, epoch, metrics)
        self.bar.set_postfix_str(status, refresh=False)
        self.bar.set_description_str(self._fitted_name(status), refresh=False)
        self._move_to(epoch * self.batches)

    def status(self, run, epoch, metrics):
        """What the bar says after `epoch`: "ep 3/10 loss 0.2345 valid 0.0456 1.23 s/ep"."""
        shown = [f"ep {epoch}/{run.config.epochs}"]
        shown += [f"{label} {metrics[name]:.4f}" for label, name in (("loss", "train_loss"), ("valid", "valid_error"), ("valid", "valid_reconstruction")) if math.isfinite(metrics.get(name, math.nan))]
        if math.isfinite(speed := seconds_per_epoch(run.epoch_times)):
            shown.append(f"{seconds_text(speed)} s/ep")
        return " ".join(shown)

    def _fitted_name(self, status):
        """The run's name, cut (…) so that a bar of MIN_BAR and `status` fit in WIDTH columns."""
        room = self.WIDTH - len(self.FORMAT.format(desc="", bar="", remaining="0" * self.TIME_WIDTH, postfix=f", {status}")) - self.MIN_BAR
        return self.name if len(self.name) <= room else self.name[: max(room - 1, 0)] + "…"

    def _move_to(self, position):
        if position > self.bar.n:
            self.bar.update(position - self.bar.n)

    def on_train_end(self, run, status):
        if self.bar is not None:
            self.bar.close()


class CSVLogger(Callback):
    """Writes each epoch's metrics as a row of a CSV file (header from the first epoch), flushed
    every epoch. `append=True` adds to an existing file (a resumed run) instead of replacing it.

    >>> import numpy as np, stochtp
    >>> rng = np.random.default_rng(0)
    >>> splits = [(rng.random((rows, 4)), rng.integers(0, 2, rows)) for rows in (60, 20, 20)]
    >>> import csv, os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "metrics.csv")
    >>> _ = stochtp.fit(stochtp.Network.from_spec("4-3t-2s"), stochtp.methods.get("bp"), *splits, epochs=2, batch_size=10,
    ...                 callbacks=[stochtp.callbacks.CSVLogger(path)])
    >>> [row["epoch"] for row in csv.DictReader(open(path))]
    ['1', '2']
    """

    def __init__(self, path, append=False):
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise ValueError(f"CSVLogger: no folder {self.path.parent} to write {self.path.name} into")
        self._check_target()
        self.append = append
        self._file = self._writer = None
        self._header_written = False

    def _check_target(self):
        """ValueError where the path is a folder or an HDF5 file (a results file is never written over)."""
        if self.path.is_dir() or results.has_hdf5_signature(self.path):
            raise ValueError(f"CSVLogger: {self.path} is {'a folder' if self.path.is_dir() else 'an HDF5 file (a results file?)'}; it writes a CSV file")

    def on_train_begin(self, run):
        self._check_target()  # again: the run's results file may have been made at this path since
        has_rows = self.append and self.path.exists() and self.path.stat().st_size > 0
        self._file = open(self.path, "a" if self.append else "w", newline="")
        self._header_written = has_rows

    def on_epoch_end(self, run, epoch, metrics):
        if self._writer is None:
            self._writer = csv.DictWriter(self._file, fieldnames=list(metrics), restval="nan")
            if not self._header_written:
                self._writer.writeheader()
        self._writer.writerow({name: _csv_value(value) for name, value in metrics.items()})
        self._file.flush()

    def on_train_end(self, run, status):
        if self._file is not None:
            self._file.close()


def _csv_value(value):
    return repr(float(value)) if isinstance(value, (float, np.floating)) else value


class TensorBoard(Callback):
    """Writes each epoch's metrics (and per-layer diagnostics) as scalars to TensorBoard event
    files in `log_dir`, step = epoch. Needs the optional extra: `pip install 'stochtp[tensorboard]'`.

    >>> import numpy as np, stochtp
    >>> rng = np.random.default_rng(0)
    >>> splits = [(rng.random((rows, 4)), rng.integers(0, 2, rows)) for rows in (60, 20, 20)]
    >>> import os, tempfile
    >>> logs = tempfile.mkdtemp()
    >>> _ = stochtp.fit(stochtp.Network.from_spec("4-3t-2s"), stochtp.methods.get("bp"), *splits, epochs=2, batch_size=10,
    ...                 callbacks=[stochtp.callbacks.TensorBoard(logs)])
    >>> [name.startswith("events.out.tfevents") for name in os.listdir(logs)]
    [True]
    """

    def __init__(self, log_dir):
        self._summary = require("tensorboardX", "tensorboard")
        self.log_dir = str(log_dir)
        self.writer = None

    def on_train_begin(self, run):
        self.writer = self._summary.SummaryWriter(self.log_dir)

    def on_epoch_end(self, run, epoch, metrics):
        for name, value in metrics.items():
            if name != "epoch" and math.isfinite(value):
                self.writer.add_scalar(name, float(value), epoch)
        for name, values in run.method.diagnostics().items():
            for layer, value in enumerate(values):
                if math.isfinite(value):
                    self.writer.add_scalar(f"{name}/layer_{layer}", float(value), epoch)
        self.writer.flush()

    def on_train_end(self, run, status):
        if self.writer is not None:
            self.writer.close()


class EarlyStopping(Callback):
    """Ends the run (status `completed`) once `metric` has not improved by more than `min_delta`
    for `patience` measurements of it (lower is better). The default metric is the one the run
    selects its best epoch on: the K-sample validation error for stochastic networks, measured
    every `eval_samples_every` epochs (epochs where a metric is NaN, not measured, do not count).
    The run ends on an epoch that measured its selection metric, so that its last epoch has every
    error and its best epoch is chosen as in a full run.

    >>> import numpy as np, stochtp
    >>> rng = np.random.default_rng(0)
    >>> splits = [(rng.random((rows, 4)), rng.integers(0, 2, rows)) for rows in (60, 20, 20)]
    >>> stop = stochtp.callbacks.EarlyStopping("valid_error", patience=1, min_delta=1.0)  # only a drop of more than 1 would count
    >>> history = stochtp.fit(stochtp.Network.from_spec("4-3t-2s"), stochtp.methods.get("bp"), *splits, epochs=50,
    ...                       batch_size=10, callbacks=[stop])
    >>> history.epochs, history.status
    (2, 'completed')
    """

    def __init__(self, metric=None, patience=10, min_delta=0.0):
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ConfigError(f"EarlyStopping: patience must be an integer >= 1, got {patience!r}")
        if not (isinstance(min_delta, (int, float)) and math.isfinite(min_delta) and min_delta >= 0):
            raise ConfigError(f"EarlyStopping: min_delta must be a finite number >= 0, got {min_delta!r}")
        self.metric, self.patience, self.min_delta = metric, patience, float(min_delta)
        self.watched = metric
        self.best = math.inf
        self.waited = 0
        self.stopped_epoch = None

    def on_train_begin(self, run):
        self.watched = self.metric or run.selection
        self.best, self.waited, self.stopped_epoch = math.inf, 0, None

    def on_epoch_end(self, run, epoch, metrics):
        if self.watched not in metrics:
            raise ConfigError(f"EarlyStopping: no metric {self.watched!r}; the run logs {', '.join(metrics)}")
        value = metrics[self.watched]
        if not math.isnan(value):
            improved = value < self.best - self.min_delta
            self.best, self.waited = (value, 0) if improved else (self.best, self.waited + 1)
        if self.waited >= self.patience and not math.isnan(metrics[run.selection]):
            run.stop_training = True
            self.stopped_epoch = epoch
