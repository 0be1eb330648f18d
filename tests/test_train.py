"""The training loop: determinism, crash safety, interruption
and resume, non-finite values, and what a run records."""
import gc
import json
import math
import os
import signal
import subprocess
import sys
import time

import h5py
import numba
import numba.core.event as numba_event
import numpy as np
import pytest

import stochtp
from stochtp import config, experiment, kernels, records, results, train
from stochtp.errors import ConfigError, ResultsError, TrainingFailed

TIMING_METRICS = ("wall_time", "epoch_time")

# A child process running `stochtp run ARGS... --threads 1 --quiet`, its evaluation paced by
# sys.argv[1] seconds so that a signal sent after its second epoch lands before its last one.
CHILD = """
import sys, time
from stochtp import cli, train
pace = float(sys.argv[1])
evaluate = train.evaluate
def paced_evaluate(*args):
    time.sleep(pace)
    return evaluate(*args)
train.evaluate = paced_evaluate
sys.exit(cli.main(["run", *sys.argv[2:], "--threads", "1", "--quiet"]))
"""


def only_run(path):
    (run,) = results.open(path).runs
    return run


def assert_same_numbers(run, reference):
    """Every metric except the timings, every diagnostic, the final and best parameters: equal bit for bit."""
    names = set(run.metrics) - set(TIMING_METRICS)
    assert names == set(reference.metrics) - set(TIMING_METRICS)
    for name in names:
        np.testing.assert_array_equal(run.metrics[name], reference.metrics[name], err_msg=name, strict=True)
    assert run.diagnostics.keys() == reference.diagnostics.keys()
    for name, table in reference.diagnostics.items():
        np.testing.assert_array_equal(run.diagnostics[name], table, err_msg=name, strict=True)
    for group in ("params", "best"):
        assert getattr(run, group).keys() == getattr(reference, group).keys()
        for key, array in getattr(reference, group).items():
            np.testing.assert_array_equal(getattr(run, group)[key], array, err_msg=f"{group}/{key}", strict=True)


def start_child(config_path, out, *options, pace=0.0):
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(pace), str(config_path), "--out", str(out), *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_epochs(out, count, child, timeout=60.0):
    """Poll the results file until its run has logged `count` epochs; return how many it has."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert child.poll() is None, f"the run ended early: {child.stderr.read()}"
        try:
            runs = results.open(out).runs
        except ResultsError:  # not created yet
            runs = []
        if runs and runs[0].num_epochs >= count:
            return runs[0].num_epochs
        time.sleep(0.02)
    child.kill()
    pytest.fail(f"no {count} epochs in {out} after {timeout} s")


def test_same_seed_gives_the_same_numbers(tiny_config_path, tmp_path):
    """Two runs of one config and seed agree bit for bit; another seed does not."""
    cfg = config.load(tiny_config_path)
    for name in ("a", "b"):
        experiment.run(cfg, out=tmp_path / f"{name}.h5", threads=1)
    assert_same_numbers(only_run(tmp_path / "a.h5"), only_run(tmp_path / "b.h5"))
    experiment.run(config.load(tiny_config_path, seed=1), out=tmp_path / "c.h5", threads=1)
    assert not np.array_equal(only_run(tmp_path / "c.h5").metrics["train_loss"], only_run(tmp_path / "a.h5").metrics["train_loss"])


def test_thread_count_does_not_change_the_numbers(tiny_config_path, tmp_path):
    """A small stochastic net trained on 1 and on 2 threads gives identical numbers: the kernels'
    draws never depend on the thread count, and OpenBLAS does not split products this small (at
    the presets' sizes it does, and the last bits differ: README, "Decisions worth knowing")."""
    cfg = config.load(tiny_config_path, epochs=2)
    for threads in (1, 2):
        experiment.run(cfg, out=tmp_path / f"{threads}.h5", threads=threads)
    one, two = only_run(tmp_path / "1.h5"), only_run(tmp_path / "2.h5")
    assert (one.attrs["num_threads"], two.attrs["num_threads"]) == (1, 2)
    assert_same_numbers(one, two)


def test_training_runs_with_the_older_objects_frozen_and_releases_them(tiny_config_path, tmp_path, monkeypatch):
    """The cycle collector does not walk the objects made before training (gc.freeze) while the
    epochs run; after the run they are collectable again, so a process that trains twice does not
    keep its first run's garbage."""
    cfg = config.load(tiny_config_path, epochs=1)
    frozen = []
    real_train_epoch = train.train_epoch
    monkeypatch.setattr(train, "train_epoch", lambda *args: frozen.append(gc.get_freeze_count()) or real_train_epoch(*args))
    before = len(gc.get_objects())
    experiment.run(cfg, out=tmp_path / "a.h5", threads=1)
    assert frozen and frozen[0] >= before // 2  # most of what existed, less what the collection freed
    assert gc.get_freeze_count() == 0


def test_a_failed_run_releases_the_frozen_objects(tiny_config_path, tmp_path, monkeypatch):
    """The objects are released however the run ends (here: a failure in its first epoch)."""
    cfg = config.load(tiny_config_path, epochs=1)

    def failing_epoch(*args):
        assert gc.get_freeze_count() > 0
        raise TrainingFailed("stop here")

    monkeypatch.setattr(train, "train_epoch", failing_epoch)
    with pytest.raises(TrainingFailed):
        experiment.run(cfg, out=tmp_path / "a.h5", threads=1)
    assert gc.get_freeze_count() == 0


def test_a_freeze_made_by_the_caller_is_left_as_it_is(tiny_config_path, tmp_path):
    """Training inside a caller's gc.freeze() (or an enclosing frozen_heap) does not unfreeze it."""
    gc.freeze()
    try:
        with train.frozen_heap():
            with train.frozen_heap():
                pass
            assert gc.get_freeze_count() > 0
        experiment.run(config.load(tiny_config_path, epochs=1), out=tmp_path / "a.h5", threads=1)
        assert gc.get_freeze_count() > 0  # unfrozen, it would be 0 (frozen objects that died have left it)
    finally:
        gc.unfreeze()


def test_run_records_metrics_schedule_and_selection(tiny_config_path, tmp_path):
    """K-sample errors on their schedule (NaN between), best epoch picked on valid_error_k, config stored whole."""
    cfg = config.load(tiny_config_path)
    summary = experiment.run(cfg, out=tmp_path / "r.h5", threads=1)
    run = only_run(tmp_path / "r.h5")
    metrics = run.metrics
    np.testing.assert_array_equal(metrics["epoch"], [1, 2, 3, 4])
    for name in ("train_loss", "train_error", "valid_error", "test_error"):
        assert np.isfinite(metrics[name]).all(), name
    for name in ("valid_error_k", "test_error_k"):
        assert np.isnan(metrics[name][[0, 2]]).all() and np.isfinite(metrics[name][[1, 3]]).all(), name
    best = (2, 4)[int(np.argmin(metrics["valid_error_k"][[1, 3]]))]
    assert summary.best_epoch == best == run.best_attrs["epoch"]
    assert summary.test_error_at_best == metrics["test_error_k"][best - 1]
    assert summary.test_error_last == metrics["test_error_k"][-1]
    assert (summary.status, run.status, run.attrs["error"]) == ("completed", "completed", "")
    assert run.attrs["config_hash"] == cfg.hash and config.from_dict(run.config) == cfg
    assert np.all(np.diff(metrics["wall_time"]) > 0)


def test_the_best_epoch_is_chosen_on_validation_never_on_test(tiny_config_path, tmp_path, monkeypatch):
    """Scripted evaluations whose validation and test minima fall on different epochs: the best
    epoch, its saved parameters and the summary follow valid_error_k (epoch 4), not test (epoch 2)."""
    scripted = {2: (0.30, 0.10), 4: (0.20, 0.40)}  # epoch -> (valid_error_k, test_error_k)

    def evaluate(net, dataset, cfg, epoch, seconds=None, task="classify"):
        valid, test = scripted.get(epoch, (math.nan, math.nan))
        return {"valid_error": 0.5, "test_error": 0.5, "valid_error_k": valid, "test_error_k": test}

    monkeypatch.setattr(train, "evaluate", evaluate)
    summary = experiment.run(config.load(tiny_config_path), out=tmp_path / "r.h5", threads=1)
    run = only_run(tmp_path / "r.h5")
    assert summary.best_epoch == 4 == run.best_attrs["epoch"] and summary.test_error_at_best == 0.40


def test_the_k_sample_errors_average_eval_samples_passes(tiny_config_path):
    """valid_error_k / test_error_k: class probabilities averaged over K = eval_samples passes
    (here K = 4, from streams stream_id(epoch, "evaluate", split)), not one pass."""
    cfg = config.load(tiny_config_path)
    dataset, net, _ = experiment.build(cfg)
    metrics = train.evaluate(net, dataset, cfg, epoch=2)
    for name, split in (("valid", dataset.valid), ("test", dataset.test)):
        stream = kernels.stream_id(2, "evaluate", name)
        chunk = kernels.stream_id(stream, 0)  # the split is one evaluation chunk, starting at row 0
        passes = [net.forward(split.features(), cfg.seed, kernels.stream_id(chunk, "test-sample", k), train=False).output for k in range(4)]
        proba = np.mean(passes, axis=0)
        assert metrics[f"{name}_error_k"] == np.mean(proba.argmax(axis=1) != split.y)


def test_sigkill_keeps_every_finished_epoch(tiny_config_path, tmp_path):
    """A run killed with SIGKILL leaves a readable file: every epoch seen before the kill, equal
    metric lengths, status still "running" (checked with plain h5py)."""
    out = tmp_path / "killed.h5"
    child = start_child(tiny_config_path, out, "--epochs", "1000")
    seen = wait_for_epochs(out, 2, child)
    child.kill()
    child.wait(timeout=30)
    with h5py.File(out, "r") as h5file:
        assert h5file.attrs["format"] == "stochtp-results" and h5file.attrs["format_version"] == 1
        (run,) = h5file["runs"].values()
        assert run.attrs["status"] == "running"
        lengths = {name: len(column) for name, column in run["metrics"].items()}
        assert len(set(lengths.values())) == 1, lengths
        epochs = run["metrics/epoch"][()]
        assert len(epochs) >= seen
        np.testing.assert_array_equal(epochs, np.arange(1, len(epochs) + 1))
        assert np.isfinite(run["metrics/train_loss"][()]).all()


# Method overrides of the tiny config whose state a checkpoint must carry: DTP's inverses, noise
# schedule and two optimisers; ST's surrogate; REINFORCE's moving-average baseline.
RESUMED_METHODS = {
    "bp": (),
    "dtp": ("method.name=dtp", "method.sigma_tau=2.0"),
    "st": ("method.name=st",),
    "reinforce": ("method.name=reinforce", "method.baseline=ema"),
}


@pytest.mark.slow
@pytest.mark.parametrize("method", RESUMED_METHODS)
def test_sigterm_interrupts_and_resume_finishes_like_an_uninterrupted_run(tiny_config_path, tmp_path, method):
    """SIGTERM: exit code 1, status "interrupted", epochs kept; --resume then ends with the numbers
    of a run never interrupted, for every kind of method state on the stochastic network."""
    overrides = RESUMED_METHODS[method]
    out = tmp_path / "interrupted.h5"
    set_options = [option for override in overrides for option in ("--set", override)]
    child = start_child(tiny_config_path, out, "--epochs", "10", *set_options, pace=0.3)
    wait_for_epochs(out, 2, child)
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=30) == 1
    assert "interrupted" in child.stderr.read()
    interrupted = only_run(out)
    assert interrupted.status == "interrupted" and interrupted.attrs["error"] == f"interrupted with {interrupted.num_epochs} of 10 epochs logged"
    assert 2 <= interrupted.num_epochs < 10

    cfg = config.load(tiny_config_path, overrides=overrides, epochs=10)
    resumed = experiment.run(cfg, out=out, threads=1, resume=True)
    assert resumed.status == "completed" and resumed.run_id == interrupted.id
    reference = experiment.run(cfg, out=tmp_path / "reference.h5", threads=1)
    assert (resumed.best_epoch, resumed.test_error_at_best) == (reference.best_epoch, reference.test_error_at_best)
    run = only_run(out)
    assert run.status == "completed" and run.attrs["finished_at"]
    assert_same_numbers(run, only_run(tmp_path / "reference.h5"))


class SignalOnCompile(numba_event.Listener):
    """Sends this process SIGTERM as Numba starts compiling: the handler runs inside the compiler."""

    def on_start(self, event):
        os.kill(os.getpid(), signal.SIGTERM)

    def on_end(self, event):
        pass


def test_a_signal_while_numba_compiles_is_raised_once_the_compiler_is_done():
    """A SIGTERM during a compilation is not thrown into Numba's compiler (which it can leave
    broken): the compilation finishes, then KeyboardInterrupt; the kernel works afterwards."""

    @numba.njit  # not cached: compiled here
    def triple(x):
        return 3 * x

    with train.Interrupts(), numba_event.install_listener("numba:compile", SignalOnCompile()):
        with pytest.raises(KeyboardInterrupt, match=f"signal {int(signal.SIGTERM)}"):
            triple(2)
        assert len(triple.overloads) == 1  # compiled whole before the interrupt
    assert triple(2) == 6 and len(triple.overloads) == 1


def test_signal_while_an_epoch_is_recorded_waits_for_the_record(tiny_config_path, tmp_path, monkeypatch):
    """A SIGTERM arriving as epoch 2 is written interrupts the run only once the epoch's metrics,
    best parameters and checkpoint are all in the file."""
    append = results.RunWriter.append

    def append_after_a_signal(self, metrics, *args):
        if metrics["epoch"] == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return append(self, metrics, *args)

    monkeypatch.setattr(results.RunWriter, "append", append_after_a_signal)
    with pytest.raises(KeyboardInterrupt):
        experiment.run(config.load(tiny_config_path), out=tmp_path / "r.h5", threads=1)
    run = only_run(tmp_path / "r.h5")
    assert run.status == "interrupted"
    np.testing.assert_array_equal(run.metrics["epoch"], [1, 2])
    assert run.checkpoint["epoch"] == 2


class Crash(BaseException):
    """Stands for a process dying (nothing in stochtp catches it)."""


@pytest.mark.parametrize("crash_epoch", [1, 3])
def test_resume_after_a_crash_between_log_and_checkpoint(tiny_config_path, tmp_path, monkeypatch, crash_epoch):
    """A run that died after logging an epoch but before checkpointing it (status still "running")
    is resumed from its last checkpoint, or from scratch without one, and trains that epoch once."""
    cfg = config.load(tiny_config_path)
    save_checkpoint = results.RunWriter.save_checkpoint

    def save_checkpoint_or_crash(self, checkpoint):
        if checkpoint["epoch"] == crash_epoch:
            raise Crash
        return save_checkpoint(self, checkpoint)

    with monkeypatch.context() as patch:
        patch.setattr(results.RunWriter, "save_checkpoint", save_checkpoint_or_crash)
        with pytest.raises(Crash):
            experiment.run(cfg, out=tmp_path / "r.h5", threads=1)
    crashed = only_run(tmp_path / "r.h5")
    assert crashed.status == "running" and crashed.num_epochs == crash_epoch
    experiment.run(cfg, out=tmp_path / "r.h5", threads=1, resume=True)
    experiment.run(cfg, out=tmp_path / "reference.h5", threads=1)
    resumed, reference = only_run(tmp_path / "r.h5"), only_run(tmp_path / "reference.h5")
    assert_same_numbers(resumed, reference)
    # where the run was taken up, and by what: kept in the file and in its record
    (entry,) = json.loads(resumed.attrs["resumes"])
    assert entry["first_epoch"] == crash_epoch and entry["git_commit"] == resumed.attrs["git_commit"] and entry["num_threads"] == 1
    assert "resumes" not in reference.attrs
    assert records.document(resumed)["resumes"] == [entry] and "resumes" not in records.document(reference)
    assert json.loads(records.read(records.write(resumed, tmp_path / "records")[0]).attrs["resumes"]) == [entry]


def test_resuming_a_run_that_died_before_finishing_trains_nothing_and_reports_its_epochs(tiny_config_path, tmp_path, monkeypatch):
    """A run that died after checkpointing its last epoch is completed by --resume without
    training; the summary's seconds per epoch is the median of the epochs in the file, epoch 1 left out."""
    cfg = config.load(tiny_config_path)

    def crash(self, status="completed", error=""):
        raise Crash

    with monkeypatch.context() as patch:
        patch.setattr(results.RunWriter, "finish", crash)
        with pytest.raises(Crash):
            experiment.run(cfg, out=tmp_path / "r.h5", threads=1)
    before = only_run(tmp_path / "r.h5")
    assert before.status == "running" and before.num_epochs == cfg.epochs
    summary = experiment.run(cfg, out=tmp_path / "r.h5", threads=1, resume=True)
    after = only_run(tmp_path / "r.h5")
    assert after.status == "completed" and summary.status == "completed"
    np.testing.assert_array_equal(after.metrics["epoch_time"], before.metrics["epoch_time"])
    assert summary.seconds_per_epoch == pytest.approx(float(np.median(before.metrics["epoch_time"][1:])))


def test_resume_needs_an_unfinished_run_of_the_same_config(tiny_config_path, tmp_path):
    """--resume never restarts a completed run nor one of another config; it says so."""
    cfg = config.load(tiny_config_path, epochs=1)
    experiment.run(cfg, out=tmp_path / "r.h5", threads=1)
    with pytest.raises(ConfigError, match="no interrupted run of this config"):
        experiment.run(cfg, out=tmp_path / "r.h5", threads=1, resume=True)
    assert len(results.open(tmp_path / "r.h5").runs) == 1


@pytest.mark.parametrize("network", ["8-6t-3s", "8-6b-6b-3s"])
def test_overflowing_learning_rate_fails_the_run(write_toml, tmp_path, network):
    """An lr beyond float32 makes the first epoch non-finite: TrainingFailed, status "failed" with
    the message, also when a sampling kernel is the first to meet the NaN."""
    path = write_toml(f'preset = "mnist-bp"\ndataset = "teacher"\nnetwork = "{network}"\n[method]\noptimizer = "sgd"\nlr = 1e300\n')
    with pytest.raises(TrainingFailed, match="epoch 1"), np.errstate(all="ignore"):
        experiment.run(config.load(path), out=tmp_path / "r.h5", threads=1)
    run = only_run(tmp_path / "r.h5")
    assert run.status == "failed" and "epoch 1" in run.attrs["error"] and run.attrs["finished_at"]
    assert run.num_epochs == 0


def test_non_finite_parameters_keep_the_epochs_before(tiny_config_path, tmp_path, monkeypatch):
    """Parameters turning NaN in epoch 3 fail the run there; epochs 1 and 2 and the best parameters stay."""
    build_method = experiment.build_method

    def build_poisoned_method(cfg):
        method = build_method(cfg)
        train_epoch = method.train_epoch

        def poisoned_epoch(net, batches, seed, epoch):
            stats = train_epoch(net, batches, seed, epoch)
            if epoch == 3:
                net.layers[0].W[0, 0] = np.nan
            return stats

        method.train_epoch = poisoned_epoch
        return method

    monkeypatch.setattr(experiment, "build_method", build_poisoned_method)
    with pytest.raises(TrainingFailed, match="non-finite .* epoch 3"):
        experiment.run(config.load(tiny_config_path), out=tmp_path / "r.h5", threads=1)
    run = only_run(tmp_path / "r.h5")
    assert run.status == "failed" and "epoch 3" in run.attrs["error"]
    np.testing.assert_array_equal(run.metrics["epoch"], [1, 2])
    assert run.best and all(np.isfinite(array).all() for array in run.best.values())


@pytest.mark.parametrize(
    "network, table, pattern",
    [
        ("4-6t-3s", "", r"network 4-6t-3s does not fit dataset 'teacher': it has 8 features"),
        ("8-6t-5s", "", r"network 8-6t-5s does not fit dataset 'teacher'.*3 classes"),
        ("8-6t-3s", "[method]\nlr = -1.0", r"method 'bp'.*lr must be a positive number"),
        ("8-6t-3s", '[method]\nlr = "fast"', r"method 'bp'.*option 'lr' must be a number"),
        ("8-6t-3s", "[method]\nmomentum = 0.9", r"method 'bp' has no option 'momentum'"),
        ("8-6t-3s", "[data]\nn_bits = 3", r"dataset 'teacher' has no option n_bits"),
    ],
)
def test_config_errors_found_when_building_name_the_source(write_toml, tmp_path, network, table, pattern):
    """Network, method and dataset errors met when the run is built name the config file given as source."""
    path = write_toml(f'preset = "mnist-bp"\ndataset = "teacher"\nnetwork = "{network}"\n{table}\n')
    with pytest.raises(ConfigError, match=rf"^{path}: {pattern}"):
        experiment.run(config.load(path), out=tmp_path / "r.h5", source=str(path))
    assert not (tmp_path / "r.h5").exists()


def test_thread_count_must_be_positive(tiny_config_path, tmp_path):
    with pytest.raises(ConfigError, match="threads must be between 1 and"):
        experiment.run(config.load(tiny_config_path), out=tmp_path / "r.h5", threads=0)


def test_a_signal_during_the_final_save_leaves_a_completed_run_completed(tiny_config_path, tmp_path, monkeypatch):
    """SIGINT while the last parameters are written: the run is complete, so it says so (exit 0),
    rather than "interrupted, continue with --resume", which --resume would then refuse."""
    real_finish = results.RunWriter.finish

    def finish_with_a_signal(self, status="completed", error=""):
        if status == "completed":
            os.kill(os.getpid(), signal.SIGINT)
        real_finish(self, status, error)

    monkeypatch.setattr(results.RunWriter, "finish", finish_with_a_signal)
    summary = experiment.run(config.load(tiny_config_path, epochs=2), out=tmp_path / "r.h5", threads=1)
    assert summary.status == "completed" and only_run(tmp_path / "r.h5").status == "completed"


def test_a_signal_dropped_after_the_final_save_is_not_raised_later():
    """`held(raise_pending=False)` drops a signal for good: the end of a later compilation does
    not raise it (it does not stay pending)."""

    @numba.njit  # not cached: compiled here
    def double(x):
        return 2 * x

    with train.Interrupts() as interrupts:
        with interrupts.held(raise_pending=False):
            os.kill(os.getpid(), signal.SIGTERM)
        assert double(2) == 4


def test_a_signal_held_through_a_failing_block_is_not_raised_later():
    """A signal held while the recording fails (a full disk) is cleared with the failure: the
    failure propagates, and the end of a later compilation raises nothing."""

    @numba.njit  # not cached: compiled here
    def triple_plus_one(x):
        return 3 * x + 1

    with train.Interrupts() as interrupts:
        with pytest.raises(OSError):
            with interrupts.held():
                os.kill(os.getpid(), signal.SIGTERM)
                raise OSError(28, "No space left on device")
        assert triple_plus_one(2) == 7


def test_a_new_folder_s_name_with_its_slash_is_refused_as_the_results_file(tiny_config_path, tmp_path):
    """pathlib drops a trailing slash: checked before, `out="newdir/"` made a file named newdir."""
    with pytest.raises(ResultsError, match="is a folder"):
        experiment.run(config.load(tiny_config_path), out=f"{tmp_path / 'newdir'}/", threads=1)
    assert not (tmp_path / "newdir").exists()


# ------------------------------------------------------------------ stochtp.fit: the loop on arrays


def teacher_arrays(seed=0, n=(300, 100, 100), features=8, classes=3):
    """(train, valid, test) as (X, y) pairs of uint8 pixels and class indices."""
    rng = np.random.default_rng(seed)
    pairs = []
    for rows in n:
        pairs.append(((rng.random((rows, features)) * 255).astype(np.uint8), rng.integers(0, classes, rows)))
    return pairs


def test_fit_returns_the_per_epoch_history_and_predicts():
    train_pair, valid_pair, test_pair = teacher_arrays()
    net = stochtp.Network.from_spec("8-6b-6b-3s", seed=1, input_noise=0.3)
    method = stochtp.methods.get("dtp", eta_hat=1.0, lr_f=0.01, lr_b=0.01)
    history = stochtp.fit(net, method, train=train_pair, valid=valid_pair, test=test_pair, epochs=3, batch_size=50, seed=2, eval_samples=4, eval_samples_every=2)
    assert history.status == "completed" and history.run_id is None
    np.testing.assert_array_equal(history.metrics["epoch"], [1, 2, 3])
    assert np.isnan(history.metrics["valid_error_k"][0]) and np.isfinite(history.metrics["valid_error_k"][1:]).all()  # epochs 2 and 3 (the last)
    assert history.diagnostics["inverse_error"].shape == (3, 3)
    frame = history.to_dataframe()
    assert list(frame.index) == [1, 2, 3] and "test_error_k" in frame
    proba = net.predict_proba(test_pair[0], samples=5)
    assert proba.shape == (100, 3) and np.allclose(proba.sum(axis=1), 1)
    np.testing.assert_array_equal(net.predict(test_pair[0], samples=5), proba.argmax(axis=1))


def test_fit_reads_uint8_pixels_as_the_datasets_do():
    """uint8 X is scaled by 1/255 exactly as a dataset's stored pixels: the same run as the float features."""
    pairs = teacher_arrays()
    floats = [(np.multiply(x, np.float32(1 / 255), dtype=np.float32), y) for x, y in pairs]
    histories = []
    for arrays in (pairs, floats):
        net = stochtp.Network.from_spec("8-6b-3s", seed=0)
        histories.append(stochtp.fit(net, stochtp.methods.get("st", lr=0.01), *arrays, epochs=2, batch_size=50, eval_samples=3))
    for name in ("train_loss", "valid_error", "test_error_k"):
        np.testing.assert_array_equal(histories[0].metrics[name], histories[1].metrics[name])


@pytest.mark.parametrize(
    "change, message",
    [
        ({"train": np.zeros((3, 8))}, "train must be an .X, y. pair"),
        ({"valid": (np.zeros((10, 5)), np.zeros(10, int))}, r"valid: X must have shape \(n, 8\)"),
        ({"test": (np.zeros((10, 8)), np.full(10, 3))}, r"test: class indices must lie in \[0, 3\)"),
        ({"test": (np.zeros((10, 8)), np.zeros(9, int))}, "test: y must be integer class indices, one per row"),
        ({"epochs": 0}, "epochs must be an integer >= 1"),
        ({"seed": -1}, "seed must be an integer in"),
        ({"batch_size": 1000}, "batch_size 1000 is larger than train, 300 examples"),
        ({"name": "a/b"}, "fit: name"),
        ({"callbacks": "csv"}, "callbacks must be a list"),
    ],
)
def test_fit_names_the_bad_argument(change, message):
    train_pair, valid_pair, test_pair = teacher_arrays()
    arguments = {"train": train_pair, "valid": valid_pair, "test": test_pair, "epochs": 1, "batch_size": 50, "seed": 0, **change}
    with pytest.raises(ValueError, match=message):
        stochtp.fit(stochtp.Network.from_spec("8-6b-3s"), stochtp.methods.get("st"), **arguments)


@pytest.mark.mnist
@pytest.mark.slow
def test_fit_on_mnist_arrays_gives_the_metrics_and_parameters_of_run(mnist_dir, tmp_path):
    """The same configuration through `stochtp run` (config -> MNIST -> HDF5) and through
    `stochtp.fit` (arrays in, results file out): identical numbers."""
    cfg = config.load(preset="paper-stochastic-dtp", epochs=2, overrides=["network=784-24b-24b-10s", "eval_samples=3", "eval_samples_every=2"], seed=4)
    experiment.run(cfg, out=tmp_path / "run.h5", data_dir=mnist_dir, threads=1)
    mnist = stochtp.data.load("mnist", mnist_dir)
    net = stochtp.Network.from_spec(cfg.network, seed=4, input_noise=cfg.input_noise)
    options = {key: value for key, value in cfg.method.items() if key != "name"}
    history = stochtp.fit(
        net, stochtp.methods.get("dtp", **options), *[(split.x, split.y) for split in (mnist.train, mnist.valid, mnist.test)],
        epochs=2, batch_size=cfg.batch_size, seed=4, eval_samples=3, eval_samples_every=2, out=tmp_path / "fit.h5", threads=1,
    )
    ran, fitted = results.open(tmp_path / "run.h5").runs[0], results.open(tmp_path / "fit.h5").runs[0]
    for name, values in ran.metrics.items():
        if name not in TIMING_METRICS:
            np.testing.assert_array_equal(fitted.metrics[name], values, err_msg=name)
            np.testing.assert_array_equal(history.metrics[name], values, err_msg=name)
    for name, value in ran.params.items():
        np.testing.assert_array_equal(fitted.params[name], value, err_msg=name)


AUTOENCODER_RUN = """\
name = "tiny-dae"
dataset = "teacher"
network = "16-9g-16g"
input_noise = 0.2
epochs = 4
batch_size = 50

[data]
n_in = 16
n_train = 400
n_valid = 200
n_test = 200

[method]
name = "dae-dtp"
lr = 0.01
"""


class StopAfter(stochtp.callbacks.Callback):
    """Interrupts the run after `epoch`, as a signal would (its checkpoint is written first)."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, run, epoch, metrics):
        if epoch == self.epoch:
            raise KeyboardInterrupt("stop")


@pytest.mark.parametrize("method", ["dae-dtp", "dae-bp"])
def test_an_autoencoder_run_records_reconstruction_errors_and_the_probe_at_the_end(write_toml, tmp_path, method):
    """Reconstruction errors every epoch, the linear probe after the last one only, the best epoch
    on the validation reconstruction error; an interrupted run resumes to the same numbers (the
    tied weights restored through the decoder's view of them)."""
    cfg = config.load(write_toml(AUTOENCODER_RUN), overrides=[f"method.name={method}"])
    summary = experiment.run(cfg, out=tmp_path / "r.h5", threads=1)
    run = only_run(tmp_path / "r.h5")
    metrics = run.metrics
    for name in ("train_loss", "train_reconstruction", "valid_reconstruction", "test_reconstruction"):
        assert np.isfinite(metrics[name]).all() and (metrics[name] > 0).all(), name
    assert "valid_error" not in metrics and metrics["valid_reconstruction"][-1] < metrics["valid_reconstruction"][0]
    for name in ("probe_valid_error", "probe_test_error"):
        assert np.isnan(metrics[name][:-1]).all() and 0 <= metrics[name][-1] < 1, name
    best = int(np.argmin(metrics["valid_reconstruction"])) + 1
    assert summary.best_epoch == best == run.best_attrs["epoch"]
    assert summary.test_error_at_best == metrics["test_reconstruction"][best - 1]
    np.testing.assert_array_equal(run.params["layer_1/W"], run.params["layer_0/W"].T)

    out = tmp_path / "interrupted.h5"
    with pytest.raises(KeyboardInterrupt):
        experiment.run(cfg, out=out, threads=1, callbacks=[StopAfter(2)])
    resumed = experiment.run(cfg, out=out, threads=1, resume=True)
    assert (resumed.best_epoch, resumed.test_error_at_best) == (summary.best_epoch, summary.test_error_at_best)
    assert_same_numbers(only_run(out), run)
