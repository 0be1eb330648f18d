"""`stochtp report --layout`: a table whose rows a file chooses and whose numbers the runs give,
checked against the hand computation of test_report's runs; bad layout files and clashing
options get one line and exit 2."""
import json

import pytest

from stochtp import layout, results
from stochtp.cli import main
from test_report import write_runs

LAYOUT = """
[[row]]
name = "alpha"
network = "teacher, 8-6b-6b-3s"
method = "DTP"
reference = "≈20 %"
paper_epochs = 3
compare = ["beta"]

[[row]]
name = "beta"
network = "teacher, 8-6b-6b-3s"
method = "DTP at another lr"
reference = "—"
paper_epochs = "not given"
metrics = ["test_error_k", "test_error"]

[[row]]
name = "delta"
network = "another network"
method = "never run"
"""


@pytest.fixture
def laid_out(tmp_path):
    (tmp_path / "table.toml").write_text(LAYOUT)
    return write_runs(tmp_path / "runs.h5"), tmp_path / "table.toml"


def report_lines(capsys, *argv):
    assert main(["report", *map(str, argv)]) == 0
    return capsys.readouterr().out.splitlines()


def test_markdown_rows_hold_the_hand_computed_numbers_in_layout_order(capsys, laid_out):
    """test_report's hand computation: alpha 0.20 ± 0.028284, beta 0.29 ± 0.127279 (test_error_k);
    beta's test_error is 0.13 at its best-validation epoch 1 on both seeds (std 0)."""
    source, table = laid_out
    lines = report_lines(capsys, source, "--layout", table, "--format", "markdown")
    assert lines[0] == "| network | method (preset) | reference | measured (mean ± std over seeds) | seeds | epochs (paper's) |"
    assert lines[2] == "| teacher, 8-6b-6b-3s | DTP (`alpha`) | ≈20 % | 20.00 ± 2.83 % | 2 | 3 (3) |"
    assert lines[3] == "|  | DTP at another lr (`beta`) | — | 29.00 ± 12.73 % · 13.00 ± 0.00 % | 2 | 3 (not given) |"
    assert lines[4] == f"| another network | never run (`delta`) |  | {layout.NO_RECORD} | 0 | — |"
    # alpha - beta: mean -0.09, 95 % interval [-1.487683, +1.307683] (test_report), in points
    assert lines[7] == "- `alpha` − `beta`: -9.00 [-148.77, +130.77] points, 2 seeds, lower on 1 / 1, sign test p = 1"
    assert lines[8] == "- beta: its runs differ in method.lr, not only the seed (--by one of them splits the group)"
    assert lines[9] == "- left out: 1 failed, 1 repeated config"


def test_json_gives_the_raw_values_and_csv_the_cells(capsys, laid_out):
    source, table = laid_out
    document = json.loads("\n".join(report_lines(capsys, source, "--layout", table, "--format", "json")))
    alpha = document["rows"][0]
    assert alpha["name"] == "alpha" and alpha["values"]["test_error_k"]["mean"] == pytest.approx(0.20)
    assert alpha["values"]["test_error_k"]["std"] == pytest.approx(0.0282843, rel=1e-5)
    assert document["rows"][2]["measured"] == layout.NO_RECORD and document["rows"][2]["values"] == {}
    assert [item["second"] for item in document["comparisons"]] == ["beta"]
    lines = report_lines(capsys, source, "--layout", table, "--format", "csv")
    assert lines[0] == "name,network,method,reference,measured,seeds,epochs,paper_epochs" and lines[3].startswith("delta,")
    assert lines[2].startswith("beta,\"teacher, 8-6b-6b-3s\",")  # the network named on every row here


def test_a_comparison_partner_without_runs_is_said_not_invented(capsys, tmp_path):
    (tmp_path / "table.toml").write_text('[[row]]\nname = "alpha"\ncompare = ["nowhere"]\n[[row]]\nname = "nowhere"\n')
    lines = report_lines(capsys, write_runs(tmp_path / "runs.h5"), "--layout", tmp_path / "table.toml", "--format", "markdown")
    assert "- `alpha` − `nowhere`: no record yet of `nowhere`" in lines
    lines = report_lines(capsys, write_runs(tmp_path / "runs.h5"), "--layout", tmp_path / "table.toml")
    assert "alpha − nowhere: no record yet of nowhere" in lines and lines[2].strip().startswith("nowhere")  # plain text: no Markdown quotes


def test_runs_of_another_network_are_not_compared(capsys, tmp_path):
    source = write_runs(tmp_path / "runs.h5")
    with results.Writer(source) as writer:
        run = writer.start_run(name="other", method="bp", dataset="teacher", network="8-3s", seed=0, config={"name": "other", "seed": 0}, provenance={})
        run.append({"epoch": 1, "valid_error": 0.3, "test_error": 0.3})
        run.finish("completed")
    (tmp_path / "table.toml").write_text('[[row]]\nname = "alpha"\nmetrics = ["test_error"]\ncompare = ["other"]\n[[row]]\nname = "other"\n')
    assert main(["report", str(source), "--layout", str(tmp_path / "table.toml")]) == 2
    assert "row 1: alpha and other report different metrics or networks" in capsys.readouterr().err


@pytest.mark.parametrize("text, message", [
    (None, "no such file"),
    ("[[row]\n", "not a readable TOML file"),
    ('title = "x"\n', "expected [[row]] tables only"),
    ('[[row]]\nnetwork = "n"\n', 'row 1: needs name = "RUN NAME"'),
    ('[[row]]\nname = "alpha"\ncolour = "red"\n', "row 1: unknown key colour"),
    ('[[row]]\nname = "alpha"\nmetrics = "test_error"\n', "row 1: metrics must be a list of names"),
    ('[[row]]\nname = "alpha"\npaper_epochs = 1.5\n', "row 1: paper_epochs must be a whole number or text"),
    ('[[row]]\nname = "alpha"\n[[row]]\nname = "alpha"\n', "row 2: alpha is laid out already, in row 1"),
    ('[[row]]\nname = "alpha"\ncompare = ["alpha"]\n', "row 1: alpha is compared with itself"),
    ('[[row]]\nname = "alpha"\ncompare = ["alhpa"]\n', "row 1: compare names alhpa, which no row of the layout lays out"),
    ('[[row]]\nname = "alpha"\nmetrics = ["test_eror"]\n', "row 1: the runs of alpha have no metric test_eror"),
    (b"\xff\xfe[[row]]", "not a readable TOML file"),
    ("directory", "not a readable TOML file"),
])
def test_bad_layout_files_exit_2_with_one_line(capsys, tmp_path, text, message):
    path = tmp_path / "table.toml"
    if text == "directory":
        path.mkdir()
    elif isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text)
    assert main(["report", str(write_runs(tmp_path / "runs.h5")), "--layout", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("option", [["--rank"], ["--by", "method"], ["--metric", "test_error"], ["--plot", "curves.png"], ["--export-records", "out"],
                                    ["--filters"], ["--follow"], ["--out", "filters.png"]])
def test_options_the_layout_decides_are_refused(capsys, laid_out, option):
    source, table = laid_out
    assert main(["report", str(source), "--layout", str(table), *option]) == 2
    assert f"drop {option[0]}" in capsys.readouterr().err


def test_a_bar_in_a_label_stays_in_its_column(capsys, laid_out):
    source, table = laid_out
    table.write_text('[[row]]\nname = "alpha"\nmethod = "DTP | tanh"\n')
    lines = report_lines(capsys, source, "--layout", table, "--format", "markdown")
    assert lines[2].startswith("|  | DTP \\| tanh (`alpha`) |") and lines[2].count(" | ") == 5


def test_one_shared_seed_gives_the_difference_and_says_why_no_interval(tmp_path):
    """alpha 0.22 and beta 0.20 at their best-validation epochs on seed 0 (test_report's runs)."""
    (tmp_path / "table.toml").write_text('[[row]]\nname = "alpha"\ncompare = ["beta"]\n[[row]]\nname = "beta"\n')
    runs = [run for run in layout.report.load_runs([write_runs(tmp_path / "runs.h5")]) if run.attrs["seed"] == 0]
    (pair,) = layout.fill(layout.load(tmp_path / "table.toml"), runs).comparisons
    assert layout.comparison_text(*pair) == "`alpha` − `beta`: +2.00 points, 1 shared seed (a t interval needs 2)"
