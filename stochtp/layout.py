"""A results table laid out by hand and filled from runs (`stochtp report --layout FILE.toml`).

A layout file chooses the table's rows, their order and their labels; every number in the table
comes from the runs (results files or run records), through the same report as `stochtp report`
(`report.summarise`, grouped by run name). The README's paper-reproduction table is
`experiments/paper-table.toml` laid out over the committed records in `experiments/results/`.

    [[row]]
    name = "paper-stochastic-disarm"       # the runs' name (the preset's `name`); required
    network = "stochastic, 784-200b-200b-10"
    method = "DisARM"                      # shown as: DisARM (`paper-stochastic-disarm`)
    reference = "—"                        # the paper's figure, as text
    paper_epochs = 1000                    # the paper's budget, shown beside the runs' epochs
    metrics = ["test_error_k"]             # default: the report's default metric
    compare = ["paper-stochastic-dtp"]     # paired comparisons listed under the table

The measured cell is mean ± std over seeds at each run's best-validation epoch; error metrics
(names ending in `error` or `error_k`) in per cent, others as they are. A row whose runs are
absent says "no record yet": the table never holds a number that no run gives.
"""
import csv
import io
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from . import report
from .errors import ConfigError

HEADER = ["network", "method (preset)", "reference", "measured (mean ± std over seeds)", "seeds", "epochs (paper's)"]
ROW_KEYS = {"name", "network", "method", "reference", "paper_epochs", "metrics", "compare"}
NO_RECORD = "no record yet"


@dataclass(frozen=True)
class Row:
    """One row of a layout: the run name it reports, its labels, the metrics it shows and the
    run names it is compared with."""

    name: str
    network: str = ""
    method: str = ""
    reference: str = ""
    paper_epochs: str = ""
    metrics: tuple = (None,)  # None: the report's default metric
    compare: tuple = field(default=())


def load(path):
    """The rows of the layout file `path`; ConfigError, one line, for a file that is absent or
    not such a layout."""
    path = Path(path)
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--layout {path}: no such file") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"--layout {path}: not a readable TOML file ({error})") from None
    tables = document.get("row")
    if set(document) != {"row"} or not isinstance(tables, list) or not tables:
        raise ConfigError(f"--layout {path}: expected [[row]] tables only, one per row, got {', '.join(sorted(document)) or 'nothing'}")
    return [_row(path, number, table) for number, table in enumerate(tables, 1)]


def _row(path, number, table):
    where = f"--layout {path}, row {number}"
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
    return Row(table["name"], table.get("network", ""), table.get("method", ""), table.get("reference", ""), str(epochs),
               lists["metrics"] or (None,), lists["compare"])


# ------------------------------------------------------------------------------ the numbers


def groups_by_metric(rows, paths=(), record_folders=(), partial=False):
    """metric (None: the default) -> run name -> `report.Group`, for every metric the rows show;
    a metric that no run has gives no groups."""
    runs = report.load_runs(paths, record_folders)
    known = {name for run in runs for name in run.metrics}
    found = {}
    for metric in dict.fromkeys(metric for row in rows for metric in row.metrics):
        if metric is None or metric in known:
            summary = report.summarise(paths, by="name", metric=metric, partial=partial, record_folders=record_folders)
            found[metric] = {group.label: group for group in summary.groups}
        else:
            found[metric] = {}
    return found


def is_error(metric):
    return metric.endswith(("error", "error_k"))


def measured_text(group):
    """mean ± std at the best-validation epoch: "1.52 ± 0.06 %" for an error metric, else "3.89 ± 0.07"."""
    mean, std = group.mean_std("at_best")
    scale, unit = (100, " %") if is_error(group.metric) else (1, "")
    text = f"{scale * mean:.2f}" if math.isnan(std) else f"{scale * mean:.2f} ± {scale * std:.2f}"
    return text + unit


def _first_group(groups, row):
    return next((groups[metric][row.name] for metric in row.metrics if row.name in groups[metric]), None)


def table_rows(rows, groups):
    """One dict per layout row: its labels, the measured text, seeds and epochs (raw numbers
    under `values`: metric -> (mean, std) at the best-validation epoch)."""
    out, previous_network = [], None
    for row in rows:
        found = [groups[metric].get(row.name) for metric in row.metrics]
        present = [group for group in found if group is not None]
        first = _first_group(groups, row)
        out.append({
            "network": "" if row.network == previous_network else row.network,
            "method": f"{row.method} (`{row.name}`)" if row.method else f"`{row.name}`",
            "reference": row.reference,
            "measured": " · ".join(measured_text(group) for group in present) if present else NO_RECORD,
            "seeds": len(first.seeds) if first else 0,
            "epochs": f"{first.epochs if first else '—'} ({row.paper_epochs})" if row.paper_epochs else (first.epochs if first else "—"),
            "name": row.name,
            "values": {group.metric: group.mean_std("at_best") for group in present},
        })
        previous_network = row.network
    return out


def comparisons(rows, groups):
    """(first name, second name, metric, report.Comparison or None) for every pair a row names in
    `compare`, on each metric the row shows: None where either has no runs of that metric or
    they share no seed."""
    pairs = []
    for row in rows:
        for other in row.compare:
            for metric in row.metrics:
                first, second = groups[metric].get(row.name), groups[metric].get(other)
                shared = first is not None and second is not None and set(first.seeds) & set(second.seeds)
                pairs.append((row.name, other, metric if len(row.metrics) > 1 else None, report.compare(first, second) if shared else None))
    return pairs


def comparison_text(first, second, metric, item):
    """`a` − `b`: +0.60 points, 95 % t interval [+0.45, +0.75] over 3 seeds; lower: `a` on 0, `b` on 3
    (the metric named first where the row shows several)."""
    head = f"`{first}` − `{second}`" + (f", {metric}" if metric else "")
    if item is None:
        return f"{head}: no shared seeds in these runs yet"
    scale, unit = (100, " points") if is_error(item.metric) else (1, "")
    text = f"{head}: {scale * item.difference:+.2f}{unit}"
    if item.tested:
        text += f", {report.CONFIDENCE:.0%} t interval [{scale * item.low:+.2f}, {scale * item.high:+.2f}]"
    return text + f" over {len(item.seeds)} seeds; lower: `{first}` on {item.first_lower}, `{second}` on {item.second_lower}"


def format_layout(rows, groups, fmt="markdown"):
    """The laid-out table as text in one of `report.FORMATS`; the paired comparisons as a list
    under the table and markdown forms, under `comparisons` in JSON, left out of CSV."""
    if fmt not in report.FORMATS:
        raise ConfigError(f"unknown report format {fmt!r}; formats: {', '.join(report.FORMATS)}")
    cells = table_rows(rows, groups)
    pairs = comparisons(rows, groups)
    if fmt == "json":
        return json.dumps({
            "rows": [{**{key: value for key, value in cell.items() if key != "values"},
                      "values": {metric: {"mean": report.json_number(mean), "std": report.json_number(std)} for metric, (mean, std) in cell["values"].items()}}
                     for cell in cells],
            "comparisons": [{"first": first, "second": second, "metric": metric, "text": comparison_text(first, second, metric, item)} for first, second, metric, item in pairs],
        }, indent=2)
    keys = ["network", "method", "reference", "measured", "seeds", "epochs"]
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["name", *keys])
        writer.writerows([[cell["name"], *(cell[key] for key in keys)] for cell in cells])
        return buffer.getvalue().rstrip("\n")
    text_cells = [[str(cell[key]) for key in keys] for cell in cells]
    notes = [comparison_text(*pair) for pair in pairs]
    if fmt == "markdown":
        return "\n".join(report.markdown_table(HEADER, text_cells, text_columns=4) + ([""] + [f"- {note}" for note in notes] if notes else []))
    return "\n".join(report.plain_table(HEADER, text_cells, text_columns=4) + ([""] + notes if notes else []))
