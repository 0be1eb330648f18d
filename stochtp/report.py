"""Reports on results files (design sections 9 and 11): a table over seeds, paired comparisons,
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

from . import extras, records, results, search
from .errors import ConfigError, StochtpError

FORMATS = ("table", "markdown", "csv", "json")
PLOT_SUFFIXES = (".png", ".pdf", ".svg")
CONFIDENCE = 0.95
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
        times = np.concatenate([run.metrics.get("epoch_time", np.zeros(0)) for run in self.runs])
        times = times[np.isfinite(times)]
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
    sign_p: float  # two-sided sign test, ties left out


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
    completed ones, one per config) into `folder`; return the records' paths."""
    included, _ = _included_runs(load_runs(paths), None)
    return [records.write(run, folder) for run in included]


def _included_runs(runs, metric, partial=False):
    """The completed runs (with `partial`, also the running and interrupted ones, as far as they
    got) that have `metric` (when one is named), one per config hash: the newest completed one,
    else the newest unfinished one; and a Counter of why the others were left out."""
    chosen, left_out = {}, Counter()
    accepted = ("completed", "running", "interrupted") if partial else ("completed",)
    for run in runs:
        if run.attrs.get("method") == "estimators":  # `stochtp estimators` scores, not a training run
            left_out["estimator scores"] += 1
        elif run.status not in accepted or run.num_epochs == 0:
            left_out[run.status or "no status"] += 1
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
    they logged: the epochs column shows it).

    Groups are compared in pairs only when they ran on the same dataset and network with the
    same metric: a comparison across networks says nothing about the methods.
    """
    runs = load_runs(paths, record_folders)
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
    comparisons = [
        compare(first, second)
        for i, first in enumerate(groups)
        for second in groups[i + 1:]
        if first.metric == second.metric and first.tasks == second.tasks and set(first.seeds) & set(second.seeds)
    ]
    return Report(by, groups, comparisons, left_out)


def compare(first, second):
    """The paired Comparison of two groups on their shared seeds."""
    first_values, second_values = first.per_seed("at_best"), second.per_seed("at_best")
    seeds = tuple(sorted(first_values.keys() & second_values.keys(), key=_sort_key))
    differences = [first_values[seed] - second_values[seed] for seed in seeds]
    mean = statistics.fmean(differences)
    half_width = math.nan
    if len(differences) > 1:
        half_width = t_quantile((1 + CONFIDENCE) / 2, len(differences) - 1) * statistics.stdev(differences) / math.sqrt(len(differences))
    first_lower = sum(difference < 0 for difference in differences)
    second_lower = sum(difference > 0 for difference in differences)
    return Comparison(first.label, second.label, first.metric, seeds, mean, mean - half_width, mean + half_width, first_lower, second_lower, sign_test(first_lower, second_lower))


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
    trials = {}  # (run name, search seed, trial) -> its runs (one per [sweep] combination, e.g. seed)
    for run in included:
        if (found := search.trial_of(run.attrs)) is not None:
            trials.setdefault((str(run.attrs.get("name")), *found[:2]), []).append(run)
    searches = {}
    for (name, seed, trial), runs in sorted(trials.items()):
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
                          "trials": [{key: _json_number(value) for key, value in row.items()} for row in rows]})
        if fmt == "csv":
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
            blocks.append(f"# {header}\n" + buffer.getvalue().rstrip("\n"))
        elif fmt != "json":
            cells = [[str(value) if not isinstance(value, float) else _number(value) if key in errors else f"{value:.4g}" for key, value in row.items()] for row in rows]
            table = _markdown_table(list(rows[0]), cells) if fmt == "markdown" else _plain_table(list(rows[0]), cells)
            blocks.append("\n".join([header, "", *table]))
    return json.dumps(documents, indent=2) if fmt == "json" else "\n\n".join(blocks)


# ----------------------------------------------------------------------------- statistics


def _t_central_probability(t, df):
    """P(|T| <= t) for Student's t with integer `df` degrees of freedom, in closed form
    (Abramowitz & Stegun 26.7.3 and 26.7.4: a finite series in cos(theta), theta = atan(t/sqrt(df)))."""
    theta = math.atan(t / math.sqrt(df))
    cos2 = math.cos(theta) ** 2
    if df % 2 == 0:
        term = total = 1.0
        for k in range(1, df // 2):
            term *= cos2 * (2 * k - 1) / (2 * k)
            total += term
        return math.sin(theta) * total
    if df == 1:
        return 2 * theta / math.pi
    term = total = math.cos(theta)
    for k in range(1, (df - 1) // 2):
        term *= cos2 * (2 * k) / (2 * k + 1)
        total += term
    return 2 / math.pi * (theta + math.sin(theta) * total)


def t_quantile(p, df):
    """The `p` quantile (p > 1/2) of Student's t with integer `df` >= 1, by bisection on the CDF."""
    if not (0.5 < p < 1 and int(df) == df >= 1):
        raise ValueError(f"t_quantile needs 1/2 < p < 1 and an integer df >= 1, got p={p}, df={df}")
    central = 2 * p - 1
    low, high = 0.0, 1.0
    while _t_central_probability(high, int(df)) < central:
        low, high = high, 2 * high
    for _ in range(200):
        middle = (low + high) / 2
        if middle in (low, high):
            break
        low, high = (middle, high) if _t_central_probability(middle, int(df)) < central else (low, middle)
    return (low + high) / 2


def sign_test(wins, losses):
    """Two-sided exact sign test: the probability, under a fair coin, of a split at least as
    uneven as `wins` against `losses`."""
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(wins, losses) + 1)) / 2**n
    return min(1.0, 2 * tail)


# ----------------------------------------------------------------------------- formatting


def _number(value, digits=4):
    return "nan" if math.isnan(value) else f"{value:.{digits}f}"


def _signed(value):
    return "nan" if math.isnan(value) else f"{value:+.4f}"


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
    header = [report.by, "metric", "seeds", "epochs", "at best valid (mean ± std)", "at last epoch", "s/epoch"]
    cells = [
        [row[report.by], row["metric"], str(row["seeds"]), row["epochs"], _mean_std_text(row["at_best_mean"], row["at_best_std"]), _mean_std_text(row["last_mean"], row["last_std"]), _number(row["seconds_per_epoch"], 2)]
        for row in _rows(report)
    ]
    return header, cells


def _notes(report):
    """The lines under the table: paired comparisons, then the runs left out."""
    lines = []
    if report.comparisons:
        lines.append(f"Paired on shared seeds, at the best-validation epoch: difference of means, {CONFIDENCE:.0%} t interval, sign test")
        for item in report.comparisons:
            interval = "" if math.isnan(item.low) else f" [{_signed(item.low)}, {_signed(item.high)}]"
            lines.append(
                f"{item.first} − {item.second} ({item.metric}): {_signed(item.difference)}{interval} over {len(item.seeds)} seeds; "
                f"lower: {item.first} on {item.first_lower}, {item.second} on {item.second_lower}; sign test p = {item.sign_p:.3g}"
            )
    for group in report.groups:
        if keys := group.differing_keys:
            lines.append(f"{group.label}: its runs differ in {', '.join(keys)}, not only the seed (--by one of them splits the group)")
    if report.left_out:
        lines.append("left out: " + ", ".join(f"{count} {why}" for why, count in sorted(report.left_out.items())))
    return lines


def _plain_table(header, cells):
    """Text columns (the group and the metric) aligned left, numbers right."""
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(header))]
    return ["  ".join(text.ljust(width) if i < 2 else text.rjust(width) for i, (text, width) in enumerate(zip(line, widths))).rstrip() for line in [header, *cells]]


def _markdown_table(header, cells):
    align = ["---"] * 2 + ["---:"] * (len(header) - 2)
    return ["| " + " | ".join(line) + " |" for line in [header, align, *cells]]


def _json_number(value):
    return None if isinstance(value, float) and math.isnan(value) else value


def format_report(report, fmt="table"):
    """The report as text: an aligned table, a Markdown table (comparisons as a list under
    either), CSV (one row per group) or JSON (groups, comparisons, runs left out)."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown report format {fmt!r}; formats: {', '.join(FORMATS)}")
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=[report.by, "metric", "seeds", "epochs", "at_best_mean", "at_best_std", "last_mean", "last_std", "seconds_per_epoch"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(_rows(report))
        return buffer.getvalue().rstrip("\n")
    if fmt == "json":
        document = {
            "by": report.by,
            "groups": [{key: _json_number(value) for key, value in row.items()} for row in _rows(report)],
            "comparisons": [
                {
                    "first": item.first, "second": item.second, "metric": item.metric, "seeds": list(item.seeds),
                    "difference": _json_number(item.difference), "low": _json_number(item.low), "high": _json_number(item.high),
                    "first_lower": item.first_lower, "second_lower": item.second_lower, "sign_p": item.sign_p,
                }
                for item in report.comparisons
            ],
            "left_out": dict(report.left_out),
            "differing_keys": {group.label: keys for group in report.groups if (keys := group.differing_keys)},
        }
        return json.dumps(document, indent=2)
    header, cells = _cells(report)
    if fmt == "markdown":
        notes = [f"- {line}" for line in _notes(report)]
        return "\n".join(_markdown_table(header, cells) + ([""] + notes if notes else []))
    notes = _notes(report)
    return "\n".join(_plain_table(header, cells) + ([""] + notes if notes else []))


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


def plot(report, path):
    """Learning curves of the report's metric (mean over seeds with a min–max band, per group)
    and a panel per diagnostic (mean over seeds, per group and layer), written to `path`."""
    figure_module = extras.require("matplotlib.figure", "plot")
    ticker = extras.require("matplotlib.ticker", "plot")
    if Path(path).suffix.lower() not in PLOT_SUFFIXES:
        raise ConfigError(f"--plot {path}: name an image file ({', '.join(PLOT_SUFFIXES)}); without one matplotlib would write another file")
    if not report.groups:
        raise ConfigError("nothing to plot: no completed runs")
    diagnostics = _diagnostic_names(report.groups)
    panels = 1 + len(diagnostics)
    columns = min(panels, 2)
    rows = math.ceil(panels / columns)
    figure = figure_module.Figure(figsize=(6.4 * columns, 4.4 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for extra in axes[panels:]:
        extra.set_visible(False)
    for axis in axes[:panels]:
        axis.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))

    curves = axes[0]
    for index, group in enumerate(report.groups):
        columns = [run.metrics.get(item.metric, []) for run, item in zip(group.runs, group.outcomes)]
        mean, low, high = _mean_min_max(_stack(columns))
        epochs = np.arange(1, len(mean) + 1)
        shown = np.isfinite(mean)
        curves.plot(epochs[shown], mean[shown], color=f"C{index % 10}", marker="o" if shown.sum() <= 30 else None, markersize=3, label=group.label)
        curves.fill_between(epochs[shown], low[shown], high[shown], color=f"C{index % 10}", alpha=0.2, linewidth=0)
    metrics = sorted({group.metric for group in report.groups})
    curves.set(title=f"{', '.join(metrics)}: mean over seeds, band min–max", xlabel="epoch", ylabel=", ".join(metrics))
    curves.legend(title=report.by, fontsize="small")

    for axis, name in zip(axes[1:], diagnostics):
        for index, group in enumerate(report.groups):
            tables = [run.diagnostics[name] for run in group.runs if name in run.diagnostics]
            if not tables:
                continue
            mean, _, _ = _mean_min_max(_stack(tables))
            epochs = np.arange(1, len(mean) + 1)
            for layer in range(mean.shape[1]):
                shown = np.isfinite(mean[:, layer])
                if shown.any():
                    axis.plot(epochs[shown], mean[shown, layer], color=f"C{index % 10}", linestyle=LAYER_STYLES[layer % len(LAYER_STYLES)], label=f"{group.label} layer {layer}")
        axis.set(title=f"{name}: mean over seeds", xlabel="epoch", ylabel=name)
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
