"""Every dataset of a results file says what it holds (`units`, `description`, and a diagnostic's
`layers`), and files written without those attributes still read."""
import h5py
import numpy as np
import pytest
from conftest import TINY_RUN

from stochtp import results
from stochtp.cli import main

DESCRIBED_ATTRS = ("units", "description")


def datasets(h5file):
    """(path inside the file, dataset) of every dataset of an open HDF5 file."""
    found = []
    h5file.visititems(lambda name, item: found.append((name, item)) if isinstance(item, h5py.Dataset) else None)
    return found


def start(writer):
    return writer.start_run(name="demo", method="dtp", dataset="teacher", network="8-6b-3s", seed=0, config={}, provenance={})


@pytest.fixture
def trained_file(tmp_path):
    """A results file of two epochs of DTP on the tiny stochastic teacher task (metrics,
    diagnostics, parameters, best parameters and checkpoint all written)."""
    config_path = tmp_path / "dtp.toml"
    config_path.write_text(TINY_RUN.replace("epochs = 4", "epochs = 2").split("[method]")[0] + '[method]\nname = "dtp"\n')
    out = tmp_path / "r.h5"
    assert main(["run", str(config_path), "--out", str(out), "--threads", "1", "--quiet"]) == 0
    return out


def test_every_dataset_of_a_new_results_file_has_units_and_a_description(trained_file):
    (run,) = results.open(trained_file).runs
    with h5py.File(trained_file, "r") as h5file:
        found = datasets(h5file)
        groups = {name.split("/")[2] for name, _ in found}
        assert {"metrics", "diagnostics", "params", "best", "checkpoint"} <= groups
        for name, dataset in found:
            for attr in DESCRIBED_ATTRS:
                assert isinstance(dataset.attrs.get(attr), bytes) and dataset.attrs[attr], f"{name} has no {attr}"
            if name.split("/")[2] in ("metrics", "diagnostics"):
                assert dataset.attrs["units"].decode() != results.UNDESCRIBED.units, name
            if name.split("/")[2] == "diagnostics":
                assert [label.decode() for label in dataset.attrs["layers"]] == ["layer_0", "layer_1", "layer_2"], name
        metrics = h5file["runs"][run.id]["metrics"]
        assert metrics["train_loss"].attrs["units"] == b"nats per example"
        assert {metrics[name].attrs["units"] for name in ("train_error", "valid_error", "test_error", "test_error_k")} == {b"fraction"}
        assert metrics["epoch_time"].attrs["units"] == metrics["wall_time"].attrs["units"] == b"s"
    assert run.columns["diagnostics"]["bp_angle"] == results.Column("degrees", results.STANDARD_COLUMNS["bp_angle"].description, ["layer_0", "layer_1", "layer_2"])
    assert run.columns["metrics"]["train_loss"] == results.training_columns("nll")["train_loss"]


def test_a_file_written_without_the_attributes_reads_as_before_and_takes_new_epochs(trained_file):
    """A file as stochtp wrote it before the attributes (format version 1 all the same): every
    `units`, `description` and `layers` attribute removed."""
    before = results.open(trained_file).runs[0]
    with h5py.File(trained_file, "r+") as h5file:
        for _, dataset in datasets(h5file):
            for attr in (*DESCRIBED_ATTRS, "layers"):
                dataset.attrs.pop(attr, None)
    (run,) = results.open(trained_file).runs
    assert run.metrics.keys() == before.metrics.keys() and run.diagnostics.keys() == before.diagnostics.keys()
    for name in run.metrics:
        np.testing.assert_array_equal(run.metrics[name], before.metrics[name])
    for name in run.diagnostics:
        np.testing.assert_array_equal(run.diagnostics[name], before.diagnostics[name])
    np.testing.assert_array_equal(run.params["layer_0/W"], before.params["layer_0/W"])
    assert run.columns["metrics"]["train_loss"] == results.STANDARD_COLUMNS["train_loss"]
    assert run.columns["diagnostics"]["inverse_error"].layers == ["layer_0", "layer_1", "layer_2"]

    with results.Writer(trained_file) as writer:
        writer.find_run(run.id).append({"epoch": 3, "extra": 1.5}, {"inverse_error": [1.0, 2.0, 3.0]})
    (run,) = results.open(trained_file).runs
    assert run.num_epochs == 3
    assert run.columns["metrics"]["extra"] == results.UNDESCRIBED
    assert run.columns["metrics"]["epoch"] == results.STANDARD_COLUMNS["epoch"]


def test_a_column_is_described_by_the_caller_and_keeps_its_attributes(tmp_path):
    path = tmp_path / "r.h5"
    own = {"gap": results.Column("nats", "a quantity of the caller's"), "spread": results.Column("bits", "per block", ["left", "right"])}
    with results.Writer(path) as writer:
        run = start(writer)
        run.append({"epoch": 1, "gap": 1}, {"spread": [0.5, 1.0]}, own)
        run.append({"epoch": 2, "gap": 0.5}, {"spread": [0.25, 0.5]})  # gap turns from int64 into float64
        copy_id = writer.add_record(results.read_record(path, run.id))
    runs = results.open(path)
    for run_id in (run.id, copy_id):
        assert runs[run_id].columns["metrics"]["gap"] == results.Column("nats", "a quantity of the caller's")
        assert runs[run_id].columns["diagnostics"]["spread"] == own["spread"]
    with h5py.File(path, "r") as h5file:
        assert h5file[f"runs/{run.id}/metrics/gap"].dtype == np.float64


def test_layer_labels_that_do_not_fit_the_diagnostic_are_refused_before_anything_is_written(tmp_path):
    path = tmp_path / "r.h5"
    with results.Writer(path) as writer:
        run = start(writer)
        run.append({"epoch": 1})
        with pytest.raises(ValueError, match="2 values per row but 3 layer labels"):
            run.append({"epoch": 2}, {"spread": [0.5, 1.0]}, {"spread": results.Column("bits", "per block", ["a", "b", "c"])})
    (run,) = results.open(path).runs
    assert run.num_epochs == 1 and not run.diagnostics
