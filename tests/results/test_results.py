"""Tests of the results file (stochtp.results): layout, round trips, locking, crash safety."""

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from datetime import timedelta
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import REPO_ROOT
from stochtp import results
from stochtp.errors import ConfigError, ResultsError
from stochtp.results import trees

RUN_ATTRS = (
    "name method dataset network seed status error started_at finished_at config config_hash"
).split()
PROVENANCE_ATTRS = (
    "stochtp_version git_commit git_dirty python_version numpy_version numba_version "
    "h5py_version platform num_threads"
).split()
CONFIG = {"method": "dtp", "lr": 0.01, "layers": [784, 240, 10], "nested": {"b": 1, "a": None}}


def start(writer, seed=0, config=CONFIG):
    return writer.start_run(
        name="demo",
        method="dtp",
        dataset="mnist",
        network="784-240s-10",
        seed=seed,
        config=config,
        provenance=results.provenance(num_threads=2),
    )


def log_epochs(run, epochs):
    for epoch in epochs:
        run.append(
            metrics={"epoch": epoch, "wall_time": 1.5 * epoch, "train_loss": 1.0 / epoch},
            diagnostics={"inverse_error": np.arange(3) + 10.0 * epoch},
        )


def child_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
    return env


def lock_path(path):
    return Path(str(Path(path).resolve()) + ".lock")


# ------------------------------------------------------------------------------ layout


def test_layout_is_found_by_plain_h5py(tmp_path):
    path = tmp_path / "r.h5"
    with results.Writer(path) as writer:
        run = start(writer)
        log_epochs(run, [1, 2])
        params = {
            "layer_0/W": np.ones((4, 3)),
            "layer_0/b": np.zeros(3),
            "inverse_1/V": np.ones((3, 4)),
            "inverse_1/c": np.zeros(4),
        }
        run.save_params("params", params)
        run.save_params("best", params, attrs={"epoch": 1})
        run.save_checkpoint({"epoch": 2, "optimiser": {"m": np.zeros(3)}})
        run.finish()

    with h5py.File(path, "r") as h5file:
        assert h5file.attrs["format"] == "stochtp-results"
        assert h5file.attrs["format_version"] == 1
        (run_id,) = h5file["runs"]
        group = h5file["runs"][run_id]
        assert set(RUN_ATTRS + PROVENANCE_ATTRS) <= set(group.attrs)
        assert group.attrs["status"] == "completed"
        assert group.attrs["seed"] == 0 and group.attrs["num_threads"] == 2
        assert json.loads(group.attrs["config"]) == CONFIG
        assert set(group) == {"metrics", "diagnostics", "params", "best", "checkpoint", "checkpoint.spare"}
        for name in ("epoch", "wall_time", "train_loss"):
            dataset = group["metrics"][name]
            assert dataset.shape == (2,) and dataset.maxshape == (None,) and dataset.chunks
        assert group["metrics/epoch"].dtype == np.int64
        assert group["diagnostics/inverse_error"].shape == (2, 3)
        assert group["diagnostics/inverse_error"].maxshape == (None, 3)
        for part in ("params", "best"):
            assert set(group[part]) == {"layer_0", "inverse_1"}
            assert set(group[part]["layer_0"]) == {"W", "b"}
            assert set(group[part]["inverse_1"]) == {"V", "c"}
        assert group["best"].attrs["epoch"] == 1
        np.testing.assert_array_equal(group["checkpoint/optimiser/m"][()], np.zeros(3))
        for stamp in ("started_at", "finished_at"):
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", group.attrs[stamp])


def test_run_ids_are_unique_and_sort_by_creation_even_if_the_clock_goes_back(
    tmp_path, monkeypatch
):
    with results.Writer(tmp_path / "r.h5") as writer:
        created = [start(writer, seed=seed).id for seed in range(3)]
        real_now = results.writer._utc_now
        monkeypatch.setattr(results.writer, "_utc_now", lambda: real_now() - timedelta(hours=1))
        created.append(start(writer, seed=3).id)
    assert len(set(created)) == 4
    assert created == sorted(created)
    for run_id in created:
        assert re.fullmatch(r"\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{6}", run_id)
    assert [run.id for run in results.open(tmp_path / "r.h5").runs] == created


# -------------------------------------------------------------------------- round trips


def test_round_trip_of_attrs_config_metrics_diagnostics_params_best_checkpoint(tmp_path):
    path = tmp_path / "r.h5"
    weights = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    checkpoint = {
        "epoch": 7,
        "rng": {
            "key": np.uint64(2**63 + 5),
            "counter": 2**100,
            "state": np.arange(4, dtype=np.uint32),
        },
        "optimiser": {"layer_0": {"W": {"m": weights * 2}}, "empty": {}},
        "params": {"layer_0/W": weights, "100%": 1.0, ".": 2.0, "%2F": 3.0},
        "best_epoch": None,
        "method": "dtp",
        "lr": 0.125,
        "flag": True,
    }
    with results.Writer(path) as writer:
        run = start(writer, seed=11)
        log_epochs(run, [1, 2, 3])
        run.save_params("params", {"layer_0/W": weights, "layer_0/b": np.arange(4.0)})
        run.save_params("best", {"layer_0/W": weights + 1}, attrs={"epoch": 2})
        run.save_checkpoint(checkpoint)
        run.finish(status="failed", error="non-finite loss at epoch 4")
        run_id = run.id

    reader = results.open(path)
    assert len(reader) == 1 and run_id in reader
    read = reader[run_id]
    assert read.id == run_id and reader.runs == [read]
    assert read.status == "failed"
    assert read.attrs["error"] == "non-finite loss at epoch 4"
    assert read.attrs["seed"] == 11 and read.attrs["name"] == "demo"
    assert read.attrs["git_dirty"] in (True, False)
    assert read.config == CONFIG
    expected_json = json.dumps(CONFIG, sort_keys=True)
    assert read.attrs["config"] == expected_json
    assert read.attrs["config_hash"] == hashlib.sha256(expected_json.encode()).hexdigest()
    assert list(read.metrics) == ["epoch", "wall_time", "train_loss"]
    np.testing.assert_array_equal(read.metrics["epoch"], [1, 2, 3])
    np.testing.assert_allclose(read.metrics["train_loss"], [1.0, 0.5, 1 / 3])
    np.testing.assert_allclose(
        read.diagnostics["inverse_error"], [[10, 11, 12], [20, 21, 22], [30, 31, 32]]
    )
    assert read.num_epochs == 3
    assert read.params["layer_0/W"].dtype == np.float32
    np.testing.assert_array_equal(read.params["layer_0/W"], weights)
    np.testing.assert_array_equal(read.params["layer_0/b"], np.arange(4.0))
    np.testing.assert_array_equal(read.best["layer_0/W"], weights + 1)
    assert read.best_attrs == {"epoch": 2}

    loaded = read.checkpoint
    assert loaded["epoch"] == 7 and loaded["method"] == "dtp" and loaded["lr"] == 0.125
    assert loaded["flag"].dtype == np.bool_ and loaded["flag"]
    assert loaded["best_epoch"] is None
    assert loaded["rng"]["key"] == 2**63 + 5 and loaded["rng"]["key"].dtype == np.uint64
    assert loaded["rng"]["counter"] == 2**100
    np.testing.assert_array_equal(loaded["rng"]["state"], np.arange(4, dtype=np.uint32))
    np.testing.assert_array_equal(loaded["optimiser"]["layer_0"]["W"]["m"], weights * 2)
    assert set(loaded["params"]) == {"layer_0/W", "100%", ".", "%2F"}
    np.testing.assert_array_equal(loaded["params"]["layer_0/W"], weights)
    assert loaded["params"]["%2F"] == 3.0
    assert loaded["optimiser"]["empty"] == {}


checkpoint_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(st.characters(exclude_characters="\0"), max_size=8),
    st.lists(st.floats(allow_nan=False, width=32), max_size=5).map(
        lambda values: np.array(values, np.float32)
    ),
)
checkpoint_keys = st.text(alphabet="ab_0/.%2F", min_size=1, max_size=6)
checkpoints = st.recursive(
    st.dictionaries(checkpoint_keys, checkpoint_values, max_size=4),
    lambda children: st.dictionaries(checkpoint_keys, children, max_size=3),
    max_leaves=12,
)


def assert_same_tree(saved, loaded):
    assert isinstance(loaded, dict) and set(saved) == set(loaded)
    for key, value in saved.items():
        if isinstance(value, dict):
            assert_same_tree(value, loaded[key])
        elif value is None or isinstance(value, str):
            assert loaded[key] == value and type(loaded[key]) is type(value)
        else:
            np.testing.assert_array_equal(loaded[key], value)
            assert np.asarray(loaded[key]).shape == np.asarray(value).shape


def holds_non_utf8_text(tree):
    """True if a string of the checkpoint has a lone surrogate, which UTF-8 (and so HDF5) cannot hold."""
    for value in tree.values():
        if isinstance(value, dict) and holds_non_utf8_text(value):
            return True
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return True
    return False


def save_or_refuse(run, checkpoint, previous):
    """Save `checkpoint` and return it; one holding text HDF5 cannot store is refused with a
    ValueError before anything is written, and `previous` stays the checkpoint."""
    if holds_non_utf8_text(checkpoint):
        with pytest.raises(ValueError, match="not valid UTF-8"):
            run.save_checkpoint(checkpoint)
        assert_same_tree(previous, run.load_checkpoint())
        return previous
    run.save_checkpoint(checkpoint)
    assert_same_tree(checkpoint, run.load_checkpoint())
    return checkpoint


@pytest.mark.slow
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=checkpoints, second=checkpoints)
@example(first={"a": {"b": "text"}, "c": np.ones(3, np.float32)}, second={"0": "\ud800"})
def test_checkpoint_round_trip_and_replacement(first, second):
    folder = tempfile.mkdtemp()
    try:
        with results.Writer(os.path.join(folder, "r.h5")) as writer:
            run = start(writer)
            saved = save_or_refuse(run, first, {})
            saved = save_or_refuse(run, second, saved)
        assert_same_tree(saved, results.open(os.path.join(folder, "r.h5")).runs[0].checkpoint)
    finally:
        shutil.rmtree(folder)


def test_a_failure_message_quoting_an_undecodable_file_name_is_still_recorded(tmp_path):
    """os.fsdecode turns undecodable bytes into lone surrogates, which UTF-8 cannot hold: the
    run must still be marked failed, the bytes written as escapes."""
    with results.Writer(tmp_path / "r.h5") as writer:
        start(writer).finish(status="failed", error="cannot read /data/\udcff.gz")
    (run,) = results.open(tmp_path / "r.h5").runs
    assert run.status == "failed" and run.attrs["error"] == "cannot read /data/\\udcff.gz"


def test_save_params_replaces_the_group_content(tmp_path):
    with results.Writer(tmp_path / "r.h5") as writer:
        run = start(writer)
        first = {"layer_0/W": np.ones(2), "layer_1/W": np.ones(3)}
        run.save_params("best", first, attrs={"epoch": 1})
        second = {"layer_0/W": np.full(2, 5.0), "layer_0/b": np.ones((2, 2))}
        run.save_params("best", second, attrs={"epoch": 4})
    best = results.open(tmp_path / "r.h5").runs[0]
    assert set(best.best) == {"layer_0/W", "layer_0/b"}
    np.testing.assert_array_equal(best.best["layer_0/W"], [5.0, 5.0])
    assert best.best_attrs == {"epoch": 4}
    assert best.params == {}
    with h5py.File(tmp_path / "r.h5", "r") as h5file:
        assert set(h5file["runs"][best.id]["best"]) == {"layer_0"}


def test_saving_every_epoch_does_not_grow_the_file(tmp_path):
    path = tmp_path / "r.h5"
    params = {"layer_0/W": np.zeros((200, 100)), "layer_0/b": np.zeros(100)}
    with results.Writer(path) as writer:
        run = start(writer)
        for epoch in range(1, 4):
            run.save_params("params", params)
            run.save_checkpoint({"params": params, "epoch": epoch, "note": f"epoch {epoch}"})
        size_after_three = path.stat().st_size
        for epoch in range(4, 30):
            run.save_params("params", {name: value + epoch for name, value in params.items()})
            run.save_checkpoint({"params": params, "epoch": epoch, "note": f"epoch {epoch}"})
        assert path.stat().st_size < size_after_three + 20_000
        assert run.load_checkpoint()["epoch"] == 29
    saved = results.open(path).runs[0].params
    np.testing.assert_array_equal(saved["layer_0/b"], np.full(100, 29.0))


def test_metrics_missing_from_an_epoch_or_added_later_are_nan(tmp_path):
    with results.Writer(tmp_path / "r.h5") as writer:
        run = start(writer)
        run.append(metrics={"epoch": 1, "train_loss": 0.5, "step": 10})
        run.append(metrics={"epoch": 2, "test_error_k": 0.25}, diagnostics={"bp_angle": [1.0, 2.0]})
        run.append(metrics={"epoch": 3, "train_loss": 0.25, "step": 2.5})
        assert set(run.metrics_so_far()) == {"epoch", "train_loss", "step", "test_error_k"}
    read = results.open(tmp_path / "r.h5").runs[0]
    np.testing.assert_array_equal(read.metrics["epoch"], [1, 2, 3])
    assert read.metrics["epoch"].dtype == np.int64
    np.testing.assert_array_equal(read.metrics["train_loss"], [0.5, np.nan, 0.25])
    np.testing.assert_array_equal(read.metrics["step"], [10.0, np.nan, 2.5])
    np.testing.assert_array_equal(read.metrics["test_error_k"], [np.nan, 0.25, np.nan])
    np.testing.assert_array_equal(
        read.diagnostics["bp_angle"], [[np.nan, np.nan], [1, 2], [np.nan, np.nan]]
    )


def test_bad_values_are_rejected_before_anything_is_written(tmp_path):
    path = tmp_path / "r.h5"
    with results.Writer(path) as writer:
        run = start(writer)
        log_epochs(run, [1])
        with pytest.raises(ValueError, match="train_loss"):
            run.append(metrics={"epoch": 2, "train_loss": np.ones(3)})
        with pytest.raises(ValueError, match="inverse_error"):
            run.append(metrics={"epoch": 2}, diagnostics={"inverse_error": np.ones(5)})
        with pytest.raises(ValueError, match="valid name"):
            run.append(metrics={"a/b": 1.0})
        with pytest.raises(ValueError, match="params"):
            run.save_params("final", {"layer_0/W": np.ones(2)})
        with pytest.raises(ValueError, match="checkpoint entry 'opt -> x'"):
            run.save_checkpoint({"opt": {"x": object()}})
        with pytest.raises(ValueError, match="NUL"):
            run.save_checkpoint({"method": "a\0b"})
        with pytest.raises(ValueError, match="completed"):
            run.finish(status="done")
        with pytest.raises(ConfigError, match="JSON"):
            start(writer, config={"f": object()})
        with pytest.raises(ConfigError, match="dict"):
            start(writer, config=["not", "a", "dict"])
        assert run.metrics_so_far()["epoch"].tolist() == [1]
    assert len(results.open(path)) == 1


# ------------------------------------------------------------- errors on foreign files


def assert_rejected_untouched(path, message):
    before = path.read_bytes()
    with pytest.raises(ResultsError, match=message):
        results.Writer(path)
    with pytest.raises(ResultsError, match=message):
        results.open(path)
    assert path.read_bytes() == before
    assert not lock_path(path).exists()


def test_a_file_that_is_not_hdf5_is_rejected_and_left_untouched(tmp_path):
    path = tmp_path / "notes.h5"
    path.write_text("epoch,loss\n1,0.5\n")
    assert_rejected_untouched(path, "not a stochtp results file .*not an HDF5 file")


def test_an_hdf5_file_that_is_not_stochtps_is_rejected_and_left_untouched(tmp_path):
    bare, other = tmp_path / "bare.h5", tmp_path / "other.h5"
    with h5py.File(bare, "w") as h5file:
        h5file["data"] = np.arange(3)
    with h5py.File(other, "w") as h5file:
        h5file.attrs["format"] = "someone-else"
        h5file.attrs["format_version"] = 1
    assert_rejected_untouched(bare, "not a stochtp results file .*no 'format' attribute")
    assert_rejected_untouched(other, "not a stochtp results file .*someone-else")


def test_a_newer_format_version_is_rejected_and_left_untouched(tmp_path):
    path = tmp_path / "future.h5"
    with h5py.File(path, "w") as h5file:
        h5file.attrs["format"] = "stochtp-results"
        h5file.attrs["format_version"] = 2
        h5file.create_group("runs")
    assert_rejected_untouched(path, "version 2.*upgrade stochtp")


def test_a_missing_file_or_unknown_run_id_is_a_results_error(tmp_path):
    with pytest.raises(ResultsError, match="no results file"):
        results.open(tmp_path / "missing.h5")
    with results.Writer(tmp_path / "r.h5") as writer:
        start(writer)
        with pytest.raises(ResultsError, match="no run 'nope'"):
            writer.find_run("nope")
    with pytest.raises(ResultsError, match="no run 'nope'"):
        results.open(tmp_path / "r.h5")["nope"]


# ----------------------------------------------------------------- locking, concurrency


def test_a_second_writer_gets_a_clear_error_and_the_file_is_unchanged(tmp_path):
    path = tmp_path / "r.h5"
    with results.Writer(path) as first:
        run = start(first)
        log_epochs(run, [1])
        before = path.read_bytes()
        locked = rf"being written by another process \(pid {os.getpid()}\)"
        with pytest.raises(ResultsError, match=locked):
            results.Writer(path)
        with pytest.raises(ResultsError, match="being written by another process"):
            results.Writer(str(tmp_path / "." / "r.h5"))
        assert path.read_bytes() == before
        log_epochs(run, [2])
    assert not lock_path(path).exists()
    with results.Writer(path) as second:
        log_epochs(second.find_run(run.id), [3])
    np.testing.assert_array_equal(results.open(path).runs[0].metrics["epoch"], [1, 2, 3])


def test_a_closed_writer_cannot_write(tmp_path):
    with results.Writer(tmp_path / "r.h5") as writer:
        run = start(writer)
    with pytest.raises(ResultsError, match="closed"):
        log_epochs(run, [1])


def test_readers_are_not_blocked_by_an_active_writer(tmp_path):
    path = tmp_path / "r.h5"
    with results.Writer(path) as writer:
        run = start(writer)
        log_epochs(run, [1, 2])
        np.testing.assert_array_equal(results.open(path).runs[0].metrics["epoch"], [1, 2])
        with h5py.File(path, "r") as h5file:
            assert h5file["runs"][run.id].attrs["status"] == "running"
        log_epochs(run, [3])
        assert results.open(path).runs[0].num_epochs == 3


WRITER_CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from stochtp import results

    path, pause = sys.argv[1], float(sys.argv[2])
    with results.Writer(path) as writer:
        run = writer.start_run(
            name="killed", method="dtp", dataset="mnist", network="784-240s-10", seed=1,
            config={"epochs": 10000}, provenance=results.provenance(num_threads=1),
        )
        print(run.id, flush=True)
        for epoch in range(1, 10000):
            run.append(
                metrics={"epoch": epoch, "train_loss": 1.0 / epoch},
                diagnostics={"inverse_error": np.full(3, float(epoch))},
            )
            run.save_checkpoint({"epoch": epoch, "W": np.full((20, 20), float(epoch))})
            print(epoch, flush=True)
            time.sleep(pause)
    """
)

PLAIN_H5PY_CHECK = textwrap.dedent(
    """
    import json, sys
    import h5py

    with h5py.File(sys.argv[1], "r") as h5file:
        (run,) = h5file["runs"].values()
        print(json.dumps({
            "format": h5file.attrs["format"],
            "status": run.attrs["status"],
            "epoch": run["metrics/epoch"][()].tolist(),
            "train_loss": run["metrics/train_loss"][()].tolist(),
            "inverse_error": run["diagnostics/inverse_error"][()].tolist(),
            "checkpoint_epoch": int(run["checkpoint/epoch"][()]),
            "stochtp_imported": any(name.startswith("stochtp") for name in sys.modules),
        }))
    """
)


def start_writer_child(tmp_path, path, pause):
    script = tmp_path / "writer_child.py"
    script.write_text(WRITER_CHILD)
    return subprocess.Popen(
        [sys.executable, str(script), str(path), str(pause)],
        stdout=subprocess.PIPE,
        text=True,
        env=child_env(),
    )


def test_sigkill_keeps_every_flushed_epoch_and_the_file_readable_by_plain_h5py(tmp_path):
    path = tmp_path / "killed.h5"
    child = start_writer_child(tmp_path, path, pause=0.2)
    try:
        run_id = child.stdout.readline().strip()
        last_flushed = 0
        while last_flushed < 4:
            last_flushed = int(child.stdout.readline())
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL

    script = tmp_path / "plain_check.py"
    script.write_text(PLAIN_H5PY_CHECK)
    checked = subprocess.run(
        [sys.executable, str(script), str(path)], capture_output=True, text=True, check=True
    )
    found = json.loads(checked.stdout)
    assert found["stochtp_imported"] is False
    assert found["format"] == "stochtp-results"
    assert found["status"] == "running"
    logged = len(found["epoch"])
    assert logged >= last_flushed
    assert found["epoch"] == list(range(1, logged + 1))
    np.testing.assert_allclose(found["train_loss"], 1.0 / np.arange(1, logged + 1))
    expected_rows = np.repeat(np.arange(1.0, logged + 1)[:, None], 3, axis=1)
    np.testing.assert_array_equal(found["inverse_error"], expected_rows)
    assert found["checkpoint_epoch"] >= last_flushed

    # The dead writer's lock does not block the next one, which can resume the run.
    with results.Writer(path) as writer:
        resumed = writer.find_run(run_id)
        assert resumed.load_checkpoint()["epoch"] == found["checkpoint_epoch"]
        log_epochs(resumed, [logged + 1])
    assert results.open(path)[run_id].num_epochs == logged + 1


def test_a_reader_follows_a_writer_that_appends_continuously(tmp_path):
    path = tmp_path / "live.h5"
    child = start_writer_child(tmp_path, path, pause=0.0)
    try:
        child.stdout.readline()  # run id
        child.stdout.readline()  # epoch 1
        seen = []
        while len(seen) < 40:
            run = results.open(path).runs[0]
            logged = run.num_epochs
            np.testing.assert_array_equal(run.metrics["epoch"], np.arange(1, logged + 1))
            assert run.diagnostics["inverse_error"].shape == (logged, 3)
            seen.append(logged)
    finally:
        child.kill()
        child.wait()
    assert seen == sorted(seen) and seen[-1] > seen[0]


# ------------------------------------------------------------------ sweeps and resume


def test_completed_hashes_lists_only_completed_runs(tmp_path):
    with results.Writer(tmp_path / "r.h5") as writer:
        hashes = {}
        for status in ("completed", "failed", "interrupted", "running"):
            run = start(writer, config={**CONFIG, "status": status})
            if status != "running":
                run.finish(status=status)
            hashes[status] = results.open(tmp_path / "r.h5")[run.id].attrs["config_hash"]
        start(writer, config={**CONFIG, "status": "completed"}).finish()
        assert writer.completed_hashes() == {hashes["completed"]}
        assert results.completed_hashes(tmp_path / "r.h5") == {hashes["completed"]}  # a reader's pass, while written
    assert len(set(hashes.values())) == 4
    with pytest.raises(ResultsError, match="no results file"):
        results.completed_hashes(tmp_path / "missing.h5")


@pytest.mark.parametrize("part", ["metrics", "diagnostics", "checkpoint"])
def test_a_half_made_run_is_refused_for_resuming_and_left_untouched(tmp_path, part):
    path = tmp_path / "r.h5"
    with results.Writer(path) as writer:
        run = start(writer)
        log_epochs(run, [1])
    with h5py.File(path, "r+") as h5file:  # what an older stochtp killed half-way could leave
        del h5file["runs"][run.id][part]
    before = path.read_bytes()
    with results.Writer(path) as writer:
        with pytest.raises(ResultsError, match=rf"run '{run.id}' .* is incomplete \(no {part}\) and cannot be continued"):
            writer.find_run(run.id)
    assert path.read_bytes() == before


def test_find_run_resumes_the_same_run(tmp_path):
    path = tmp_path / "r.h5"
    with results.Writer(path) as writer:
        run = start(writer)
        log_epochs(run, [1, 2, 3])
        run.save_checkpoint({"epoch": 2, "W": np.ones(3)})
        run.finish(status="interrupted")
        start(writer, seed=1)

    with results.Writer(path) as writer:
        resumed = writer.find_run(run.id)
        np.testing.assert_array_equal(resumed.metrics_so_far()["epoch"], [1, 2, 3])
        checkpoint = resumed.load_checkpoint()
        assert checkpoint["epoch"] == 2
        resumed.truncate(int(checkpoint["epoch"]))
        np.testing.assert_array_equal(resumed.metrics_so_far()["epoch"], [1, 2])
        log_epochs(resumed, [3])
        assert results.open(path)[run.id].status == "running"
        log_epochs(resumed, [4])
        resumed.finish()

    reader = results.open(path)
    assert len(reader) == 2
    read = reader[run.id]
    assert read.status == "completed" and read.attrs["error"] == ""
    np.testing.assert_array_equal(read.metrics["epoch"], [1, 2, 3, 4])
    assert read.diagnostics["inverse_error"].shape == (4, 3)


# ---------------------------------------------------------------- provenance, pandas


def test_provenance_names_versions_threads_and_git_state(tmp_path):
    info = results.provenance(num_threads=3)
    assert set(info) == set(PROVENANCE_ATTRS)
    assert info["num_threads"] == 3
    assert info["numpy_version"] == np.__version__ and info["h5py_version"] == h5py.__version__
    assert isinstance(info["git_dirty"], bool)
    assert info["git_commit"] == "unknown" or re.fullmatch(r"[0-9a-f]{40}", info["git_commit"])
    assert results.origin._git_provenance(str(tmp_path)) == ("unknown", False)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_provenance_reads_commit_and_dirty_state(tmp_path):
    package = tmp_path / "stochtp"
    package.mkdir()
    (package / "module.py").write_text("x = 1\n")
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "first"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True)
    head = head.stdout.strip()
    assert results.origin._git_provenance(str(package)) == (head, False)
    (package / "module.py").write_text("x = 2\n")
    assert results.origin._git_provenance(str(package)) == (head, True)
    untracked = tmp_path / "elsewhere"
    untracked.mkdir()
    assert results.origin._git_provenance(str(untracked)) == ("unknown", False)


def test_to_dataframe_has_one_row_per_run_and_epoch(tmp_path):
    pandas = pytest.importorskip("pandas")
    with results.Writer(tmp_path / "r.h5") as writer:
        log_epochs(start(writer, seed=1), [1, 2, 3])
        log_epochs(start(writer, seed=2), [1, 2])
        start(writer, seed=3)
    frame = results.open(tmp_path / "r.h5").to_dataframe()
    assert isinstance(frame, pandas.DataFrame)
    assert len(frame) == 5
    assert {"run_id", "seed", "method", "status", "epoch", "train_loss"} <= set(frame.columns)
    assert frame.groupby("seed")["epoch"].max().to_dict() == {1: 3, 2: 2}


def test_to_dataframe_without_pandas_says_how_to_install_it(tmp_path, monkeypatch):
    with results.Writer(tmp_path / "r.h5") as writer:
        start(writer)
    monkeypatch.setitem(sys.modules, "pandas", None)
    message = re.escape("pandas is needed: pip install stochtp[pandas]")
    with pytest.raises(ImportError, match=message):
        results.open(tmp_path / "r.h5").to_dataframe()


def checkpoint_of(epoch):
    return {"epoch": epoch, "params": {"W": np.full((2, 3), float(epoch)), "b": np.full(3, float(epoch))}}


def test_a_writer_killed_while_writing_a_checkpoint_leaves_the_previous_one(tmp_path, monkeypatch):
    """Killed after part of epoch 3's checkpoint went to the file: resume sees all of epoch 2, not a mixture."""
    path = tmp_path / "r.h5"
    real_replace = trees._replace_tree

    def killed_halfway(group, groups, leaves):
        real_replace(group, groups, dict(list(leaves.items())[:2]))
        raise KeyboardInterrupt

    with results.Writer(path) as writer:
        run = start(writer)
        run.save_checkpoint(checkpoint_of(1))
        run.save_checkpoint(checkpoint_of(2))
        monkeypatch.setattr(trees, "_replace_tree", killed_halfway)
        with pytest.raises(KeyboardInterrupt):
            run.save_checkpoint(checkpoint_of(3))
        monkeypatch.undo()
        for loaded in (run.load_checkpoint(), results.open(path).runs[0].checkpoint):
            assert loaded["epoch"] == 2
            np.testing.assert_array_equal(loaded["params"]["W"], np.full((2, 3), 2.0))
            np.testing.assert_array_equal(loaded["params"]["b"], np.full(3, 2.0))
        run.save_checkpoint(checkpoint_of(4))
        assert run.load_checkpoint()["epoch"] == 4


@pytest.mark.parametrize("failing_rename", [1, 2, 3])
def test_a_write_stopped_between_the_renames_leaves_the_previous_checkpoint(tmp_path, monkeypatch, failing_rename):
    """The swap is three renames; an exception before any of them leaves epoch 2: nothing of a
    write that did not finish reaches the disk."""
    expected = 2
    path = tmp_path / "r.h5"
    real_move = h5py.Group.move
    renames = []

    def killed_at_a_rename(group, source, dest):
        renames.append((source, dest))
        if len(renames) == failing_rename:
            raise KeyboardInterrupt
        real_move(group, source, dest)

    with results.Writer(path) as writer:
        run = start(writer)
        run.save_checkpoint(checkpoint_of(1))
        run.save_checkpoint(checkpoint_of(2))
        monkeypatch.setattr(h5py.Group, "move", killed_at_a_rename)
        with pytest.raises(KeyboardInterrupt):
            run.save_checkpoint(checkpoint_of(3))
        monkeypatch.undo()
        assert run.load_checkpoint()["epoch"] == expected
        assert results.open(path).runs[0].checkpoint["epoch"] == expected
        run.save_checkpoint(checkpoint_of(4))
        assert run.load_checkpoint()["epoch"] == 4
    with h5py.File(path, "r") as h5file:
        (group,) = h5file["runs"].values()
        assert {name for name in group if name.startswith("checkpoint")} == {"checkpoint", "checkpoint.spare"}


def test_a_parameter_name_that_is_also_a_group_is_refused_before_anything_is_written(tmp_path):
    path = tmp_path / "r.h5"
    saved = {"layer_0/W": np.ones((2, 3)), "layer_0/b": np.zeros(3)}
    with results.Writer(path) as writer:
        run = start(writer)
        run.save_params("best", saved, attrs={"epoch": 7})
        with pytest.raises(ValueError, match="'layer_0' is both an array and a group"):
            run.save_params("best", {"layer_0": np.ones(2), "layer_0/W": np.ones((2, 3))})
    (run,) = results.open(path).runs
    assert set(run.best) == set(saved) and run.best_attrs == {"epoch": 7}


@pytest.mark.parametrize("bad", [{"name": "a\x00b"}, {"name": "a\udcffb"}, {"seed": 2**70}, {"provenance": {"": 1}}])
def test_a_run_hdf5_cannot_store_is_refused_before_the_file_changes(tmp_path, bad):
    """Names with NUL or undecodable bytes, 65-bit integers and empty attribute names are refused
    with a ValueError before the file is opened: no half-made run is left behind."""
    path = tmp_path / "r.h5"
    with results.Writer(path) as writer:
        log_epochs(start(writer), [1])
        before = path.read_bytes()
        fields = {"name": "demo", "method": "dtp", "dataset": "mnist", "network": "784-240s-10", "seed": 0, "config": CONFIG, "provenance": {}}
        with pytest.raises(ValueError, match="run attribute"):
            writer.start_run(**{**fields, **bad})
    assert path.read_bytes() == before
    assert len(results.open(path).runs) == 1


def test_an_interrupted_run_creation_leaves_no_half_made_run(tmp_path, monkeypatch):
    """Ctrl-C while the run's group is being made (here: as its subgroups are created) removes
    the group: the file lists only whole runs, so --resume never meets one without its parts."""
    path = tmp_path / "r.h5"
    with results.Writer(path) as writer:
        log_epochs(start(writer), [1])
        create_group = h5py.Group.create_group

        def interrupted(group, name, *args, **kwargs):
            if name == "diagnostics":
                raise KeyboardInterrupt
            return create_group(group, name, *args, **kwargs)

        monkeypatch.setattr(h5py.Group, "create_group", interrupted)
        with pytest.raises(KeyboardInterrupt):
            start(writer, seed=1)
        monkeypatch.undo()
        assert [run.attrs["seed"] for run in results.open(path).runs] == [0]
        log_epochs(start(writer, seed=2), [1])
    assert [run.status for run in results.open(path).runs] == ["running", "running"]


@pytest.mark.parametrize("make", ["start_run", "add_record"])
def test_a_new_run_gets_its_status_last(tmp_path, monkeypatch, make):
    """A process killed while a run is written leaves it without a status (start_run) or "running"
    (add_record, whose record here is completed), which nothing takes for whole: the status is
    the last attribute written."""
    path = tmp_path / "r.h5"
    with results.Writer(path) as writer:
        finished = start(writer)
        log_epochs(finished, [1, 2])
        finished.save_params("best", {"layer_0/W": np.ones((2, 3))}, attrs={"epoch": 2})
        finished.finish()
    record = results.read_record(path, results.open(path).runs[0].id)
    written = []
    setitem = h5py.AttributeManager.__setitem__

    def logged(attrs, key, value):
        written.append((h5py.h5i.get_name(attrs._id), key, value))
        setitem(attrs, key, value)

    create_dataset = h5py.Group.create_dataset

    def logged_dataset(group, name, *args, **kwargs):
        written.append((h5py.h5i.get_name(group.id), name, None))
        return create_dataset(group, name, *args, **kwargs)

    monkeypatch.setattr(h5py.AttributeManager, "__setitem__", logged)
    monkeypatch.setattr(h5py.Group, "create_dataset", logged_dataset)
    with results.Writer(path) as writer:
        run_id = start(writer, seed=1).id if make == "start_run" else writer.add_record(record)
    group = f"/runs/{run_id}".encode()
    statuses = [value for name, key, value in written if name == group and key == "status"]
    assert written[-1][:2] == (group, "status")
    assert statuses == (["running"] if make == "start_run" else ["running", "completed"])
    assert len({key for name, key, _ in written if name == group}) > 10
    if make == "add_record":  # the record's parts were written before its status
        assert {(name, key) for name, key, _ in written} >= {(group + b"/best", "epoch"), (group + b"/metrics", "epoch"), (group + b"/best", "layer_0/W")}


def test_a_file_in_the_way_of_the_lock_is_refused_and_left_whole(tmp_path):
    """`<file>.lock` that is not a lock (here a results file of its own) is neither emptied nor
    removed by a Writer of `<file>`: the Writer refuses with a message that names it."""
    other = tmp_path / "z.h5.lock"
    with results.Writer(other) as writer:
        log_epochs(start(writer), [1])
    before = other.read_bytes()
    with pytest.raises(ResultsError, match="is not a lock file"):
        results.Writer(tmp_path / "z.h5")
    assert other.read_bytes() == before
    assert not (tmp_path / "z.h5").exists()


@pytest.mark.parametrize("name", ["newdir/", "existing"])
def test_a_folder_is_not_taken_for_a_results_file(tmp_path, name):
    """`--out newdir/` is a folder path, refused (not an HDF5 file called newdir)."""
    (tmp_path / "existing").mkdir()
    with pytest.raises(ResultsError, match="is a folder; give the results file's name"):
        results.Writer(os.path.join(tmp_path, name))
    assert not (tmp_path / "newdir").exists()


def test_a_file_hdf5_finds_damaged_while_writing_is_a_results_error(tmp_path, monkeypatch):
    """HDF5's RuntimeError on a damaged structure (a real case: "Link iteration failed (bad heap
    free list)" when a new run looks for the newest id) becomes one ResultsError for the CLI."""
    path = tmp_path / "r.h5"
    with results.Writer(path) as writer:
        log_epochs(start(writer), [1])

        def damaged(group):
            raise RuntimeError("Link iteration failed (bad heap free list)")

        monkeypatch.setattr(h5py.Group, "__iter__", damaged)
        with pytest.raises(ResultsError, match="is damaged .Link iteration failed"):
            start(writer, seed=1)


def test_a_hard_linked_results_file_is_not_written(tmp_path):
    """The lock is `<name>.lock`: a writer through a second name (a hard link) would not see it,
    and two writers at once destroyed the file. A file with several names is refused, untouched."""
    path = tmp_path / "r.h5"
    with results.Writer(path) as writer:
        log_epochs(start(writer), [1])
    os.link(path, tmp_path / "other-name.h5")
    before = path.read_bytes()
    for name in ("r.h5", "other-name.h5"):
        with pytest.raises(ResultsError, match="has other names .hard links."):
            results.Writer(tmp_path / name)
    assert path.read_bytes() == before
    assert not list(tmp_path.glob("*.lock"))
