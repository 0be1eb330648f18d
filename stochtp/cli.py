"""The `stochtp` command (design section 11).

Exit codes: 0 success, 2 bad usage or invalid input (one line on stderr, no traceback),
1 a run that failed or was interrupted.
"""
import argparse
import dataclasses
import functools
import json
import math
import os
import sys
from pathlib import Path

from . import config as config_module
from . import bench, data, estimators, experiment, methods, report, results, sweep, train
from .errors import ConfigError, DiskFull, StochtpError, TrainingFailed

DEFAULT_COMPARISON = ("paper-stochastic-dtp", "paper-stochastic-st", "paper-stochastic-reinforce")
DEFAULT_COMPARISON_EPOCHS = 3


class UsageError(StochtpError):
    """Bad command-line usage (argparse's own complaints)."""


class Parser(argparse.ArgumentParser):
    """argparse's parser with one-line usage errors, and an epilog made when help is printed
    (`epilog_from`: it lists registered methods, so plug-ins load only for those who ask)."""

    def __init__(self, *args, epilog_from=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.epilog_from = epilog_from

    def error(self, message):
        raise UsageError(f"{self.prog}: {message}")

    def format_help(self):
        if self.epilog_from is not None:
            self.epilog = self.epilog_from()
        return super().format_help()


def _methods_epilog():
    return f"methods (--set method.name=NAME, or [method] name in a config): {', '.join(methods.names())}"


def _bench_epilog():
    return f"benchmarks: {', '.join(bench.PRESETS + list(bench.extra_estimators()))}"


def _run_options(parser):
    parser.add_argument("--out", type=results_file, help="results file (default results/<name>.h5)")
    parser.add_argument("--seed", type=int, help="override the config's seed")
    parser.add_argument("--epochs", type=int, help="override the config's number of epochs")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a config key (method.lr_f=0.01, method.name=dtp; methods listed below)")
    parser.add_argument("--data-dir", help="dataset folder (default $STOCHTP_DATA, then data/)")
    parser.add_argument("--threads", type=int, help="Numba and BLAS threads")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser():
    parser = Parser(prog="stochtp", description="Target propagation and gradient estimators for discrete and stochastic networks.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    run = commands.add_parser("run", help="train one configuration, appending to a results file", epilog_from=_methods_epilog)
    run.add_argument("config", nargs="?", help="TOML config file")
    run.add_argument("--preset", help=f"start from a preset ({', '.join(config_module.presets())})")
    run.add_argument("--resume", action="store_true", help="continue the interrupted run of this config in --out")
    _run_options(run)

    show = commands.add_parser("show", help="list the runs of a results file, or show one run")
    show.add_argument("file")
    show.add_argument("run_id", nargs="?")
    _follow_options(show)

    report_cmd = commands.add_parser("report", help="mean ± std over seeds per group, paired comparisons, learning curves")
    report_cmd.add_argument("files", nargs="*", metavar="FILE.h5")
    report_cmd.add_argument("--records", dest="record_folders", action="append", default=[], metavar="DIR", help="also report the run records (JSON) in DIR (experiments/results/)")
    report_cmd.add_argument("--export-records", metavar="DIR", help="write a run record (JSON) of every completed run of the files into DIR, one per config")
    report_cmd.add_argument("--rank", action="store_true", help="rank the trials of a random search ([search] sweep) on validation error")
    report_cmd.add_argument("--by", default="name", help="group by a run attribute or dotted config key (default name; method, method.lr...)")
    report_cmd.add_argument("--metric", help="test metric to report (default test_error_k for stochastic runs, else test_error)")
    report_cmd.add_argument("--format", default="table", choices=report.FORMATS)
    report_cmd.add_argument("--partial", action="store_true", help="include running and interrupted runs, with the epochs they logged")
    report_cmd.add_argument("--plot", metavar="FILE.png", help="draw learning curves and diagnostics (needs matplotlib)")
    report_cmd.add_argument("--filters", action="store_true", help="draw the first-layer filters of the file's newest completed run, one image per hidden unit (needs matplotlib)")
    report_cmd.add_argument("--out", metavar="FILE.png", help="where --filters draws (default FILE-filters.png beside the results file)")
    _follow_options(report_cmd)

    sweep_cmd = commands.add_parser("sweep", help="run the cartesian product of a sweep file, skipping completed runs")
    sweep_cmd.add_argument("sweep", metavar="SWEEP.toml")
    sweep_cmd.add_argument("--out", type=results_file, help="results file (default results/<sweep file name>.h5)")
    where = sweep_cmd.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, help="local worker processes, one thread each (default: one per core)")
    where.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler to send the runs to (tcp://HOST:8786)")
    sweep_cmd.add_argument("--data-dir", help="dataset folder (default $STOCHTP_DATA, then data/)")
    sweep_cmd.add_argument("--quiet", action="store_true", help="no line per finished run")

    data_cmd = commands.add_parser("data", help="download or verify datasets")
    data_cmd.add_argument("action", choices=("fetch", "check"))
    data_cmd.add_argument("name", nargs="?", default="mnist")
    data_cmd.add_argument("--data-dir")

    scoring = commands.add_parser("estimators", help="score every registered method against the exact oracle", epilog_from=_methods_epilog)
    scoring.add_argument("config", nargs="?", help="TOML config file (default experiments/estimators.toml)")
    scoring.add_argument("--samples", type=int, help=f"draws per method (default {estimators.DEFAULT_DRAWS})")
    scoring.add_argument("--out", type=results_file, help=f"results file (default {estimators.DEFAULT_OUT})")
    scoring.add_argument("--seed", type=int, help="override the config's seed")

    bench_cmd = commands.add_parser("bench", help="GEMM limit, kernel throughput, s/epoch of every preset, peak memory", epilog_from=_bench_epilog)
    bench_cmd.add_argument("names", nargs="*", metavar="PRESET", help="benchmarks to time (default all: every paper preset, and paper-stochastic-NAME for each other gradient method; listed below)")
    bench_cmd.add_argument("--batches", type=int, default=200, help="mini-batches timed per epoch, extrapolated to the epoch (default 200)")
    bench_cmd.add_argument("--repeat", type=int, default=5, help="timed repetitions; the best is kept (default 5)")
    bench_cmd.add_argument("--kernel-n", type=int, default=10_000_000, help="values per kernel call (default 10^7)")
    bench_cmd.add_argument("--threads", type=int, help="Numba and BLAS threads (default all)")
    bench_cmd.add_argument("--peer", metavar="SCRIPT.py", help="also time the PyTorch peer script (../shared/bench/torch_peer.py)")
    bench_cmd.add_argument("--peer-python", metavar="PYTHON", help="interpreter with torch for --peer (default this one)")
    bench_cmd.add_argument("--no-memory", action="store_true", help="skip the peak-memory run")
    bench_cmd.add_argument("--data-dir", help="dataset folder (default $STOCHTP_DATA, then data/)")
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
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between reads with --follow (default 2)")


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
    print(
        f"{summary.status}: run {summary.run_id} -> {summary.path}\n"
        f"  epochs {summary.epochs}, best validation epoch {summary.best_epoch}, "
        f"test error at best {_format(summary.test_error_at_best)}, last {_format(summary.test_error_last)}, "
        f"{summary.seconds_per_epoch:.2f} s/epoch"
    )


def _default_comparison(args):
    """A short DTP / ST / REINFORCE comparison on the stochastic network, into one file. With
    --resume, a preset whose run completed in the file is skipped, an interrupted one continued."""
    out = args.out or "results/default-comparison.h5"
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
    store = results.open(args.file)
    if args.follow:
        if args.run_id is not None:
            store[args.run_id]  # an unknown run id is bad input here too
        report.follow([args.file], args.interval, args.run_id)
        return 0
    if args.run_id is None:
        print(f"{'run':34} {'name':28} {'method':10} {'seed':>5} {'status':11} {'epochs':>6} {'best valid':>10} {'test@best':>9}")
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
    print("  " + " ".join(f"{name:>13}" for name in names))
    for row in zip(*(run.metrics[name] for name in names)):
        print("  " + " ".join(f"{_format(float(value)):>13}" for value in row))
    return 0


def _run_line(run):
    result = report.outcome(run.metrics)
    attrs = run.attrs
    return f"{run.id:34} {attrs.get('name', ''):28} {attrs.get('method', ''):10} {attrs.get('seed', ''):>5} {run.status:11} {run.num_epochs:>6} {_format(result.best_valid):>10} {_format(result.at_best):>9}"


def cmd_report(args):
    if not args.files and not args.record_folders:
        raise UsageError("stochtp report: name a results file (FILE.h5) or --records DIR")
    if args.follow:
        report.follow(args.files, args.interval)
    if args.out and not args.filters:
        raise UsageError("stochtp report: --out names the --filters picture (learning curves go to --plot FILE.png)")
    if args.filters:
        if len(args.files) != 1:
            raise UsageError("stochtp report --filters: name one results file")
        print(f"written: {report.filters(args.files[0], args.out)}")
        return 0
    if args.export_records:
        for path in report.export_records(args.files, args.export_records):
            print(f"written: {path}")
        return 0
    if args.rank:
        print(report.format_ranking(report.rank_trials(args.files, metric=args.metric, record_folders=args.record_folders), args.format))
        return 0
    summary = report.summarise(args.files, by=args.by, metric=args.metric, partial=args.partial, record_folders=args.record_folders)
    if args.plot:
        report.plot(summary, args.plot)
    print(report.format_report(summary, args.format))
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
            raise UsageError(f"stochtp bench: --{name.replace('_', '-')} must be positive")
    if args.peer and not Path(args.peer).is_file():
        raise UsageError(f"stochtp bench: --peer {args.peer}: no such file")
    if args.peer:
        bench.check_peer_python(args.peer_python or sys.executable)
    with train.thread_limit(args.threads):
        measured = bench.run(args.names, batches=args.batches, repeat=args.repeat, kernel_n=args.kernel_n, data_dir=args.data_dir,
                             peer=args.peer, peer_python=args.peer_python, memory=not args.no_memory,
                             progress=lambda line: print(line, file=sys.stderr))
    print(json.dumps(measured, indent=2) if args.json else bench.format_report(measured))
    return 0


COMMANDS = {"run": cmd_run, "show": cmd_show, "report": cmd_report, "sweep": cmd_sweep, "data": cmd_data, "estimators": cmd_estimators, "bench": cmd_bench}


INTERRUPTED = {  # what Ctrl-C or SIGTERM leaves, by command
    "run": "interrupted; what was logged is kept (continue with --resume)",
    "sweep": "interrupted; the finished runs are kept (run the sweep again to do the rest)",
}


RESUMABLE = {  # how to go on once a full disk has room again, by command
    "run": "; free some space, then continue with --resume",
    "sweep": "; free some space, then run the sweep again",
}


def main(argv=None):
    """Run the command `argv` (a list of arguments; default: this process's command line). The
    process tunings are the caller's: `python -m stochtp` and the `stochtp` script apply them
    (`stochtp.__main__`) before NumPy loads."""
    parser = build_parser()
    command = None
    try:
        args = parser.parse_args(argv)
        command = args.command
        with train.Interrupts():  # SIGTERM ends every command as Ctrl-C does
            return COMMANDS[command](args)
    except TrainingFailed as failure:
        print(f"stochtp: run failed: {failure}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"stochtp: {INTERRUPTED.get(command, 'interrupted')}", file=sys.stderr)
        return 1
    except DiskFull as error:
        print(f"stochtp: error: {error}{RESUMABLE.get(command, '')}", file=sys.stderr)
        return 1
    except (StochtpError, ValueError) as error:
        print(f"stochtp: error: {error}", file=sys.stderr)
        return 2
    except MemoryError as error:
        print(f"stochtp: error: not enough memory{f' ({error})' if str(error) else ''}; a smaller dataset, network or batch needs less", file=sys.stderr)
        return 2
    except OSError as error:  # a full disk, say; a run it stops keeps its last checkpoint (status interrupted)
        print(f"stochtp: error: {error}", file=sys.stderr)
        return 1
    except SystemExit as exit_:  # --help
        return exit_.code if isinstance(exit_.code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
