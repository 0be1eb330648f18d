"""A results table laid out by hand and filled from runs (`stochtp report --layout FILE.toml`).

A layout file chooses the table's rows, their order and their labels; every number in the table
comes from the runs (results files or run records), through the same report as `stochtp report`
(`report.summarise_runs`, grouped by run name). The README's paper-reproduction table is
`experiments/paper-table.toml` laid out over the committed records in `experiments/results/`.

    [[row]]
    name = "paper-stochastic-disarm"       # the runs' name (the preset's `name`); required
    network = "stochastic, 784-200b-200b-10"
    method = "DisARM"                      # shown as: DisARM (`paper-stochastic-disarm`)
    reference = "—"                        # the paper's figure, as text
    paper_epochs = 1000                    # the paper's budget, shown beside the runs' epochs
    metrics = ["test_error_k"]             # default: the report's default metric
    compare = ["paper-stochastic-dtp"]     # paired comparisons listed under the table

The measured cell is mean ± std over seeds at each run's best-validation epoch, one part per
metric; error metrics (names ending in `error` or `error_k`) in per cent, others as they are. A
row whose runs are absent says "no record yet": the table never holds a number no run gives.
"""
import csv
import io
import json
import math
import tomllib
from dataclasses import dataclass

from . import report
from .errors import ConfigError

HEADER = ["network", "method (preset)", "reference", "measured (mean ± std over seeds)", "seeds", "epochs (paper's)"]
ROW_KEYS = {"name", "network", "method", "reference", "paper_epochs", "metrics", "compare"}
NO_RECORD = "no record yet"
ABSENT = "—"


@dataclass(frozen=True)
class Row:
    """One row of a layout: the run name it reports, its labels, the metrics it shows (None: the
    report's default) and the run names it is compared with; `where` names it in messages."""

    name: str
    where: str
    network: str = ""
    method: str = ""
    reference: str = ""
    paper_epochs: str = ""
    metrics: tuple = (None,)
    compare: tuple = ()


def load(path):
    """The rows of the layout file `path`; ConfigError, one line, for a file that is absent or
    not such a layout."""
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError(f"--layout {path}: no such file") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"--layout {path}: not a readable TOML file ({error})") from None
    tables = document.get("row")
    if set(document) != {"row"} or not isinstance(tables, list) or not tables or not all(isinstance(table, dict) for table in tables):
        raise ConfigError(f"--layout {path}: expected [[row]] tables only, one per row, got {', '.join(sorted(document)) or 'nothing'}")
    rows, seen = [], {}
    for number, table in enumerate(tables, 1):
        row = _row(f"--layout {path}, row {number}", table)
        if row.name in seen:
            raise ConfigError(f"{row.where}: {row.name} is laid out already, in row {seen[row.name]}")
        seen[row.name] = number
        rows.append(row)
    for row in rows:
        if unknown := [name for name in row.compare if name not in seen]:
            raise ConfigError(f"{row.where}: compare names {', '.join(unknown)}, which no row of the layout lays out")
    return rows


def _row(where, table):
    if unknown := sorted(set(table) - ROW_KEYS):
        raise ConfigError(f"{where}: unknown key {', '.join(unknown)}; keys: {', '.join(sorted(ROW_KEYS))}")
    if not isinstance(table.get("name"), str) or not table["name"]:
        raise ConfigError(f"{where}: needs name = \"RUN NAME\" (the preset's name)")
    for key in ("network", "method", "reference"):
        if not isinstance(table.get(key, ""), str):
            raise ConfigError(f"{where}: {key} must be text, got {table[key]!r}")
    epochs = table.get("paper_epochs", "")
    if isinstance(epochs, bool) or not isinstance(epochs, (int, str)):
        raise ConfigError(f"{where}: paper_epochs must be a whole number or text, got {epochs!r}")
    lists = {}
    for key in ("metrics", "compare"):
        value = table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
            raise ConfigError(f"{where}: {key} must be a list of names, got {value!r}")
        lists[key] = tuple(value)
    if table["name"] in lists["compare"]:
        raise ConfigError(f"{where}: {table['name']} is compared with itself")
    return Row(table["name"], where, table.get("network", ""), table.get("method", ""), table.get("reference", ""), str(epochs),
               lists["metrics"] or (None,), lists["compare"])


# ------------------------------------------------------------------------------ the numbers


@dataclass
class Table:
    """A layout filled from runs: one cell dict per row, the paired comparisons (first name,
    second name, report.Comparison or the reason there is none), and notes on the runs."""

    cells: list
    comparisons: list
    notes: list


def fill(rows, runs, partial=False):
    """The Table of `rows` over `runs` (`report.load_runs`). ConfigError where a row's runs have
    none of a metric it names, or where it compares runs of different metrics or networks."""
    groups, left_out = {}, {}
    for metric in dict.fromkeys(metric for row in rows for metric in row.metrics):
        _check_metric(rows, runs, metric)
        has_metric = metric is None or any(metric in run.metrics for run in runs)
        summary = report.summarise_runs(runs, "name", metric, partial) if has_metric else report.Report("name", [], [], {})
        groups[metric] = {group.label: group for group in summary.groups}
        left_out.update({why: count for why, count in summary.left_out.items() if not why.startswith("without ")})
    shown = {}
    for row in rows:
        for metric in row.metrics:
            if row.name in groups[metric]:
                shown.setdefault(row.name, groups[metric][row.name])
    notes = report.differing_notes(shown.values())
    if left_out:
        notes.append(report.left_out_note(left_out))
    return Table([_cell(row, [groups[metric].get(row.name) for metric in row.metrics]) for row in rows], _comparisons(rows, groups), notes)


def _check_metric(rows, runs, metric):
    """A metric a row names must be one its runs have, where it has runs (a misspelt name would
    otherwise read as "no record yet")."""
    for row in rows:
        named = [run for run in runs if run.attrs.get("name") == row.name]
        if metric in row.metrics and metric is not None and named and not any(metric in run.metrics for run in named):
            known = sorted({name for run in named for name in run.metrics})
            raise ConfigError(f"{row.where}: the runs of {row.name} have no metric {metric}; theirs: {', '.join(known)}")


def is_error(metric):
    """Whether a metric is an error rate (a fraction, shown in per cent)."""
    return metric.endswith(("error", "error_k"))


def measured_text(group):
    """mean ± std at the best-validation epoch: "1.52 ± 0.06 %" for an error metric, else "3.89 ± 0.07"."""
    mean, std = group.mean_std("at_best")
    scale, unit = (100, " %") if is_error(group.metric) else (1, "")
    text = f"{scale * mean:.2f}" if math.isnan(std) else f"{scale * mean:.2f} ± {scale * std:.2f}"
    return text + unit


def _cell(row, found):
    """A row's values: labels, the measured text (one part per metric, ABSENT for a metric
    without runs), seeds and epochs of its first metric with runs, raw mean and std per metric."""
    present = [group for group in found if group is not None]
    first = present[0] if present else None
    return {
        "name": row.name,
        "network": row.network,
        "method": row.method,
        "reference": row.reference,
        "measured": " · ".join(ABSENT if group is None else measured_text(group) for group in found) if present else NO_RECORD,
        "seeds": len(first.seeds) if first else 0,
        "epochs": first.epochs if first else ABSENT,
        "paper_epochs": row.paper_epochs,
        "values": {group.metric: group.mean_std("at_best") for group in present},
    }


def _comparisons(rows, groups):
    """(first name, second name, the metric where the row shows several, Comparison or, where there
    is none, the names of the two without runs: empty when both have runs but share no seed) for
    every pair a row names in `compare`, on each metric the row shows."""
    pairs = []
    for row in rows:
        for other in row.compare:
            for metric in row.metrics:
                named = metric if len(row.metrics) > 1 else None
                first, second = groups[metric].get(row.name), groups[metric].get(other)
                if first is None or second is None:
                    pairs.append((row.name, other, named, tuple(name for name, group in ((row.name, first), (other, second)) if group is None)))
                elif not report.comparable(first, second):
                    raise ConfigError(f"{row.where}: {row.name} and {other} report different metrics or networks ({first.metric_label}, {second.metric_label}): no paired comparison")
                elif not set(first.seeds) & set(second.seeds):
                    pairs.append((row.name, other, named, ()))
                else:
                    pairs.append((row.name, other, named, report.compare(first, second)))
    return pairs


# ------------------------------------------------------------------------------ the text


def comparison_text(first, second, metric, item, quote="`"):
    """A compact comparison line (`report.comparison_line`), error differences in points (×100),
    or why there is none; led by the metric where the row shows several; run names in `quote`."""
    lead = f"{metric}: " if metric else ""
    if not isinstance(item, report.Comparison):
        return f"{lead}{quote}{first}{quote} − {quote}{second}{quote}: {_no_comparison(item, quote)}"
    scale, unit = (100, " points") if is_error(item.metric) else (1, "")
    return lead + report.comparison_line(item, scale, unit, digits=2, name=lambda label: f"{quote}{label}{quote}", compact=True)


def _no_comparison(missing, quote):
    """Why a pair has no comparison: the names without runs (in `quote`), or no shared seed."""
    return "no record yet of " + " and ".join(f"{quote}{name}{quote}" for name in missing) if missing else "no shared seed"


def _display_rows(cells, quote):
    """Text cells of the table and markdown forms: a network named once for its consecutive rows,
    the method followed by its run name in `quote`."""
    lines, previous = [], None
    for cell in cells:
        name = f"{quote}{cell['name']}{quote}"
        epochs = f"{cell['epochs']} ({cell['paper_epochs']})" if cell["paper_epochs"] else str(cell["epochs"])
        lines.append(["" if cell["network"] == previous else cell["network"], f"{cell['method']} ({name})" if cell["method"] else name,
                      cell["reference"], cell["measured"], str(cell["seeds"]), epochs])
        previous = cell["network"]
    return lines


def format_table(table, fmt="markdown"):
    """The laid-out table as text in one of `report.FORMATS`; the comparisons and notes as lines
    under the table and markdown forms, under `comparisons` and `notes` in JSON, left out of CSV."""
    if fmt not in report.FORMATS:
        raise ConfigError(f"unknown report format {fmt!r}; formats: {', '.join(report.FORMATS)}")
    if fmt == "json":
        return json.dumps({
            "rows": [{**cell, "values": {metric: {"mean": report.json_number(mean), "std": report.json_number(std)} for metric, (mean, std) in cell["values"].items()}}
                     for cell in table.cells],
            "comparisons": [report.comparison_document(item) if isinstance(item, report.Comparison) else {"first": first, "second": second, "metric": metric, "none": _no_comparison(item, "")}
                            for first, second, metric, item in table.comparisons],
            "notes": table.notes,
        }, indent=2)
    if fmt == "csv":
        keys = ["name", "network", "method", "reference", "measured", "seeds", "epochs", "paper_epochs"]
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(keys)
        writer.writerows([[cell[key] for key in keys] for cell in table.cells])
        return buffer.getvalue().rstrip("\n")
    quote = "`" if fmt == "markdown" else ""
    notes = ([report.COMPARISONS_HEADING + " (error differences in points; lower on: the seeds on which each is lower)"] if table.comparisons else [])
    notes += [comparison_text(*pair, quote=quote) for pair in table.comparisons] + table.notes
    if fmt == "markdown":
        return "\n".join(report.markdown_table(HEADER, _display_rows(table.cells, quote), text_columns=4) + ([""] + [f"- {note}" for note in notes] if notes else []))
    return "\n".join(report.plain_table(HEADER, _display_rows(table.cells, quote), text_columns=4) + ([""] + notes if notes else []))
