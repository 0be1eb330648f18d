"""`stochtp report` and `--follow`: numbers over seeds checked
against a hand computation, paired comparisons, the four formats, plots, live following."""
import csv
import json
import math
import re
import subprocess
import sys

import h5py
import numpy as np
import pytest

from stochtp import config, experiment, report, results
from stochtp.cli import main
from test_train import AUTOENCODER_RUN, start_child, wait_for_epochs

NAN = math.nan
T_975_1 = 12.706204736  # Student t quantile 0.975, 1 degree of freedom (tables)

# Runs written straight into a results file, 3 epochs each, K-sample errors missing at epoch 1.
# The 1-sample errors are lowest at epoch 1, so selecting on them instead of the K-sample ones
# would pick another epoch. (name, seed, method.lr, valid_error_k, test_error_k, epoch_time, test_error)
RUNS = [
    ("alpha", 0, 0.1, [0.90, 0.90], [0.90, 0.90], [9, 9, 9], 0.11),  # older copy of the next config
    ("alpha", 0, 0.1, [0.20, 0.30], [0.22, 0.27], [1, 2, 3], 0.11),
    ("alpha", 1, 0.1, [0.25, 0.15], [0.26, 0.18], [4, 5, 6], 0.11),
    ("beta", 0, 0.1, [0.30, 0.30], [0.20, 0.35], [1, 1, 1], 0.13),  # a tie: the earlier epoch is best
    ("beta", 1, 0.2, [0.40, 0.35], [0.41, 0.38], [2, 2, 2], 0.13),
]
# By hand. Best-validation epoch and test_error_k there / at the last epoch:
#   alpha 0: epoch 2, 0.22 / 0.27    alpha 1: epoch 3, 0.18 / 0.18
#   beta 0:  epoch 2, 0.20 / 0.35    beta 1:  epoch 3, 0.38 / 0.38
# alpha: mean 0.20, std sqrt(2 * 0.02^2) = 0.028284; last 0.225, std 0.063640; median time of
#        epochs 2 and 3 (epoch 1 compiles) 4.0
# beta:  mean 0.29, std 0.127279; last 0.365, std 0.021213; median time 1.5
# alpha - beta per seed: +0.02, -0.20 -> mean -0.09, sd 0.155563, se 0.11,
#   95 % interval -0.09 -/+ 12.706205 * 0.11 = [-1.487683, +1.307683]; each lower on one seed: p = 1
BY_NAME = {
    "alpha": dict(seeds=2, at_best_mean=0.20, at_best_std=0.0282843, last_mean=0.225, last_std=0.0636396, seconds_per_epoch=4.0),
    "beta": dict(seeds=2, at_best_mean=0.29, at_best_std=0.1272792, last_mean=0.365, last_std=0.0212132, seconds_per_epoch=1.5),
}
HALF_WIDTH = T_975_1 * 0.22 / math.sqrt(2) / math.sqrt(2)


def write_runs(path, runs=RUNS):
    """A results file holding `runs` (completed) and one failed run."""
    with results.Writer(path) as writer:
        for name, seed, lr, valid_k, test_k, times, test_error in runs:
            cfg = {"name": name, "seed": seed, "dataset": "teacher", "network": "8-6b-6b-3s", "method": {"name": "dtp", "lr": lr}}
            run = writer.start_run(name=name, method="dtp", dataset="teacher", network="8-6b-6b-3s", seed=seed, config=cfg, provenance={"num_threads": 1})
            for epoch in range(3):
                run.append({
                    "epoch": epoch + 1,
                    "epoch_time": float(times[epoch]),
                    "valid_error": [0.10, 0.50, 0.50][epoch],
                    "test_error": [test_error, 0.50, 0.50][epoch],
                    "valid_error_k": [NAN, *valid_k][epoch],
                    "test_error_k": [NAN, *test_k][epoch],
                })
            run.finish("completed")
        failed = writer.start_run(name="gamma", method="dtp", dataset="teacher", network="8-6b-6b-3s", seed=0, config={"name": "gamma"}, provenance={})
        failed.finish("failed", "non-finite training loss")
    return path


@pytest.fixture
def runs_file(tmp_path):
    return write_runs(tmp_path / "runs.h5")


def report_output(capsys, *argv):
    assert main(["report", *map(str, argv)]) == 0
    return capsys.readouterr().out


def test_outcome_selects_on_validation_and_ignores_unevaluated_epochs():
    metrics = {"epoch": np.arange(1, 5), "valid_error": np.array([0.1, 0.4, 0.4, 0.4]), "test_error": np.array([0.5, 0.6, 0.7, 0.8]),
               "valid_error_k": np.array([NAN, 0.3, NAN, 0.2]), "test_error_k": np.array([NAN, 0.35, NAN, 0.25])}
    assert report.outcome(metrics) == report.Outcome("test_error_k", 4, 0.2, 0.25, 0.25)
    assert report.outcome(metrics, "test_error") == report.Outcome("test_error", 1, 0.1, 0.5, 0.8)
    continuous = {name: metrics[name] for name in ("epoch", "valid_error", "test_error")}
    assert report.outcome(continuous).metric == "test_error"


def test_t_quantile_and_sign_test_match_tables():
    for df, quantile in [(1, 12.706204736), (2, 4.302652730), (5, 2.570581836), (10, 2.228138852), (30, 2.042272456)]:
        assert report.t_quantile(0.975, df) == pytest.approx(quantile, rel=1e-9)
    assert report.t_quantile(0.95, 4) == pytest.approx(2.131846786, rel=1e-9)
    assert report.sign_test(3, 0) == 0.25 and report.sign_test(9, 1) == pytest.approx(22 / 1024)
    assert report.sign_test(2, 2) == 1.0 and report.sign_test(0, 0) == 1.0


def test_json_numbers_match_the_hand_computation(capsys, runs_file):
    document = json.loads(report_output(capsys, runs_file, "--format", "json"))
    assert [group["name"] for group in document["groups"]] == ["alpha", "beta"]
    for group in document["groups"]:
        expected = BY_NAME[group["name"]]
        assert (group["metric"], group["epochs"]) == ("test_error_k", "3")
        assert group == {**group, **{key: pytest.approx(value, abs=1e-6) for key, value in expected.items()}}
    (comparison,) = document["comparisons"]
    assert (comparison["first"], comparison["second"], comparison["seeds"]) == ("alpha", "beta", [0, 1])
    assert comparison["difference"] == pytest.approx(-0.09)
    assert (comparison["low"], comparison["high"]) == (pytest.approx(-0.09 - HALF_WIDTH), pytest.approx(-0.09 + HALF_WIDTH))
    assert (comparison["first_lower"], comparison["second_lower"], comparison["sign_p"]) == (1, 1, 1.0)
    assert document["left_out"] == {"failed": 1, "repeated config": 1}


def test_table_and_markdown_show_the_same_numbers_and_the_comparison(capsys, runs_file):
    lines = report_output(capsys, runs_file).splitlines()
    assert [re.split(r"\s{2,}", line.strip()) for line in lines[1:3]] == [
        ["alpha", "test_error_k", "K", "2", "3", "0.2000 ± 0.0283", "0.2250 ± 0.0636", "4"],
        ["beta", "test_error_k", "K", "2", "3", "0.2900 ± 0.1273", "0.3650 ± 0.0212", "1.5"],
    ]
    comparison = "alpha − beta (test_error_k (K)): -0.0900 [-1.4877, +1.3077] over 2 seeds; lower: alpha on 1, beta on 1; sign test p = 1"
    assert comparison in lines and "left out: 1 failed, 1 repeated config" in lines

    markdown = report_output(capsys, runs_file, "--format", "markdown").splitlines()
    assert markdown[:4] == [
        "| name | metric | samples | seeds | epochs | at best valid (mean ± std) | at last epoch | s/epoch |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        "| alpha | test_error_k | K | 2 | 3 | 0.2000 ± 0.0283 | 0.2250 ± 0.0636 | 4 |",
        "| beta | test_error_k | K | 2 | 3 | 0.2900 ± 0.1273 | 0.3650 ± 0.0212 | 1.5 |",
    ]
    assert f"- {comparison}" in markdown


def test_csv_has_one_row_per_group(capsys, runs_file):
    rows = list(csv.DictReader(report_output(capsys, runs_file, "--format", "csv").splitlines()))
    assert [row["name"] for row in rows] == ["alpha", "beta"]
    for row in rows:
        for key, value in BY_NAME[row["name"]].items():
            assert float(row[key]) == pytest.approx(value, abs=1e-6), key


def test_by_dotted_config_key_averages_each_seed_first(capsys, runs_file):
    """--by method.lr: lr 0.1 holds alpha 0, alpha 1 and beta 0; seed 0 is (0.22 + 0.20) / 2."""
    document = json.loads(report_output(capsys, runs_file, "--by", "method.lr", "--format", "json"))
    low_lr, high_lr = document["groups"]
    assert (low_lr["method.lr"], low_lr["seeds"], high_lr["method.lr"], high_lr["seeds"]) == ("0.1", 2, "0.2", 1)
    assert low_lr["at_best_mean"] == pytest.approx(0.195) and low_lr["at_best_std"] == pytest.approx(0.03 / math.sqrt(2))
    assert low_lr["last_mean"] == pytest.approx(0.245) and high_lr["at_best_mean"] == pytest.approx(0.38)
    assert high_lr["at_best_std"] is None
    (comparison,) = document["comparisons"]
    assert comparison["seeds"] == [1] and comparison["difference"] == pytest.approx(-0.20)
    assert comparison["low"] is None and comparison["sign_p"] is None
    assert comparison["untested"] == "1 shared seed (1): no t interval or sign test, which need 2 shared seeds or more"


def test_metric_option_selects_on_its_own_validation_counterpart(capsys, runs_file):
    """--metric test_error: the best epoch is chosen on valid_error (epoch 1 everywhere)."""
    document = json.loads(report_output(capsys, runs_file, "--metric", "test_error", "--format", "json"))
    alpha, beta = document["groups"]
    assert (alpha["metric"], alpha["at_best_mean"], alpha["last_mean"], beta["at_best_mean"]) == ("test_error", 0.11, 0.5, 0.13)
    (comparison,) = document["comparisons"]
    assert comparison["difference"] == pytest.approx(-0.02) and comparison["first_lower"] == 2 and comparison["sign_p"] == 0.5


def test_groups_reporting_different_metrics_are_not_compared(capsys, tmp_path):
    path = write_runs(tmp_path / "r.h5", RUNS[1:3])
    with results.Writer(path) as writer:
        run = writer.start_run(name="continuous", method="bp", dataset="teacher", network="8-6t-3s", seed=0, config={"name": "continuous"}, provenance={})
        run.append({"epoch": 1, "epoch_time": 1.0, "valid_error": 0.3, "test_error": 0.31})
        run.finish("completed")
    document = json.loads(report_output(capsys, path, "--format", "json"))
    assert [(group["name"], group["metric"]) for group in document["groups"]] == [("alpha", "test_error_k"), ("continuous", "test_error")]
    assert document["comparisons"] == []


def test_reports_read_several_files(capsys, tmp_path):
    first = write_runs(tmp_path / "first.h5", RUNS[1:3])
    second = write_runs(tmp_path / "second.h5", RUNS[3:])
    document = json.loads(report_output(capsys, first, second, "--format", "json"))
    assert [group["name"] for group in document["groups"]] == ["alpha", "beta"]
    assert document["left_out"] == {"failed": 2}


@pytest.mark.parametrize("argv, message", [(["--by", "nothing"], "--by nothing: no run has this attribute or config key"), (["--format", "xml"], "invalid choice: 'xml'")])
def test_bad_options_exit_2(capsys, runs_file, argv, message):
    assert main(["report", str(runs_file), *argv]) == 2
    assert message in capsys.readouterr().err


def test_a_file_that_is_not_stochtps_exits_2(capsys, tmp_path):
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5\n")
    with h5py.File(tmp_path / "other.h5", "w") as h5file:
        h5file["x"] = 1
    for path in (text, tmp_path / "other.h5"):
        assert main(["report", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is not a stochtp results file" in err and str(path) in err


# ------------------------------------------------------------------------------- plotting


@pytest.fixture
def trained_file(tiny_config_path, tmp_path):
    """Three tiny trained runs on the stochastic net: DTP (with diagnostics) seeds 0 and 1, ST seed 0."""
    out = tmp_path / "trained.h5"
    for method, seed in (("dtp", 0), ("dtp", 1), ("st", 0)):
        cfg = config.load(tiny_config_path, overrides=[f"method.name={method}"], seed=seed, epochs=4)
        experiment.run(cfg, out=out, threads=1)
    return out


@pytest.mark.slow
def test_plot_draws_curves_and_diagnostic_panels(capsys, trained_file, tmp_path):
    image = pytest.importorskip("matplotlib.image")
    png = tmp_path / "curves.png"
    output = report_output(capsys, trained_file, "--by", "method", "--plot", png)
    assert output.splitlines()[0].startswith("method")
    pixels = image.imread(png)
    # metric + inverse_error + target_distance (bp_angle is all NaN on stochastic nets): 2 x 2 panels
    assert pixels.shape[:2] == (round(4.4 * 2 * 110), round(6.4 * 2 * 110))
    rgb = np.round(pixels[..., :3] * 255).astype(int)
    for colour in ((31, 119, 180), (255, 127, 14)):  # matplotlib's C0 and C1: one per group
        assert (np.abs(rgb - colour).sum(axis=-1) < 30).sum() > 300, colour
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 100


@pytest.mark.parametrize("name", ["curves", "curves.h5"])
def test_plot_needs_an_image_file_name(capsys, runs_file, tmp_path, name):
    """matplotlib would write curves.png for `--plot curves`, and refuse a .h5 only after the report."""
    pytest.importorskip("matplotlib.figure")
    assert main(["report", str(runs_file), "--plot", str(tmp_path / name)]) == 2
    assert "name an image file (.png, .pdf, .svg)" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [runs_file]


def test_plot_without_matplotlib_exits_2(capsys, runs_file, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    assert main(["report", str(runs_file), "--plot", str(tmp_path / "c.png")]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == "stochtp: error: matplotlib is needed: pip install 'stochtp[plot]'"
    assert captured.out == "" and not (tmp_path / "c.png").exists()


# -------------------------------------------------------------------------------- follow


EPOCH_LINE = re.compile(r"^(\S+) (\S+) seed (\d+) epoch (\d+): \w+ \d")


def test_follow_on_a_file_nobody_writes_prints_it_and_returns(capsys, runs_file):
    assert main(["show", str(runs_file), "--follow"]) == 0
    lines = capsys.readouterr().out.splitlines()
    epochs = [(match[2], int(match[4])) for match in map(EPOCH_LINE.match, lines) if match]
    assert epochs == [(name, epoch) for name, *_ in RUNS for epoch in (1, 2, 3)]
    assert sum(line.endswith(": completed") for line in lines) == 5
    assert any(line.endswith(": failed (non-finite training loss)") for line in lines)

    output = report_output(capsys, runs_file, "--follow", "--interval", "0.1")
    assert EPOCH_LINE.match(output) and "alpha − beta" in output


@pytest.mark.slow
def test_show_follow_prints_epochs_while_a_run_writes_them(tiny_config_path, tmp_path):
    """`stochtp show --follow` started on a run in progress prints its first epochs before the
    run ends, then every later epoch once, then how it ended, and exits by itself."""
    out = tmp_path / "live.h5"
    child = start_child(tiny_config_path, out, "--epochs", "12", pace=0.5)
    try:
        wait_for_epochs(out, 1, child)
        follower = subprocess.Popen([sys.executable, "-m", "stochtp.cli", "show", str(out), "--follow", "--interval", "0.1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = follower.stdout.readline()
        run_was_going = child.poll() is None
        rest = follower.stdout.read()  # the same buffered reader: communicate() would miss lines readline() buffered
        errors = follower.stderr.read()
        follower.wait(timeout=120)
        assert child.wait(timeout=60) == 0
    finally:
        if child.poll() is None:
            child.kill()
    assert follower.returncode == 0, errors
    assert run_was_going, "the run had ended before the first epoch was printed"
    lines = [first.rstrip("\n"), *rest.splitlines()]
    assert [int(match[4]) for match in map(EPOCH_LINE.match, lines) if match] == list(range(1, 13))
    assert lines[-1].endswith(": completed")


def test_ctrl_c_ends_following_with_exit_0(capsys, runs_file, monkeypatch):
    """While a writer holds the file, --follow waits for more; Ctrl-C there ends it quietly."""

    def interrupted_sleep(seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr(results, "is_being_written", lambda path: True)
    monkeypatch.setattr(report.time, "sleep", interrupted_sleep)
    assert main(["show", str(runs_file), "--follow"]) == 0
    captured = capsys.readouterr()
    assert sum(bool(EPOCH_LINE.match(line)) for line in captured.out.splitlines()) == 3 * len(RUNS)
    assert captured.err == ""


def test_a_file_is_being_written_while_a_live_writer_holds_it(tmp_path):
    """Writer open: yes; closed: no; a lock file left by a killed writer (dead pid): no."""
    path = tmp_path / "r.h5"
    with results.Writer(path):
        assert results.is_being_written(path)
    assert not results.is_being_written(path)
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    (tmp_path / "r.h5.lock").write_text(finished.stdout)
    assert not results.is_being_written(path)


def test_partial_counts_interrupted_runs_as_far_as_they_got(capsys, tmp_path):
    path = write_runs(tmp_path / "runs.h5", RUNS[1:3])
    with results.Writer(path) as writer:
        cfg = {"name": "alpha", "seed": 2, "dataset": "teacher", "network": "8-6b-6b-3s", "method": {"name": "dtp", "lr": 0.1}}
        run = writer.start_run(name="alpha", method="dtp", dataset="teacher", network="8-6b-6b-3s", seed=2, config=cfg, provenance={})
        for epoch, (valid, test) in enumerate([(NAN, NAN), (0.10, 0.12)]):
            run.append({"epoch": epoch + 1, "epoch_time": 1.0, "valid_error": 0.5, "test_error": 0.5, "valid_error_k": valid, "test_error_k": test})
        run.finish("interrupted")
    complete = report_output(capsys, path).splitlines()
    assert re.split(r"\s{2,}", complete[1].strip())[:5] == ["alpha", "test_error_k", "K", "2", "3"] and "left out: 1 failed, 1 interrupted" in complete
    partial = report_output(capsys, path, "--partial").splitlines()
    row = re.split(r"\s{2,}", partial[1].strip())
    assert row[:5] == ["alpha", "test_error_k", "K", "3", "2-3"] and row[5] == "0.1733 ± 0.0503"  # 0.22, 0.18, 0.12: mean 0.52 / 3, std sqrt(0.005067 / 2)
    assert "left out: 1 failed" in partial


def test_partial_keeps_a_completed_run_over_a_newer_unfinished_one_of_its_config(capsys, tmp_path):
    path = write_runs(tmp_path / "runs.h5", RUNS[1:2])  # alpha, seed 0, completed: 0.22 at its best epoch
    with results.Writer(path) as writer:
        cfg = {"name": "alpha", "seed": 0, "dataset": "teacher", "network": "8-6b-6b-3s", "method": {"name": "dtp", "lr": 0.1}}
        run = writer.start_run(name="alpha", method="dtp", dataset="teacher", network="8-6b-6b-3s", seed=0, config=cfg, provenance={})
        run.append({"epoch": 1, "epoch_time": 1.0, "valid_error": 0.05, "test_error": 0.05, "valid_error_k": 0.05, "test_error_k": 0.05})
        run.finish("interrupted")  # the same experiment started again and stopped after an epoch
    partial = report_output(capsys, path, "--partial").splitlines()
    assert re.split(r"\s{2,}", partial[1].strip())[:6] == ["alpha", "test_error_k", "K", "1", "3", "0.2200"]
    assert "left out: 1 failed, 1 repeated config" in partial


def test_an_unknown_metric_is_bad_input(capsys, runs_file):
    assert main(["report", str(runs_file), "--metric", "bogus"]) == 2
    error = capsys.readouterr().err.strip()
    assert "no run has this metric" in error and "test_error_k" in error and len(error.splitlines()) == 1


def test_a_group_whose_runs_differ_in_more_than_the_seed_says_in_what(capsys, runs_file):
    """beta's two seeds ran at different learning rates: averaging them over seeds is not one experiment."""
    lines = report_output(capsys, runs_file).splitlines()
    assert "beta: its runs differ in method.lr, not only the seed (--by one of them splits the group)" in lines
    assert not any(line.startswith("alpha:") for line in lines)
    document = json.loads(report_output(capsys, runs_file, "--format", "json"))
    assert document["differing_keys"] == {"beta": ["method.lr"]}


def test_runs_without_an_epoch_column_are_reported_by_row(tmp_path, capsys):
    """A file written through results.Writer by other code need not log `epoch`: show and
    report count its rows as epochs 1, 2, ... instead of failing on a KeyError."""
    path = tmp_path / "custom.h5"
    with results.Writer(path) as writer:
        run = writer.start_run(name="custom", method="m", dataset="d", network="n", seed=0, config={}, provenance={})
        for valid, test in ((0.5, 0.4), (0.3, 0.2), (0.35, 0.1)):
            run.append(metrics={"valid_error": valid, "test_error": test})
        run.finish()
    assert main(["report", str(path)]) == 0
    assert main(["show", str(path)]) == 0
    assert report.outcome(results.open(path).runs[0].metrics).best_epoch == 2


# Printed by the hand-written bisection on the closed-form t distribution and the hand-written
# sign test that scipy.stats replaced: the report's numbers stay these.
OLD_T_975 = {1: 12.706204736, 2: 4.30265273, 3: 3.182446305, 4: 2.776445105, 6: 2.446911851, 9: 2.262157163,
             14: 2.144786688, 19: 2.093024054, 29: 2.045229642, 49: 2.009575237, 99: 1.984216952}
OLD_SIGN_P = {(0, 1): 1.0, (1, 1): 1.0, (0, 5): 0.0625, (1, 4): 0.375, (2, 7): 0.1796875, (5, 5): 1.0, (0, 12): 0.00048828125, (3, 17): 0.0025768280029296875}


def test_scipy_statistics_print_the_numbers_of_the_hand_written_ones():
    for df, quantile in OLD_T_975.items():
        assert f"{report.t_quantile(0.975, df):.6f}" == f"{quantile:.6f}"
        assert report.t_quantile(0.975, df) == pytest.approx(quantile, rel=1e-8)
    for (wins, losses), p in OLD_SIGN_P.items():
        assert f"{report.sign_test(wins, losses):.3g}" == f"{p:.3g}" and f"{report.sign_test(losses, wins):.3g}" == f"{p:.3g}"


def test_one_shared_seed_gets_no_interval_or_sign_test_and_the_report_says_why(capsys, runs_file):
    lines = report_output(capsys, runs_file, "--by", "method.lr").splitlines()
    (line,) = [line for line in lines if line.startswith("0.1 − 0.2")]
    assert line == "0.1 − 0.2 (test_error_k (K)): -0.2000 on 1 shared seed (1): no t interval or sign test, which need 2 shared seeds or more"
    assert "sign test p" not in line and "[" not in line


def test_report_labels_k_sample_errors_with_k_and_says_what_s_per_epoch_leaves_out(capsys, tiny_config_path, tmp_path):
    out = tmp_path / "r.h5"
    experiment.run(config.load(tiny_config_path, epochs=2), out=out, threads=1)
    lines = report_output(capsys, out).splitlines()
    assert re.split(r"\s{2,}", lines[1].strip())[:3] == ["tiny", "test_error_k", "K=4"]
    assert any("each run's epoch 1 left out" in line for line in lines)


SHORT_RUNS = [  # K-sample errors at the last epoch only, as a short run evaluates them
    ("alpha", 0, 0.1, [NAN, 0.30], [NAN, 0.27], [1, 2, 3], 0.11),
    ("beta", 0, 0.1, [NAN, 0.35], [NAN, 0.38], [1, 1, 1], 0.13),
]


def test_plot_of_short_runs_draws_curves_per_epoch_and_prints_its_path(capsys, tmp_path):
    """K-sample errors of one epoch: the test panel draws the 1-sample test error of every epoch instead."""
    image = pytest.importorskip("matplotlib.image")
    path = write_runs(tmp_path / "short.h5", SHORT_RUNS)
    groups = report.summarise([path]).groups
    assert report._plotted_metric(groups) == ("test_error", "test_error, 1-sample (test_error_k (K): evaluated on one epoch only)")
    png = tmp_path / "curves.png"
    lines = report_output(capsys, path, "--plot", png).splitlines()
    assert lines[-1] == f"plot written: {png}"
    assert image.imread(png).shape[:2] == (round(4.4 * 110), round(6.4 * 110))  # one panel: these runs log no training loss
    assert main(["report", str(path), "--plot", str(png), "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["groups"] and captured.err == f"plot written: {png}\n"


def test_plot_of_one_epoch_runs_draws_a_bar_per_group():
    figure = pytest.importorskip("matplotlib.figure")
    runs = [type("OneEpoch", (), {"metrics": {"test_error": np.array([value])}}) for value in (0.3, 0.4)]
    groups = [report.Group(label, [run], []) for label, run in zip(("a", "b"), runs)]
    axis = figure.Figure().subplots()
    assert report._draw_curves(axis, groups, lambda group: [run.metrics["test_error"] for run in group.runs]) is False
    assert [patch.get_height() for patch in axis.patches] == [0.3, 0.4]
    assert [text.get_text() for text in axis.get_xticklabels()] == ["a", "b"]


def test_filters_picture_of_the_newest_completed_autoencoder(write_toml, tmp_path, capsys):
    """`report --filters` draws the first layer's columns as square images (4 x 4 here) into --out
    and prints the path; the report of the runs reads the reconstruction error by default."""
    out = tmp_path / "dae.h5"
    experiment.run(config.load(write_toml(AUTOENCODER_RUN), epochs=1), out=out, threads=1)
    picture = tmp_path / "filters.png"
    assert main(["report", str(out), "--filters", "--out", str(picture)]) == 0
    assert capsys.readouterr().out.strip() == f"written: {picture}"
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["report", str(out), "--filters"]) == 0
    assert (tmp_path / "dae-filters.png").is_file()
    (group,) = report.summarise([out]).groups
    assert group.metric == "test_reconstruction" and group.outcomes[0].at_best == results.open(out).runs[0].metrics["test_reconstruction"][0]


def test_filters_need_a_square_input(tiny_config_path, tmp_path, capsys):
    out = tmp_path / "r.h5"
    experiment.run(config.load(tiny_config_path, epochs=1), out=out, threads=1)
    assert main(["report", str(out), "--filters", "--out", str(tmp_path / "f.png")]) == 2
    assert "takes 8 inputs, not a square image" in capsys.readouterr().err
