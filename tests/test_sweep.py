"""Sweeps: grid expansion, the run-record path, local and Dask executors,
resuming a killed sweep, failed runs."""
import concurrent.futures
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT

from stochtp import config, experiment, results, sweep
from stochtp.cli import main
from stochtp.errors import ConfigError, ResultsError

TIMING_METRICS = ("wall_time", "epoch_time")
TIME_ATTRIBUTES = ("started_at", "finished_at")

# The tiny stochastic teacher task of conftest.TINY_RUN, without a [method] table, so that a
# sweep over method.name gives each method its default options.
BASE = """\
dataset = "teacher"
network = "8-6b-6b-3s"
epochs = 2
batch_size = 50
eval_samples = 4
eval_samples_every = 2

[data]
n_train = 400
n_valid = 200
n_test = 200
"""

METHODS_BY_SEEDS = BASE + """
[sweep]
method.name = ["dtp", "st"]
seed = [0, 1]
"""


def write_sweep(tmp_path, text, name="grid.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def records_by_hash(path):
    """Every run of a results file as a record, keyed by config hash."""
    return {run.attrs["config_hash"]: results.read_record(path, run.id) for run in results.open(path).runs}


def assert_same_tree(actual, expected, where):
    assert actual.keys() == expected.keys(), where
    for key, value in expected.items():
        if isinstance(value, dict):
            assert_same_tree(actual[key], value, f"{where}/{key}")
        else:
            np.testing.assert_array_equal(actual[key], value, err_msg=f"{where}/{key}", strict=True)


def assert_same_record(actual, expected):
    """Equal bit for bit except the timings: attributes, metrics, diagnostics, parameters, checkpoint."""
    untimed = lambda attrs: {key: value for key, value in attrs.items() if key not in TIME_ATTRIBUTES}
    assert untimed(actual["attrs"]) == untimed(expected["attrs"])
    metrics = lambda record: {name: column for name, column in record["metrics"].items() if name not in TIMING_METRICS}
    assert_same_tree(metrics(actual), metrics(expected), "metrics")
    for part in ("diagnostics", "params", "best", "best_attrs", "checkpoint"):
        assert_same_tree(actual[part], expected[part], part)


# ------------------------------------------------------------------------------ expansion


def test_expand_is_the_cartesian_product_with_dotted_keys(tmp_path):
    """Keys vary in the file's order (the last fastest); dotted keys, written bare or quoted,
    reach into [method] and [data]; a value listed twice gives one run."""
    path = write_sweep(tmp_path, BASE + '\n[method]\nname = "dtp"\n\n[sweep]\nseed = [0, 1, 1]\nmethod.lr_f = [0.001, 0.01]\n"data.n_train" = [300]\n')
    planned = sweep.expand(path)
    assert [item.label for item in planned] == [
        f"seed={seed} method.lr_f={lr} data.n_train=300" for seed in (0, 1) for lr in (0.001, 0.01)
    ]
    assert [(item.config.seed, item.config.method["lr_f"], item.config.data["n_train"]) for item in planned] == [
        (0, 0.001, 300), (0, 0.01, 300), (1, 0.001, 300), (1, 0.01, 300)
    ]
    assert all(item.config.name == "grid" and item.config.method["name"] == "dtp" for item in planned)
    assert all(item.config.data["n_valid"] == 200 for item in planned)
    assert sweep.plan(path)[1] == [f"seed=1 method.lr_f={lr} data.n_train=300" for lr in (0.001, 0.01)]


def test_swept_presets_name_their_runs(tmp_path):
    """Sweeping `preset` names each run after its preset, or `<name>-<preset>` when the file has a name."""
    presets = ["paper-stochastic-dtp", "paper-stochastic-st"]
    bare = sweep.expand(write_sweep(tmp_path, f"epochs = 3\n[sweep]\npreset = {presets}\n"))
    assert [item.config.name for item in bare] == presets
    assert [item.config.method["name"] for item in bare] == ["dtp", "st"]
    assert all(item.config.epochs == 3 for item in bare)
    named = sweep.expand(write_sweep(tmp_path, f'name = "short"\n[sweep]\npreset = {presets}\n'))
    assert [item.config.name for item in named] == [f"short-{preset}" for preset in presets]


@pytest.mark.slow
def test_reproduce_sweep_covers_every_paper_preset():
    """experiments/sweeps/reproduce.toml: every MNIST paper-* preset x 10 seeds,
    distinct names; reproduce-cifar.toml: the CIFAR-10 ones (not expanded here: their networks
    take a minute each to build)."""
    planned = sweep.expand(REPO_ROOT / "experiments" / "sweeps" / "reproduce.toml")
    paper = [name for name in config.presets() if name.startswith("paper-") and config.load(preset=name).dataset == "mnist"]
    cifar = [name for name in config.presets() if name.startswith("paper-") and config.load(preset=name).dataset == "cifar10"]
    assert len(paper) >= 8 and len(cifar) == 2
    assert config.read_toml(REPO_ROOT / "experiments" / "sweeps" / "reproduce-cifar.toml")["sweep"] == {"preset": cifar, "seed": list(range(10))}
    assert sorted((item.config.name, item.config.seed) for item in planned) == sorted((name, seed) for name in paper for seed in range(10))
    assert all(item.config == config.load(preset=item.config.name, seed=item.config.seed) for item in planned)


@pytest.mark.parametrize(
    "text, pattern",
    [
        (BASE, "needs a \\[sweep\\] table"),
        (BASE + "[sweep]\nseed = 3\n", "key 'seed' must be a non-empty list"),
        (BASE + "[sweep]\nseed = []\n", "key 'seed' must be a non-empty list"),
        (BASE + "[sweep]\nepoch = [1, 2]\n", "unknown key 'epoch'"),
        (BASE + "[sweep]\nseed = [0, \"one\"]\n", "key 'seed' must be an integer"),
        (BASE + "[sweep]\nmethod.lrr = [0.1]\n", "method 'bp' has no option 'lrr'"),
        (BASE + "[sweep]\nepochs.x = [1]\n", "key 'epochs' must be a non-empty list"),
        (BASE + '[sweep]\n"epochs.x" = [1]\n', "key 'epochs.x': 'epochs' is not a table"),
        (BASE + '[sweep]\n"optimiser.lr" = [1]\n', "unknown key 'optimiser'"),
        (BASE + '[sweep]\nnetwork = ["8-6t-3s"]\n"method.name" = ["reinforce"]\n', "method 'reinforce' needs stochastic"),
    ],
)
def test_bad_sweep_files_are_refused_before_any_run(capsys, tmp_path, text, pattern):
    """Exit 2, one line naming the file and the problem, no results file."""
    path = write_sweep(tmp_path, text)
    assert main(["sweep", str(path), "--out", str(tmp_path / "out.h5"), "--workers", "1"]) == 2
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and str(path) in line, line
    assert re.search(pattern, line), line
    assert not (tmp_path / "out.h5").exists()


def test_workers_must_be_positive(capsys, tmp_path):
    path = write_sweep(tmp_path, METHODS_BY_SEEDS)
    assert main(["sweep", str(path), "--out", str(tmp_path / "out.h5"), "--workers", "0"]) == 2
    assert "--workers must be at least 1" in capsys.readouterr().err


# -------------------------------------------------------------------------------- records


def test_a_record_copied_into_another_file_reads_back_the_same(tmp_path):
    """read_record -> Writer.add_record -> read_record: everything equal (a DTP run, so
    diagnostics, inverses and a nested checkpoint are in it), under a new run id."""
    cfg = config.from_dict({**config.load(write_sweep(tmp_path, BASE, "base.toml")).to_dict(), "method": {"name": "dtp"}})
    summary = experiment.run(cfg, out=tmp_path / "source.h5", threads=1)
    record = results.read_record(tmp_path / "source.h5", summary.run_id)
    assert record["diagnostics"] and record["checkpoint"]["method"] and record["best_attrs"]["epoch"] == summary.best_epoch
    with results.Writer(tmp_path / "copy.h5") as writer:
        run_id = writer.add_record(record)
    assert run_id != summary.run_id
    copied = results.read_record(tmp_path / "copy.h5", run_id)
    assert copied["attrs"] == record["attrs"]
    assert_same_tree(copied["metrics"], record["metrics"], "metrics")
    for part in ("diagnostics", "params", "best", "best_attrs", "checkpoint"):
        assert_same_tree(copied[part], record[part], part)
    assert results.open(tmp_path / "copy.h5")[run_id].status == "completed"

    with pytest.raises(ResultsError, match="no run 'missing'"):
        results.read_record(tmp_path / "copy.h5", "missing")
    ragged = {**record, "metrics": {**record["metrics"], "epoch": record["metrics"]["epoch"][:1]}}
    with results.Writer(tmp_path / "copy.h5") as writer, pytest.raises(ValueError, match="one row per epoch"):
        writer.add_record(ragged)
    assert len(results.open(tmp_path / "copy.h5").runs) == 1


# ------------------------------------------------------------------------------ executors


@pytest.mark.slow
def test_local_sweep_writes_every_run_and_a_rerun_skips_them(capsys, tmp_path):
    """Two local workers: one progress line per run, four completed runs trained on one thread each,
    the same numbers as `stochtp run`; running the sweep again trains nothing."""
    path = write_sweep(tmp_path, METHODS_BY_SEEDS)
    out = tmp_path / "grid.h5"
    assert main(["sweep", str(path), "--out", str(out), "--workers", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("4 runs, 0 already completed in " + str(out) + ", 4 to run")
    assert sorted(line.split("] ", 1)[1].split(" -> ")[0] for line in lines[1:5]) == sorted(
        f"completed: grid method.name={method} seed={seed}" for method in ("dtp", "st") for seed in (0, 1)
    )
    assert lines[5].startswith("sweep done: 4 completed, 0 failed, 0 skipped")
    runs = results.open(out).runs
    assert [run.status for run in runs] == ["completed"] * 4
    assert {run.attrs["config_hash"] for run in runs} == {item.config.hash for item in sweep.expand(path)}
    assert {run.attrs["num_threads"] for run in runs} == {1}

    dtp_seed_1 = next(item.config for item in sweep.expand(path) if item.label == "method.name=dtp seed=1")
    experiment.run(dtp_seed_1, out=tmp_path / "single.h5", threads=1)
    (single,) = records_by_hash(tmp_path / "single.h5").values()
    assert_same_record(records_by_hash(out)[dtp_seed_1.hash], single)

    assert main(["sweep", str(path), "--out", str(out), "--quiet"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"sweep done: 0 completed, 0 failed, 4 skipped (completed before) -> {out}"]
    assert len(results.open(out).runs) == 4


@pytest.mark.slow
def test_dask_cluster_gives_the_records_of_local_workers(tmp_path):
    """The same sweep through --scheduler on a LocalCluster of two single-threaded worker
    processes and through local workers: the same records, bit for bit except the timings."""
    distributed = pytest.importorskip("distributed")
    path = write_sweep(tmp_path, METHODS_BY_SEEDS)
    local = sweep.run(path, out=tmp_path / "local.h5", workers=2, say=None)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        remote = sweep.run(path, out=tmp_path / "dask.h5", scheduler=cluster.scheduler_address, say=None)
    assert (len(local.completed), len(remote.completed), remote.failed) == (4, 4, [])
    local_records, dask_records = records_by_hash(tmp_path / "local.h5"), records_by_hash(tmp_path / "dask.h5")
    assert local_records.keys() == dask_records.keys() and len(local_records) == 4
    for config_hash, record in local_records.items():
        assert_same_record(dask_records[config_hash], record)


def test_missing_or_unreachable_dask_is_a_usage_error(capsys, tmp_path, monkeypatch):
    path = write_sweep(tmp_path, METHODS_BY_SEEDS)
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "distributed", None)
        assert main(["sweep", str(path), "--out", str(tmp_path / "a.h5"), "--scheduler", "tcp://127.0.0.1:1"]) == 2
        assert "distributed is needed: pip install 'stochtp[distributed]'" in capsys.readouterr().err
    pytest.importorskip("distributed")
    monkeypatch.setattr(sweep, "DASK_CONNECT_TIMEOUT_S", 1)
    assert main(["sweep", str(path), "--out", str(tmp_path / "b.h5"), "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:1" in capsys.readouterr().err
    assert main(["sweep", str(path), "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err


@pytest.mark.slow
def test_failed_runs_are_recorded_and_the_others_complete(capsys, tmp_path):
    """A run that diverges (its worker's record says failed, with its message) is `failed` in the
    file; the rest completes; exit 1."""
    path = write_sweep(tmp_path, BASE + '\n[method]\nname = "bp"\noptimizer = "sgd"\n\n[sweep]\nmethod.lr = [0.01, 1e300]\n')
    out = tmp_path / "grid.h5"
    assert main(["sweep", str(path), "--out", str(out), "--workers", "2"]) == 1
    assert "sweep done: 1 completed, 1 failed, 0 skipped" in capsys.readouterr().out
    by_lr = {run.config["method"]["lr"]: run for run in results.open(out).runs}
    assert by_lr[0.01].status == "completed" and by_lr[0.01].num_epochs == 2
    diverged = by_lr[1e300]
    assert diverged.status == "failed" and "epoch 1" in diverged.attrs["error"] and diverged.attrs["finished_at"]


@pytest.mark.parametrize("grid, message", [
    ("data.n_train = [400, 0]", "run data.n_train=0: teacher option n_train must be an integer >= 1"),
    ("data.n_train = [400, 30]", "fewer than one mini-batch"),
    ("data.nosuch = [1]", "has no option nosuch"),
    ('network = ["8-6b-3s", "5-6b-3s"]', "does not fit dataset"),
])
def test_runs_that_cannot_meet_their_data_stop_the_sweep_before_anything_is_written(capsys, tmp_path, grid, message):
    assert message in refused_with_one_line(capsys, tmp_path, BASE + f"\n[sweep]\n{grid}\n")


def refused_with_one_line(capsys, tmp_path, text):
    """The stderr line of a sweep of the file `text` refused before anything ran: exit 2, one
    line naming the sweep file, no results file."""
    path, out = write_sweep(tmp_path, text), tmp_path / "out.h5"
    assert main(["sweep", str(path), "--out", str(out), "--workers", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and str(path) in err and not out.exists()
    return err


def test_a_task_that_raises_is_recorded_as_a_failed_run(tmp_path):
    """A worker's task that raises (a Dask worker whose data the client could not check) comes
    back to the client, which writes a failed run of its config naming the exception."""
    (planned,) = sweep.expand(write_sweep(tmp_path, BASE + "\n[sweep]\nseed = [0]\n"))
    future = concurrent.futures.Future()
    future.set_exception(ConfigError("dataset 'teacher' has 0 training examples"))
    with results.Writer(tmp_path / "grid.h5") as writer:
        run_id, status, detail = sweep._store(writer, planned, future)
    (run,) = results.open(tmp_path / "grid.h5").runs
    assert (run.id, run.status, status) == (run_id, "failed", "failed") and run.attrs["error"] == detail == "ConfigError: dataset 'teacher' has 0 training examples"
    assert run.attrs["config_hash"] == planned.config.hash


@pytest.mark.slow
def test_killed_sweep_trains_only_the_missing_runs(tmp_path):
    """SIGKILL to a sweep (client and worker) after its first run is in the file; running it again
    skips the runs written before, trains the others, and leaves one completed run per config."""
    path = write_sweep(tmp_path, METHODS_BY_SEEDS.replace("epochs = 2", "epochs = 12").replace('["dtp", "st"]', '["dtp"]').replace("[0, 1]", "[0, 1, 2, 3]"))
    out = tmp_path / "grid.h5"
    child = subprocess.Popen(
        [sys.executable, "-m", "stochtp.cli", "sweep", str(path), "--out", str(out), "--workers", "1", "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        before = []
        while not before:
            assert child.poll() is None, f"the sweep ended early: {child.stderr.read()}"
            assert time.monotonic() < deadline, "no run written in 120 s"
            time.sleep(0.02)
            try:
                before = [run for run in results.open(out).runs if run.status == "completed"]
            except ResultsError:  # not created yet
                pass
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    assert 1 <= len(before) < 4, "the sweep finished before it could be killed"

    lines = []
    summary = sweep.run(path, out=out, workers=1, say=lines.append)
    assert (summary.planned, summary.skipped, len(summary.completed), summary.failed) == (4, len(before), 4 - len(before), [])
    assert lines[0].endswith(f"4 runs, {len(before)} already completed in {out}, {4 - len(before)} to run")
    completed = [run for run in results.open(out).runs if run.status == "completed"]
    assert sorted(run.attrs["config_hash"] for run in completed) == sorted(item.config.hash for item in sweep.expand(path))
    assert {run.id for run in before} | set(summary.completed) == {run.id for run in completed}


def start_sweep(tmp_path, epochs, seeds=(0, 1)):
    """A sweep of the tiny DTP run on 2 local workers in a process group of its own (setsid), and the folder its workers train in."""
    path = write_sweep(tmp_path, BASE.replace("epochs = 2", f"epochs = {epochs}") + f'[sweep]\nmethod.name = ["dtp"]\nseed = {list(seeds)}\n')
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    child = subprocess.Popen(
        [sys.executable, "-m", "stochtp.cli", "sweep", str(path), "--out", str(tmp_path / "grid.h5"), "--workers", "2", "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True, env={**os.environ, "TMPDIR": str(scratch)},
    )
    return child, scratch


def wait_until_both_workers_train(child, scratch):
    """Until each worker's own results file holds an epoch: both runs are in training."""
    deadline = time.monotonic() + 120
    while True:
        assert child.poll() is None, f"the sweep ended early: {child.stderr.read()}"
        assert time.monotonic() < deadline, "the workers did not start training in 120 s"
        trained = 0
        for file in scratch.glob("stochtp-workers-*/stochtp-sweep-*/run.h5"):
            try:
                trained += results.open(file).runs[0].num_epochs >= 1
            except (ResultsError, IndexError):
                pass
        if trained == 2:
            return
        time.sleep(0.1)


def process_group_is_empty(pgid, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def worker_pids(child):
    children = Path(f"/proc/{child.pid}/task/{child.pid}/children").read_text().split()
    return [int(pid) for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_client_records_the_runs_in_progress_as_interrupted_starts_no_other_and_leaves_no_worker(tmp_path, signum):
    """Four runs on two workers: the pool has already handed a third run to a worker when the
    signal comes; it must not start (a run of 100 000 epochs that did would outlast the timeout)."""
    child, scratch = start_sweep(tmp_path, epochs=100_000, seeds=(0, 1, 2, 3))
    try:
        wait_until_both_workers_train(child, scratch)
        child.send_signal(signum)
        assert child.wait(timeout=60) == 1
        assert "sweep interrupted" in child.stderr.read()
        runs = results.open(tmp_path / "grid.h5").runs
        assert len(runs) == 2 and all(run.status == "interrupted" and run.num_epochs >= 1 for run in runs)
        assert process_group_is_empty(child.pid), "a worker outlived the sweep"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.parametrize("signum, name", [(signal.SIGKILL, "SIGKILL"), (signal.SIGRTMIN + 6, f"signal {signal.SIGRTMIN + 6}")])
def test_a_killed_worker_fails_its_run_only_and_the_sweep_goes_on(tmp_path, signum, name):
    """SIGKILL (what the out-of-memory killer sends), or a signal Python has no name for, to one of
    two workers: its run is `failed`, naming the signal; the run in progress on the other worker
    and the one not started complete in a new pool; the sweep ends (exit 1: a run failed) and
    leaves no worker and no temporary folder."""
    child, scratch = start_sweep(tmp_path, epochs=300, seeds=(0, 1, 2))
    try:
        wait_until_both_workers_train(child, scratch)
        os.kill(worker_pids(child)[0], signum)
        assert child.wait(timeout=300) == 1, child.stderr.read()
        runs = results.open(tmp_path / "grid.h5").runs
        assert sorted(run.status for run in runs) == ["completed", "completed", "failed"]
        (failed,) = [run for run in runs if run.status == "failed"]
        assert failed.attrs["error"] == f"its worker process was killed by {name}"
        assert len({run.attrs["config_hash"] for run in runs}) == 3
        assert process_group_is_empty(child.pid), "a worker outlived the sweep"
        assert list(scratch.iterdir()) == []
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)


@pytest.mark.slow
def test_sigterm_to_one_worker_records_its_run_as_interrupted_and_the_sweep_goes_on(tmp_path):
    child, scratch = start_sweep(tmp_path, epochs=300)
    try:
        wait_until_both_workers_train(child, scratch)
        os.kill(worker_pids(child)[0], signal.SIGTERM)
        assert child.wait(timeout=300) == 1  # a run did not complete
        statuses = sorted(run.status for run in results.open(tmp_path / "grid.h5").runs)
        assert statuses == ["completed", "interrupted"]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)


def test_a_sweep_whose_data_cannot_be_had_exits_2_before_any_run(tmp_path, monkeypatch, capsys):
    """The data is completed once, in the client, before local workers start: missing MNIST and
    no network is one error (exit 2) with no results file and no folder left behind, not a
    failed run per grid point in the file."""
    import urllib.error
    import urllib.request

    def offline(url, timeout=None):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    path = write_sweep(tmp_path, 'preset = "mnist-bp"\nepochs = 1\n[sweep]\nseed = [0, 1]\n')
    out, missing = tmp_path / "sweep.h5", tmp_path / "no" / "data"
    assert main(["sweep", str(path), "--data-dir", str(missing), "--out", str(out), "--workers", "1"]) == 2
    assert "MNIST files missing" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "no").exists()


def test_a_sweep_into_a_folder_is_refused_before_its_data_is_fetched(tmp_path, monkeypatch, capsys):
    path = write_sweep(tmp_path, 'preset = "mnist-bp"\nepochs = 1\n[sweep]\nseed = [0, 1]\n')
    fetched = []
    monkeypatch.setattr(sweep.data, "fetch", lambda *args: fetched.append(args))
    assert main(["sweep", str(path), "--out", str(tmp_path), "--workers", "1"]) == 2
    assert "is a folder" in capsys.readouterr().err and not fetched
    with pytest.raises(ResultsError, match="is a folder"):  # from Python, a new folder's name with its slash
        sweep.run(path, out=f"{tmp_path / 'newdir'}/", workers=1)
    assert not fetched and not (tmp_path / "newdir").exists()


@pytest.mark.slow
def test_a_sweep_with_nothing_left_to_run_needs_no_data(tmp_path, monkeypatch):
    """The data is completed only for runs still to do: a finished sweep re-run is 0 to run,
    with or without its dataset at hand."""
    path = write_sweep(tmp_path, BASE + "\n[sweep]\nseed = [0]\n")
    out = tmp_path / "sweep.h5"
    assert main(["sweep", str(path), "--out", str(out), "--workers", "1"]) == 0
    fetched, reads = [], []
    monkeypatch.setattr(sweep.data, "fetch", lambda *args: fetched.append(args))
    completed_hashes = results.completed_hashes
    monkeypatch.setattr(sweep.results, "completed_hashes", lambda out: reads.append(out) or completed_hashes(out))
    assert main(["sweep", str(path), "--out", str(out), "--workers", "1"]) == 0
    assert not fetched and reads == [out]  # the file's completed runs read once, not once per planned run
