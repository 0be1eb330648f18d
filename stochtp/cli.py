"""The `stochtp` command (docs/cli.md).

Exit codes: 0 success, 2 bad usage or invalid input (one line on stderr, no traceback),
1 a run that failed or was interrupted.
"""
import argparse
import contextlib
import csv
import dataclasses
import functools
import io
import json
import math
import os
import sys
import textwrap
from pathlib import Path

from . import config as config_module
from . import bench, callbacks, data, estimators, experiment, kernels, layout, methods, report, results, sweep, train
from .errors import ConfigError, DiskFull, ResultsError, StochtpError, TrainingFailed

DEFAULT_COMPARISON = ("paper-stochastic-dtp", "paper-stochastic-st", "paper-stochastic-reinforce")
DEFAULT_COMPARISON_EPOCHS = 3
DEFAULT_COMPARISON_OUT = "results/default-comparison.h5"
SHOW_FORMATS = ("csv", "json")


class UsageError(StochtpError):
    """Bad command-line usage; `command` is the command it concerns ("stochtp run"), which
    the error line starts with."""

    def __init__(self, message, command="stochtp"):
        super().__init__(message)
        self.command = command


class Parser(argparse.ArgumentParser):
    """argparse's parser with one-line usage errors, help that keeps the examples' line breaks,
    and an epilog made when help is printed: `examples` (text), then what `epilog_from` returns
    (it lists registered methods, so plug-ins load only for those who ask)."""

    def __init__(self, *args, examples="", epilog_from=None, **kwargs):
        super().__init__(*args, formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)
        self.examples, self.epilog_from = examples, epilog_from

    def error(self, message):
        raise UsageError(message, self.prog)

    def format_help(self):
        parts = [f"examples:\n{self.examples}" if self.examples else "", self.epilog_from() if self.epilog_from else ""]
        self.epilog = "\n\n".join(part for part in parts if part) or None
        return super().format_help()


def _wrapped(text, indent="  "):
    """`text` wrapped to 79 columns, lines after the first indented by `indent` (the help
    formatter keeps the description's and the epilog's lines as they are)."""
    return textwrap.fill(text, 79, subsequent_indent=indent, break_on_hyphens=False)


def _methods_epilog():
    return _wrapped(f"methods (--set method.name=NAME, or [method] name in a config): {', '.join(methods.names())}")


def _run_epilog():
    presets = _wrapped(f"presets (--preset NAME): {', '.join(config_module.presets())}")
    return f"{presets}\n\n{_methods_epilog()}"


def _bench_epilog():
    return _wrapped(f"benchmarks: {', '.join(bench.PRESETS + list(bench.extra_estimators()))}")


class VersionAction(argparse.Action):
    """--version: print the installed version and exit (read only when asked: the package
    metadata takes a while to find)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        import stochtp

        print(f"stochtp {stochtp.__version__}")
        parser.exit()


def trainable_preset(name):
    """A --preset value: a preset `stochtp run` trains (not the config of `stochtp estimators`)."""
    if name in config_module.SCORING_CONFIGS:
        raise argparse.ArgumentTypeError(f"{name!r} is the config of `stochtp {name}`, not a preset to train; presets: {', '.join(config_module.presets())}")
    if name not in config_module.presets():
        raise argparse.ArgumentTypeError(f"unknown preset {name!r}; presets: {', '.join(config_module.presets())}")
    return name


DATA_DIR_HELP = "dataset folder (default $STOCHTP_DATA, then data/)"


def _run_options(parser):
    parser.add_argument("--out", type=results_file, metavar="FILE.h5", help="results file (default results/<name>.h5)")
    parser.add_argument("--seed", type=int, metavar="N", help="override the config's seed")
    parser.add_argument("--epochs", type=int, metavar="N", help="override the config's number of epochs")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a config key, repeatable (method.lr_f=0.01, method.name=dtp; methods listed below)")
    parser.add_argument("--data-dir", metavar="DIR", help=DATA_DIR_HELP)
    parser.add_argument("--threads", type=int, metavar="N", help="Numba and BLAS threads (default all cores)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


RUN_DESCRIPTION = f"""\
Train one configuration (a TOML config file or a preset) and append the run to
a results file.

With no config file and no --preset, `stochtp run` runs the demo: a {DEFAULT_COMPARISON_EPOCHS}-epoch
comparison of DTP, ST and REINFORCE on the stochastic MNIST network (presets
{', '.join(DEFAULT_COMPARISON)}),
written to {DEFAULT_COMPARISON_OUT}; --epochs, --seed, --set, --out and
--resume apply to it."""

RUN_EXAMPLES = """\
  stochtp run                                        the demo (see above)
  stochtp run --preset paper-stochastic-dtp --epochs 5 --seed 1
  stochtp run my.toml --set method.lr_f=0.01 --out results/lr.h5
  stochtp run my.toml --out results/lr.h5 --resume  continue an interrupted run"""

SHOW_EXAMPLES = """\
  stochtp show results/run.h5                  list the runs
  stochtp show results/run.h5 RUN_ID           its provenance, config, metrics
  stochtp show results/run.h5 RUN_ID --format csv --output metrics.csv
  stochtp show results/run.h5 --follow         print epochs as they are written"""

REPORT_EXAMPLES = """\
  stochtp report results/default-comparison.h5
  stochtp report results/*.h5 --by method --format markdown
  stochtp report results/sweep.h5 --by method.lr --metric test_error
  stochtp report results/default-comparison.h5 --plot curves.png
  stochtp report results/search.h5 --rank
  stochtp report --records experiments/results/ --layout table.toml"""

SWEEP_EXAMPLES = """\
  stochtp sweep experiments/sweeps/reproduce.toml --workers 2
  stochtp sweep my-sweep.toml --scheduler tcp://HOST:8786 --out results/s.h5"""

DATA_EXAMPLES = """\
  stochtp data fetch                   download MNIST ($STOCHTP_DATA or data/)
  stochtp data check cifar10 --data-dir /data    verify the CIFAR-10 files"""

ESTIMATORS_EXAMPLES = """\
  stochtp estimators                   the estimators preset, 2000 draws
  stochtp estimators my.toml --samples 500 --seed 1"""

BENCH_EXAMPLES = """\
  stochtp bench                                      everything
  stochtp bench paper-stochastic-dtp --repeat 3 --no-memory --threads 1
  stochtp bench paper-stochastic-dtp paper-stochastic-st --peer --threads 1
  stochtp bench --json > bench.json"""

PLOT_HELP = (
    "draw learning curves into an image (.png, .pdf, .svg; needs matplotlib) and print its path: "
    "the test metric (its 1-sample counterpart where the K-sample one was evaluated on one epoch "
    "only, as in runs of a few epochs), the training loss and the method's diagnostics, per epoch "
    "(a marker on each where there are 30 or fewer); where every run has one epoch, a labelled "
    "bar per group"
)


def build_parser():
    parser = Parser(prog="stochtp", description=_wrapped("Target propagation and gradient estimators for discrete and stochastic networks.", ""),
                    examples="  stochtp run                  a short DTP / ST / REINFORCE comparison\n  stochtp run --help           help on one command")
    parser.add_argument("--version", action=VersionAction, help="print the version and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser, help="one of:")

    run = commands.add_parser("run", help="train one configuration, appending to a results file (no arguments: the demo)",
                              description=RUN_DESCRIPTION, examples=RUN_EXAMPLES, epilog_from=_run_epilog)
    run.add_argument("config", nargs="?", metavar="CONFIG.toml", help="TOML config file (may start with preset = \"NAME\")")
    run.add_argument("--preset", type=trainable_preset, metavar="NAME", help="start from a preset (listed below)")
    run.add_argument("--resume", action="store_true", help="continue the interrupted run of this config in --out")
    _run_options(run)

    show = commands.add_parser("show", help="list the runs of a results file, or show one run", examples=SHOW_EXAMPLES,
                               description=_wrapped("List the runs of a results file, or show one run: its provenance, config and per-epoch metrics.", ""))
    show.add_argument("file", metavar="FILE.h5", help="results file")
    show.add_argument("run_id", nargs="?", metavar="RUN_ID", help="the run to show (default: list the runs)")
    show.add_argument("--format", choices=SHOW_FORMATS, help="write the per-epoch metrics of RUN_ID (default: of every run) as CSV or JSON, every metric column, one row per epoch, the run id first")
    show.add_argument("--output", metavar="PATH", help="with --format: write to PATH instead of stdout")
    _follow_options(show)

    report_cmd = commands.add_parser("report", help="mean ± std over seeds per group, paired comparisons, learning curves", examples=REPORT_EXAMPLES,
                                     description=_wrapped("Mean ± std over seeds of each group's test metric at its best-validation epoch and at its last epoch; "
                                                 "paired comparisons of groups on shared seeds (2 or more); learning curves.", ""))
    report_cmd.add_argument("files", nargs="*", metavar="FILE.h5", help="results files")
    report_cmd.add_argument("--records", dest="record_folders", action="append", default=[], metavar="DIR", help="also report the run records (JSON) in DIR (experiments/results/)")
    report_cmd.add_argument("--export-records", metavar="DIR", help="write a run record (JSON) of every completed run of the files into DIR, one per config")
    report_cmd.add_argument("--layout", metavar="FILE.toml", help="lay the report out as FILE.toml's [[row]] tables say: rows by run name, with labels, reference figures and named paired comparisons (experiments/paper-table.toml)")
    report_cmd.add_argument("--rank", action="store_true", help="rank the trials of a random search ([search] sweep) on validation error")
    report_cmd.add_argument("--by", default="name", metavar="KEY", help="group by a run attribute or dotted config key (default name; method, method.lr...)")
    report_cmd.add_argument("--metric", metavar="NAME", help="test metric to report (default test_error_k, the K-sample error, for stochastic runs, else test_error)")
    report_cmd.add_argument("--format", default="table", choices=report.FORMATS, help="output format (default table)")
    report_cmd.add_argument("--partial", action="store_true", help="include running and interrupted runs, with the epochs they logged")
    report_cmd.add_argument("--plot", metavar="FILE.png", help=PLOT_HELP)
    report_cmd.add_argument("--filters", action="store_true", help="draw the first-layer filters of the file's newest completed run, one image per hidden unit (needs matplotlib)")
    report_cmd.add_argument("--out", metavar="FILE.png", help="where --filters draws (default FILE-filters.png beside the results file)")
    _follow_options(report_cmd)

    sweep_cmd = commands.add_parser("sweep", help="run the cartesian product of a sweep file, skipping completed runs", examples=SWEEP_EXAMPLES,
                                    description=_wrapped("Run every combination of a sweep file's [sweep] values; runs completed in --out before (same config) are skipped, so a sweep resumes.", ""))
    sweep_cmd.add_argument("sweep", metavar="SWEEP.toml", help="sweep file: a config with a [sweep] table of values")
    sweep_cmd.add_argument("--out", type=results_file, metavar="FILE.h5", help="results file (default results/<sweep file name>.h5)")
    where = sweep_cmd.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, metavar="N", help="local worker processes, one thread each (default: one per core)")
    where.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler to send the runs to (tcp://HOST:8786)")
    sweep_cmd.add_argument("--data-dir", metavar="DIR", help=DATA_DIR_HELP)
    sweep_cmd.add_argument("--quiet", action="store_true", help="no line per finished run")

    data_cmd = commands.add_parser("data", help="download or verify datasets", examples=DATA_EXAMPLES,
                                   description=_wrapped("Download a dataset's files (fetch) or verify their checksums (check).", ""))
    data_cmd.add_argument("action", choices=("fetch", "check"), help="fetch: download what is missing; check: verify every file")
    data_cmd.add_argument("name", nargs="?", default="mnist", help=f"dataset with files (default mnist): {', '.join(name for name, entry in data.DATASETS.items() if isinstance(entry, data.FileDataset))}")
    data_cmd.add_argument("--data-dir", metavar="DIR", help=DATA_DIR_HELP)

    scoring = commands.add_parser("estimators", help="score every registered method against the exact oracle", examples=ESTIMATORS_EXAMPLES,
                                  epilog_from=_methods_epilog, description=_wrapped("Score every registered method's update against the exact gradient (bias, variance, angle) on one mini-batch.", ""))
    scoring.add_argument("config", nargs="?", metavar="CONFIG.toml", help="TOML config file (default: the estimators preset)")
    scoring.add_argument("--samples", type=int, metavar="N", help=f"draws per method (default {estimators.DEFAULT_DRAWS})")
    scoring.add_argument("--out", type=results_file, metavar="FILE.h5", help=f"results file (default {estimators.DEFAULT_OUT})")
    scoring.add_argument("--seed", type=int, metavar="N", help="override the config's seed")

    bench_cmd = commands.add_parser("bench", help="GEMM limit, kernel throughput, s/epoch of every preset and of a real run, the paper grid's hours, peak memory",
                                    examples=BENCH_EXAMPLES, epilog_from=_bench_epilog,
                                    description=_wrapped("Time the matrix products, the kernels and a part of an epoch of each benchmark, the epoch a real run pays and the paper grid's hours; measure peak memory.", ""))
    bench_cmd.add_argument("names", nargs="*", metavar="PRESET", help="benchmarks to time (default all: every paper preset, and paper-stochastic-NAME for each other gradient method; listed below)")
    bench_cmd.add_argument("--batches", type=int, default=200, metavar="N", help="mini-batches timed per epoch, extrapolated to the epoch (default 200)")
    bench_cmd.add_argument("--repeat", type=int, default=5, metavar="N", help="timed repetitions; the best is kept (default 5)")
    bench_cmd.add_argument("--kernel-n", type=int, default=10_000_000, metavar="N", help="values per kernel call (default 10^7)")
    bench_cmd.add_argument("--threads", type=int, metavar="N", help="Numba and BLAS threads (default all)")
    bench_cmd.add_argument("--peer", action="store_true", help="also time the PyTorch peer's DTP and ST epochs (benchmarks/torch_peer.py)")
    bench_cmd.add_argument("--peer-script", metavar="SCRIPT.py", help="another peer script for --peer (implies --peer)")
    bench_cmd.add_argument("--peer-python", metavar="PYTHON", help="interpreter with torch for --peer (default this one)")
    bench_cmd.add_argument("--no-memory", action="store_true", help="skip the peak-memory run")
    bench_cmd.add_argument("--data-dir", metavar="DIR", help=DATA_DIR_HELP)
    bench_cmd.add_argument("--json", action="store_true", help="print the measurements as JSON")
    return parser


def results_file(text):
    """An --out value: a file's path, not a folder's (`Path` would drop the trailing slash of
    `newdir/`, and the results file would be called newdir)."""
    if text.endswith(("/", os.sep)):
        raise argparse.ArgumentTypeError(f"{text} is a folder; give the results file's name, e.g. {os.path.join(text, 'runs.h5')}")
    return text


def _follow_options(parser):
    parser.add_argument("--follow", action="store_true", help="print epochs as they are written, until no process writes the file")
    parser.add_argument("--interval", type=float, default=2.0, metavar="SECONDS", help="seconds between reads with --follow (default 2)")


def _format(value):
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def cmd_run(args):
    if args.config is None and args.preset is None:
        return _default_comparison(args)
    cfg = config_module.load(args.config, args.preset, args.overrides, seed=args.seed, epochs=args.epochs)
    source = config_module.source_name(args.config, args.preset)
    summary = experiment.run(cfg, out=args.out, data_dir=args.data_dir, threads=args.threads, resume=args.resume, quiet=args.quiet, source=source)
    _print_summary(summary)
    return 0


def _statuses(path, cfg):
    """The statuses of the runs of `cfg` in the results file at `path` (none if there is no file)."""
    if not os.path.exists(path):
        return set()
    return {run.status for run in results.open(path).runs if run.attrs.get("config_hash") == cfg.hash}


def _print_summary(summary):
    if summary.test_metric == "test_reconstruction":
        errors = "test reconstruction error"
    else:
        errors = "test error" if summary.test_samples == 1 else f"test error (K={summary.test_samples} samples)"
    print(
        f"{summary.status}: run {summary.run_id} -> {summary.path}\n"
        f"  epochs {summary.epochs}, best validation epoch {summary.best_epoch}, "
        f"{errors} at best {_format(summary.test_error_at_best)}, last {_format(summary.test_error_last)}\n"
        f"  {_speed(summary)}"
    )


def _speed(summary):
    """The run's s/epoch (`callbacks.seconds_per_epoch`, the progress bar's figure), saying that
    epoch 1, which compiles Numba's kernels, is left out of it."""
    first = f"epoch 1 took {callbacks.seconds_text(summary.first_epoch_seconds)} s, any Numba compilation included"
    if math.isnan(summary.seconds_per_epoch):
        return f"s/epoch: none from epoch 1 alone ({first})" if not math.isnan(summary.first_epoch_seconds) else "s/epoch: no epoch timed"
    epochs = "epoch 2" if summary.epochs == 2 else f"epochs 2-{summary.epochs}"
    return f"{callbacks.seconds_text(summary.seconds_per_epoch)} s/epoch, median of {epochs}" + (f" ({first})" if not math.isnan(summary.first_epoch_seconds) else "")


def _default_comparison(args):
    """A short DTP / ST / REINFORCE comparison on the stochastic network, into one file. With
    --resume, a preset whose run completed in the file is skipped, an interrupted one continued."""
    out = args.out or DEFAULT_COMPARISON_OUT
    epochs = args.epochs or DEFAULT_COMPARISON_EPOCHS
    configs = [config_module.load(preset=preset, overrides=args.overrides, seed=args.seed, epochs=epochs) for preset in DEFAULT_COMPARISON]
    for preset, cfg in zip(DEFAULT_COMPARISON, configs):  # every --set checked against every method before any trains
        try:
            experiment.build_model(cfg)
        except ConfigError as error:
            raise ConfigError(f"{preset}: {error}") from None
    for preset, cfg in zip(DEFAULT_COMPARISON, configs):
        cfg = dataclasses.replace(cfg, eval_samples_every=min(cfg.eval_samples_every, epochs))  # K-sample errors on the preset's schedule, and at the last epoch
        source = config_module.source_name(preset=preset)
        statuses = _statuses(out, cfg) if args.resume else set()
        if "completed" in statuses:
            print(f"{preset}: completed in {out}, skipped")
            continue
        print(f"{preset} ({cfg.method['name']}, {epochs} epochs):")
        resume = bool(statuses & {"interrupted", "running"})
        _print_summary(experiment.run(cfg, out=out, data_dir=args.data_dir, threads=args.threads, resume=resume, quiet=args.quiet, source=source))
    print(f"compare them with: stochtp report {out}")
    return 0


def cmd_show(args):
    if args.output is not None and args.format is None:
        raise UsageError("--output needs --format csv or json", "stochtp show")
    if args.format is not None and args.follow:
        raise UsageError("--format and --follow do not go together", "stochtp show")
    store = results.open(args.file)
    if args.follow:
        if args.run_id is not None:
            store[args.run_id]  # an unknown run id is bad input here too
        report.follow([args.file], args.interval, args.run_id)
        return 0
    if args.format is not None:
        text = _metrics_text(store.runs if args.run_id is None else [store[args.run_id]], args.format)
        if args.output is None:
            sys.stdout.write(text)
            return 0
        try:
            results.replace_text(args.output, text, f"--output {args.output}")
        except DiskFull:
            raise
        except ResultsError as error:
            raise UsageError(str(error), "stochtp show") from None
        print(f"written: {args.output}")
        return 0
    if args.run_id is None:
        print(f"{'run':34} {'name':28} {'method':10} {'seed':>5} {'status':11} {'epochs':>6} {'best valid':>10} {'test@best':>9} {'errors':>8}")
        for run in store.runs:
            print(_run_line(run))
        return 0
    run = store[args.run_id]
    print(f"run {run.id}")
    for key in sorted(run.attrs):
        if key != "config":
            print(f"  {key}: {run.attrs[key]}")
    print("config:")
    print(json.dumps(run.config, indent=2, sort_keys=True))
    names = list(run.metrics)
    print("metrics:")
    if sampled := [name for name in names if name.endswith("_error_k")]:
        print(f"  {', '.join(sampled)}: K-sample errors, K = {run.config.get('eval_samples')} forward passes averaged (nan: not evaluated that epoch)")
    print("  " + " ".join(f"{name:>13}" for name in names))
    for row in zip(*(run.metrics[name] for name in names)):
        print("  " + " ".join(f"{_format(value.item()):>13}" for value in row))  # .item(): epoch stays an int
    return 0


def _metrics_text(runs, fmt):
    """The per-epoch metrics of `runs` as CSV or JSON text: one row per epoch, a column per
    metric (any run's; NaN, JSON null, where a run has none), the run id first."""
    columns = list(dict.fromkeys(name for run in runs for name in run.metrics))
    rows = [
        {"run": run.id, **{name: _metric_value(run.metrics, name, row) for name in columns}}
        for run in runs
        for row in range(run.num_epochs)
    ]
    if fmt == "json":
        return json.dumps([{key: None if isinstance(value, float) and math.isnan(value) else value for key, value in row.items()} for row in rows], indent=1) + "\n"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["run", *columns], lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: repr(value) if isinstance(value, float) else value for key, value in row.items()} for row in rows)
    return buffer.getvalue()


def _metric_value(metrics, name, row):
    """Row `row` of metric `name` as a Python int (the epoch) or float; NaN where the run has none."""
    if name not in metrics or row >= len(metrics[name]):
        return math.nan
    value = metrics[name][row]
    return int(value) if name == "epoch" else float(value)


def _run_line(run):
    result = report.outcome(run.metrics)
    attrs = run.attrs
    samples = f"K={run.config.get('eval_samples')}" if result.metric.endswith("_k") else "1-sample"
    return f"{run.id:34} {attrs.get('name', ''):28} {attrs.get('method', ''):10} {attrs.get('seed', ''):>5} {run.status:11} {run.num_epochs:>6} {_format(result.best_valid):>10} {_format(result.at_best):>9} {samples:>8}"


def _refuse_clashing(args, names, why):
    """UsageError where one of the report options `names` is given beside one that decides them."""
    given = {"--records": bool(args.record_folders), "--rank": args.rank, "--by": args.by != "name", "--metric": args.metric is not None,
             "--partial": args.partial, "--plot": args.plot is not None, "--export-records": args.export_records is not None,
             "--filters": args.filters, "--follow": args.follow, "--out": args.out is not None, "--format": args.format != "table"}
    if clashing := [name for name in names if given[name]]:
        raise UsageError(f"{why}: drop {', '.join(clashing)}", "stochtp report")


def cmd_report(args):
    if not args.files and not args.record_folders:
        raise UsageError("name a results file (FILE.h5) or --records DIR", "stochtp report")
    if args.layout:
        _refuse_clashing(args, ["--rank", "--by", "--metric", "--plot", "--export-records", "--filters", "--follow", "--out"], "--layout sets the rows and their metrics itself")
        rows = layout.load(args.layout)
        print(layout.format_table(layout.fill(rows, report.load_runs(args.files, args.record_folders), args.partial), args.format))
        return 0
    if args.export_records:
        _refuse_clashing(args, ["--records", "--rank", "--by", "--metric", "--partial", "--plot", "--filters", "--follow", "--out", "--format"],
                         "--export-records writes every completed run of the results files named")
        if not args.files:
            raise UsageError("--export-records: name the results files (FILE.h5) to export", "stochtp report")
        exported, left_out = report.export_records(args.files, args.export_records)
        for path, written in exported:
            print(f"written: {path}" if written else f"kept: {path} (it records a newer run of the same config)")
        if left_out:
            print(f"{report.left_out_note(left_out)} (records are made of completed runs, the newest per config)")
        return 0
    if args.follow:
        report.follow(args.files, args.interval)
    if args.out and not args.filters:
        raise UsageError("--out names the --filters picture (learning curves go to --plot FILE.png)", "stochtp report")
    if args.filters:
        if len(args.files) != 1:
            raise UsageError("--filters: name one results file", "stochtp report")
        print(f"written: {report.filters(args.files[0], args.out)}")
        return 0
    if args.rank:
        print(report.format_ranking(report.rank_trials(args.files, metric=args.metric, record_folders=args.record_folders), args.format))
        return 0
    summary = report.summarise(args.files, by=args.by, metric=args.metric, partial=args.partial, record_folders=args.record_folders)
    if args.plot:
        report.plot(summary, args.plot)
    print(report.format_report(summary, args.format))
    if args.plot:  # on stderr where stdout is CSV or JSON for a program to read
        print(f"plot written: {args.plot}", file=sys.stdout if args.format in ("table", "markdown") else sys.stderr)
    return 0


def cmd_sweep(args):
    try:
        summary = sweep.run(args.sweep, out=args.out, workers=args.workers, scheduler=args.scheduler, data_dir=args.data_dir, say=None if args.quiet else functools.partial(print, flush=True))
    except KeyboardInterrupt:
        print("stochtp: sweep interrupted; the runs already written are kept (run the sweep again to train the others)", file=sys.stderr)
        return 1
    print(f"sweep done: {len(summary.completed)} completed, {len(summary.failed)} failed, {summary.skipped} skipped (completed before) -> {summary.out}")
    return 1 if summary.failed else 0


def cmd_data(args):
    if args.action == "fetch":
        print(f"{args.name}: ready in {data.fetch(args.name, args.data_dir)}")
        return 0
    report = data.check(args.name, args.data_dir)
    for name, state in report:
        print(f"{name}: {state}")
    return 0 if all(state == "ok" for _, state in report) else 2


def cmd_estimators(args):
    scores, out, run_id = estimators.run(args.config, draws=args.samples, out=args.out, seed=args.seed)
    print(estimators.format_table(scores))
    print(f"written: run {run_id} -> {out}")
    return 0


def cmd_bench(args):
    for name in ("batches", "repeat", "kernel_n"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be positive", "stochtp bench")
    peer = args.peer_script or (bench.DEFAULT_PEER if args.peer else None)
    if peer and not Path(peer).is_file():
        raise UsageError(f"peer script {peer}: no such file" + ("" if args.peer_script else "; give one with --peer-script"), "stochtp bench")
    if peer:
        bench.check_peer_python(args.peer_python or sys.executable)
    with train.thread_limit(args.threads):
        measured = bench.run(args.names, batches=args.batches, repeat=args.repeat, kernel_n=args.kernel_n, data_dir=args.data_dir,
                             peer=peer, peer_python=args.peer_python, memory=not args.no_memory,
                             progress=lambda line: print(line, file=sys.stderr))
    print(json.dumps(measured, indent=2) if args.json else bench.format_report(measured))
    return 0


COMMANDS = {"run": cmd_run, "show": cmd_show, "report": cmd_report, "sweep": cmd_sweep, "data": cmd_data, "estimators": cmd_estimators, "bench": cmd_bench}


INTERRUPTED = {  # what Ctrl-C or SIGTERM leaves, by command
    "run": "interrupted; what was logged is kept (continue with --resume)",
    "sweep": "interrupted; the finished runs are kept (run the sweep again to do the rest)",
}


AFTER_A_FULL_DISK = {  # how to go on once a full disk has room again, by command
    "run": "; free some space, then run it again",
    "sweep": "; free some space, then run the sweep again",
}
RESUME_AFTER_A_FULL_DISK = "; free some space, then continue with --resume"  # a run that was in the file


@contextlib.contextmanager
def compile_notice(quiet):
    """Unless `quiet`, a line on stderr as the block's first kernel compilation (or wait for a
    kernel compiled ahead) starts, on a fresh install's first run, and one after the block: how
    many, how long. Nothing when the cache had them all; nothing after an error (whose message
    stays the one line)."""
    def starting():
        if not quiet:
            print("stochtp: compiling Numba kernels (once per install; cached for later runs)", file=sys.stderr, flush=True)

    with kernels.compilations(on_first=starting) as compiled:
        yield
    if (compiled.seconds or compiled.ahead) and not quiet:  # what compiled, or was waited for after the first line
        print(f"stochtp: {compiled}", file=sys.stderr)


def main(argv=None):
    """Run the command `argv` (a list of arguments; default: this process's command line). The
    process tunings are the caller's: `python -m stochtp` and the `stochtp` script apply them
    (`stochtp.__main__`) before NumPy loads."""
    parser = build_parser()
    command = None
    try:
        args = parser.parse_args(argv)
        command = args.command
        with train.Interrupts(), compile_notice(getattr(args, "quiet", False)):  # SIGTERM ends every command as Ctrl-C does
            return COMMANDS[command](args)
    except TrainingFailed as failure:
        print(f"stochtp: run failed: {failure}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"stochtp: {INTERRUPTED.get(command, 'interrupted')}", file=sys.stderr)
        return 1
    except DiskFull as error:
        advice = RESUME_AFTER_A_FULL_DISK if command == "run" and error.resumable else AFTER_A_FULL_DISK.get(command, "")
        print(f"stochtp: error: {error}{advice}", file=sys.stderr)
        return 1
    except UsageError as error:
        print(f"{error.command}: error: {error}", file=sys.stderr)
        return 2
    except (StochtpError, ValueError) as error:
        print(f"stochtp: error: {error}", file=sys.stderr)
        return 2
    except MemoryError as error:
        print(f"stochtp: error: not enough memory{f' ({error})' if str(error) else ''}; a smaller dataset, network or batch needs less", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader of stdout went away (`stochtp report ... | head`)
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so that the flush at exit does not fail again
        except (OSError, ValueError):  # no file descriptor behind sys.stdout
            pass
        if command not in ("show", "report"):  # a command that does more than print says what stopped it
            print(f"stochtp: error: {command} stopped: its output was closed (broken pipe)", file=sys.stderr)
        return 1
    except OSError as error:  # a full disk, say; a run it stops keeps its last checkpoint (status interrupted)
        print(f"stochtp: error: {error}", file=sys.stderr)
        return 1
    except SystemExit as exit_:  # --help
        return exit_.code if isinstance(exit_.code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
