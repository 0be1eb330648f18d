"""The `stochtp` command (docs/cli.md): exit codes 0 / 2 / 1, one-line errors,
results files left untouched, `show` and `data check`, and one real MNIST run."""
import argparse
import csv
import errno
import importlib.metadata
import io
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

from stochtp import cli, config, experiment, results, train
from stochtp.errors import DiskFull
from stochtp.cli import main

RUN_OPTIONS = ("--threads", "1", "--quiet")


def fails_with_usage_error(capsys, *argv):
    """Run `stochtp ARGV` in-process, expect exit code 2 and one line on stderr; return that line."""
    assert main(list(argv)) == 2
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1 and stderr.startswith("stochtp"), stderr
    return stderr.strip()


@pytest.fixture
def results_file(tiny_config_path, tmp_path, capsys):
    """A results file holding one completed 1-epoch run of the tiny config."""
    out = tmp_path / "results.h5"
    assert main(["run", str(tiny_config_path), "--epochs", "1", "--out", str(out), *RUN_OPTIONS]) == 0
    assert capsys.readouterr().out.startswith("completed: run ")
    return out


def test_unknown_key_exits_2_with_one_line_and_no_traceback(write_toml):
    """The installed `stochtp` entry point, in a process of its own: exit 2, one line naming key and file."""
    path = write_toml('preset = "mnist-bp"\nlearning_rate = 0.1\n')
    stochtp = Path(sys.executable).parent / "stochtp"
    finished = subprocess.run([str(stochtp), "run", str(path)], capture_output=True, text=True, timeout=120)
    assert finished.returncode == 2
    assert "Traceback" not in finished.stderr
    assert finished.stderr.count("\n") == 1
    assert "'learning_rate'" in finished.stderr and str(path) in finished.stderr


@pytest.mark.parametrize(
    "text, pattern",
    [
        ('preset = "mnist-bp"\nepoch = 3\n', "unknown key 'epoch'"),
        ('epochs = "three"\n', "key 'epochs' must be an integer"),
        ('preset = "mnist-bp"\nnetwork = "784-10q"\n', "key 'network'.*unknown unit letter 'q'"),
        ('preset = "mnist-bp"\ndataset = "teacher"\n', "network 784-500t-500t-10s does not fit dataset 'teacher'"),
        ('preset = "mnist-bp"\ndataset = "teacher"\nnetwork = "8-6t-3s"\n[method]\nlr = "fast"\n', "method 'bp'.*'lr' must be a number"),
        ("epochs = [\n", "not valid TOML"),
        ('preset = "mnist-bp"\ndataset = "teacher"\nnetwork = "8-6t-3g"\n', "does not fit dataset 'teacher'.*3 softmax units"),
        ('preset = "mnist-bp"\ndataset = "teacher"\nnetwork = "8-6t-3s"\n[data]\nn_train = 50\n', "50 training examples, fewer than one mini-batch of 100"),
        ('preset = "mnist-bp"\ndataset = "teacher"\nnetwork = "8-6t-3s"\n[data]\nn_valid = 0\n', "no valid examples"),
        ('preset = "paper-stochastic-dtp"\ndataset = "teacher"\nnetwork = "8-6b-6b-3s"\n[method]\nsigma_tau = 0\n', "sigma_tau must be positive"),
        ('preset = "paper-stochastic-dtp"\ndataset = "teacher"\nnetwork = "8-6b-6b-3s"\n[method]\nsigma = -0.1\n', "sigma must be a finite number >= 0"),
    ],
)
def test_bad_config_file_is_named(capsys, write_toml, tmp_path, text, pattern):
    """Every error in a config file, found when loading it or when building the run, names the file."""
    path = write_toml(text)
    line = fails_with_usage_error(capsys, "run", str(path), "--out", str(tmp_path / "r.h5"), *RUN_OPTIONS)
    assert str(path) in line
    assert re.search(pattern, line), line
    assert not (tmp_path / "r.h5").exists()


@pytest.mark.parametrize(
    "argv, pattern",
    [
        (["run", "missing.toml"], "missing.toml does not exist"),
        (["run", "--preset", "mnist-pb"], "unknown preset 'mnist-pb'; presets: .*mnist-bp"),
        (["run", "--preset", "mnist-bp", "--set", "epochs"], "--set 'epochs': expected key=value"),
        (["run", "--preset", "mnist-bp", "--set", "epochs=three"], "--set epochs=three: key 'epochs' must be an integer"),
        (["run", "--preset", "mnist-bp", "--set", "network=784-10q"], "--set network=784-10q: key 'network'"),
        (["run", "--preset", "mnist-bp", "--epochs", "0"], "'epochs' must be at least 1"),
        (["run", "--preset", "mnist-bp", "--threads", "x"], "argument --threads: invalid int value"),
        (["run", "--preset", "mnist-bp", "--threads", "0"], "threads must be between 1 and"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["run", "--set", "method.lr_f=0.01"], "paper-stochastic-st: method 'st' has no option 'lr_f'"),
        (["run", "--set", "network=784-100t-10s", "--epochs", "1"], "paper-stochastic-dtp: method 'dtp'|needs stochastic"),
        (["run", "--preset", "mnist-bp", "--out", "newdir/"], "newdir/ is a folder"),
        (["sweep", "x.toml", "--out", "newdir/"], "newdir/ is a folder"),
        (["estimators", "--out", "newdir/"], "newdir/ is a folder"),
        (["run", "--preset", "mnist-bp", "--set", "preset=x"], "a preset is chosen with --preset"),
    ],
)
def test_bad_usage_exits_2(capsys, tmp_path, monkeypatch, argv, pattern):
    monkeypatch.chdir(tmp_path)
    line = fails_with_usage_error(capsys, *argv)
    assert re.search(pattern, line), line
    assert not (tmp_path / "results").exists()


def test_missing_mnist_offline_names_the_files(capsys, tmp_path, monkeypatch):
    """MNIST absent and no network: exit 2, the message names the missing files; nothing is downloaded."""
    asked = []

    def offline(url, timeout=None):
        asked.append(url)
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    (tmp_path / "empty").mkdir()
    line = fails_with_usage_error(
        capsys, "run", "--preset", "mnist-bp", "--epochs", "1", "--data-dir", str(tmp_path / "empty"), "--out", str(tmp_path / "r.h5"), *RUN_OPTIONS
    )
    assert "MNIST files missing" in line and "train-images-idx3-ubyte.gz" in line and str(tmp_path / "empty") in line
    assert asked and not (tmp_path / "r.h5").exists()
    assert not [path for path in (tmp_path / "empty").rglob("*") if path.is_file()]


@pytest.mark.mnist
def test_truncated_mnist_file_is_named(capsys, tmp_path, mnist_dir):
    """A copy of MNIST with one file cut in half: exit 2, the message names that file."""
    copy = shutil.copytree(mnist_dir, tmp_path / "data" / "mnist")
    damaged = copy / "t10k-labels-idx1-ubyte.gz"
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])
    line = fails_with_usage_error(
        capsys, "run", "--preset", "mnist-bp", "--epochs", "1", "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "r.h5"), *RUN_OPTIONS
    )
    assert "t10k-labels-idx1-ubyte.gz" in line and "corrupt" in line


def write_foreign_files(folder):
    """Files at a results path that stochtp must refuse and leave as they are."""
    text = folder / "notes.h5"
    text.write_text("not HDF5 at all\n")
    unmarked = folder / "unmarked.h5"
    with h5py.File(unmarked, "w") as h5file:
        h5file["data"] = [1, 2, 3]
    newer = folder / "newer.h5"
    with h5py.File(newer, "w") as h5file:
        h5file.attrs["format"] = "stochtp-results"
        h5file.attrs["format_version"] = 2
        h5file.create_group("runs")
    return {text: "not an HDF5 file", unmarked: "no 'format' attribute", newer: "format version 2"}


@pytest.mark.parametrize("command", ["run", "show"])
def test_foreign_or_newer_results_files_are_refused_untouched(capsys, tiny_config_path, tmp_path, command):
    """A text file, an HDF5 file without the format attribute, a newer format version: exit 2,
    the reason given, the file's bytes unchanged."""
    for path, reason in write_foreign_files(tmp_path).items():
        before = path.read_bytes()
        argv = ["run", str(tiny_config_path), "--epochs", "1", "--out", str(path), *RUN_OPTIONS] if command == "run" else ["show", str(path)]
        line = fails_with_usage_error(capsys, *argv)
        assert str(path) in line and reason in line, line
        assert path.read_bytes() == before
        assert not Path(f"{path}.lock").exists()


def test_non_finite_run_exits_1(capsys, write_toml, tmp_path):
    """A run that diverges is a failed run: exit 1, one line naming the first non-finite quantity
    and the epoch, status "failed" in the file; NumPy's warnings from training never show."""
    path = write_toml('preset = "mnist-bp"\ndataset = "teacher"\nnetwork = "8-6t-3s"\n[method]\noptimizer = "sgd"\nlr = 1e300\n')
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert main(["run", str(path), "--out", str(tmp_path / "r.h5"), *RUN_OPTIONS]) == 1
    stderr = capsys.readouterr().err
    assert stderr == "stochtp: run failed: non-finite training loss at epoch 1\n"
    (run,) = results.open(tmp_path / "r.h5").runs
    assert run.status == "failed"


@pytest.mark.parametrize("option", ["method.samples=1e20", "method.samples=18446744073709551616", "method.samples=16777217", "method.lr=nan"])
def test_method_options_beyond_what_a_run_represents_are_refused_before_anything_is_written(capsys, tiny_config_path, tmp_path, option):
    out = tmp_path / "r.h5"
    line = fails_with_usage_error(capsys, "run", str(tiny_config_path), "--set", "method.name=reinforce", "--set", option, "--out", str(out), *RUN_OPTIONS)
    assert f"option '{option.split('.')[1].split('=')[0]}'" in line
    assert not out.exists()


def test_epochs_beyond_64_bits_are_refused(capsys, tiny_config_path, tmp_path):
    line = fails_with_usage_error(capsys, "run", str(tiny_config_path), "--epochs", str(2**64), "--out", str(tmp_path / "r.h5"), *RUN_OPTIONS)
    assert "'epochs' must be below 2**63" in line and not (tmp_path / "r.h5").exists()


def damage(path, how):
    """A results file with stochtp's format attributes and a layout stochtp did not write."""
    with h5py.File(path, "w") as h5file:
        h5file.attrs.update({"format": "stochtp-results", "format_version": 1})
        if how == "runs is a dataset":
            h5file["runs"] = np.zeros(3)
        elif how == "a run is a dataset":
            h5file.create_group("runs")["20260101T000000.000000Z-000000"] = 1
        elif how == "metrics is a dataset":
            h5file.create_group("runs").create_group("r")["metrics"] = 1
        elif how == "a metric is 2-D":
            h5file.create_group("runs").create_group("r").create_group("metrics")["epoch"] = np.zeros((2, 2))
        elif how == "attributes are missing":
            run = h5file.create_group("runs").create_group("r")
            run.attrs["status"] = "completed"
            for name in ("metrics", "diagnostics", "params", "best"):
                run.create_group(name)


DAMAGES = {
    "no runs group": "it has no /runs group",
    "runs is a dataset": "/runs is not a group",
    "a run is a dataset": "run 20260101T000000.000000Z-000000 is not a group",
    "metrics is a dataset": "run r: metrics is not a group",
    "a metric is 2-D": "run r: metrics/epoch is not a 1-D numeric dataset",
    "attributes are missing": "run r has no attribute name, method",
}


@pytest.mark.parametrize("how", DAMAGES)
@pytest.mark.parametrize("command", ["show", "report", "run", "sweep"])
def test_a_damaged_layout_is_refused_by_every_command_and_left_untouched(capsys, tiny_config_path, write_toml, tmp_path, how, command):
    path = tmp_path / "r.h5"
    damage(path, how)
    before = path.read_bytes()
    sweep_file = write_toml(tiny_config_path.read_text().replace("[method]", "[sweep]\nseed = [0]\n\n[method]"), "s.toml")
    argv = {
        "show": ["show", str(path)],
        "report": ["report", str(path)],
        "run": ["run", str(tiny_config_path), "--out", str(path), *RUN_OPTIONS],
        "sweep": ["sweep", str(sweep_file), "--out", str(path), "--workers", "1", "--quiet"],
    }[command]
    line = fails_with_usage_error(capsys, *argv)
    assert line == f"stochtp: error: {path} is damaged: {DAMAGES[how]}" or line.startswith(f"stochtp: error: {path} is damaged: {DAMAGES[how]}"), line
    assert path.read_bytes() == before and not Path(f"{path}.lock").exists()


def test_a_full_disk_stops_the_run_resumably_with_one_line(capsys, tiny_config_path, tmp_path, monkeypatch):
    """ENOSPC while epoch 3's checkpoint is written: exit 1, one line, no traceback; the run is
    `interrupted` with epochs 1-2 kept, and --resume finishes it."""
    out = tmp_path / "r.h5"
    real_save = results.RunWriter.save_checkpoint

    def disk_full_at_epoch_3(self, checkpoint):
        if checkpoint["epoch"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(self, checkpoint)

    monkeypatch.setattr(results.RunWriter, "save_checkpoint", disk_full_at_epoch_3)
    assert main(["run", str(tiny_config_path), "--out", str(out), *RUN_OPTIONS]) == 1
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1 and "No space left on device" in stderr and "Traceback" not in stderr
    (run,) = results.open(out).runs
    assert run.status == "interrupted" and run.checkpoint["epoch"] == 2 and run.attrs["error"].startswith("stopped with 2 of 4 epochs logged: ")
    monkeypatch.undo()
    assert main(["run", str(tiny_config_path), "--out", str(out), "--resume", *RUN_OPTIONS]) == 0
    (run,) = results.open(out).runs
    assert run.status == "completed" and list(run.metrics["epoch"]) == [1, 2, 3, 4]


@pytest.mark.parametrize("where, advice", [("start_run", "then run it again"), ("save_checkpoint", "then continue with --resume")])
def test_a_full_disk_advises_resume_only_where_a_run_was_written(capsys, tiny_config_path, tmp_path, monkeypatch, where, advice):
    owner = results.Writer if where == "start_run" else results.RunWriter

    def disk_full(self, *args, **kwargs):
        raise DiskFull(f"the disk holding {tmp_path / 'r.h5'} is full")

    monkeypatch.setattr(owner, where, disk_full)
    assert main(["run", str(tiny_config_path), "--out", str(tmp_path / "r.h5"), *RUN_OPTIONS]) == 1
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1 and stderr.rstrip().endswith(advice)


@pytest.mark.parametrize("option, message", [
    ("data.weight_scale=inf", "weight_scale must be a finite positive number"),
    ("data.n_train=1000000000000", "not enough memory"),
])
def test_impossible_teacher_datasets_exit_2_with_one_line(capsys, tiny_config_path, tmp_path, option, message):
    line = fails_with_usage_error(capsys, "run", str(tiny_config_path), "--set", option, "--out", str(tmp_path / "r.h5"), *RUN_OPTIONS)
    assert message in line
    assert not (tmp_path / "r.h5").exists()


def test_resume_without_an_interrupted_run_exits_2(capsys, tiny_config_path, results_file):
    line = fails_with_usage_error(capsys, "run", str(tiny_config_path), "--epochs", "1", "--out", str(results_file), "--resume", *RUN_OPTIONS)
    assert "no interrupted run of this config" in line
    new_file = results_file.with_name("new.h5")
    line = fails_with_usage_error(capsys, "run", str(tiny_config_path), "--out", str(new_file), "--resume", *RUN_OPTIONS)
    assert "no interrupted run of this config" in line and not new_file.exists()


def test_resumed_default_comparison_skips_completed_presets_and_continues_interrupted_ones(capsys, tmp_path, monkeypatch):
    """`stochtp run --resume` without a config: per preset of the comparison, completed -> skipped,
    interrupted -> continued, absent -> started."""
    completed, interrupted, absent = cli.DEFAULT_COMPARISON
    out = tmp_path / "comparison.h5"
    with results.Writer(out) as writer:
        for preset, status in ((completed, "completed"), (interrupted, "interrupted")):
            cfg = config.load(preset=preset, epochs=1, eval_samples_every=1)
            train.start_run(writer, cfg, threads=1).finish(status)
    calls = []

    def fake_run(cfg, out, resume, **options):
        calls.append((cfg.name, resume))
        return train.RunSummary("id", out, "completed", 1, 1, 0.1, 0.1, 1.0)

    monkeypatch.setattr(experiment, "run", fake_run)
    assert main(["run", "--resume", "--epochs", "1", "--out", str(out)]) == 0
    assert calls == [(interrupted, True), (absent, False)]
    assert f"{completed}: completed in {out}, skipped" in capsys.readouterr().out


@pytest.mark.parametrize("epochs, every", [(3, 3), (25, 10)])
def test_default_comparison_keeps_the_presets_k_sample_schedule_and_its_last_epoch(tmp_path, monkeypatch, epochs, every):
    """K-sample errors every 10 epochs (the presets' schedule), or at the last of fewer: the best
    epoch is then chosen among several, not always the last."""
    schedules = []

    def fake_run(cfg, out, resume, **options):
        schedules.append(cfg.eval_samples_every)
        return train.RunSummary("id", out, "completed", epochs, epochs, 0.1, 0.1, 1.0)

    monkeypatch.setattr(experiment, "run", fake_run)
    assert main(["run", "--epochs", str(epochs), "--out", str(tmp_path / "c.h5")]) == 0
    assert schedules == [every] * len(cli.DEFAULT_COMPARISON)


def test_show_lists_runs_and_shows_one(capsys, results_file):
    """`show FILE` lists the run; `show FILE RUN_ID` prints its config, provenance and metrics."""
    (run,) = results.open(results_file).runs
    assert main(["show", str(results_file)]) == 0
    listing = capsys.readouterr().out
    assert run.id in listing and "tiny" in listing and "completed" in listing

    assert main(["show", str(results_file), run.id]) == 0
    shown = capsys.readouterr().out
    config_text = shown[shown.index("config:\n") + len("config:\n"):shown.index("metrics:")]
    assert json.loads(config_text) == run.config
    assert run.config["network"] == "8-6b-6b-3s"
    assert "numpy_version" in shown and "test_error_k" in shown

    line = fails_with_usage_error(capsys, "show", str(results_file), "no-such-run")
    assert "no run 'no-such-run'" in line
    line = fails_with_usage_error(capsys, "show", "--follow", str(results_file), "no-such-run")
    assert "no run 'no-such-run'" in line


@pytest.mark.mnist
def test_data_check_mnist_reports_ok(capsys, mnist_dir):
    assert main(["data", "check", "mnist", "--data-dir", str(mnist_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sorted(lines) == sorted(f"{name}: ok" for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"))


RUN_ATTRIBUTES = (
    "name", "method", "dataset", "network", "seed", "status", "error", "started_at", "finished_at",
    "config", "config_hash", "stochtp_version", "git_commit", "git_dirty", "python_version",
    "numpy_version", "numba_version", "h5py_version", "platform", "num_threads",
)


@pytest.mark.slow
@pytest.mark.mnist
def test_mnist_bp_one_epoch_writes_the_documented_layout(capsys, tmp_path, mnist_dir):
    """`stochtp run --preset mnist-bp --epochs 1`: every attribute, metric and group of docs/results-format.md
    is there for plain h5py, and one epoch of BP already gets under 20 % test error."""
    out = tmp_path / "mnist.h5"
    assert main(["run", "--preset", "mnist-bp", "--epochs", "1", "--data-dir", str(mnist_dir), "--out", str(out), *RUN_OPTIONS]) == 0
    with h5py.File(out, "r") as h5file:
        assert h5file.attrs["format"] == "stochtp-results" and h5file.attrs["format_version"] == 1
        (run,) = h5file["runs"].values()
        assert set(RUN_ATTRIBUTES) <= set(run.attrs)
        assert (run.attrs["name"], run.attrs["method"], run.attrs["dataset"], run.attrs["status"]) == ("mnist-bp", "bp", "mnist", "completed")
        assert json.loads(run.attrs["config"])["epochs"] == 1
        for name in ("epoch", "wall_time", "train_loss", "train_error", "valid_error", "test_error"):
            assert run["metrics"][name].shape == (1,), name
        for i, (n_in, n_out) in enumerate([(784, 500), (500, 500), (500, 10)]):
            for group in ("params", "best"):
                assert run[f"{group}/layer_{i}/W"].shape == (n_in, n_out)
                assert run[f"{group}/layer_{i}/b"].shape == (n_out,)
        assert len(run["checkpoint"]) > 0
        assert run["metrics/test_error"][0] < 0.2


@pytest.mark.parametrize("interval", ["inf", "1e300", "0", "nan"])
def test_a_follow_interval_out_of_range_exits_2(capsys, results_file, interval):
    """time.sleep overflows on inf: the interval is checked (positive, at most a day) first."""
    line = fails_with_usage_error(capsys, "show", str(results_file), "--follow", "--interval", interval)
    assert "--interval must be a positive number of seconds up to 86400" in line


def catches(pid, signum):
    """Whether process `pid` has a handler for `signum` now (Linux: the SigCgt mask in /proc)."""
    with open(f"/proc/{pid}/status") as status:
        mask = next(line.split()[1] for line in status if line.startswith("SigCgt:"))
    return bool(int(mask, 16) >> (signum - 1) & 1)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the signal mask in /proc")
def test_sigterm_ends_any_command_with_its_own_interrupted_line(tmp_path):
    """SIGTERM, like Ctrl-C, ends every command with one line that fits it (`stochtp estimators`
    has no --resume to offer), not with a bare exit -15."""
    import signal
    import time

    argv = [sys.executable, "-m", "stochtp.cli", "estimators", str(config.preset_path("estimators")), "--samples", "1000000", "--out", str(tmp_path / "e.h5")]
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not catches(child.pid, signal.SIGTERM) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(3)  # into the scoring, past Numba's loading of its kernels (a signal there waits for it: a test in test_train)
    child.send_signal(signal.SIGTERM)
    try:
        _, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 1
    assert err.strip().splitlines()[-1] == "stochtp: interrupted"


def _actions(parser):
    """Every argparse action of `parser` and of its subcommands' parsers, with the parser's prog."""
    for action in parser._actions:
        yield parser.prog, action
        if isinstance(action, argparse._SubParsersAction):
            for subparser in dict.fromkeys(action.choices.values()):
                yield from _actions(subparser)


def test_every_option_of_every_command_has_help():
    """Walks the parser: no argument of any command is left without a help text."""
    missing = [f"{prog} {action.option_strings or action.dest}" for prog, action in _actions(cli.build_parser()) if not action.help]
    assert not missing, missing


@pytest.mark.parametrize("command", ["run", "show", "report", "sweep", "data", "estimators", "bench"])
def test_every_command_has_examples_in_its_help(capsys, command):
    assert main([command, "--help"]) == 0
    text = capsys.readouterr().out
    examples = text[text.index("examples:\n"):]
    assert f"  stochtp {command}" in examples
    assert max(len(line) for line in text.splitlines()) < 80


def test_run_help_says_no_arguments_run_the_demo(capsys):
    assert main(["run", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "`stochtp run` runs the demo" in text
    assert all(preset in text for preset in cli.DEFAULT_COMPARISON) and cli.DEFAULT_COMPARISON_OUT in text


def test_run_offers_only_presets_it_can_train(capsys):
    """`estimators` is the config of `stochtp estimators`: not in run's help, nor in its messages."""
    assert "estimators" not in config.presets() and "paper-stochastic-dtp" in config.presets()
    assert main(["run", "--help"]) == 0
    assert "estimators" not in capsys.readouterr().out.split("presets (--preset NAME):")[1].split("methods")[0]
    line = fails_with_usage_error(capsys, "run", "--preset", "estimators")
    assert "the config of `stochtp estimators`" in line and "estimators," not in line and "paper-stochastic-dtp" in line
    line = fails_with_usage_error(capsys, "run", "--preset", "mnist-pb")
    assert "estimators" not in line


def test_version_is_the_package_metadata_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"stochtp {importlib.metadata.version('stochtp')}\n"


@pytest.mark.parametrize("argv, line", [
    ([], "stochtp: error: the following arguments are required: COMMAND"),
    (["run", "--threads", "x"], "stochtp run: error: argument --threads: invalid int value: 'x'"),
    (["report"], "stochtp report: error: name a results file (FILE.h5) or --records DIR"),
    (["bench", "--repeat", "0"], "stochtp bench: error: --repeat must be positive"),
])
def test_usage_errors_name_the_command_once(capsys, argv, line):
    assert fails_with_usage_error(capsys, *argv) == line


def test_version_outside_an_installation_is_read_from_pyproject(monkeypatch):
    """A checkout on the path, not installed: the version still comes from pyproject.toml."""
    import stochtp

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    pyproject = (Path(stochtp.__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert f'version = "{stochtp._version()}"' in pyproject


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_show_writes_every_metric_of_every_epoch_as_csv_or_json(capsys, tiny_config_path, tmp_path, fmt):
    """`show FILE RUN --format` gives one row per epoch and every metric column; the values are the file's."""
    out = tmp_path / "results.h5"
    assert main(["run", str(tiny_config_path), "--epochs", "3", "--out", str(out), *RUN_OPTIONS]) == 0
    (run,) = results.open(out).runs
    capsys.readouterr()
    assert main(["show", str(out), run.id, "--format", fmt]) == 0
    text = capsys.readouterr().out
    rows = list(csv.DictReader(io.StringIO(text))) if fmt == "csv" else json.loads(text)
    assert len(rows) == 3 and list(rows[0]) == ["run", *run.metrics]
    for name, values in run.metrics.items():
        read = [float("nan") if row[name] is None else float(row[name]) for row in rows]
        np.testing.assert_array_equal(read, values)
    assert {row["run"] for row in rows} == {run.id}

    assert main(["show", str(out), "--format", fmt, "--output", str(tmp_path / f"m.{fmt}")]) == 0
    assert capsys.readouterr().out == f"written: {tmp_path / f'm.{fmt}'}\n"
    assert (tmp_path / f"m.{fmt}").read_text() == text


@pytest.mark.parametrize("argv, pattern", [
    (["--output", "m.csv"], "--output needs --format"),
    (["--format", "xml"], "argument --format: invalid choice: 'xml'"),
    (["--format", "csv", "--follow"], "--format and --follow do not go together"),
    (["--format", "csv", "--output", "missing/m.csv"], "--output missing/m.csv: cannot write it"),
    (["--format", "csv", "--output", "."], "--output .: is a folder"),
])
def test_show_format_bad_usage_exits_2(capsys, results_file, tmp_path, monkeypatch, argv, pattern):
    monkeypatch.chdir(tmp_path)
    line = fails_with_usage_error(capsys, "show", str(results_file), *argv)
    assert re.search(pattern, line), line


def test_show_output_never_writes_over_a_results_file(capsys, results_file, tmp_path):
    """Not over the file it reads, nor over another results file: exit 2, both intact."""
    other = tmp_path / "other.h5"
    other.write_bytes(results_file.read_bytes())
    before = results_file.read_bytes()
    for target in (results_file, other):
        line = fails_with_usage_error(capsys, "show", str(results_file), "--format", "csv", "--output", str(target))
        assert "is an HDF5 file" in line
    assert results_file.read_bytes() == before == other.read_bytes()


def test_show_output_through_a_link_writes_the_file_it_names(capsys, results_file, tmp_path):
    (tmp_path / "m.csv").write_text("old")
    (tmp_path / "link.csv").symlink_to(tmp_path / "m.csv")
    assert main(["show", str(results_file), "--format", "csv", "--output", str(tmp_path / "link.csv")]) == 0
    assert (tmp_path / "link.csv").is_symlink() and (tmp_path / "m.csv").read_text().startswith("run,epoch")
    assert not list(tmp_path.glob(".*.part"))


def test_show_output_on_a_full_disk_exits_1_and_keeps_the_old_file(capsys, results_file, tmp_path, monkeypatch):
    (tmp_path / "m.csv").write_text("old")

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    assert main(["show", str(results_file), "--format", "csv", "--output", str(tmp_path / "m.csv")]) == 1
    err = capsys.readouterr().err
    assert "is full" in err and err.count("\n") == 1
    assert (tmp_path / "m.csv").read_text() == "old" and not list(tmp_path.glob(".*.part"))


def test_show_labels_k_sample_errors(capsys, results_file):
    (run,) = results.open(results_file).runs
    assert main(["show", str(results_file)]) == 0
    assert "K=4" in capsys.readouterr().out.splitlines()[1]
    assert main(["show", str(results_file), run.id]) == 0
    assert "valid_error_k, test_error_k: K-sample errors, K = 4" in capsys.readouterr().out


@pytest.mark.parametrize("epochs, speed", [(1, r"s/epoch: none from epoch 1 alone \(epoch 1 took \S+ s, any Numba compilation included\)"),
                                           (3, r"\S+ s/epoch, median of epochs 2-3 \(epoch 1 took \S+ s, any Numba compilation included\)")])
def test_run_summary_labels_k_sample_errors_and_leaves_epoch_1_out_of_s_per_epoch(capsys, tiny_config_path, tmp_path, epochs, speed):
    assert main(["run", str(tiny_config_path), "--epochs", str(epochs), "--out", str(tmp_path / "r.h5"), *RUN_OPTIONS]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(rf"  epochs {epochs}, best validation epoch \d, test error \(K=4 samples\) at best \S+, last \S+", lines[1]), lines[1]
    assert re.fullmatch(rf"  {speed}", lines[2]), lines[2]
