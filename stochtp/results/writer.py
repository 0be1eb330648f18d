"""Writing runs: `Writer` (one per file at a time) and the `RunWriter` of each run."""
import contextlib
import dataclasses
import hashlib
import json
import os
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone

import h5py
import numpy as np

from stochtp.errors import ConfigError, DiskFull, ResultsError

from .columns import _append_row, _column_attrs, _complete_rows, _create_diagnostic, _create_metric, _datasets, _read_columns
from .storage import _check_format, _check_layout, _check_name, _completed_hashes, _create_results_file, _open_checked, _staged_hdf5, _WriterLock
from .trees import _flatten_checkpoint, _flatten_params, _read_checkpoint, _replace_tree, _write_checkpoint

FINAL_STATUSES = ("completed", "failed", "interrupted")
PARAMETER_GROUPS = ("params", "best")

_RUN_SUBGROUPS = ("metrics", "diagnostics", "params", "best", "checkpoint")
_RUN_ID_TIME_FORMAT = "%Y%m%dT%H%M%S.%fZ"


RESUME_KEYS = ("git_commit", "git_dirty", "stochtp_version", "num_threads")  # what `RunWriter.note_resume` keeps of a provenance


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
    """A run attribute as a plain str / bool / int / float that HDF5 can store, checked before
    the file is opened (so that a bad one never leaves a half-written run behind)."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"run attribute names must be non-empty strings, got {key!r}")
    if isinstance(value, np.generic):
        value = value.item()
    if not isinstance(value, (str, bool, int, float)):
        raise ValueError(
            f"run attribute {key!r} must be a string, number or bool, not {type(value).__name__}"
        )
    if isinstance(value, str) and ("\0" in value or not _utf8_encodable(value)):
        raise ValueError(f"run attribute {key!r} must be UTF-8 text without NUL characters, got {value!r}")
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
        raise ValueError(f"run attribute {key!r} must fit in 64 bits, got {value}")
    return value


def _utf8_encodable(text):
    """Whether HDF5 can store `text` (it writes strings as UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates, e.g. from undecodable command-line bytes
        return False
    return True


def check_results_path(path):
    """ResultsError if `path` names a folder rather than a results file (checked before any
    work that would be wasted on it)."""
    if os.fspath(path).endswith(("/", os.sep)) or os.path.isdir(path):
        raise ResultsError(f"{os.fspath(path)} is a folder; give the results file's name, e.g. {os.path.join(os.fspath(path), 'runs.h5')}")


class Writer:
    """Appends runs to a results file; one Writer per file at a time (see module docstring).

    Creates the file (and its folder) if needed, or checks that an existing file is a
    stochtp results file of a version this code knows; on any error the file is left as it
    was. Use as a context manager, or call `close()`, to release the lock.
    """

    def __init__(self, path):
        check_results_path(path)
        self.path = os.path.realpath(os.fspath(path))
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
        except OSError as exc:
            raise ResultsError(f"cannot create the folder for {self.path}: {exc}") from None
        self._lock = _WriterLock(self.path)
        try:
            if os.path.exists(self.path):
                if os.stat(self.path).st_nlink > 1:  # the lock is per name: another name's writer would not see it
                    raise ResultsError(f"{self.path} has other names (hard links), through which another writer could write it at the same time; write to a copy instead")
                with _open_checked(self.path, "r") as h5file:
                    _check_layout(h5file, self.path)
            else:
                _create_results_file(self.path)
        except BaseException as exc:
            self._lock.release()
            if isinstance(exc, OSError) and not isinstance(exc, DiskFull):
                raise ResultsError(f"cannot open or create {self.path}: {exc}") from None
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        """Release the lock; run handles from this Writer can no longer write."""
        self._lock.release()

    @contextlib.contextmanager
    def _open(self, mode):
        """The results file, opened for one short read ("r") or write ("r+") in a with-block; HDF5
        finding its own structures damaged inside the block is a ResultsError. A write reaches the
        disk, all of it, only when the block ends without an exception (`storage._staged_hdf5`):
        a full disk (DiskFull) or any other failure leaves the file as it was."""
        if not self._lock.held:
            raise ResultsError(f"the Writer for {self.path} is closed")
        try:
            with _open_checked(self.path, mode) if mode == "r" else _staged_hdf5(self.path, mode) as h5file:
                if mode != "r":
                    _check_format(h5file, self.path)
                yield h5file
        except RuntimeError as exc:  # e.g. "Link iteration failed (bad heap free list)"
            raise ResultsError(f"{self.path} is damaged ({exc}); write to another file") from None
        except OSError as exc:
            if isinstance(exc, DiskFull):
                raise
            raise ResultsError(f"cannot {'read' if mode == 'r' else 'write'} {self.path}: {exc}") from None

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
        described = record.get("columns", {})
        column_attrs = {
            "metrics": {name: _column_attrs(name, None, described.get("metrics", {})) for name in metrics},
            "diagnostics": {name: _column_attrs(name, table.shape[1], described.get("diagnostics", {})) for name, table in diagnostics.items()},
        }
        parameters = {which: _flatten_params(record[which]) for which in PARAMETER_GROUPS}
        checkpoint_groups, checkpoint_leaves = set(), {}
        _flatten_checkpoint(record["checkpoint"], (), checkpoint_groups, checkpoint_leaves)
        best_attrs = {key: _attr_value(key, value) for key, value in record["best_attrs"].items()}
        with self._open("r+") as h5file:
            run_id, group = _create_run_group(h5file, {**attrs, "status": "running"})
            for name, column in metrics.items():
                _create_metric(group["metrics"], name, column, column_attrs["metrics"][name])
            for name, table in diagnostics.items():
                _create_diagnostic(group["diagnostics"], name, table, column_attrs["diagnostics"][name])
            for which, (groups, leaves) in parameters.items():
                _replace_tree(group[which], groups, leaves)
            group["best"].attrs.update(best_attrs)
            _write_checkpoint(group, checkpoint_groups, checkpoint_leaves)
            group.attrs["status"] = attrs.get("status", "running")
        return run_id

    def find_run(self, run_id):
        """Handle on an existing run, to continue it (resume); ResultsError if there is none, or
        if it lacks part of a run's layout (a run an older stochtp left half-made)."""
        with self._open("r") as h5file:
            if run_id not in h5file.get("runs", {}):
                raise ResultsError(f"there is no run {run_id!r} in {self.path}")
            missing = [name for name in _RUN_SUBGROUPS if not isinstance(h5file["runs"][run_id].get(name), h5py.Group)]
        if missing:
            raise ResultsError(f"run {run_id!r} in {self.path} is incomplete (no {', '.join(missing)}) and cannot be continued; start a new run")
        return RunWriter(self, run_id)

    def completed_hashes(self):
        """config_hash of every completed run (a sweep skips these configs)."""
        with self._open("r") as h5file:
            return _completed_hashes(h5file)


def _create_run_group(h5file, attrs):
    """(run id, group) of a new run under a fresh id, with `attrs` and its empty subgroups. The
    status is written last; an exception (Ctrl-C included) leaves nothing, as the write is staged."""
    runs = h5file["runs"]
    run_id = _new_run_id(max(runs, default=None))
    group = runs.create_group(run_id)
    # Metrics and diagnostics keep the order they were first logged in.
    for subgroup in _RUN_SUBGROUPS:
        group.create_group(subgroup, track_order=subgroup in ("metrics", "diagnostics"))
    group.attrs.update({key: value for key, value in attrs.items() if key != "status"})
    group.attrs["status"] = attrs["status"]
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

    def append(self, metrics, diagnostics=None, columns=None):
        """Append one epoch: scalars `metrics` (name -> number) and `diagnostics` (name -> 1-D
        array, one value per layer). A metric or diagnostic new to the run is described by
        `columns` (name -> `Column`: units, description, layer labels), else by
        `STANDARD_COLUMNS`. Appending to a finished run (resume) makes it "running" again
        until `finish`.
        """
        with self._writer._open("r+") as h5file:
            group = self._group(h5file)
            _append_row(group["metrics"], group["diagnostics"], metrics, diagnostics or {}, columns or {})
            if group.attrs.get("status") != "running":
                group.attrs.update({"status": "running", "error": "", "finished_at": ""})

    def note_resume(self, first_epoch, provenance):
        """Add to the run's `resumes` attribute (JSON text of a list) that a process continues it
        from `first_epoch`: when, and the git commit, dirty flag, stochtp version and threads of
        its `provenance`, so that a run another checkout finished says so (`git_commit` and the
        other run attributes stay those of the process that started it)."""
        entry = {"first_epoch": int(first_epoch), "at": _iso_time(_utc_now()), **{key: provenance[key] for key in RESUME_KEYS if key in provenance}}
        with self._writer._open("r+") as h5file:
            group = self._group(h5file)
            group.attrs["resumes"] = json.dumps([*json.loads(group.attrs.get("resumes", "[]")), entry])

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
            _write_checkpoint(self._group(h5file), groups, leaves)

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
            return _read_checkpoint(self._group(h5file))
