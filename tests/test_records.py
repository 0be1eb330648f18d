"""Run records (stochtp.records): JSON text of completed runs, the same report from them as from
the results file, and the README's results table, which must be what the committed records give."""
import json
import math
import re
from pathlib import Path

import h5py
import pytest

from conftest import REPO_ROOT
from stochtp import records, results
from stochtp.cli import main
from test_report import write_runs

RECORDS = REPO_ROOT / "experiments" / "results"


def export(capsys, source, folder, left_out=None):
    """The records `--export-records` wrote, and (checked where given) its line on the runs it left out."""
    assert main(["report", str(source), "--export-records", str(folder)]) == 0
    lines = capsys.readouterr().out.splitlines()
    if left_out is not None:
        assert lines[-1] == f"left out: {left_out} (records are made of completed runs, the newest per config)"
    return [Path(line.removeprefix("written: ")) for line in lines if line.startswith("written: ")]


def test_records_hold_one_completed_run_per_config(capsys, tmp_path):
    """write_runs: 5 completed runs of 4 configs (one config twice) and a failed run -> 4 records,
    the repeated config's newer run; NaN is null; config, hash, commit and version are kept."""
    source = write_runs(tmp_path / "runs.h5")
    paths = export(capsys, source, tmp_path / "records", left_out="1 failed, 1 repeated config")
    assert len(paths) == 4 and sorted(paths) == sorted((tmp_path / "records").glob("*.json"))
    newest = max((run for run in results.open(source).runs if run.attrs["name"] == "alpha" and run.attrs["seed"] == 0), key=lambda run: run.id)
    document = json.loads((tmp_path / "records" / records.file_name(newest)).read_text())
    assert document["run_id"] == newest.id and document["config"] == newest.config and document["config_hash"] == newest.attrs["config_hash"]
    assert document["format"] == "stochtp-run-record" and document["format_version"] == 1
    assert document["metrics"]["valid_error_k"] == [None, 0.20, 0.30] and document["metrics"]["epoch"] == [1, 2, 3]
    run = records.read(tmp_path / "records" / records.file_name(newest))
    assert math.isnan(run.metrics["valid_error_k"][0]) and run.metrics["epoch"].dtype.kind == "i"


def test_a_run_of_this_checkout_records_its_commit_and_version(capsys, tmp_path, tiny_config_path):
    assert main(["run", str(tiny_config_path), "--out", str(tmp_path / "run.h5"), "--epochs", "1", "--quiet"]) == 0
    capsys.readouterr()
    (path,) = export(capsys, tmp_path / "run.h5", tmp_path / "records")
    document = json.loads(path.read_text())
    run = results.open(tmp_path / "run.h5").runs[0]
    assert {key: document[key] for key in ("git_commit", "git_dirty", "stochtp_version")} == {key: run.attrs[key] for key in ("git_commit", "git_dirty", "stochtp_version")}


@pytest.mark.parametrize("fmt", ["markdown", "json"])
def test_a_report_from_records_is_the_report_from_the_file(capsys, tmp_path, fmt):
    source = write_runs(tmp_path / "runs.h5")
    export(capsys, source, tmp_path / "records")
    assert main(["report", "--records", str(tmp_path / "records"), "--format", fmt]) == 0
    from_records = capsys.readouterr().out
    assert main(["report", str(source), "--format", fmt]) == 0
    from_file = capsys.readouterr().out
    if fmt == "json":  # the failed run is in the file only: it is left out there
        from_records, from_file = json.loads(from_records), json.loads(from_file)
        assert from_file.pop("left_out") == {"failed": 1, "repeated config": 1} and from_records.pop("left_out") == {}
    else:
        from_file = from_file.replace("- left out: 1 failed, 1 repeated config\n", "")
    assert from_records == from_file


def test_a_record_stays_in_its_folder_whatever_the_run_name(capsys, tmp_path):
    source = write_runs(tmp_path / "runs.h5")
    with h5py.File(source, "r+") as file:
        first = sorted(file["runs"])[1]
        file["runs"][first].attrs["name"] = "../../escaped|x"
    paths = export(capsys, source, tmp_path / "deep" / "records")
    assert all(path.parent == tmp_path / "deep" / "records" for path in paths)
    assert any(path.name.startswith("_.._escaped_x-seed") for path in paths) and not list(tmp_path.glob("escaped*"))


def test_exporting_an_older_run_keeps_the_newer_record(capsys, tmp_path):
    """Two results files with runs of one config: the record keeps the newer run, whichever file
    is exported last."""
    newer_file = write_runs(tmp_path / "newer.h5")  # run ids sort by start time: made after `older`'s
    older_file = tmp_path / "older.h5"
    older_file.write_bytes(write_runs(tmp_path / "tmp.h5").read_bytes())
    with h5py.File(older_file, "r+") as file:  # the same runs, given earlier ids
        for run_id in list(file["runs"]):
            file["runs"].move(run_id, "2000" + run_id[4:])
    (tmp_path / "tmp.h5").unlink()
    export(capsys, newer_file, tmp_path / "records")
    kept = {path.name: json.loads(path.read_text())["run_id"] for path in (tmp_path / "records").glob("*.json")}
    assert main(["report", str(older_file), "--export-records", str(tmp_path / "records")]) == 0
    out = capsys.readouterr().out
    assert out.count("kept: ") == len(kept) and "written: " not in out
    assert {path.name: json.loads(path.read_text())["run_id"] for path in (tmp_path / "records").glob("*.json")} == kept


@pytest.mark.parametrize("damage, message", [
    (lambda record: record.pop("metrics"), "metrics must be a table of metric lists"),
    (lambda record: record.update(metrics=[1, 2]), "metrics must be a table of metric lists"),
    (lambda record: record["metrics"].update(epoch=3), "every metric must be a list of numbers"),
    (lambda record: record["metrics"]["epoch"].pop(), "different numbers of epochs"),
    (lambda record: record.update(config=[1]), "config must be a table"),
    (lambda record: record.pop("run_id"), "run_id must be text"),
    (lambda record: record.update(seed=[0]), "seed must be a single value"),
    (lambda record: record.update(seed=True), "seed must be a whole number"),
    (lambda record: record.update(search='{"trial": 1}'), "is not a search trial's"),
    (lambda record: record.update(search="{not json"), "is not a search trial's"),
    (lambda record: record.update(search=5), "is not a search trial's"),
    (lambda record: record.update(resumes={"first_epoch": 3}), "resumes must be a list of tables"),
])
def test_a_damaged_record_is_refused_with_one_line_naming_it(capsys, tmp_path, damage, message):
    (path, *_) = export(capsys, write_runs(tmp_path / "runs.h5"), tmp_path / "records")
    record = json.loads(path.read_text())
    damage(record)
    path.write_text(json.dumps(record))
    assert main(["report", "--records", str(tmp_path / "records")]) == 2
    err = capsys.readouterr().err
    assert f"{path} is a damaged run record" in err and message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("option", [["--records", "."], ["--rank"], ["--by", "seed"], ["--metric", "test_error"], ["--partial"]])
def test_export_refuses_options_it_would_ignore(capsys, tmp_path, option):
    assert main(["report", str(write_runs(tmp_path / "runs.h5")), "--export-records", str(tmp_path / "records"), *option]) == 2
    assert f"drop {option[0]}" in capsys.readouterr().err and not (tmp_path / "records").exists()


def test_export_into_a_file_exits_2(capsys, tmp_path):
    (tmp_path / "afile").write_text("x")
    assert main(["report", str(write_runs(tmp_path / "runs.h5")), "--export-records", str(tmp_path / "afile")]) == 2
    assert "cannot make the folder" in capsys.readouterr().err and (tmp_path / "afile").read_text() == "x"


def test_bad_record_input_exits_2_with_one_line(capsys, tmp_path):
    assert main(["report", "--records", str(tmp_path / "absent")]) == 2
    assert "no such folder" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    assert main(["report", "--records", str(tmp_path)]) == 2
    assert "is not a stochtp run record" in capsys.readouterr().err
    assert main(["report"]) == 2
    assert "name a results file (FILE.h5) or --records DIR" in capsys.readouterr().err


@pytest.mark.parametrize("page, marker, options", [
    (REPO_ROOT / "README.md", "paper-table", ["--layout", str(REPO_ROOT / "experiments" / "paper-table.toml")]),
    (REPO_ROOT / "docs" / "results.md", "results-table", []),
], ids=["readme-paper-table", "docs-results-table"])
def test_published_tables_are_what_the_committed_records_give(capsys, page, marker, options):
    """The block between a page's table markers is `stochtp report --records experiments/results/
    ... --format markdown`, unchanged: no number in it without a record."""
    blocks = re.findall(rf"<!-- {marker}:start -->\n(.*?)<!-- {marker}:end -->", page.read_text(), re.S)
    assert len(blocks) == 1, f"{page.name} needs one <!-- {marker}:start --> ... <!-- {marker}:end --> block"
    assert main(["report", "--records", str(RECORDS), *options, "--format", "markdown"]) == 0
    assert blocks[0].strip() == capsys.readouterr().out.strip()
