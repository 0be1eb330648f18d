"""Run records (stochtp.records): JSON text of completed runs, the same report from them as from
the results file, and the README's results table, which must be what the committed records give."""
import json
import math
import re
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from stochtp import records, results
from stochtp.cli import main
from test_report import write_runs

RECORDS = REPO_ROOT / "experiments" / "results"


def export(capsys, source, folder):
    assert main(["report", str(source), "--export-records", str(folder)]) == 0
    return [Path(line.removeprefix("written: ")) for line in capsys.readouterr().out.splitlines()]


def test_records_hold_one_completed_run_per_config(capsys, tmp_path):
    """write_runs: 5 completed runs of 4 configs (one config twice) and a failed run -> 4 records,
    the repeated config's newer run; NaN is null; config, hash, commit and version are kept."""
    source = write_runs(tmp_path / "runs.h5")
    paths = export(capsys, source, tmp_path / "records")
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
