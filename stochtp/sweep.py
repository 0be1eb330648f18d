"""Sweeps (docs/cli.md): a grid of runs, trained by local worker processes or on a Dask
cluster, collected into one results file.

A sweep file is a config (it may start from `preset = "NAME"`) plus a `[sweep]` table whose
keys are config keys and whose values are lists; the runs are the cartesian product::

    preset = "paper-stochastic-dtp"
    epochs = 100

    [sweep]
    seed = [0, 1, 2]
    method.lr_f = [1e-3, 3e-3]     # dotted keys reach into [method] and [data]

A `[search]` table (see `stochtp.search`) asks for a random search instead of, or beside, the
grid: trial k's values of the searched keys, from the search's own seed, joined with every
combination of the `[sweep]` lists (seeds, say); the runs are the product, trials first. Each
trial's runs carry the run attribute `search` (JSON: the search's seed, the trial's index and its
values), which `stochtp report --rank` reads; the config hash is the config's own, so a completed
trial is skipped like any completed run, and a file whose `trials` was raised runs only the new ones.

`preset` may be swept too (`preset = ["paper-stochastic-dtp", "paper-stochastic-st"]`); each
run is then named after its preset (`<name>-<preset>` when the file sets a `name`), so that
reports tell them apart. Otherwise a run's name is the file's `name`, else its preset's, else
the sweep file's stem.

The record path: every run is trained by a worker, on one thread (Numba and BLAS), into a
results file of its own in a temporary folder of the worker's machine, and comes back to the
client as a run record (`results.read_record`: plain dicts of NumPy arrays). The client is the
only process that writes the sweep's results file: it adds each record as it arrives
(`Writer.add_record`). Local worker processes and Dask workers share this path, so no two
processes ever write one HDF5 file and a Dask cluster needs no shared filesystem. Local
workers are started with the "spawn" method: nothing is forked from a process that holds a
Writer.

Runs whose config hash is already `completed` in the results file are skipped, so running a
sweep again after it was stopped trains only the missing runs. A run that fails (non-finite
values, or any exception in its worker) is recorded as `failed` with the message, and the
sweep goes on; so does a run stopped by a signal to its worker, recorded as `interrupted`.
A local worker process that dies (the out-of-memory killer's SIGKILL, a crash) breaks its pool:
the run it was training is recorded as `failed`, and the pool's other runs start again in a new
pool (those in progress from their first epoch).
SIGINT or SIGTERM to the client stops the sweep: runs not started are cancelled, also those a
local worker has already been handed (it starts no run once the client stops), local workers are
sent SIGTERM, and the runs they were training are recorded as `interrupted` with the epochs they
logged (a Dask cluster's runs in progress are cancelled). The client writes every record whole,
signal or not.
"""
import concurrent.futures
import copy
import itertools
import json
import multiprocessing
import multiprocessing.connection
import os
import signal
import tempfile
import time
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from . import config as config_module
from . import callbacks, data, experiment, extras, report, results, search, train
from .process import configure_process
from .errors import ConfigError, DataError, StochtpError, TrainingFailed

SECTIONS = search.SECTIONS  # the config tables a dotted sweep key can reach into
DASK_CONNECT_TIMEOUT_S = 30
SHOWN_REPEATS = 5  # combinations named on the sweep's line about repeated configs; the rest are counted


@dataclass(frozen=True)
class PlannedRun:
    """One run of a sweep: its resolved config, the swept (and searched) values that made it,
    and the run attributes the client adds to its record (a search trial's)."""

    config: config_module.Config
    label: str
    attrs: dict = field(default_factory=dict)


@dataclass
class SweepSummary:
    """What a sweep did: planned runs, those skipped as already completed, and the outcome of the rest."""

    out: Path
    planned: int
    skipped: int
    completed: list = field(default_factory=list)  # run ids in the results file
    failed: list = field(default_factory=list)


# ----------------------------------------------------------------------------- expansion


def _axes(grid, source):
    """The [sweep] table as (dotted key, list of values) pairs, in the file's order."""
    axes = []
    for key, values in grid.items():
        if key in SECTIONS and isinstance(values, dict):
            axes += [(f"{key}.{option}", option_values) for option, option_values in values.items()]
        else:
            axes.append((key, values))
    for key, values in axes:
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{source}: [sweep] key {key!r} must be a non-empty list of values, got {values!r}")
    return axes


def _run_table(base, assignment, path):
    """The config table of one combination: the file's keys with the swept values put in,
    and the run's name (see the module docstring)."""
    table = copy.deepcopy(base)
    for key, value in assignment.items():
        section, _, option = key.partition(".")
        if option:
            if not isinstance(table.get(section, {}), dict):
                raise ConfigError(f"{path}: [sweep] key {key!r}: {section!r} is not a table")
            table[section] = {**table.get(section, {}), option: value}
        else:
            table[key] = value
    if "preset" in assignment and "name" not in assignment:
        table["name"] = f"{base['name']}-{assignment['preset']}" if "name" in base else assignment["preset"]
    elif "name" not in table and "preset" not in table:
        table["name"] = path.stem
    return table


def _trials(table, path, axes):
    """(values, run attributes) of every trial of the file's [search] table; one empty trial without one."""
    if "search" not in table:
        return [({}, {})]
    plan = search.parse(table.pop("search"), path, [key for key, _ in axes])
    return [(plan.values(trial), {search.ATTRIBUTE: plan.attribute(trial)}) for trial in range(plan.trials)]


def _label(assignment, attrs):
    trial = search.trial_of(attrs)
    prefix = [] if trial is None else [f"trial={trial[1]}"]
    return " ".join(prefix + [f"{key}={value}" for key, value in assignment.items()])


@dataclass(frozen=True)
class DataShape:
    """What `train.check_fit` reads of a dataset: its features and classes, and its splits'
    sizes (as ranges, which `len` reads as it reads a split)."""

    n_features: int
    n_classes: int
    train: range
    valid: range
    test: range


def data_shape(run_config, data_dir, shapes):
    """The DataShape of the run's dataset and data options, loaded once per sweep (`shapes` keeps
    them); None for a file dataset absent here (a Dask cluster's workers have their own data)."""
    key = (run_config.dataset, json.dumps(run_config.data, sort_keys=True))
    if key not in shapes:
        try:
            dataset = data.load(run_config.dataset, data_dir, download=False, **run_config.data)
        except DataError:
            shapes[key] = None
        else:
            shapes[key] = DataShape(dataset.n_features, dataset.n_classes, *(range(len(getattr(dataset, name))) for name in ("train", "valid", "test")))
    return shapes[key]


def expand(path, data_dir=None):
    """The runs of the sweep file at `path`, in grid order (trials first, then the last [sweep]
    key varies fastest), each config once. Every config is checked here, method options, the
    method's fit to the network and the network's fit to its data (from `data_dir`, as present
    here) included, so that a typo stops the sweep before any run starts or anything is written."""
    return plan(path, data_dir)[0]


def plan(path, data_dir=None):
    """(`expand`'s runs, the labels of the combinations left out because their config is one an
    earlier combination already has): two search trials whose values coincide once rounded to
    `search.SIGNIFICANT_DIGITS`, or a value listed twice in [sweep], make one run."""
    path = Path(path)
    table = config_module.read_toml(path)
    grid = table.pop("sweep", None)
    searched_only = grid is None and "search" in table
    if not searched_only and (not isinstance(grid, dict) or not grid):
        raise ConfigError(f"{path}: a sweep file needs a [sweep] table of config keys with lists of values, or a [search] table")
    axes = [] if searched_only else _axes(grid, path)
    trials = _trials(table, path, axes)
    planned, repeats, seen, shapes = [], [], set(), {}
    for (searched, attrs), values in itertools.product(trials, itertools.product(*(values for _, values in axes))):
        assignment = {**searched, **dict(zip((key for key, _ in axes), values))}
        run_config = config_module.from_dict(_run_table(table, assignment, path), str(path))
        try:
            net, method = experiment.build_model(run_config)
            if (shape := data_shape(run_config, data_dir, shapes)) is not None:
                train.check_fit(run_config, shape, net, method.task)
        except ConfigError as error:
            raise ConfigError(f"{path}: run {_label(assignment, attrs) or run_config.name}: {error}") from None
        if run_config.hash in seen:
            repeats.append(_label(assignment, attrs) or run_config.name)
        else:
            seen.add(run_config.hash)
            planned.append(PlannedRun(run_config, _label(assignment, attrs), attrs))
    return planned, repeats


# ------------------------------------------------------------------------------- workers


class RunNotStarted(StochtpError):
    """A worker was told to stop (SIGINT or SIGTERM while idle, or its client stopping) before this run started."""


_stop_requested = False  # set in a worker process by a signal that arrives between runs
STOP_FILE = "stop"  # in a local pool's task folder: the client is stopping, start no run


def train_record(run_config, data_dir=None, tasks=None):
    """A worker's task: train `run_config` on one thread into a temporary results file and
    return the run's record. A run that fails in training comes back as the record of a
    failed run (its message and epochs included), one stopped by a signal as an interrupted
    run; any other exception goes to the client.

    `tasks` is a local pool's folder (`LocalWorkers`): the client puts STOP_FILE there when it
    stops; the worker writes there, in a file named by its pid, the config hash of the run it
    starts, so that the client knows which run a worker that died was training, and trains in
    a temporary folder there, which the client removes with the task folder whatever happens.
    The worker takes the stochtp command's process tunings (`process.configure_process`), before
    its threads start.
    """
    configure_process()
    tasks = None if tasks is None else Path(tasks)
    with tempfile.TemporaryDirectory(prefix="stochtp-sweep-", dir=tasks) as folder, train.thread_limit(1):
        out = Path(folder) / "run.h5"
        try:
            with train.Interrupts():  # from here on a stop signal ends this task: its run, or its start
                if _stop_requested or (tasks is not None and (tasks / STOP_FILE).exists()):
                    raise KeyboardInterrupt
                if tasks is not None:
                    (tasks / str(os.getpid())).write_text(run_config.hash)
                experiment.run(run_config, out=out, data_dir=data_dir, threads=1, quiet=True)
        except (TrainingFailed, KeyboardInterrupt):
            pass  # recorded in the file as a failed or interrupted run, which is what the client gets
        runs = results.open(out).runs if out.exists() else []
        if not runs:
            raise RunNotStarted(f"run {run_config.name} not started: its worker was told to stop")
        return results.read_record(out, runs[0].id)


def _stop_between_runs():
    """In a worker process, SIGINT and SIGTERM between runs mean: start no more runs. During a
    run, training's own handler ends it as interrupted, and its record goes back to the client."""

    def request_stop(signum, frame):
        global _stop_requested
        _stop_requested = True

    for signum in train.Interrupts.SIGNALS:
        signal.signal(signum, request_stop)


class _RecordingSpawnContext:
    """Python's "spawn" multiprocessing context, keeping the processes it starts (the pool's
    workers, which `LocalWorkers.stop` signals: no other process of the caller's)."""

    def __init__(self):
        self._context = multiprocessing.get_context("spawn")
        self.processes = []

    def __getattr__(self, name):
        return getattr(self._context, name)

    def Process(self, *args, **kwargs):
        process = self._context.Process(*args, **kwargs)
        self.processes.append(process)
        return process


def _signal_name(signum):
    """SIGKILL for 9; "signal 40" for one the signal module does not name (real-time signals)."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _exit_code(process, timeout=5.0):
    """The exit code of a process that has ended. The pool's own thread may be reaping it at this
    very moment, and until it has, `exitcode` reads None: wait for the code (None if it never comes)."""
    deadline = time.monotonic() + timeout
    while process.exitcode is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return process.exitcode


class LocalWorkers:
    """`workers` worker processes on this machine (spawned, not forked), and a task folder they
    share with the client (see `train_record`)."""

    def __init__(self, workers):
        self.workers = workers
        self.tasks = tempfile.TemporaryDirectory(prefix="stochtp-workers-")
        self.pool = self._new_pool()

    def _new_pool(self):
        self.context = _RecordingSpawnContext()
        return concurrent.futures.ProcessPoolExecutor(max_workers=self.workers, mp_context=self.context, initializer=_stop_between_runs)

    def submit(self, run_config, data_dir):
        return self.pool.submit(train_record, run_config, data_dir, self.tasks.name)

    def as_completed(self, futures):
        return concurrent.futures.as_completed(futures)

    @staticmethod
    def broke(future):
        """Whether a finished task was lost because a worker process of its pool died."""
        return isinstance(future.exception(), BrokenProcessPool)

    def runs_of_dead_workers(self):
        """Config hash -> how its worker died, for the runs whose worker process a signal ended
        (SIGKILL from the out-of-memory killer, SIGSEGV). Read as soon as the pool is found
        broken: the pool then sends SIGTERM to the other workers, which end their runs instead
        of dying from it."""
        ended = multiprocessing.connection.wait([process.sentinel for process in self.context.processes], timeout=0)
        dead = {}
        for process in self.context.processes:
            marker = self._marker(process)
            if process.sentinel in ended and marker.exists():
                code = _exit_code(process)
                if code is not None and code < 0:
                    dead[marker.read_text()] = f"its worker process was killed by {_signal_name(-code)}"
        return dead

    def _marker(self, process):
        """The file naming the config hash of the last run `process` started."""
        return Path(self.tasks.name) / str(process.pid)

    def restart(self):
        """A new pool in place of a broken one, whose surviving workers are killed: their pool
        no longer reads what they would hand back, so they cannot end on their own. (What they
        leave in their temporary folders goes with the task folder, at `close`.)"""
        for process in self.context.processes:
            if process.is_alive():
                process.kill()
        self.pool.shutdown(wait=True, cancel_futures=True)
        for process in self.context.processes:
            self._marker(process).unlink(missing_ok=True)  # a new worker may get an old pid
        self.pool = self._new_pool()

    def stop(self, futures):
        """Cancel the runs not started (also those a worker already holds: it finds the stop
        file); SIGTERM ends those in progress as interrupted."""
        (Path(self.tasks.name) / STOP_FILE).touch()
        for future in futures:
            future.cancel()
        for worker in self.context.processes:
            if worker.is_alive():
                worker.terminate()

    def close(self):
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.tasks.cleanup()


class DaskWorkers:
    """The workers of a running Dask distributed cluster, reached through its scheduler."""

    def __init__(self, address):
        self.distributed = extras.require("distributed", "distributed")
        try:
            self.client = self.distributed.Client(address, timeout=DASK_CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError, ValueError) as error:
            raise StochtpError(f"cannot reach the Dask scheduler at {address}: {error}") from None

    def submit(self, run_config, data_dir):
        return self.client.submit(train_record, run_config, data_dir, pure=False)

    def as_completed(self, futures):
        return self.distributed.as_completed(futures)

    @staticmethod
    def broke(future):
        """A cluster's scheduler re-runs the tasks of a lost worker itself."""
        return False

    def stop(self, futures):
        """Cancel every run not finished (a cluster's workers are not ours to signal)."""
        self.client.cancel(list(futures))

    def close(self):
        self.client.close()


# --------------------------------------------------------------------------------- sweep


def default_out(path):
    return Path("results") / f"{Path(path).stem}.h5"


def _store_failure(writer, planned_run, message):
    """Write a failed run of the planned run's config carrying `message`. Returns (run id, status, detail)."""
    run_writer = train.start_run(writer, planned_run.config, threads=1, **planned_run.attrs)
    run_writer.finish("failed", message)
    return run_writer.id, "failed", message


def _store(writer, planned_run, future):
    """Write the run a finished task stands for: its record, or, when the task raised, a
    failed run of its config carrying the exception's message. Returns (run id, status, detail)."""
    try:
        record = future.result()
    except Exception as error:  # raised in the worker
        return _store_failure(writer, planned_run, f"{type(error).__name__}: {error}")
    record["attrs"].update(planned_run.attrs)
    status = record["attrs"]["status"]
    if status != "completed":
        return writer.add_record(record), status, record["attrs"].get("error", "")
    result = report.outcome(record["metrics"])
    seconds = callbacks.seconds_per_epoch(record["metrics"]["epoch_time"])
    detail = f"{result.metric} {result.at_best:.4f} at best epoch {result.best_epoch}, last {result.last:.4f}, {callbacks.seconds_text(seconds)} s/epoch"
    return writer.add_record(record), status, detail


def _fetch_data(planned_runs, data_dir):
    """Download (or check) once the file datasets `planned_runs` read, e.g. MNIST: a missing one
    fails the sweep before any worker starts or any file is written."""
    for name in sorted({item.config.dataset for item in planned_runs}):
        if isinstance(data.DATASETS[name], data.FileDataset):
            data.fetch(name, data_dir)


def run(path, out=None, workers=None, scheduler=None, data_dir=None, say=print):
    """Run the sweep file at `path` into the results file `out` (default results/<stem>.h5) on
    `workers` local processes (default: one per core) or, given a `scheduler` address, on that
    Dask cluster; `say` gets the progress lines (None: quiet). Returns a SweepSummary."""
    say = say or (lambda line: None)
    if workers is not None and scheduler is not None:
        raise ConfigError("give --workers or --scheduler, not both")
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    planned, repeats = plan(path, data_dir)
    if out is not None:
        results.check_results_path(out)  # before Path drops a trailing slash
    out = Path(out) if out is not None else default_out(path)
    if scheduler is None:  # local workers share this machine's data folder: complete it once, before the results file is made
        done = results.completed_hashes(out) if os.path.isfile(out) else set()
        _fetch_data([item for item in planned if item.config.hash not in done], data_dir)
    with results.Writer(out) as writer:
        completed_before = writer.completed_hashes()
        todo = [item for item in planned if item.config.hash not in completed_before]
        summary = SweepSummary(out, len(planned), len(planned) - len(todo))
        say(f"sweep {path}: {summary.planned} runs, {summary.skipped} already completed in {out}, {len(todo)} to run")
        if repeats:
            shown = "; ".join(repeats[:SHOWN_REPEATS]) + (f"; and {len(repeats) - SHOWN_REPEATS} more" if len(repeats) > SHOWN_REPEATS else "")
            say(f"  {len(repeats)} more combination(s) repeat an earlier run's config and make no run of their own: {shown}")
        if not todo:
            return summary
        executor = DaskWorkers(scheduler) if scheduler is not None else LocalWorkers(min(workers or os.cpu_count() or 1, len(todo)))
        futures, stored = {}, set()  # the current pool's tasks -> planned runs; the tasks whose run is in the file

        def note(item, outcome):
            run_id, status, detail = outcome
            (summary.completed if status == "completed" else summary.failed).append(run_id)
            say(f"[{len(summary.completed) + len(summary.failed)}/{len(todo)}] {status}: {item.config.name} {item.label} -> run {run_id}: {detail}")

        def store(future):
            note(futures[future], _store(writer, futures[future], future))
            stored.add(future)

        def after_a_worker_died(restarts_left):
            """Record the run of the worker that died as failed (and all of them once `restarts_left`
            is spent), store the tasks that had finished before, return the others to run again."""
            dead = executor.runs_of_dead_workers()
            for future in futures:
                if future not in stored and future.done() and not executor.broke(future):
                    store(future)
            again = []
            for item in [futures[future] for future in futures if future not in stored]:
                if item.config.hash in dead or not restarts_left:
                    note(item, _store_failure(writer, item, dead.get(item.config.hash, "worker processes kept dying")))
                else:
                    again.append(item)
            return again

        with train.Interrupts() as interrupts:
            try:
                waiting, restarts_left = todo, len(todo)
                while waiting:
                    futures = {executor.submit(item.config, data_dir): item for item in waiting}
                    waiting = []
                    for future in executor.as_completed(list(futures)):
                        with interrupts.held():  # a record is written whole
                            if executor.broke(future):
                                waiting = after_a_worker_died(restarts_left)
                                restarts_left -= 1
                                executor.restart()
                                break
                            store(future)
            except KeyboardInterrupt:
                executor.stop([future for future in futures if future not in stored])
                stopping = [future for future in futures if future not in stored and not future.cancelled()]
                for future in executor.as_completed(stopping):
                    if not future.cancelled() and not isinstance(future.exception(), (RunNotStarted, BrokenProcessPool)):
                        with interrupts.held(raise_pending=False):
                            store(future)
                raise
            finally:
                executor.close()
    return summary
