"""The results file: one HDF5 file holding many runs (design section 10, format version 1).

Layout, readable by any HDF5 tool::

    /                       attrs: format = "stochtp-results", format_version = 1
    /runs/<run_id>/         attrs: name, method, dataset, network, seed, status, error,
                            started_at, finished_at, config, config_hash and the provenance
                            (stochtp_version, git_commit, git_dirty, python_version,
                            numpy_version, numba_version, h5py_version, platform, num_threads)
        metrics/<name>      1-D, one entry per logged epoch (int64 or float64)
        diagnostics/<name>  2-D float64, epochs x layers
        params/             final parameters, e.g. layer_0/W, layer_0/b, inverse_1/V, inverse_1/c
        best/               parameters at the best validation epoch; attrs such as epoch
        checkpoint/         what --resume needs: a nested dict as groups and datasets (in
                            keys, '%' '/' and a lone '.' are written %25 %2F %2E)

Run ids are ``<UTC time>Z-<6 hex digits>`` (``20261126T201500.123456Z-3f9a1c``), so sorting
them sorts runs by creation; ``finished_at`` is "" until the run finishes. Every metric and
diagnostic dataset of a run has one row per appended epoch: a value left out of an epoch is
written as NaN, and a metric first given at a later epoch gets NaN for the epochs before. A
metric whose values are all integers (epoch) is stored as int64, any other as float64.

Crash safety and concurrency
----------------------------
* The HDF5 file is open only for the few milliseconds of each write (``start_run``,
  ``append``, ``save_params``, ``save_checkpoint``, ``finish``, ``add_record``): open,
  write, close. Between writes nothing of the file lives in memory, so a writer killed at
  any moment between two writes (SIGKILL included; training spends nearly all its time
  there) leaves a complete, valid file with every epoch appended so far and the run's
  status still "running". Files are created with the earliest HDF5 format bounds, whose
  superblock carries no "open for writing" flag, so such a file needs no ``h5clear``
  afterwards. Only a kill in the middle of a write can lose that write; new files are
  created under a temporary name and renamed into place, so a half-created file is never
  seen.
* A Writer holds an exclusive ``fcntl.flock`` on ``<file>.lock`` (holding its pid) for its
  whole life. A second Writer on the same file fails at once with ResultsError, before the
  results file is touched; the operating system drops the lock when its holder dies, so a
  killed writer never blocks the next one. The lock file is removed when a Writer closes.
* HDF5's own file locking is switched off (``locking=False``): our lock already excludes a
  second writer, and HDF5's would block readers while a writer has the file open.
* Readers (``open``) read all run attributes and metrics in one short pass and close the file
  again; parameters and checkpoints are read, again briefly, when first asked for. A pass
  that meets a file in the middle of a write fails or finds columns of unequal length: it is
  retried a few times, and only rows present in every column are returned.
* HDF5 SWMR is not used: it forbids creating groups and attributes while writing, which
  every new run and every status change needs.
"""

import dataclasses
import errno
import fcntl
import hashlib
import importlib
import importlib.metadata
import io
import json
import os
import platform
import re
import secrets
import subprocess
import time
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone

import h5py
import numpy as np

from stochtp.errors import ConfigError, ResultsError

FORMAT = "stochtp-results"
FORMAT_VERSION = 1
FINAL_STATUSES = ("completed", "failed", "interrupted")
PARAMETER_GROUPS = ("params", "best")

_RUN_SUBGROUPS = ("metrics", "diagnostics", "params", "best", "checkpoint")
_RUN_ID_TIME_FORMAT = "%Y%m%dT%H%M%S.%fZ"
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_METRIC_CHUNK_ROWS = 256
_DIAGNOSTIC_CHUNK_ROWS = 64
_READ_ATTEMPTS = 6
_FIRST_RETRY_DELAY_S = 0.02
# Attribute marking checkpoint values that HDF5 cannot hold as they are: "none" for None,
# "int" for a Python integer beyond 64 bits (stored as its decimal string).
_VALUE_KIND_ATTR = "stochtp_value_kind"
_INT64 = np.iinfo(np.int64)
_ESCAPED_CHARACTERS = {"25": "%", "2F": "/", "2E": "."}


# ----------------------------------------------------------------------------- provenance


def provenance(num_threads):
    """What produced a run: versions, platform, git commit, thread count (run attributes)."""
    git_commit, git_dirty = _git_provenance(os.path.dirname(os.path.abspath(__file__)))
    return {
        "stochtp_version": _stochtp_version(),
        "git_commit": git_commit,
        "git_dirty": git_dirty,
        "python_version": platform.python_version(),
        "numpy_version": np.__version__,
        "numba_version": _installed_version("numba"),
        "h5py_version": h5py.__version__,
        "platform": platform.platform(),
        "num_threads": int(num_threads),
    }


def _stochtp_version():
    """`stochtp.__version__`, imported only now so that this module does not depend on it."""
    try:
        return str(importlib.import_module("stochtp").__version__)
    except (ImportError, AttributeError):
        return "unknown"


def _installed_version(distribution):
    """Version of an installed distribution, read from its metadata without importing it."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _git_provenance(package_dir):
    """(commit, dirty) of the git checkout that holds `package_dir`, or ("unknown", False).

    The package directory must itself be tracked, so that an installed copy that merely
    sits inside some other repository (a virtualenv in a project) is not credited to it.
    """

    def git(*args):
        result = subprocess.run(
            ["git", "-C", package_dir, *args], capture_output=True, text=True, timeout=10
        )
        if result.returncode != 0:
            raise subprocess.SubprocessError(result.stderr)
        return result.stdout.strip()

    try:
        if not git("ls-files", "--", "."):
            return "unknown", False
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return "unknown", False
    return commit, dirty


# ------------------------------------------------------------------- ids, times, config


def _utc_now():
    return datetime.now(timezone.utc)


def _iso_time(moment):
    """ISO 8601 in UTC with a Z, to the millisecond: 2026-11-26T20:15:00.123Z."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _new_run_id(latest_id):
    """A fresh run id that sorts after `latest_id` even if the clock went back."""
    moment = _utc_now()
    latest_moment = _run_id_time(latest_id) if latest_id is not None else None
    if latest_moment is not None and moment <= latest_moment:
        moment = latest_moment + timedelta(microseconds=1)
    return f"{moment.strftime(_RUN_ID_TIME_FORMAT)}-{secrets.token_hex(3)}"


def _run_id_time(run_id):
    """The creation time in a run id, or None for a group name that is not one of our ids."""
    try:
        moment = datetime.strptime(run_id.split("-")[0], _RUN_ID_TIME_FORMAT)
    except ValueError:
        return None
    return moment.replace(tzinfo=timezone.utc)


def _config_json(config):
    """The config as JSON with sorted keys: the text stored and hashed for a run."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    if not isinstance(config, Mapping):
        raise ConfigError(f"a run's config must be a dict, not {type(config).__name__}")
    try:
        return json.dumps(config, sort_keys=True, default=_json_value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"the run's config cannot be stored as JSON: {exc}") from None


def _json_value(value):
    """JSON form of the non-JSON values a resolved config may hold."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"a {type(value).__name__} is not JSON-serialisable")


def _attr_value(key, value):
    """A run attribute as a plain str / bool / int / float."""
    if isinstance(value, np.generic):
        value = value.item()
    if not isinstance(value, (str, bool, int, float)):
        raise ValueError(
            f"run attribute {key!r} must be a string, number or bool, not {type(value).__name__}"
        )
    return value


def _python_attrs(attrs):
    """HDF5 attributes as a dict of Python values (NumPy scalars unwrapped)."""
    return {
        key: value.item() if isinstance(value, np.generic) else value
        for key, value in attrs.items()
    }


# ------------------------------------------------------------------ opening and checking


def _check_name(name, what):
    """An HDF5 link name we create: non-empty, without '/', not '.'."""
    if not isinstance(name, str) or not name or "/" in name or name == ".":
        raise ValueError(f"{what} {name!r} is not a valid name (a non-empty string without '/')")


def _has_hdf5_signature(path):
    """Whether the file starts with the HDF5 signature at 0, 512, 1024, 2048... (user block)."""
    try:
        with io.open(path, "rb") as raw:
            offset = 0
            while True:
                raw.seek(offset)
                head = raw.read(len(_HDF5_SIGNATURE))
                if len(head) < len(_HDF5_SIGNATURE):
                    return False
                if head == _HDF5_SIGNATURE:
                    return True
                offset = 512 if offset == 0 else offset * 2
    except OSError:
        return False


def _check_format(h5file, path):
    """Raise ResultsError unless the open file is a stochtp results file this code can read."""
    file_format = h5file.attrs.get("format")
    if isinstance(file_format, bytes):
        file_format = file_format.decode(errors="replace")
    if file_format is None:
        raise ResultsError(f"{path} is not a stochtp results file (it has no 'format' attribute)")
    if file_format != FORMAT:
        raise ResultsError(
            f"{path} is not a stochtp results file (its format is {file_format!r}, not {FORMAT!r})"
        )
    version = h5file.attrs.get("format_version")
    if not isinstance(version, (int, np.integer)) or version < 1:
        raise ResultsError(f"{path} has an invalid format_version {version!r}")
    if version > FORMAT_VERSION:
        raise ResultsError(
            f"{path} is in stochtp results format version {int(version)}, but this stochtp "
            f"only knows versions up to {FORMAT_VERSION}: upgrade stochtp to use it"
        )


def _open_checked(path, mode):
    """Open a stochtp results file without HDF5 locking and check its format.

    Raises ResultsError for a missing file, a file that is not HDF5, or one that is not a
    results file of a known version; other HDF5 failures come out as OSError.
    """
    if not os.path.exists(path):
        raise ResultsError(f"there is no results file at {path}")
    try:
        h5file = h5py.File(path, mode, locking=False)
    except OSError:
        if not _has_hdf5_signature(path):
            raise ResultsError(
                f"{path} is not a stochtp results file (it is not an HDF5 file)"
            ) from None
        raise
    try:
        _check_format(h5file, path)
    except BaseException:
        h5file.close()
        raise
    return h5file


def _read_with_retries(path, read):
    """`read(h5file)` in a short read-only pass, retried while a writer may be mid-write."""
    failure = None
    for attempt in range(_READ_ATTEMPTS):
        if attempt:
            time.sleep(_FIRST_RETRY_DELAY_S * 2 ** (attempt - 1))
        try:
            with _open_checked(path, "r") as h5file:
                return read(h5file)
        except (OSError, KeyError, RuntimeError, ValueError) as exc:
            failure = exc
    raise ResultsError(f"cannot read {path}: {failure}")


def _create_results_file(path):
    """Create an empty results file: written under a temporary name, then renamed into place."""
    temporary = f"{path}.{os.getpid()}.tmp"
    with h5py.File(temporary, "w", libver="earliest", locking=False) as h5file:
        h5file.attrs["format"] = FORMAT
        h5file.attrs["format_version"] = FORMAT_VERSION
        h5file.create_group("runs")
    os.replace(temporary, path)


# --------------------------------------------------------------------------- writer lock


class _WriterLock:
    """Exclusive advisory lock on `<results file>.lock`, which holds the owner's pid."""

    def __init__(self, results_path):
        self.path = results_path + ".lock"
        while True:
            try:
                descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise ResultsError(
                    f"cannot create the lock file {self.path}: {exc.strerror}"
                ) from None
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip()
                os.close(descriptor)
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise ResultsError(f"cannot lock {self.path}: {exc.strerror}") from None
                by_whom = "another process" + (f" (pid {holder})" if holder.isdigit() else "")
                raise ResultsError(
                    f"{results_path} is being written by {by_whom}; wait for it to finish "
                    "or write to another file"
                ) from None
            if self._is_current_lock_file(descriptor):
                break
            # The previous owner removed this lock file after we opened it: lock the new one.
            os.close(descriptor)
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        self._descriptor = descriptor

    def _is_current_lock_file(self, descriptor):
        try:
            on_disk = os.stat(self.path)
        except FileNotFoundError:
            return False
        held = os.fstat(descriptor)
        return (on_disk.st_dev, on_disk.st_ino) == (held.st_dev, held.st_ino)

    @property
    def held(self):
        return self._descriptor is not None

    def release(self):
        """Remove the lock file while still holding it, then let go (idempotent)."""
        if self._descriptor is None:
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.close(self._descriptor)
        self._descriptor = None


def is_being_written(path):
    """Whether a Writer on this machine holds the results file at `path` now: its lock file
    exists and names a live process (a killed writer leaves one naming a dead pid)."""
    try:
        with io.open(os.path.realpath(os.fspath(path)) + ".lock") as lock_file:
            holder = lock_file.read().strip()
    except FileNotFoundError:
        return False
    if not holder.isdigit():  # a Writer that has not yet written its pid
        return True
    try:
        os.kill(int(holder), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


# --------------------------------------------------------------------------------- writer


class Writer:
    """Appends runs to a results file; one Writer per file at a time (see module docstring).

    Creates the file (and its folder) if needed, or checks that an existing file is a
    stochtp results file of a version this code knows; on any error the file is left as it
    was. Use as a context manager, or call `close()`, to release the lock.
    """

    def __init__(self, path):
        self.path = os.path.realpath(os.fspath(path))
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
        except OSError as exc:
            raise ResultsError(f"cannot create the folder for {self.path}: {exc}") from None
        self._lock = _WriterLock(self.path)
        try:
            if os.path.exists(self.path):
                _open_checked(self.path, "r").close()
            else:
                _create_results_file(self.path)
        except OSError as exc:
            self._lock.release()
            raise ResultsError(f"cannot open or create {self.path}: {exc}") from None
        except BaseException:
            self._lock.release()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        """Release the lock; run handles from this Writer can no longer write."""
        self._lock.release()

    def _open(self, mode):
        """The results file, opened for one short read ("r") or write ("r+")."""
        if not self._lock.held:
            raise ResultsError(f"the Writer for {self.path} is closed")
        try:
            return _open_checked(self.path, mode)
        except OSError as exc:
            raise ResultsError(f"cannot open {self.path}: {exc}") from None

    def start_run(self, *, name, method, dataset, network, seed, config, provenance):
        """Add a run with status "running" and return its handle.

        `config` (a dict) is stored as sorted-key JSON and hashed (SHA-256 of that text);
        `provenance` is a dict of further attributes, normally `results.provenance(threads)`.
        """
        config_json = _config_json(config)
        attrs = {
            "name": name,
            "method": method,
            "dataset": dataset,
            "network": network,
            "seed": seed,
            "status": "running",
            "error": "",
            "started_at": _iso_time(_utc_now()),
            "finished_at": "",
            "config": config_json,
            "config_hash": hashlib.sha256(config_json.encode()).hexdigest(),
        }
        clashes = sorted(attrs.keys() & provenance.keys())
        if clashes:
            raise ValueError(f"provenance must not set the run attributes {clashes}")
        attrs.update(provenance)
        attrs = {key: _attr_value(key, value) for key, value in attrs.items()}
        with self._open("r+") as h5file:
            run_id, _ = _create_run_group(h5file, attrs)
        return RunWriter(self, run_id)

    def add_record(self, record):
        """Add a whole run given as plain data (a `read_record` dict, e.g. of a run trained in
        another process or on another machine) under a new run id of this file; return the id.

        Everything is checked before the file is opened, and the one write sets the record's
        status last: a write cut short leaves a run whose status is "running", never one that
        claims to be complete.
        """
        attrs = {key: _attr_value(key, value) for key, value in record["attrs"].items()}
        metrics = {name: np.asarray(column) for name, column in record["metrics"].items()}
        diagnostics = {name: np.asarray(table, dtype=np.float64) for name, table in record["diagnostics"].items()}
        for name in (*metrics, *diagnostics):
            _check_name(name, "metric or diagnostic")
        shapes_ok = all(column.ndim == 1 for column in metrics.values()) and all(table.ndim == 2 for table in diagnostics.values())
        if not shapes_ok or len({len(column) for column in (*metrics.values(), *diagnostics.values())}) > 1:
            raise ValueError("a run record needs 1-D metrics and 2-D diagnostics with one row per epoch each")
        parameters = {which: _flatten_params(record[which]) for which in PARAMETER_GROUPS}
        checkpoint_groups, checkpoint_leaves = set(), {}
        _flatten_checkpoint(record["checkpoint"], (), checkpoint_groups, checkpoint_leaves)
        best_attrs = {key: _attr_value(key, value) for key, value in record["best_attrs"].items()}
        with self._open("r+") as h5file:
            run_id, group = _create_run_group(h5file, {**attrs, "status": "running"})
            for name, column in metrics.items():
                _create_metric(group["metrics"], name, column)
            for name, table in diagnostics.items():
                _create_diagnostic(group["diagnostics"], name, table)
            for which, (groups, leaves) in parameters.items():
                _replace_tree(group[which], groups, leaves)
            group["best"].attrs.update(best_attrs)
            _replace_tree(group["checkpoint"], checkpoint_groups, checkpoint_leaves)
            group.attrs["status"] = attrs.get("status", "running")
        return run_id

    def find_run(self, run_id):
        """Handle on an existing run, to continue it (resume); ResultsError if there is none."""
        with self._open("r") as h5file:
            if run_id not in h5file.get("runs", {}):
                raise ResultsError(f"there is no run {run_id!r} in {self.path}")
        return RunWriter(self, run_id)

    def completed_hashes(self):
        """config_hash of every completed run (a sweep skips these configs)."""
        with self._open("r") as h5file:
            return {
                group.attrs["config_hash"]
                for group in h5file.get("runs", {}).values()
                if group.attrs.get("status") == "completed" and "config_hash" in group.attrs
            }


def _create_run_group(h5file, attrs):
    """(run id, group) of a new run under a fresh id, with `attrs` and its empty subgroups."""
    runs = h5file.require_group("runs")
    run_id = _new_run_id(max(runs, default=None))
    group = runs.create_group(run_id)
    group.attrs.update(attrs)
    # Metrics and diagnostics keep the order they were first logged in.
    for subgroup in _RUN_SUBGROUPS:
        group.create_group(subgroup, track_order=subgroup in ("metrics", "diagnostics"))
    return run_id, group


class RunWriter:
    """Writes one run of a Writer's file; every call is one short open-write-close."""

    def __init__(self, writer, run_id):
        self._writer = writer
        self.id = run_id

    def __repr__(self):
        return f"RunWriter({self.id!r} in {self._writer.path!r})"

    def _group(self, h5file):
        return h5file["runs"][self.id]

    def append(self, metrics, diagnostics=None):
        """Append one epoch: scalars `metrics` (name -> number) and `diagnostics` (name -> 1-D
        array, one value per layer). Appending to a finished run (resume) makes it "running"
        again until `finish`.
        """
        with self._writer._open("r+") as h5file:
            group = self._group(h5file)
            _append_row(group["metrics"], group["diagnostics"], metrics, diagnostics or {})
            if group.attrs.get("status") != "running":
                group.attrs.update({"status": "running", "error": "", "finished_at": ""})

    def truncate(self, num_epochs):
        """Keep only the first `num_epochs` logged epochs, e.g. to drop those logged after the
        checkpoint a resumed run restarts from."""
        with self._writer._open("r+") as h5file:
            group = self._group(h5file)
            for dataset in _datasets(group["metrics"]) + _datasets(group["diagnostics"]):
                dataset.resize(min(num_epochs, dataset.shape[0]), axis=0)

    def save_params(self, which, arrays, attrs=None):
        """Replace the content of "params" or "best" with `arrays` ("layer_0/W" -> array) and
        the group's attributes with `attrs` (for "best": the epoch, say)."""
        if which not in PARAMETER_GROUPS:
            raise ValueError(f"parameters go to one of {PARAMETER_GROUPS}, not {which!r}")
        groups, leaves = _flatten_params(arrays)
        group_attrs = {key: _attr_value(key, value) for key, value in (attrs or {}).items()}
        with self._writer._open("r+") as h5file:
            group = self._group(h5file).require_group(which)
            _replace_tree(group, groups, leaves)
            group.attrs.clear()
            group.attrs.update(group_attrs)

    def save_checkpoint(self, checkpoint):
        """Replace the checkpoint with a nested dict (string keys) of arrays, numbers,
        strings and None. Lists and tuples are stored, and come back, as arrays."""
        groups, leaves = set(), {}
        _flatten_checkpoint(checkpoint, (), groups, leaves)
        with self._writer._open("r+") as h5file:
            _replace_tree(self._group(h5file).require_group("checkpoint"), groups, leaves)

    def finish(self, status="completed", error=""):
        """Record how the run ended ("completed", "failed" or "interrupted") and when."""
        if status not in FINAL_STATUSES:
            raise ValueError(f"a run finishes as one of {FINAL_STATUSES}, not {status!r}")
        message = str(error).encode("utf-8", "backslashreplace").decode("utf-8")  # HDF5 text is UTF-8
        with self._writer._open("r+") as h5file:
            self._group(h5file).attrs.update({"status": status, "error": message, "finished_at": _iso_time(_utc_now())})

    def metrics_so_far(self):
        """The metrics logged so far: name -> 1-D array."""
        with self._writer._open("r") as h5file:
            group = self._group(h5file)
            return _read_columns(group["metrics"], _complete_rows(group))

    def load_checkpoint(self):
        """The last saved checkpoint as a nested dict ({} if none was saved)."""
        with self._writer._open("r") as h5file:
            return _read_tree(self._group(h5file)["checkpoint"])


# ------------------------------------------------------------------ metrics, diagnostics


def _datasets(group):
    return [item for item in group.values() if isinstance(item, h5py.Dataset)]


def _complete_rows(run_group):
    """Epochs present in every metric and diagnostic of a run (all of them, unless a write
    was cut short or is under way)."""
    columns = [
        dataset
        for name in ("metrics", "diagnostics")
        if name in run_group
        for dataset in _datasets(run_group[name])
    ]
    return min((dataset.shape[0] for dataset in columns), default=0)


def _read_columns(group, rows):
    return {
        name: dataset[:rows]
        for name, dataset in group.items()
        if isinstance(dataset, h5py.Dataset)
    }


def _append_row(metrics_group, diagnostics_group, metrics, diagnostics):
    """Write one epoch. Everything is checked before anything is written."""
    metric_values = {name: _metric_value(name, value) for name, value in metrics.items()}
    diagnostic_rows = {
        name: _diagnostic_row(diagnostics_group, name, values)
        for name, values in diagnostics.items()
    }
    row = _complete_rows(metrics_group.parent)

    for name, dataset in list(metrics_group.items()):
        value = metric_values.pop(name, np.float64(np.nan))
        if dataset.dtype.kind in "iu" and value.dtype.kind not in "biu":
            dataset = _convert_to_float(metrics_group, name)
        dataset.resize((row + 1,))
        dataset[row] = value
    for name, value in metric_values.items():
        if row == 0 and value.dtype.kind in "biu":
            column = np.array([value], dtype=np.int64)
        else:
            column = np.full(row + 1, np.nan)
            column[row] = value
        _create_metric(metrics_group, name, column)

    for name, dataset in diagnostics_group.items():
        dataset.resize(row + 1, axis=0)
        dataset[row] = diagnostic_rows.pop(name, np.nan)
    for name, values in diagnostic_rows.items():
        table = np.full((row + 1, values.size), np.nan)
        table[row] = values
        _create_diagnostic(diagnostics_group, name, table)


def _create_metric(metrics_group, name, column):
    """A metric dataset holding `column`, extendable epoch by epoch."""
    return metrics_group.create_dataset(
        name, data=column, maxshape=(None,), chunks=(_METRIC_CHUNK_ROWS,)
    )


def _create_diagnostic(diagnostics_group, name, table):
    """A diagnostic dataset holding `table` (epochs x layers), extendable epoch by epoch."""
    layers = table.shape[1]
    return diagnostics_group.create_dataset(
        name, data=table, maxshape=(None, layers), chunks=(_DIAGNOSTIC_CHUNK_ROWS, layers)
    )


def _metric_value(name, value):
    _check_name(name, "metric")
    scalar = np.asarray(value)
    if scalar.ndim != 0 or scalar.dtype.kind not in "biuf":
        raise ValueError(f"metric {name!r} must be a single real number, not {value!r}")
    return scalar


def _convert_to_float(metrics_group, name):
    """Rewrite an integer metric as float64, for a non-integer or missing (NaN) value."""
    values = metrics_group[name][()].astype(np.float64)
    del metrics_group[name]
    return _create_metric(metrics_group, name, values)


def _diagnostic_row(diagnostics_group, name, values):
    _check_name(name, "diagnostic")
    try:
        row = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"diagnostic {name!r} must be numbers, one per layer, not {values!r}"
        ) from None
    if row.ndim != 1 or row.size == 0:
        raise ValueError(f"diagnostic {name!r} must be a non-empty 1-D array (one value per layer)")
    existing = diagnostics_group.get(name)
    if existing is not None and existing.shape[1] != row.size:
        raise ValueError(
            f"diagnostic {name!r} has {existing.shape[1]} values per epoch, not {row.size}"
        )
    return row


# ------------------------------------------------------------ parameters and checkpoints


@dataclasses.dataclass(frozen=True)
class _Leaf:
    """A value ready for one dataset; `kind` is "" or a _VALUE_KIND_ATTR value."""

    data: object
    kind: str = ""


def _flatten_params(arrays):
    """("layer_0/W" -> array) into the set of groups and the dict of leaves to write."""
    groups, leaves = set(), {}
    for path, value in arrays.items():
        if not isinstance(path, str):
            raise ValueError(f"parameter names are paths such as 'layer_0/W', not {path!r}")
        parts = path.split("/")
        for part in parts:
            _check_name(part, "parameter path part")
        data = np.asarray(value)
        if data.dtype.kind not in "biufc":
            raise ValueError(f"parameter {path!r} must be a numeric array, not {data.dtype}")
        groups.update("/".join(parts[:depth]) for depth in range(1, len(parts)))
        leaves[path] = _Leaf(data)
    return groups, leaves


def _flatten_checkpoint(tree, keys, groups, leaves):
    """Collect the groups and leaves of the nested dict `tree`, found under `keys`."""
    if not isinstance(tree, Mapping):
        raise ValueError(f"a checkpoint must be a dict, not {type(tree).__name__}")
    for key, value in tree.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"checkpoint keys must be non-empty strings, not {key!r}")
        _check_utf8(f"key {key!r}", key)
        path = "/".join(_escape_key(part) for part in (*keys, key))
        if isinstance(value, Mapping):
            groups.add(path)
            _flatten_checkpoint(value, (*keys, key), groups, leaves)
        else:
            leaves[path] = _checkpoint_leaf(" -> ".join((*keys, key)), value)


def _escape_key(key):
    """A dict key as an HDF5 link name: '%' becomes %25, '/' %2F, and a lone '.' %2E, so
    that keys such as "layer_0/W" come back unchanged."""
    escaped = key.replace("%", "%25").replace("/", "%2F")
    return "%2E" if escaped == "." else escaped


def _unescape_key(name):
    return re.sub("%(25|2F|2E)", lambda match: _ESCAPED_CHARACTERS[match.group(1)], name)


def _checkpoint_leaf(where, value):
    if value is None:
        return _Leaf(h5py.Empty("f8"), "none")
    if isinstance(value, str):
        if "\0" in value:
            raise ValueError(f"checkpoint entry {where!r} is a string with a NUL character")
        _check_utf8(f"entry {where!r}", value)
        return _Leaf(value)
    is_python_int = isinstance(value, int) and not isinstance(value, bool)
    if is_python_int and not _INT64.min <= value <= _INT64.max:
        return _Leaf(str(value), "int")
    data = np.asarray(value)
    if data.dtype.kind not in "biufc":
        raise ValueError(
            f"checkpoint entry {where!r} is a {type(value).__name__}; use numbers, strings, "
            "None, NumPy arrays or dicts"
        )
    return _Leaf(data)


def _check_utf8(what, text):
    """ValueError unless `text` can be stored: HDF5 keeps strings as UTF-8, which has no lone
    surrogates (what os.fsdecode makes of undecodable bytes). Checked before the file is touched."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"checkpoint {what} is not valid UTF-8 text (it holds a lone surrogate)") from None


def _replace_tree(group, groups, leaves):
    """Make `group` hold exactly `groups` and `leaves` (paths relative to it).

    Datasets of unchanged shape and dtype are overwritten in place: HDF5 does not reuse the
    space of deleted objects once the file is closed, so deleting and recreating a
    checkpoint every epoch would grow the file without bound.
    """
    existing = []
    group.visit(existing.append)
    for path in existing:
        item = group.get(path)
        if item is None:  # went with a parent deleted earlier in this loop
            continue
        if isinstance(item, h5py.Group) and path in groups:
            continue
        if isinstance(item, h5py.Dataset) and path in leaves and _can_overwrite(item, leaves[path]):
            continue
        del group[path]
    for path in sorted(groups, key=lambda path: path.count("/")):
        group.require_group(path)
    for path, leaf in leaves.items():
        if path in group:
            group[path][()] = leaf.data
        else:
            dataset = group.create_dataset(path, data=leaf.data)
            if leaf.kind:
                dataset.attrs[_VALUE_KIND_ATTR] = leaf.kind


def _can_overwrite(dataset, leaf):
    return (
        not leaf.kind
        and _VALUE_KIND_ATTR not in dataset.attrs
        and isinstance(leaf.data, np.ndarray)
        and dataset.shape == leaf.data.shape
        and dataset.dtype == leaf.data.dtype
    )


def _read_flat(group):
    """A parameter group as a flat dict: "layer_0/W" -> array."""
    arrays = {}

    def collect(path, item):
        if isinstance(item, h5py.Dataset):
            arrays[path] = item[()]

    group.visititems(collect)
    return arrays


def _read_tree(group):
    """A checkpoint group as the nested dict it was saved from."""
    return {
        _unescape_key(name): _read_tree(item) if isinstance(item, h5py.Group) else _read_leaf(item)
        for name, item in group.items()
    }


def _read_leaf(dataset):
    kind = dataset.attrs.get(_VALUE_KIND_ATTR, "")
    if kind == "none":
        return None
    if kind == "int":
        return int(dataset.asstr()[()])
    if h5py.check_string_dtype(dataset.dtype) is not None:
        return dataset.asstr()[()]
    return dataset[()]


# --------------------------------------------------------------------------------- reader


def open(path):
    """Read a results file (also one a writer is writing): a `Results` of its runs.

    Raises ResultsError if the file is missing, not a stochtp results file, of a newer
    format version, or unreadable.
    """
    path = os.fspath(path)
    return Results(path, _read_with_retries(path, lambda h5file: _read_runs(path, h5file)))


def read_record(path, run_id):
    """One run of a results file as plain data (dicts of Python values and NumPy arrays), in one
    read: what a sweep worker sends back and `Writer.add_record` writes into another file.

    Keys: attrs, metrics, diagnostics, params, best (flat "layer_0/W" -> array), best_attrs,
    checkpoint (nested dict).
    """
    path = os.fspath(path)

    def read(h5file):
        if run_id not in h5file.get("runs", {}):
            raise ResultsError(f"there is no run {run_id!r} in {path}")
        group = h5file["runs"][run_id]
        rows = _complete_rows(group)
        return {
            "attrs": _python_attrs(group.attrs),
            "metrics": _read_columns(group["metrics"], rows),
            "diagnostics": _read_columns(group["diagnostics"], rows),
            "params": _read_flat(group["params"]),
            "best": _read_flat(group["best"]),
            "best_attrs": _python_attrs(group["best"].attrs),
            "checkpoint": _read_tree(group["checkpoint"]),
        }

    return _read_with_retries(path, read)


def _read_runs(path, h5file):
    runs = []
    for run_id, group in h5file.get("runs", {}).items():
        rows = _complete_rows(group)
        metrics, diagnostics = (
            _read_columns(group[name], rows) if name in group else {}
            for name in ("metrics", "diagnostics")
        )
        runs.append(Run(path, run_id, _python_attrs(group.attrs), rows, metrics, diagnostics))
    return sorted(runs, key=lambda run: run.id)


class Results:
    """The runs of a results file as read by `open`: a snapshot, sorted by run id."""

    def __init__(self, path, runs):
        self.path = path
        self.runs = runs
        self._by_id = {run.id: run for run in runs}

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        """Nothing to release: the file is only open while it is being read."""

    def __len__(self):
        return len(self.runs)

    def __iter__(self):
        return iter(self.runs)

    def __contains__(self, run_id):
        return run_id in self._by_id

    def __getitem__(self, run_id):
        try:
            return self._by_id[run_id]
        except KeyError:
            raise ResultsError(f"there is no run {run_id!r} in {self.path}") from None

    def __repr__(self):
        return f"Results({self.path!r}, {len(self)} runs)"

    def to_dataframe(self):
        """One row per (run, logged epoch): run_id, every run attribute, every metric.

        Diagnostics (one value per layer) are left out; see `Run.diagnostics`.
        """
        try:
            import pandas
        except ImportError:
            raise ImportError("pandas is needed: pip install stochtp[pandas]") from None
        frames = []
        for run in self.runs:
            columns = {"run_id": [run.id] * run.num_epochs}
            columns.update({key: [value] * run.num_epochs for key, value in run.attrs.items()})
            columns.update(run.metrics)
            frames.append(pandas.DataFrame(columns))
        return pandas.concat(frames, ignore_index=True) if frames else pandas.DataFrame()


class Run:
    """One run as read from a results file.

    `attrs`, `metrics` and `diagnostics` are read with the file; `params`, `best`,
    `best_attrs` and `checkpoint` are read from it on first use.
    """

    def __init__(self, path, run_id, attrs, num_epochs, metrics, diagnostics):
        self.path = path
        self.id = run_id
        self.attrs = attrs
        self.num_epochs = num_epochs
        self.metrics = metrics
        self.diagnostics = diagnostics
        self._loaded = {}

    def __repr__(self):
        name = self.attrs.get("name")
        return f"Run({self.id!r}, name={name!r}, status={self.status!r}, epochs={self.num_epochs})"

    @property
    def status(self):
        return self.attrs.get("status", "")

    @property
    def config(self):
        """The resolved config the run was started with, as a dict."""
        return json.loads(self.attrs.get("config", "{}"))

    @property
    def params(self):
        """Final parameters: "layer_0/W" -> array ({} if none were saved)."""
        return self._load("params", "params", _read_flat)

    @property
    def best(self):
        """Parameters at the best validation epoch: "layer_0/W" -> array."""
        return self._load("best", "best", _read_flat)

    @property
    def best_attrs(self):
        """Attributes saved with the best parameters, e.g. {"epoch": 12}."""
        return self._load("best_attrs", "best", lambda group: _python_attrs(group.attrs))

    @property
    def checkpoint(self):
        """The last checkpoint as a nested dict ({} if none was saved)."""
        return self._load("checkpoint", "checkpoint", _read_tree)

    def _load(self, cache_key, subgroup, read):
        """`read(<subgroup of this run>)`, from the file on first use, then remembered."""
        if cache_key not in self._loaded:

            def read_subgroup(h5file):
                run_group = h5file["runs"][self.id]
                return read(run_group[subgroup]) if subgroup in run_group else {}

            self._loaded[cache_key] = _read_with_retries(self.path, read_subgroup)
        return self._loaded[cache_key]
