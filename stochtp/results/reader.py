"""Reading a results file, also one a writer is writing: `open`, `read_record` and `completed_hashes`."""
import json
import os

import numpy as np

from stochtp.errors import ResultsError

from .columns import _complete_rows, _read_column_attrs, _read_columns
from .storage import _completed_hashes, _read_with_retries
from .trees import _read_checkpoint, _read_flat


def open(path):
    """Read a results file (also one a writer is writing): a `Results` of its runs.

    Raises ResultsError if the file is missing, not a stochtp results file, of a newer
    format version, or unreadable.
    """
    path = os.fspath(path)
    return Results(path, _read_with_retries(path, lambda h5file: _read_runs(path, h5file)))


def completed_hashes(path):
    """config_hash of every completed run in the results file at `path`, from the run attributes
    only (a sweep's runs still to do); ResultsError as for `open`."""
    path = os.fspath(path)
    return _read_with_retries(path, _completed_hashes)


def read_record(path, run_id):
    """One run of a results file as plain data (dicts of Python values and NumPy arrays), in one
    read: what a sweep worker sends back and `Writer.add_record` writes into another file.

    Keys: attrs, metrics, diagnostics, columns (as `Run.columns`), params, best (flat
    "layer_0/W" -> array), best_attrs, checkpoint (nested dict).
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
            "columns": _described_columns(group),
            "params": _read_flat(group["params"]),
            "best": _read_flat(group["best"]),
            "best_attrs": _python_attrs(group["best"].attrs),
            "checkpoint": _read_checkpoint(group),
        }

    return _read_with_retries(path, read)


def _python_attrs(attrs):
    """HDF5 attributes as a dict of Python values (NumPy scalars unwrapped)."""
    return {
        key: value.item() if isinstance(value, np.generic) else value
        for key, value in attrs.items()
    }


def _described_columns(run_group):
    """{"metrics": {name: Column}, "diagnostics": {name: Column}} of a run's group."""
    return {
        name: _read_column_attrs(run_group[name], diagnostic=name == "diagnostics") if name in run_group else {}
        for name in ("metrics", "diagnostics")
    }


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

    `attrs`, `metrics` and `diagnostics` are read with the file; `columns`, `params`, `best`,
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
    def columns(self):
        """What each metric and diagnostic holds: {"metrics": {name: Column}, "diagnostics":
        {name: Column}}, a `Column` being its units, description and (diagnostics) layer labels."""
        return self._load("columns", None, _described_columns)

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
        return self._load("checkpoint", None, _read_checkpoint)

    def _load(self, cache_key, subgroup, read):
        """`read(<subgroup of this run>)` (of the run's group itself when `subgroup` is None), from
        the file on first use, then remembered."""
        if cache_key not in self._loaded:

            def read_subgroup(h5file):
                run_group = h5file["runs"][self.id]
                if subgroup is None:
                    return read(run_group)
                return read(run_group[subgroup]) if subgroup in run_group else {}

            self._loaded[cache_key] = _read_with_retries(self.path, read_subgroup)
        return self._loaded[cache_key]
