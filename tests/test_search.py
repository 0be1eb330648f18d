"""Random search: trials drawn from the counter-based generator, checked
[search] tables, trials run and resumed like grid points, and `stochtp report --rank`."""
import json
import re

import pytest
from conftest import REPO_ROOT

from stochtp import config, experiment, report, results, search, sweep
from stochtp.cli import main
from test_sweep import BASE, refused_with_one_line, write_sweep

SEARCH = BASE + """
[method]
name = "st"

[search]
trials = {trials}
"method.lr" = {{low = 1e-4, high = 1e-2, scale = "log"}}

[sweep]
seed = [0, 1]
"""


def lrs(planned):
    return [item.config.method["lr"] for item in planned]


def test_trials_depend_only_on_the_search_seed_the_trial_and_the_key(tmp_path):
    """The same file gives the same trials; raising `trials` keeps the earlier ones; another
    searched key leaves a key's values as they were; another search seed draws afresh."""
    three = sweep.expand(write_sweep(tmp_path, SEARCH.format(trials=3)))
    again = sweep.expand(write_sweep(tmp_path, SEARCH.format(trials=3), "again.toml"))
    five = sweep.expand(write_sweep(tmp_path, SEARCH.format(trials=5), "five.toml"))
    assert lrs(three) == lrs(again) and lrs(five)[:6] == lrs(three)
    assert [item.config.seed for item in three] == [0, 1] * 3  # trials x [sweep], trials first
    assert len(set(lrs(three))) == 3 and all(1e-4 <= lr <= 1e-2 for lr in lrs(five))
    assert three[0].label == f"trial=0 method.lr={lrs(three)[0]} seed=0"
    assert json.loads(three[2].attrs["search"]) == {"seed": 0, "trial": 1, "values": {"method.lr": lrs(three)[2]}}
    wider = SEARCH.format(trials=3).replace("[sweep]", '"method.slope" = {low = 0.5, high = 2.0, scale = "linear"}\n\n[sweep]')
    assert lrs(sweep.expand(write_sweep(tmp_path, wider, "wider.toml"))) == lrs(three)
    reseeded = SEARCH.format(trials=3).replace("trials = 3", "trials = 3\nseed = 7")
    assert set(lrs(sweep.expand(write_sweep(tmp_path, reseeded, "reseeded.toml")))).isdisjoint(lrs(three))


def test_log_scale_is_log_uniform_and_integers_cover_their_range():
    """4000 trials of a log range [1e-4, 1e-2]: the count below 1e-3 (the log midpoint) is
    Binomial(4000, 1/2), inside 2000 +- 150 except with probability below 3e-6 (z = 4.74).
    Integers 1..4 all come out, and only they."""
    plan = search.Search(4000, 0, {"lr": search.Range(1e-4, 1e-2, "log"), "samples": search.Range(1, 4, "linear", integer=True)})
    trials = [plan.values(k) for k in range(plan.trials)]
    below = sum(trial["lr"] < 1e-3 for trial in trials)
    assert abs(below - 2000) < 150
    assert {trial["samples"] for trial in trials} == {1, 2, 3, 4}
    assert all(1e-4 <= trial["lr"] <= 1e-2 and float(f"{trial['lr']:.4g}") == trial["lr"] for trial in trials)


@pytest.mark.parametrize(
    "table, pattern",
    [
        ('trials = 0\n"method.lr" = {low = 1e-4, high = 1e-2, scale = "log"}', "needs trials = N, a whole number from 1 to 10000, got 0"),
        ('trials = 1000000000\n"method.lr" = {low = 1e-4, high = 1e-2, scale = "log"}', "needs trials = N, a whole number from 1 to 10000, got 1000000000"),
        ('"method.lr" = {low = 1e-4, high = 1e-2, scale = "log"}', "needs trials = N"),
        ('trials = 2\n"method.lr" = {low = 1e-4, high = 1e-2, scale = "cubic"}', "key 'method.lr': unknown scale 'cubic'; scales: linear, log"),
        ('trials = 2\n"method.lr" = {low = 1e-2, high = 1e-2, scale = "linear"}', "key 'method.lr': low must be below high"),
        ('trials = 2\n"method.lr" = {low = 0.0, high = 1e-2, scale = "log"}', "key 'method.lr': a log scale needs low > 0"),
        ('trials = 2\n"method.lr" = {low = 1e-4, scale = "log"}', "key 'method.lr': the range needs high"),
        ('trials = 2\n"method.lr" = {low = 1e-4, high = 1e-2, scale = "log", step = 2}', "unknown range field step"),
        ('trials = 2\n"method.samples" = {low = 1.5, high = 4, scale = "linear", integer = true}', "low must be a whole number"),
        ('trials = 2\n"optimiser.lr" = {low = 1e-4, high = 1e-2, scale = "log"}', "key 'optimiser.lr': unknown key"),
        ('trials = 2\nlearning_rate = {low = 1e-4, high = 1e-2, scale = "log"}', "key 'learning_rate': unknown key"),
        ('trials = 2\nseed = [0, 1]\n"method.lr" = {low = 1e-4, high = 1e-2, scale = "log"}', "seed \\(the search's own\\) must be a whole number"),
        ('trials = 2\n"method.lrr" = {low = 1e-4, high = 1e-2, scale = "log"}', "method 'st' has no option 'lrr'"),
        ("trials = 2", "names no config key to search"),
    ],
)
def test_bad_search_tables_are_refused_with_one_line(capsys, tmp_path, table, pattern):
    err = refused_with_one_line(capsys, tmp_path, BASE + f'\n[method]\nname = "st"\n\n[search]\n{table}\n')
    assert re.search(pattern, err), err
    assert not (tmp_path / "out.h5").exists()


def test_a_searched_key_may_not_be_swept_too(capsys, tmp_path):
    text = SEARCH.format(trials=2).replace("seed = [0, 1]", "seed = [0]\nmethod.lr = [0.1]")
    assert main(["sweep", str(write_sweep(tmp_path, text)), "--out", str(tmp_path / "out.h5")]) == 2
    assert "[search] key 'method.lr' is also in [sweep]: a key is either swept or searched" in capsys.readouterr().err


@pytest.mark.slow
def test_trials_run_resume_and_rank_on_validation(capsys, tmp_path):
    """2 trials x 2 seeds run; raising trials to 3 runs only the new trial's 2 runs; every run
    records its trial; --rank orders on mean validation error and says so."""
    out = tmp_path / "search.h5"
    sweep.run(write_sweep(tmp_path, SEARCH.format(trials=2)), out=out, workers=1, say=None)
    summary = sweep.run(write_sweep(tmp_path, SEARCH.format(trials=3)), out=out, workers=1, say=None)
    assert (summary.planned, summary.skipped, len(summary.completed)) == (6, 4, 2)
    runs = results.open(out).runs
    assert sorted(search.trial_of(run.attrs)[1] for run in runs) == [0, 0, 1, 1, 2, 2]
    assert all(search.trial_of(run.attrs)[2] == {"method.lr": run.config["method"]["lr"]} for run in runs)
    ranked = report.rank_trials([out])[0]
    assert [item.valid for item in ranked] == sorted(item.valid for item in ranked) and len(ranked) == 3
    for item in ranked:
        mine = [run for run in runs if search.trial_of(run.attrs)[1] == item.trial]
        assert item.valid == pytest.approx(sum(report.outcome(run.metrics).best_valid for run in mine) / 2)
    assert main(["report", str(out), "--rank"]) == 0
    text = capsys.readouterr().out
    assert "ranked by valid_error_k" in text and "ascending (lower is better, rank 1 is the lowest)" in text
    assert "test_error_k is shown for information only and never ranks" in text


def write_trials(path, trials):
    """A results file of one search's completed trials: (trial, lr, valid_error, test_error), one epoch each."""
    with results.Writer(path) as writer:
        for trial, lr, valid, test in trials:
            attribute = json.dumps({"seed": 0, "trial": trial, "values": {"method.lr": lr}})
            config = {"name": "s", "seed": 0, "method": {"name": "bp", "lr": lr}}
            run = writer.start_run(name="s", method="bp", dataset="teacher", network="8-3s", seed=0, config=config, provenance={"search": attribute})
            run.append({"epoch": 1, "valid_error": valid, "test_error": test})
            run.finish("completed")


def test_rank_never_selects_on_test(capsys, tmp_path):
    """Trial 1 has the lowest test error but the highest validation error: it ranks last."""
    write_trials(tmp_path / "s.h5", [(0, 0.01, 0.20, 0.30), (1, 0.02, 0.40, 0.05), (2, 0.03, 0.10, 0.35)])
    assert [item.trial for item in report.rank_trials([tmp_path / "s.h5"])[0]] == [2, 0, 1]
    assert main(["report", str(tmp_path / "s.h5"), "--rank", "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)[0]
    assert document["ranked_on"] == "valid_error" and document["order"] == "ascending"
    assert [row["trial"] for row in document["trials"]] == [2, 0, 1] and document["trials"][0]["method.lr"] == 0.03


def test_rank_without_trials_is_bad_input(capsys, tmp_path):
    with results.Writer(tmp_path / "plain.h5") as writer:
        writer.start_run(name="p", method="bp", dataset="teacher", network="8-3s", seed=0, config={}, provenance={}).finish("completed")
    assert main(["report", str(tmp_path / "plain.h5"), "--rank"]) == 2
    assert "no completed search trials" in capsys.readouterr().err


def test_the_search_files_of_the_paper_protocol(tmp_path):
    """experiments/sweeps/search-*.toml: 20 trials each, log-uniform ranges, every trial a valid
    config; the stochastic estimators' files (small networks) expand whole, model checks included
    (the others' networks take a minute to build: trial 0's config and method options are checked)."""
    files = sorted((REPO_ROOT / "experiments" / "sweeps").glob("search-*.toml"))
    assert {path.stem for path in files} >= {"search-deep-relu-dtp", "search-deep-relu-bp", "search-stochastic-reinforce", "search-stochastic-arm", "search-stochastic-disarm"}
    for path in files:
        table = config.read_toml(path)
        plan = search.parse(table.pop("search"), path)
        assert plan.trials == 20 and all(bounds.scale == "log" for bounds in plan.ranges.values()) and "sweep" not in table
        if "stochastic" in path.stem:
            planned = sweep.expand(path)
            assert len(planned) == 20 and {item.config.epochs for item in planned} == {20}
            assert {item.config.method["name"] for item in planned} == {path.stem.rsplit("-", 1)[1]}
        else:
            trial = sweep._run_table(table, plan.values(0), path)
            experiment.build_method(config.from_dict(trial, str(path)))


def test_a_failed_trial_keeps_its_search_attribute(tmp_path):
    """A trial that fails in training (a learning rate that diverges in epoch 1) is recorded as
    failed, with its trial."""
    text = BASE + '[method]\nname = "bp"\noptimizer = "sgd"\n\n[search]\ntrials = 1\n"method.lr" = {low = 1e299, high = 1e300, scale = "log"}\n'
    summary = sweep.run(write_sweep(tmp_path, text), out=tmp_path / "s.h5", workers=1, say=None)
    (run,) = results.open(tmp_path / "s.h5").runs
    assert summary.failed == [run.id] and run.status == "failed" and "epoch 1" in run.attrs["error"]
    assert search.trial_of(run.attrs) == (0, 0, {"method.lr": run.config["method"]["lr"]})


def test_two_searches_sharing_trial_indices_are_ranked_apart(tmp_path):
    """A file where a search's ranges were changed and run again: trial 0 of each is its own row."""
    with results.Writer(tmp_path / "s.h5") as writer:
        for lr, valid in ((0.001, 0.2), (0.005, 0.4)):
            trial = json.dumps({"seed": 0, "trial": 0, "values": {"method.lr": lr}}, sort_keys=True)
            cfg = {"name": "grid", "seed": 0, "method": {"name": "st", "lr": lr}}
            run = writer.start_run(name="grid", method="st", dataset="teacher", network="8-3s", seed=0, config=cfg, provenance={search.ATTRIBUTE: trial})
            run.append({"epoch": 1, "valid_error": valid, "test_error": valid})
            run.finish("completed")
    (ranked,) = report.rank_trials([tmp_path / "s.h5"])
    assert [(item.trial, item.values["method.lr"], item.valid) for item in ranked] == [(0, 0.001, 0.2), (0, 0.005, 0.4)]


def test_trials_that_coincide_make_one_run_and_the_sweep_says_so(tmp_path):
    """Eight trials of an integer key with two values: one run per distinct config, and the
    sweep's second line names the first combinations that make no run of their own and counts the rest."""
    path = write_sweep(tmp_path, BASE + '\n[method]\nname = "st"\n\n[search]\ntrials = 8\nepochs = {low = 1, high = 2, scale = "linear", integer = true}\n')
    planned, repeats = sweep.plan(path)
    assert sorted(item.config.epochs for item in planned) == [1, 2]
    assert len(repeats) == 6 and all(label.startswith("trial=") for label in repeats)
    lines = []
    sweep.run(path, out=tmp_path / "search.h5", workers=1, say=lines.append)
    assert lines[0].endswith("2 runs, 0 already completed in " + str(tmp_path / "search.h5") + ", 2 to run")
    assert lines[1] == f"  6 more combination(s) repeat an earlier run's config and make no run of their own: {'; '.join(repeats[:5])}; and 1 more"
