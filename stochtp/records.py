"""Run records: one run of a results file as a small JSON text file, to commit beside the code.

The README's results table is produced from the records under `experiments/results/`
(`stochtp report --records experiments/results/ --format markdown`), so every number in it is
backed by text in the repository. A record holds what a report needs and what says where the
run came from, nothing else (no parameters, no diagnostics)::

    {
      "format": "stochtp-run-record", "format_version": 1,
      "run_id": ..., "name": ..., "method": ..., "dataset": ..., "network": ..., "seed": ...,
      "status": ..., "error": ..., "started_at": ..., "finished_at": ...,
      "config": {...}, "config_hash": ...,
      "git_commit": ..., "git_dirty": ..., "stochtp_version": ...,
      "search": ...,                       (a search trial's only: see stochtp.search)
      "resumes": [{"first_epoch": ..., "at": ..., "git_commit": ..., ...}, ...],   (a resumed run's only)
      "metrics": {"epoch": [1, 2, ...], "test_error": [...], ...}
    }

One value per logged epoch in every metric; null stands for NaN (an epoch where a metric was not
evaluated). Floats are written at full precision, so a report from records gives the numbers a
report from the results file gives. A record's file is `<name>-seed<seed>-<config hash, 12
digits>.json`: one file per config, the newest completed run of it.
"""
import json
import math
import os
import re
from pathlib import Path

import numpy as np

from . import results, search
from .errors import ResultsError

FORMAT = "stochtp-run-record"
FORMAT_VERSION = 1
ATTRIBUTES = (
    "name", "method", "dataset", "network", "seed", "status", "error", "started_at", "finished_at",
    "config_hash", "git_commit", "git_dirty", "stochtp_version", "search",
)


def document(run):
    """The record of a `results.Run` as a JSON-ready dict."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "run_id": run.id,
        **{key: run.attrs[key] for key in ATTRIBUTES if key in run.attrs},
        **({"resumes": _resumes(run)} if "resumes" in run.attrs else {}),
        "config": run.config,
        "metrics": {name: [_json_value(value) for value in column.tolist()] for name, column in run.metrics.items()},
    }


NAME_LIMIT = 120  # characters of the run name kept in a record's file name


def _resumes(run):
    """A run's `resumes` attribute as a list; ResultsError naming the run where it is not JSON."""
    try:
        return json.loads(run.attrs["resumes"])
    except (TypeError, ValueError):
        raise ResultsError(f"{run.path}: run {run.id}: its resumes attribute is not JSON text") from None


def file_name(run):
    """`<name>-seed<seed>-<config hash, 12 digits>.json`, the name reduced to letters, digits and
    `._+-` (others become `_`; no leading dot), so that a record stays inside its folder."""
    name = re.sub(r"[^A-Za-z0-9._+-]", "_", str(run.attrs.get("name", "run")))[:NAME_LIMIT].lstrip(".") or "run"
    return f"{name}-seed{run.attrs.get('seed', '')}-{str(run.attrs.get('config_hash', run.id))[:12]}.json"


def write(run, folder):
    """Write the record of `run` into `folder` (made if needed), replacing that config's earlier
    record whole (`results.replace_text`), unless that record is of a newer run of the config
    (run ids sort by start time). Returns (the record's path, whether it was written)."""
    folder = Path(folder)
    what = f"--export-records {folder}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ResultsError(f"{what}: cannot make the folder ({error.strerror or error})") from None
    path = folder / file_name(run)
    if path.is_file():
        try:
            kept = read(path).id
        except ResultsError:
            kept = ""  # a damaged record is replaced
        if kept > run.id:
            return path, False
    results.replace_text(path, json.dumps(document(run), indent=1, sort_keys=True, allow_nan=False) + "\n", f"--export-records {path}")
    return path, True


def read(path):
    """The run a record file holds, as a `results.Run` (no parameters; its path is the record's).
    ResultsError, one line naming the file, for a file that is not a well-formed record."""
    try:
        content = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ResultsError(f"{path} is not a readable run record ({error})") from None
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        raise ResultsError(f"{path} is not a stochtp run record (no \"format\": \"{FORMAT}\")")
    if content.get("format_version") != FORMAT_VERSION:
        raise ResultsError(f"{path} is a run record of format version {content.get('format_version')}; this stochtp reads version {FORMAT_VERSION}")
    if problem := _malformed(content):
        raise ResultsError(f"{path} is a damaged run record: {problem}")
    metrics = {name: _column(values) for name, values in content["metrics"].items()}
    attrs = {key: content[key] for key in ATTRIBUTES if key in content}
    attrs["config"] = json.dumps(content["config"], sort_keys=True)
    if "resumes" in content:
        attrs["resumes"] = json.dumps(content["resumes"])
    epochs = len(next(iter(metrics.values()))) if metrics else 0
    return results.Run(os.fspath(path), content["run_id"], attrs, epochs, metrics, {})


def _malformed(content):
    """What makes a record's content unusable, or "" for a well-formed one."""
    for key, kind, name in (("run_id", str, "text"), ("config", dict, "a table"), ("metrics", dict, "a table of metric lists")):
        if not isinstance(content.get(key), kind):
            return f"{key} must be {name}"
    columns = content["metrics"].values()
    if not all(isinstance(values, list) and all(value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)) for value in values) for values in columns):
        return "every metric must be a list of numbers (null where not evaluated)"
    if len({len(values) for values in columns}) > 1:
        return "its metrics have different numbers of epochs"
    for key in ATTRIBUTES:
        if key in content and not isinstance(content[key], (str, int, float, bool, type(None))):
            return f"{key} must be a single value"
    if "seed" in content and (isinstance(content["seed"], bool) or not isinstance(content["seed"], int)):
        return "seed must be a whole number"
    if "resumes" in content and not (isinstance(content["resumes"], list) and all(isinstance(entry, dict) for entry in content["resumes"])):
        return "resumes must be a list of tables"
    if "search" in content:
        try:
            search.trial_of({search.ATTRIBUTE: content["search"]})
        except ValueError as error:
            return str(error)
    return ""


def load(folder):
    """The runs of every record (`*.json`) in `folder`, in run-id order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ResultsError(f"--records {folder}: no such folder")
    return sorted((read(path) for path in sorted(folder.glob("*.json"))), key=lambda run: run.id)


def _json_value(value):
    return None if isinstance(value, float) and math.isnan(value) else value


def _column(values):
    """A metric's values as int64 when all are integers (epoch), else float64 with NaN for null."""
    if values and all(isinstance(value, int) and not isinstance(value, bool) for value in values):
        return np.asarray(values, dtype=np.int64)
    return np.asarray([math.nan if value is None else value for value in values], dtype=np.float64)
