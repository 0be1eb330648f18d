"""Callbacks (stochtp.callbacks): the protocol the loop follows, and the built-in listeners."""
import csv
import math
import struct

import numpy as np
import pytest

import stochtp
from stochtp import callbacks, results
from stochtp.errors import ConfigError


def arrays(seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.random((rows, 6)).astype(np.float32), rng.integers(0, 3, rows)) for rows in (200, 60, 60)]


def fit(*extra, epochs=3, out=None, net_spec="6-8b-3s", eval_samples_every=2, **options):
    net = stochtp.Network.from_spec(net_spec, seed=0)
    return stochtp.fit(net, stochtp.methods.get("st", lr=0.01), *arrays(), epochs=epochs, batch_size=20, eval_samples=3,
                       eval_samples_every=eval_samples_every, callbacks=list(extra), out=out, **options)


class Recorder(callbacks.Callback):
    def __init__(self):
        self.calls = []

    def on_train_begin(self, run):
        self.calls.append(("begin", run.first_epoch, run.config.epochs, run.net.spec, run.method.name, run.run_id))

    def on_epoch_end(self, run, epoch, metrics):
        self.calls.append(("epoch", epoch, sorted(metrics), run.best["epoch"]))

    def on_train_end(self, run, status):
        self.calls.append(("end", status, run.error))


def test_the_loop_calls_each_hook_in_order_with_the_run(tmp_path):
    recorder = Recorder()
    history = fit(recorder, out=tmp_path / "r.h5")
    begin, *epochs, end = recorder.calls
    run_id = results.open(tmp_path / "r.h5").runs[0].id
    assert begin == ("begin", 1, 3, "6-8b-3s", "st", run_id)
    assert [call[1] for call in epochs] == [1, 2, 3]
    assert epochs[0][2] == sorted(history.metrics)  # the names of the results file's metrics/
    assert end == ("end", "completed", "")


class FailsAtEpoch(callbacks.Callback):
    def on_epoch_end(self, run, epoch, metrics):
        if epoch == 2:
            raise RuntimeError("the callback's own trouble")


def test_a_callback_that_raises_fails_the_run_and_keeps_what_was_recorded(tmp_path):
    recorder = Recorder()
    with pytest.raises(RuntimeError, match="the callback's own trouble"):
        fit(FailsAtEpoch(), recorder, out=tmp_path / "r.h5")
    run = results.open(tmp_path / "r.h5").runs[0]
    assert run.status == "failed" and run.attrs["error"] == "the callback's own trouble"
    np.testing.assert_array_equal(run.metrics["epoch"], [1, 2])  # the results file heard of epoch 2 first
    assert run.checkpoint["epoch"] == 2 and recorder.calls[-1] == ("end", "failed", "the callback's own trouble")


def test_csv_logger_writes_a_row_per_epoch(tmp_path):
    path = tmp_path / "metrics.csv"
    history = fit(callbacks.CSVLogger(path))
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["epoch"]) for row in rows] == [1, 2, 3]
    for name, values in history.metrics.items():
        np.testing.assert_array_equal([float(row[name]) for row in rows], values, err_msg=name)  # repr: every digit kept


def test_csv_logger_appends_to_the_rows_of_an_earlier_run(tmp_path):
    path = tmp_path / "metrics.csv"
    fit(callbacks.CSVLogger(path), epochs=1)
    fit(callbacks.CSVLogger(path, append=True), epochs=2)
    with open(path, newline="") as handle:
        assert [row["epoch"] for row in csv.DictReader(handle)] == ["1", "1", "2"]


def test_csv_logger_refuses_a_missing_folder_and_a_results_file(tmp_path):
    with pytest.raises(ValueError, match="no folder"):
        callbacks.CSVLogger(tmp_path / "missing" / "m.csv")
    fit(out=tmp_path / "r.h5")
    before = (tmp_path / "r.h5").read_bytes()
    with pytest.raises(ValueError, match="is an HDF5 file"):
        callbacks.CSVLogger(tmp_path / "r.h5")
    with pytest.raises(ValueError, match="is an HDF5 file"):  # the run's own results file, made as the run starts
        fit(callbacks.CSVLogger(tmp_path / "new.h5"), out=tmp_path / "new.h5")
    assert (tmp_path / "r.h5").read_bytes() == before
    assert results.open(tmp_path / "new.h5").runs[0].status == "failed"


def tfrecords(path):
    """The records of a TensorBoard event file (TFRecord framing: length, its CRC, data, its CRC)."""
    data = path.read_bytes()
    position = 0
    while position < len(data):
        (length,) = struct.unpack("<Q", data[position:position + 8])
        yield data[position + 12:position + 12 + length]
        position += 12 + length + 4


def test_tensorboard_writes_event_files_that_read_back(tmp_path):
    event_pb2 = pytest.importorskip("tensorboardX.proto.event_pb2")
    history = fit(callbacks.TensorBoard(tmp_path / "logs"), net_spec="6-5t-5t-3s")
    (events,) = (tmp_path / "logs").glob("events.out.tfevents.*")
    scalars = {}
    for record in tfrecords(events):
        event = event_pb2.Event.FromString(record)
        for value in event.summary.value:
            scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    assert [step for step, _ in scalars["valid_error"]] == [1, 2, 3]
    np.testing.assert_allclose([value for _, value in scalars["train_loss"]], history.metrics["train_loss"], rtol=1e-6)


def test_early_stopping_ends_the_run_as_completed_when_the_metric_stalls(tmp_path):
    """min_delta larger than any error: the first measurement is the best, so with patience 1 the
    run ends after epoch 2, status completed, its final parameters saved."""
    stopper = callbacks.EarlyStopping("valid_error", patience=1, min_delta=1.0)
    history = fit(stopper, epochs=10, out=tmp_path / "r.h5")
    run = results.open(tmp_path / "r.h5").runs[0]
    assert history.epochs == 2 and stopper.stopped_epoch == 2
    assert run.status == "completed" and len(run.metrics["epoch"]) == 2 and run.params


def test_early_stopping_counts_only_the_epochs_that_measure_its_metric():
    """The stochastic net's default metric is valid_error_k, measured at epochs 2, 4, 6 here."""
    stopper = callbacks.EarlyStopping(patience=2, min_delta=1.0)
    history = fit(stopper, epochs=10)
    assert stopper.watched == "valid_error_k" and history.epochs == 6


@pytest.mark.parametrize("arguments, message", [({"patience": 0}, "patience"), ({"min_delta": -1}, "min_delta"), ({"min_delta": math.nan}, "min_delta")])
def test_early_stopping_refuses_bad_settings(arguments, message):
    with pytest.raises(ConfigError, match=message):
        callbacks.EarlyStopping(**arguments)


def test_early_stopping_names_a_metric_the_run_does_not_log():
    with pytest.raises(ConfigError, match="no metric 'valid_error_q'"):
        fit(callbacks.EarlyStopping("valid_error_q"))


def test_early_stopping_ends_a_stochastic_run_on_an_epoch_with_its_k_sample_errors(tmp_path):
    """Patience runs out at epoch 2, but the K-sample errors are measured at epochs 3, 6, ...: the run
    ends at epoch 3, whose record has every error, its best epoch chosen on them."""
    stopper = callbacks.EarlyStopping("valid_error", patience=1, min_delta=1.0)
    history = fit(stopper, epochs=10, out=tmp_path / "r.h5", eval_samples_every=3)
    run = results.open(tmp_path / "r.h5").runs[0]
    assert history.epochs == 3 and stopper.stopped_epoch == 3
    assert math.isfinite(run.metrics["test_error_k"][-1]) and history.best_epoch == 3 and run.best


class Raises(callbacks.Callback):
    def __init__(self, hook, error=RuntimeError):
        self.hook, self.error = hook, error

    def on_train_begin(self, run):
        if self.hook == "begin":
            raise self.error("raised at the beginning")

    def on_train_end(self, run, status):
        if self.hook == "end":
            raise self.error("raised at the end")


@pytest.mark.parametrize("error", [RuntimeError, OSError])
def test_a_callback_raising_as_training_begins_fails_the_run(tmp_path, error):
    """Whatever it raises (an OSError too: only a full results disk interrupts a run)."""
    recorder = Recorder()
    with pytest.raises(error, match="raised at the beginning"):
        fit(Raises("begin", error), recorder, out=tmp_path / "r.h5")
    run = results.open(tmp_path / "r.h5").runs[0]
    assert run.status == "failed" and recorder.calls[-1][:2] == ("end", "failed")


def test_a_callback_raising_at_the_end_still_lets_the_others_hear_of_it(tmp_path):
    """The run completed (the results file says so); the error is raised after every callback was told."""
    recorder = Recorder()
    with pytest.raises(RuntimeError, match="raised at the end"):
        fit(Raises("end"), recorder, out=tmp_path / "r.h5")
    assert results.open(tmp_path / "r.h5").runs[0].status == "completed"
    assert recorder.calls[-1] == ("end", "completed", "")


class BatchRecorder(callbacks.Callback):
    def __init__(self):
        self.calls = []

    def on_batch_end(self, run, epoch, done, steps):
        self.calls.append((epoch, done, steps))


@pytest.mark.parametrize("method, passes", [("st", 1), ("dtp", 2)])
def test_the_loop_tells_of_mini_batches_as_an_epoch_trains(method, passes):
    """Every batching.CHUNK mini-batch steps (DTP's alternating schedule: an inverse and a forward
    pass), `done` counts up to the epoch's `steps`; the numbers are those of a run told nothing."""
    rng = np.random.default_rng(0)
    splits = [(rng.random((rows, 6)).astype(np.float32), rng.integers(0, 3, rows)) for rows in (2400, 60, 60)]
    histories, recorder = [], BatchRecorder()
    for extra in ([recorder], []):
        net = stochtp.Network.from_spec("6-8b-8b-3s", seed=0)
        histories.append(stochtp.fit(net, stochtp.methods.get(method), *splits, epochs=2, batch_size=20, eval_samples=3, callbacks=extra))
    steps = 120 * passes
    assert recorder.calls == [(epoch, 120 * done_passes + done, steps) for epoch in (1, 2) for done_passes in range(passes) for done in (50, 100)]
    for name in ("train_loss", "valid_error", "test_error_k"):
        np.testing.assert_array_equal(histories[0].metrics[name], histories[1].metrics[name])


class Terminal:
    """A stderr that says it is a terminal and keeps what is written."""

    def __init__(self):
        self.text = ""

    def isatty(self):
        return True

    def write(self, text):
        self.text += text

    def flush(self):
        pass


def fake_run(name, epochs, times, first_epoch=1):
    config = stochtp.train.Config(name=name, epochs=epochs, batch_size=100)
    return type("FakeRun", (), {"config": config, "dataset": type("Data", (), {"train": range(60_000)}), "first_epoch": first_epoch, "epoch_times": times})


@pytest.mark.parametrize("name, epochs, epoch", [("tiny", 3, 2), ("paper-stochastic-reinforce-ema", 1000, 999), ("paper-deep-relu-dtp", 100, 12)])
@pytest.mark.parametrize("remaining", [0, 3 * 3600 + 5])
def test_the_progress_line_fits_80_columns_with_its_whole_status(name, epochs, epoch, remaining):
    terminal = Terminal()
    bar = callbacks.ProgressBar(file=terminal)
    run = fake_run(name, epochs, [12.0] + [123.456] * epoch)
    bar.on_train_begin(run)
    bar.on_batch_end(run, epoch, 150, 1200)
    bar.on_epoch_end(run, epoch, {"train_loss": 12.3456, "valid_error": 0.0456, "test_error_k": 0.0432})
    bar.on_batch_end(run, epoch + 1, 700, 1200)
    status = f"ep {epoch}/{epochs} loss 12.3456 valid 0.0456 123 s/ep"
    assert bar.status(run, epoch, {"train_loss": 12.3456, "valid_error": 0.0456}) == status
    meter = bar.bar.format_dict
    line = bar.bar.format_meter(**{**meter, "ncols": 80, "rate": (meter["total"] - meter["n"]) / remaining if remaining else None})
    assert len(line) <= 80 and line.endswith(status), line
    assert line.startswith(name[:3]) and line.count("|") == 2
    assert bar.bar.n == epoch * 600 + 350  # per mini-batch: 700 of 1200 steps of an epoch of 600 mini-batches
    bar.on_train_end(run, "completed")
    assert status in terminal.text


def test_seconds_per_epoch_leaves_epoch_1_out():
    assert callbacks.seconds_per_epoch([30.0, 1.0, 3.0, 2.0]) == 2.0
    assert math.isnan(callbacks.seconds_per_epoch([30.0]))
    assert callbacks.seconds_per_epoch([30.0, math.nan, 4.0]) == 4.0


def test_the_bar_and_the_run_summary_give_one_s_per_epoch(tiny_config_path, tmp_path, monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    summary = stochtp.experiment.run(stochtp.config.load(tiny_config_path), out=tmp_path / "r.h5", threads=1, quiet=False)
    (run,) = results.open(tmp_path / "r.h5").runs
    assert summary.seconds_per_epoch == callbacks.seconds_per_epoch(run.metrics["epoch_time"]) == float(np.median(run.metrics["epoch_time"][1:]))
    last_line = terminal.text.split("\r")[-1]
    assert last_line.rstrip().endswith(f" {callbacks.seconds_text(summary.seconds_per_epoch)} s/ep"), last_line
