"""Reports on results files (docs/cli.md): a table over seeds, paired comparisons,
learning curves, and following runs live.

What a run reports (`outcome`): its best epoch is the one of lowest validation error, never
chosen on test; the reported metric is read there and at the last epoch where it was
evaluated. By default the metric is the K-sample `test_error_k` where the run has one (a
stochastic network; epochs where it was not evaluated are NaN and ignored), the test
reconstruction error `test_reconstruction` for an auto-encoder, and `test_error` otherwise; the
best epoch is chosen on the matching validation metric (`valid_error_k`, `valid_reconstruction`,
`valid_error`; `probe_valid_error` for an auto-encoder's linear probe, `probe_test_error`).

A report (`summarise`) takes the completed runs of one or more files, groups them by a run
attribute or a config key (`name`, `method`, `method.lr`), and gives per group: the seeds,
the epochs, mean ± std over seeds of the metric at the best-validation epoch and at the last
epoch, and the median of the `epoch_time` metric. A config found more than once (same config
hash) counts once, by its newest completed run (by its newest unfinished one only where none
completed); runs of one seed in a group are averaged first, so every statistic is over seeds,
and a group whose runs differ in more than the seed says in which config keys. Every two
groups that report the same metric are compared on the seeds they share: the mean difference
with its 95 % Student-t interval, and a sign test.
"""
import csv
import functools
import io
import itertools
import json
import math
import statistics
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import callbacks, extras, records, results, search
from .errors import ConfigError, ResultsError, StochtpError

FORMATS = ("table", "markdown", "csv", "json")
PLOT_SUFFIXES = (".png", ".pdf", ".svg")
CONFIDENCE = 0.95
MIN_PAIRED_SEEDS = 2  # a t interval and a sign test need two differences at least
FOLLOWED_METRICS = ("train_loss", "train_error", "valid_error", "test_error", "valid_error_k", "test_error_k")
LAYER_STYLES = ("-", "--", ":", "-.")


# ------------------------------------------------------------------------------ one run


@dataclass(frozen=True)
class Outcome:
    """A run's headline numbers: `metric` at its best-validation epoch and at its last evaluated one."""

    metric: str
    best_epoch: int  # 0 when no epoch has a validation value
    best_valid: float
    at_best: float
    last: float


def _has_values(metrics, name):
    return name in metrics and bool(np.isfinite(metrics[name]).any())


def default_metric(metrics):
    """test_error_k for a run that evaluated K-sample errors, test_reconstruction for an
    auto-encoder, test_error otherwise."""
    return next((name for name in ("test_error_k", "test_reconstruction") if _has_values(metrics, name)), "test_error")


def selection_metric(metrics, metric):
    """The validation metric the best epoch is chosen on: the counterpart of a test metric
    (valid_error_k for test_error_k, probe_valid_error for probe_test_error), else the K-sample
    validation error or the validation reconstruction error where there is one."""
    counterpart = metric.replace("test_", "valid_", 1)
    if counterpart != metric and _has_values(metrics, counterpart):
        return counterpart
    return next((name for name in ("valid_error_k", "valid_reconstruction") if _has_values(metrics, name)), "valid_error")


def epoch_of(metrics, row):
    """The epoch logged in `row`; row + 1 in a file whose runs log no `epoch` column (one written
    through `results.Writer` by other code)."""
    return int(metrics["epoch"][row]) if "epoch" in metrics else row + 1


def outcome(metrics, metric=None):
    """The Outcome of a run's metrics (name -> 1-D array); `metric` None means `default_metric`.
    Ties go to the earliest epoch, as in training; NaN stands for what was never evaluated."""
    metric = metric or default_metric(metrics)
    values = np.asarray(metrics.get(metric, []), dtype=np.float64)
    valid = np.asarray(metrics.get(selection_metric(metrics, metric), []), dtype=np.float64)
    evaluated = np.flatnonzero(np.isfinite(valid))
    best_epoch, best_valid, at_best = 0, math.nan, math.nan
    if evaluated.size:
        best = evaluated[np.argmin(valid[evaluated])]
        best_epoch, best_valid = epoch_of(metrics, best), float(valid[best])
        at_best = float(values[best]) if values.size else math.nan
    finite = np.flatnonzero(np.isfinite(values))
    last = float(values[finite[-1]]) if finite.size else math.nan
    return Outcome(metric, best_epoch, best_valid, at_best, last)


# --------------------------------------------------------------------------------- groups


@dataclass
class Group:
    """The runs sharing one value of the grouping key, with their outcomes."""

    value: object
    runs: list
    outcomes: list

    @property
    def label(self):
        return "-" if self.value is None else str(self.value)

    @property
    def seeds(self):
        return sorted({run.attrs.get("seed") for run in self.runs}, key=_sort_key)

    @property
    def metric(self):
        return ", ".join(sorted({item.metric for item in self.outcomes}))

    @property
    def samples(self):
        """The forward passes averaged in the group's metric: K (eval_samples, "K=4,100" where
        its runs differ) for a K-sample metric, else "1"."""
        if not all(item.metric.endswith("_k") for item in self.outcomes):
            return "1"
        ks = sorted({run.config.get("eval_samples") for run in self.runs}, key=_sort_key)
        return "K" if None in ks else "K=" + ",".join(map(str, ks))

    @property
    def metric_label(self):
        """The metric as the report prints it: "test_error_k (K=100)" for K-sample errors."""
        return self.metric if self.samples == "1" else f"{self.metric} ({self.samples})"

    @property
    def epochs(self):
        counts = sorted({run.num_epochs for run in self.runs})
        return str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"

    @property
    def tasks(self):
        """The (dataset, network) pairs the group's runs were trained on."""
        return {(run.attrs.get("dataset"), run.attrs.get("network")) for run in self.runs}

    @property
    def differing_keys(self):
        """The config keys (dotted) other than the seed in which the group's runs differ: a group
        should hold one experiment over seeds, and a sweep's name alone does not tell its runs apart."""
        flat = [_flatten(run.config) for run in self.runs]
        keys = sorted({key for config in flat for key in config} - {"seed"})
        return [key for key in keys if len({json.dumps(config.get(key), sort_keys=True) for config in flat}) > 1]

    @property
    def seconds_per_epoch(self):
        """The median epoch time of the group's runs, each run's epoch 1 left out (it compiles)."""
        times = np.concatenate([callbacks.timed_epochs(run.metrics.get("epoch_time", [])) for run in self.runs])
        return float(np.median(times)) if times.size else math.nan

    def per_seed(self, field):
        """seed -> the Outcome `field` ("at_best" or "last"), averaged over the runs of that seed."""
        values = {}
        for run, item in zip(self.runs, self.outcomes):
            values.setdefault(run.attrs.get("seed"), []).append(getattr(item, field))
        return {seed: statistics.fmean(items) for seed, items in values.items()}

    def mean_std(self, field):
        """(mean, sample standard deviation) over seeds of the Outcome `field` (std NaN for one seed)."""
        values = list(self.per_seed(field).values())
        return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else math.nan


@dataclass(frozen=True)
class Comparison:
    """`first` − `second` of the metric at the best-validation epoch, paired on shared seeds."""

    first: str
    second: str
    metric: str
    seeds: tuple
    difference: float  # mean over the shared seeds
    low: float  # 95 % t interval of the mean difference (NaN with one seed)
    high: float
    first_lower: int  # seeds on which `first` is lower
    second_lower: int
    sign_p: float  # two-sided sign test, ties left out (NaN with one seed)
    metric_label: str = ""  # the metric as the report prints it: "test_error_k (K=100)"

    @property
    def tested(self):
        """Whether the seeds are enough for the t interval and the sign test: 2 or more (MIN_PAIRED_SEEDS)."""
        return len(self.seeds) >= MIN_PAIRED_SEEDS


@dataclass
class Report:
    """The groups (sorted by key value), their paired comparisons, and the runs left out."""

    by: str
    groups: list
    comparisons: list
    left_out: Counter  # why runs were left out -> how many


def run_value(run, key):
    """A run's value of `key`: a run attribute (name, method, seed...) or a dotted config key
    (method.lr, data.n_train); None where the run has none. Lists and tables come as JSON."""
    if key in run.attrs and key != "config":
        return run.attrs[key]
    value = run.config
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return json.dumps(value, sort_keys=True) if isinstance(value, (list, dict)) else value


def _flatten(table, prefix=""):
    """A config dict as {dotted key: value}."""
    flat = {}
    for key, value in table.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _sort_key(value):
    """Numbers first, in numeric order, then everything else by its text."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return (0, value, "") if is_number else (1, 0, str(value))


def load_runs(paths, record_folders=()):
    """Every run of every results file, in file order, then those of the run records in
    `record_folders` (see `stochtp.records`)."""
    return [run for path in paths for run in results.open(path).runs] + [run for folder in record_folders for run in records.load(folder)]


def export_records(paths, folder):
    """Write the record of every run a report of the results files `paths` would count (the
    completed ones, one per config) into `folder`. Returns ((path, written) per record (not
    written: the folder holds the record of a newer run of that config, kept), a Counter of why
    the other runs were left out)."""
    included, left_out = _included_runs(load_runs(paths), None)
    return [records.write(run, folder) for run in included], left_out


def _included_runs(runs, metric, partial=False):
    """The completed runs (with `partial`, also the running and interrupted ones, as far as they
    got) that have `metric` (when one is named), one per config hash: the newest completed one,
    else the newest unfinished one; and a Counter of why the others were left out."""
    chosen, left_out = {}, Counter()
    accepted = ("completed", "running", "interrupted") if partial else ("completed",)
    for run in runs:
        if run.attrs.get("method") == "estimators":  # `stochtp estimators` scores, not a training run
            left_out["estimator scores"] += 1
        elif run.status not in accepted:
            left_out[run.status or "without a status"] += 1
        elif run.num_epochs == 0:
            left_out["without epochs"] += 1
        elif metric is not None and not _has_values(run.metrics, metric):
            left_out[f"without {metric}"] += 1
        else:
            config_hash = run.attrs.get("config_hash", run.id)
            if config_hash in chosen:
                left_out["repeated config"] += 1
            if config_hash not in chosen or _preference(run) > _preference(chosen[config_hash]):
                chosen[config_hash] = run
    return sorted(chosen.values(), key=lambda run: run.id), left_out


def _preference(run):
    """Completed runs before unfinished ones, then newer before older (run ids sort by start time)."""
    return run.status == "completed", run.id


def summarise(paths, by="name", metric=None, partial=False, record_folders=()):
    """The Report of the completed runs in the results files `paths` and the run records in
    `record_folders`, grouped by `by` (with `partial`, unfinished runs count too, with the epochs
    they logged: the epochs column shows it)."""
    return summarise_runs(load_runs(paths, record_folders), by, metric, partial)


def summarise_runs(runs, by="name", metric=None, partial=False):
    """The Report of `runs` (as `load_runs` gives them), grouped by `by`.

    Groups are compared in pairs only when they ran on the same dataset and network with the
    same metric: a comparison across networks says nothing about the methods.
    """
    if metric is not None and runs and not any(metric in run.metrics for run in runs):
        known = sorted({name for run in runs for name in run.metrics})
        raise ConfigError(f"--metric {metric}: no run has this metric; metrics: {', '.join(known)}")
    included, left_out = _included_runs(runs, metric, partial)
    values = [run_value(run, by) for run in included]
    if included and all(value is None for value in values):
        raise ConfigError(f"--by {by}: no run has this attribute or config key")
    grouped = {}
    for run, value in zip(included, values):
        grouped.setdefault(value, []).append(run)
    groups = [Group(value, runs, [outcome(run.metrics, metric) for run in runs]) for value, runs in sorted(grouped.items(), key=lambda item: _sort_key(item[0]))]
    comparisons = [compare(first, second) for i, first in enumerate(groups) for second in groups[i + 1:] if comparable(first, second) and set(first.seeds) & set(second.seeds)]
    return Report(by, groups, comparisons, left_out)


def comparable(first, second):
    """Whether two groups report the same metric of the same (dataset, network) pairs."""
    return first.metric == second.metric and first.tasks == second.tasks


def compare(first, second):
    """The paired Comparison of two groups on their shared seeds; the t interval and the sign
    test only with MIN_PAIRED_SEEDS shared seeds or more (NaN below)."""
    first_values, second_values = first.per_seed("at_best"), second.per_seed("at_best")
    seeds = tuple(sorted(first_values.keys() & second_values.keys(), key=_sort_key))
    differences = [first_values[seed] - second_values[seed] for seed in seeds]
    mean = statistics.fmean(differences)
    first_lower = sum(difference < 0 for difference in differences)
    second_lower = sum(difference > 0 for difference in differences)
    half_width = sign_p = math.nan
    if len(differences) >= MIN_PAIRED_SEEDS:
        half_width = t_quantile((1 + CONFIDENCE) / 2, len(differences) - 1) * statistics.stdev(differences) / math.sqrt(len(differences))
        sign_p = sign_test(first_lower, second_lower)
    return Comparison(first.label, second.label, first.metric, seeds, mean, mean - half_width, mean + half_width, first_lower, second_lower, sign_p, first.metric_label)


# ------------------------------------------------------------------------------- searches


@dataclass(frozen=True)
class Trial:
    """One trial of a random search over its seeds: its values, and the mean over seeds of its
    validation error at the best-validation epoch (what it is ranked on) and of the test metric there."""

    name: str
    search_seed: int
    trial: int
    values: dict
    seeds: list
    epochs: str
    valid_metric: str
    valid: float
    metric: str
    test: float


def rank_trials(paths, metric=None, record_folders=()):
    """The completed trials of the random searches in the results files `paths` (runs with a
    `search` attribute, see `stochtp.search`), one list per search (run name and search seed),
    each sorted on validation error, lowest first (ties and NaN: by trial index, NaN last).
    Never ranked on test: the test metric is carried along for information."""
    included, _ = _included_runs(load_runs(paths, record_folders), metric)
    trials = {}  # (run name, search seed, trial, its values) -> its runs (one per [sweep] combination, e.g. seed)
    for run in included:
        try:
            found = search.trial_of(run.attrs)
        except ValueError as error:
            raise ResultsError(f"{run.path}: run {run.id}: {error}") from None
        if found is not None:  # a file may hold two searches whose trials share indices
            trials.setdefault((str(run.attrs.get("name")), *found[:2], json.dumps(found[2], sort_keys=True)), []).append(run)
    searches = {}
    for (name, seed, trial, _), runs in sorted(trials.items()):
        group = Group(trial, runs, [outcome(run.metrics, metric) for run in runs])
        valid = statistics.fmean(group.per_seed("best_valid").values())
        test = statistics.fmean(group.per_seed("at_best").values())
        valid_metric = ", ".join(sorted({selection_metric(run.metrics, item.metric) for run, item in zip(runs, group.outcomes)}))
        values = search.trial_of(runs[0].attrs)[2]
        searches.setdefault((name, seed), []).append(Trial(name, seed, trial, values, group.seeds, group.epochs, valid_metric, valid, group.metric, test))
    return [sorted(items, key=lambda item: (math.isnan(item.valid), item.valid, item.trial)) for items in searches.values()]


def format_ranking(searches, fmt="table"):
    """The ranked trials as text: per search a header saying what ranks them and which way, then
    one row per trial (rank, trial, seeds, epochs, its values, validation error, test error)."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown report format {fmt!r}; formats: {', '.join(FORMATS)}")
    if not searches:
        raise ConfigError("no completed search trials (runs of a sweep file with a [search] table) in these files")
    blocks, documents = [], []
    for trials in searches:
        first = trials[0]
        keys = list(dict.fromkeys(key for item in trials for key in item.values))
        rows = [
            {"rank": rank, "trial": item.trial, "seeds": len(item.seeds), "epochs": item.epochs, **{key: item.values.get(key) for key in keys},
             first.valid_metric: item.valid, f"{first.metric} at best valid": item.test}
            for rank, item in enumerate(trials, 1)
        ]
        errors = list(rows[0])[-2:]
        header = (
            f"search {first.name} (search seed {first.search_seed}, {len(trials)} completed trials): ranked by {first.valid_metric} "
            f"at each run's best-validation epoch, mean over seeds, ascending (lower is better, rank 1 is the lowest); "
            f"{first.metric} is shown for information only and never ranks"
        )
        documents.append({"name": first.name, "search_seed": first.search_seed, "ranked_on": first.valid_metric, "order": "ascending",
                          "trials": [{key: json_number(value) for key, value in row.items()} for row in rows]})
        if fmt == "csv":
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
            blocks.append(f"# {header}\n" + buffer.getvalue().rstrip("\n"))
        elif fmt != "json":
            cells = [[str(value) if not isinstance(value, float) else _number(value) if key in errors else f"{value:.4g}" for key, value in row.items()] for row in rows]
            table = markdown_table(list(rows[0]), cells) if fmt == "markdown" else plain_table(list(rows[0]), cells)
            blocks.append("\n".join([header, "", *table]))
    return json.dumps(documents, indent=2) if fmt == "json" else "\n\n".join(blocks)


# ----------------------------------------------------------------------------- statistics


def t_quantile(p, df):
    """The `p` quantile (p > 1/2) of Student's t with `df` >= 1 degrees of freedom."""
    if not (0.5 < p < 1 and df >= 1):
        raise ValueError(f"t_quantile needs 1/2 < p < 1 and df >= 1, got p={p}, df={df}")
    from scipy import stats  # imported when a report compares: the other commands start without it

    return float(stats.t.ppf(p, df))


def sign_test(wins, losses):
    """Two-sided exact sign test: the probability, under a fair coin, of a split at least as
    uneven as `wins` against `losses` (1 when there is no split)."""
    if wins + losses == 0:
        return 1.0
    from scipy import stats

    return float(stats.binomtest(wins, wins + losses, 0.5).pvalue)


# ----------------------------------------------------------------------------- formatting


def _number(value, digits=4):
    return "nan" if math.isnan(value) else f"{value:.{digits}f}"


def _mean_std_text(mean, std):
    return _number(mean) if math.isnan(std) else f"{_number(mean)} ± {_number(std)}"


def _rows(report):
    """One dict per group with the raw numbers (csv and json)."""
    rows = []
    for group in report.groups:
        best_mean, best_std = group.mean_std("at_best")
        last_mean, last_std = group.mean_std("last")
        rows.append({
            report.by: group.label,
            "metric": group.metric,
            "samples": group.samples,
            "seeds": len(group.seeds),
            "epochs": group.epochs,
            "at_best_mean": best_mean,
            "at_best_std": best_std,
            "last_mean": last_mean,
            "last_std": last_std,
            "seconds_per_epoch": group.seconds_per_epoch,
        })
    return rows


def _cells(report):
    """Header and text cells of the table (table and markdown)."""
    header = [report.by, "metric", "samples", "seeds", "epochs", "at best valid (mean ± std)", "at last epoch", "s/epoch"]
    cells = [
        [row[report.by], row["metric"], row["samples"], str(row["seeds"]), row["epochs"], _mean_std_text(row["at_best_mean"], row["at_best_std"]),
         _mean_std_text(row["last_mean"], row["last_std"]), callbacks.seconds_text(row["seconds_per_epoch"])]
        for row in _rows(report)
    ]
    return header, cells


def comparison_line(item, scale=1, unit="", digits=4, name=str, compact=False):
    """One paired comparison as text: "a − b (metric): difference [low, high] over n seeds; lower:
    a on i, b on j; sign test p", differences times `scale` with `digits` decimals and `unit`
    after them; `name` writes the groups' labels. `compact` (where the metric is said elsewhere):
    "a − b: difference [low, high] unit, n seeds, lower on i / j, sign test p"."""
    def signed(value):
        return "nan" if math.isnan(value) else f"{scale * value:+.{digits}f}"

    first, second = name(item.first), name(item.second)
    if compact:
        head = f"{first} − {second}: {signed(item.difference)}"
        if not item.tested:
            return f"{head}{unit}, {len(item.seeds)} shared seed (a t interval needs {MIN_PAIRED_SEEDS})"
        return (f"{head} [{signed(item.low)}, {signed(item.high)}]{unit}, {len(item.seeds)} seeds, "
                f"lower on {item.first_lower} / {item.second_lower}, sign test p = {item.sign_p:.3g}")
    head = f"{first} − {second} ({item.metric_label or item.metric}): {signed(item.difference)}{unit}"
    if not item.tested:
        return f"{head} on {_untested(item)}"
    return (f"{head} [{signed(item.low)}, {signed(item.high)}] over {len(item.seeds)} seeds; "
            f"lower: {first} on {item.first_lower}, {second} on {item.second_lower}; sign test p = {item.sign_p:.3g}")


COMPARISONS_HEADING = f"Paired on shared seeds, at the best-validation epoch: difference of means, {CONFIDENCE:.0%} t interval, sign test"


def comparison_document(item):
    """A Comparison as JSON-ready values (NaN as None; `untested` says why a test is missing)."""
    return {
        "first": item.first, "second": item.second, "metric": item.metric, "seeds": list(item.seeds),
        "difference": json_number(item.difference), "low": json_number(item.low), "high": json_number(item.high),
        "first_lower": item.first_lower, "second_lower": item.second_lower, "sign_p": json_number(item.sign_p),
        **({} if item.tested else {"untested": _untested(item)}),
    }


def _notes(report):
    """The lines under the table: paired comparisons, then the runs left out."""
    lines = []
    if report.comparisons:
        lines.append(COMPARISONS_HEADING)
        lines += [comparison_line(item) for item in report.comparisons]
    lines += differing_notes(report.groups)
    if report.groups:
        lines.append("samples: the forward passes averaged in the metric (K for K-sample errors); "
                     "s/epoch: the median epoch time, each run's epoch 1 left out (it compiles Numba's kernels)")
    if report.left_out:
        lines.append(left_out_note(report.left_out))
    return lines


def differing_notes(groups):
    """A line per group whose runs differ in more than the seed."""
    return [f"{group.label}: its runs differ in {', '.join(keys)}, not only the seed (--by one of them splits the group)" for group in groups if (keys := group.differing_keys)]


def left_out_note(left_out):
    return "left out: " + ", ".join(f"{count} {why}" for why, count in sorted(left_out.items()))


def _untested(item):
    """Why a comparison has no t interval and no sign test."""
    shared = ", ".join(map(str, item.seeds))
    return f"{len(item.seeds)} shared seed ({shared}): no t interval or sign test, which need {MIN_PAIRED_SEEDS} shared seeds or more"


def plain_table(header, cells, text_columns=2):
    """Aligned columns: the first `text_columns` (the group and the metric) left, numbers right."""
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(header))]
    return ["  ".join(text.ljust(width) if i < text_columns else text.rjust(width) for i, (text, width) in enumerate(zip(line, widths))).rstrip() for line in [header, *cells]]


def markdown_table(header, cells, text_columns=2):
    """Markdown lines of a table, a `|` inside a cell escaped so that it stays in its column."""
    align = ["---"] * text_columns + ["---:"] * (len(header) - text_columns)
    return ["| " + " | ".join(text.replace("|", "\\|") for text in line) + " |" for line in [header, align, *cells]]


def json_number(value):
    return None if isinstance(value, float) and math.isnan(value) else value


def format_report(report, fmt="table"):
    """The report as text: an aligned table, a Markdown table (comparisons as a list under
    either), CSV (one row per group) or JSON (groups, comparisons, runs left out)."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown report format {fmt!r}; formats: {', '.join(FORMATS)}")
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=[report.by, "metric", "samples", "seeds", "epochs", "at_best_mean", "at_best_std", "last_mean", "last_std", "seconds_per_epoch"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(_rows(report))
        return buffer.getvalue().rstrip("\n")
    if fmt == "json":
        document = {
            "by": report.by,
            "groups": [{key: json_number(value) for key, value in row.items()} for row in _rows(report)],
            "comparisons": [comparison_document(item) for item in report.comparisons],
            "left_out": dict(report.left_out),
            "differing_keys": {group.label: keys for group in report.groups if (keys := group.differing_keys)},
        }
        return json.dumps(document, indent=2)
    header, cells = _cells(report)
    if fmt == "markdown":
        notes = [f"- {line}" for line in _notes(report)]
        return "\n".join(markdown_table(header, cells) + ([""] + notes if notes else []))
    notes = _notes(report)
    return "\n".join(plain_table(header, cells) + ([""] + notes if notes else []))


# -------------------------------------------------------------------------------- curves


def _stack(columns):
    """Columns of runs (1-D for a metric, 2-D for a diagnostic) aligned on epoch: runs × epochs
    (× layers), NaN where a run has no value."""
    columns = [np.asarray(column, dtype=np.float64) for column in columns]
    epochs = max(len(column) for column in columns)
    stack = np.full((len(columns), epochs, *columns[0].shape[1:]), np.nan)
    for row, column in zip(stack, columns):
        row[: len(column)] = column
    return stack


def _mean_min_max(stack):
    """Mean, min and max over runs (axis 0), ignoring NaN; NaN where no run has a value."""
    finite = np.isfinite(stack)
    count = finite.sum(axis=0)
    total = np.where(finite, stack, 0.0).sum(axis=0)
    mean = np.divide(total, count, out=np.full(total.shape, np.nan), where=count > 0)
    return mean, np.fmin.reduce(stack, axis=0), np.fmax.reduce(stack, axis=0)


def _diagnostic_names(groups):
    """Diagnostics that some run has a value of, in first-seen order."""
    names = {}
    for group in groups:
        for run in group.runs:
            for name, table in run.diagnostics.items():
                if np.isfinite(table).any():
                    names[name] = True
    return list(names)


def _evaluated_epochs(group, metric):
    """The most epochs on which one of the group's runs has a value of `metric`."""
    return max(int(np.isfinite(np.asarray(run.metrics.get(metric, []), dtype=np.float64)).sum()) for run in group.runs)


def _plotted_metric(groups):
    """The metric the first panel draws, and its title: the report's metric, or, where no group
    has it on two epochs or more (a short run evaluates its K-sample errors at its last epoch
    only), its 1-sample counterpart, logged every epoch."""
    metrics = sorted({group.metric for group in groups})
    labels = ", ".join(sorted({group.metric_label for group in groups}))
    if len(metrics) == 1 and metrics[0].endswith("_k") and all(_evaluated_epochs(group, metrics[0]) < 2 for group in groups):
        one_sample = metrics[0][: -len("_k")]
        if any(_evaluated_epochs(group, one_sample) >= 2 for group in groups):
            return one_sample, f"{one_sample}, 1-sample ({labels}: evaluated on one epoch only)"
    return metrics[0], labels


def _draw_curves(axis, groups, columns_of):
    """Per group, the mean over its runs of the columns `columns_of(group)` gives (1-D metrics
    aligned on epoch), with a min–max band and a marker on every epoch where there are 30 or
    fewer; True. Where no group has two epochs with a value (runs of one epoch), a bar per
    group instead, labelled with its value, with a min–max bar; False."""
    series = []
    for index, group in enumerate(groups):
        if columns := columns_of(group):
            mean, low, high = _mean_min_max(_stack(columns))
            series.append((index, group, np.arange(1, len(mean) + 1), mean, low, high, np.isfinite(mean)))
    if all(shown.sum() <= 1 for *_, shown in series):
        points = [(index, group, epochs[shown], mean[shown], low[shown], high[shown]) for index, group, epochs, mean, low, high, shown in series if shown.any()]
        for position, (index, group, epochs, mean, low, high) in enumerate(points):
            bars = axis.bar([position], mean, yerr=[mean - low, high - mean], color=f"C{index % 10}", capsize=4, label=f"{group.label} (epoch {epochs[0]})")
            axis.bar_label(bars, fmt="%.4f", label_type="center")
        axis.set_xticks(range(len(points)), [group.label for _, group, *_ in points])
        return False
    for index, group, epochs, mean, low, high, shown in series:
        colour = f"C{index % 10}"
        axis.plot(epochs[shown], mean[shown], color=colour, marker="o" if shown.sum() <= 30 else None, markersize=4, label=group.label)
        axis.fill_between(epochs[shown], low[shown], high[shown], color=colour, alpha=0.2, linewidth=0)
    return True


def plot(report, path):
    """Learning curves, written to `path`: the report's metric (its 1-sample counterpart where
    no group has it on two epochs, see `_plotted_metric`), the training loss, and a panel per
    diagnostic; mean over seeds per group (diagnostics: per group and layer), min–max bands,
    a marker on every epoch of curves of 30 epochs or fewer."""
    figure_module = extras.require("matplotlib.figure", "plot")
    ticker = extras.require("matplotlib.ticker", "plot")
    if Path(path).suffix.lower() not in PLOT_SUFFIXES:
        raise ConfigError(f"--plot {path}: name an image file ({', '.join(PLOT_SUFFIXES)}); without one matplotlib would write another file")
    if not report.groups:
        raise ConfigError("nothing to plot: no completed runs")
    diagnostics = _diagnostic_names(report.groups)
    training = any(_has_values(run.metrics, "train_loss") for group in report.groups for run in group.runs)
    panels = 1 + training + len(diagnostics)
    columns = min(panels, 2)
    rows = math.ceil(panels / columns)
    figure = figure_module.Figure(figsize=(6.4 * columns, 4.4 * rows), layout="constrained")
    axes = list(figure.subplots(rows, columns, squeeze=False).ravel())
    for extra in axes[panels:]:
        extra.set_visible(False)
    last_epoch = max(run.num_epochs for group in report.groups for run in group.runs)

    def by_epoch(axis):
        axis.xaxis.set_major_locator(ticker.MaxNLocator(integer=True, min_n_ticks=1))
        axis.set(xlabel="epoch", xlim=(0.5, last_epoch + 0.5))

    metric, title = _plotted_metric(report.groups)
    curves = axes.pop(0)
    if _draw_curves(curves, report.groups, lambda group: [run.metrics.get(metric, []) for run in group.runs]):
        by_epoch(curves)
    curves.set(title=f"{title}\nmean over seeds, min–max range", ylabel=metric)
    curves.legend(title=report.by, fontsize="small")
    if training:
        losses = axes.pop(0)
        if _draw_curves(losses, report.groups, lambda group: [run.metrics["train_loss"] for run in group.runs if "train_loss" in run.metrics]):
            by_epoch(losses)
        losses.set(title="training loss\nmean over seeds, min–max range", ylabel="train_loss")
        losses.legend(title=report.by, fontsize="small")

    for axis, name in zip(axes, diagnostics):
        by_epoch(axis)
        for index, group in enumerate(report.groups):
            tables = [run.diagnostics[name] for run in group.runs if name in run.diagnostics]
            if not tables:
                continue
            mean, _, _ = _mean_min_max(_stack(tables))
            epochs = np.arange(1, len(mean) + 1)
            for layer in range(mean.shape[1]):
                shown = np.isfinite(mean[:, layer])
                if shown.any():
                    axis.plot(epochs[shown], mean[shown, layer], color=f"C{index % 10}", linestyle=LAYER_STYLES[layer % len(LAYER_STYLES)],
                              marker="o" if shown.sum() <= 30 else None, markersize=3, label=f"{group.label} layer {layer}")
        axis.set(title=f"{name}: mean over seeds", ylabel=name)
        axis.legend(fontsize="x-small")
    try:
        figure.savefig(path, dpi=110)
    except OSError as error:
        raise StochtpError(f"cannot write the plot {path}: {error.strerror or error}") from None


# ------------------------------------------------------------------------------- filters


FILTERS_SHOWN = 100  # hidden units drawn, on a square grid


def filters(path, out=None):
    """Draw the filters of the newest completed run in the results file `path` that has final
    parameters: column j of its first layer's W (n_in x H), one square image of sqrt(n_in) pixels
    per hidden unit (28 x 28 for MNIST), the first FILTERS_SHOWN units on a square grid, each
    scaled from its own minimum (black) to its maximum (white). Written to `out` (default: the
    results file's name with -filters.png); returns the picture's path."""
    figure_module = extras.require("matplotlib.figure", "plot")
    out = Path(path).with_name(f"{Path(path).stem}-filters.png") if out is None else Path(out)
    if out.suffix.lower() not in PLOT_SUFFIXES:
        raise ConfigError(f"--out {out}: name an image file ({', '.join(PLOT_SUFFIXES)}); without one matplotlib would write another file")
    runs = [run for run in results.open(path).runs if run.status == "completed" and "layer_0/W" in run.params]
    if not runs:
        raise ConfigError(f"--filters: {path} has no completed run with parameters")
    run = runs[-1]
    weights = np.asarray(run.params["layer_0/W"], dtype=np.float64)
    side = math.isqrt(weights.shape[0])
    if side * side != weights.shape[0]:
        raise ConfigError(f"--filters: run {run.id} takes {weights.shape[0]} inputs, not a square image")
    shown = weights[:, :FILTERS_SHOWN].T
    low, high = shown.min(axis=1, keepdims=True), shown.max(axis=1, keepdims=True)
    images = ((shown - low) / np.where(high > low, high - low, 1.0)).reshape(-1, side, side)
    grid = math.ceil(math.sqrt(len(images)))
    figure = figure_module.Figure(figsize=(grid, grid + 0.4), layout="constrained")
    axes = figure.subplots(grid, grid, squeeze=False).ravel()
    for axis, image in itertools.zip_longest(axes, images):
        axis.set_axis_off()
        if image is not None:
            axis.imshow(image, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    figure.suptitle(f"{run.attrs.get('name', '')} seed {run.attrs.get('seed', '')}: first-layer filters ({len(images)} of {weights.shape[1]})", fontsize="small")
    try:
        figure.savefig(out, dpi=80)
    except OSError as error:
        raise StochtpError(f"cannot write the filters picture {out}: {error.strerror or error}") from None
    return out


# -------------------------------------------------------------------------------- follow


def _run_label(run):
    return f"{run.id} {run.attrs.get('name', '')} seed {run.attrs.get('seed', '')}"


MAX_FOLLOW_INTERVAL = 86400.0  # longer sleeps are surely a typo (and inf overflows time.sleep)


def follow(paths, interval=2.0, run_id=None, write=functools.partial(print, flush=True)):
    """Print the epochs of the runs in the files `paths` (or only of run `run_id`) as they land,
    and how each run ends, re-reading the files every `interval` seconds; return once no
    process on this machine is writing any of them (after one last read), or on Ctrl-C."""
    if not 0 < interval <= MAX_FOLLOW_INTERVAL:
        raise ConfigError(f"--interval must be a positive number of seconds up to {MAX_FOLLOW_INTERVAL:.0f} (a day), got {interval}")
    shown_epochs, shown_status = {}, {}
    try:
        while True:
            writing = any(results.is_being_written(path) for path in paths)
            for path in paths:
                for run in results.open(path).runs:
                    if run_id is None or run.id == run_id:
                        _print_news(run, (path, run.id), shown_epochs, shown_status, write)
            if not writing:
                return
            time.sleep(interval)
    except KeyboardInterrupt:  # the usual way to stop following a long run
        return


def _print_news(run, key, shown_epochs, shown_status, write):
    """Write the epochs of `run` not shown yet, and its status once it is final."""
    for row in range(shown_epochs.get(key, 0), run.num_epochs):
        values = ", ".join(f"{name} {run.metrics[name][row]:.4f}" for name in FOLLOWED_METRICS if name in run.metrics and math.isfinite(run.metrics[name][row]))
        write(f"{_run_label(run)} epoch {epoch_of(run.metrics, row)}: {values}")
    shown_epochs[key] = run.num_epochs
    if run.status in results.FINAL_STATUSES and shown_status.get(key) != run.status:
        error = run.attrs.get("error", "")
        write(f"{_run_label(run)}: {run.status}" + (f" ({error})" if error else ""))
    shown_status[key] = run.status
