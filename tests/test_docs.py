"""The documentation (README.md and the site in docs/) stays true to the code: its Python
examples run, its command reference lists every command and option of the parser, its pages stay
about the project, and the README stays a front page (under 25 KB, detail in docs/).

Example conventions (also stated in docs/index.md): every fenced ```python block of a page runs,
in order, in one namespace per page, in a temporary working folder; an HTML comment on the line
before the fence marks a block `<!-- skip -->` (shown, never run) or `<!-- mnist -->` (run, with
the page's other blocks, only by the test marked `mnist`, where the MNIST files are found; the
unmarked blocks must not need it). Shell, TOML and `pycon` blocks are not run here.
"""
import importlib.util
import re

import pytest

from stochtp import cli, data
from stochtp.methods import registry
from stochtp.units import base as unit_base

from conftest import REPO_ROOT

DOCS = REPO_ROOT / "docs"
SITE_PAGES = ["index.md", "getting-started.md", "concepts.md", "cli.md", "api.md", "results-format.md", "extending.md", "results.md", "performance.md", "architecture.md"]
README = "../README.md"  # a page like the site's, relative to docs/
PAGES = [README, *SITE_PAGES]
README_MAX_BYTES = 25 * 1024
FENCE = re.compile(r"^(?:<!-- (?P<mark>skip|mnist) -->\n)?```python\n(?P<code>.*?)^```$", re.MULTILINE | re.DOTALL)
# What the pages must not talk about: the project's development history and its machines' paths.
FORBIDDEN = re.compile(r"\bsessions?\b|\breviewers?\b|\b20\d\d-\d\d-\d\d\b|\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{7,40}\b|issue #\d+|\.\./shared|/work/|design §|design section", re.IGNORECASE)


def examples(page):
    """(mark, code) of every ```python block of `page`, in order; mark is None, "skip" or "mnist"."""
    return [(match["mark"], match["code"]) for match in FENCE.finditer((DOCS / page).read_text())]


def load_gen_cli():
    spec = importlib.util.spec_from_file_location("gen_cli", DOCS / "gen_cli.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def registries_restored(monkeypatch):
    """The examples register a method, a unit and a dataset of their own: gone again afterwards."""
    monkeypatch.setattr(registry, "_CLASSES", dict(registry._CLASSES))
    monkeypatch.setattr(unit_base, "_UNITS", dict(unit_base._UNITS))
    datasets = dict(data.DATASETS)  # stochtp.data.DATASETS is the registry's dict itself: restored in place
    yield
    data.DATASETS.clear()
    data.DATASETS.update(datasets)


def test_every_page_exists_and_is_in_the_nav():
    nav = (REPO_ROOT / "mkdocs.yml").read_text()
    for page in SITE_PAGES:
        assert (DOCS / page).is_file(), page
        assert f": {page}" in nav, f"{page} is not in mkdocs.yml's nav"


@pytest.mark.parametrize("page", PAGES)
def test_pages_talk_about_the_project_only(page):
    text = (DOCS / page).read_text()
    assert not FORBIDDEN.findall(text), f"{page} mentions {sorted(set(FORBIDDEN.findall(text)))}"


def run_examples(page, marks):
    """Run the page's ```python blocks that are unmarked or carry one of `marks`, in order, in one namespace."""
    namespace = {"__name__": f"docs_{page[:-3].replace('-', '_').replace('../', '')}"}
    for number, (mark, code) in enumerate(examples(page), 1):
        if mark is None or mark in marks:
            exec(compile(code, f"{page} example {number}", "exec"), namespace)


@pytest.mark.parametrize("page", [page for page in PAGES if (DOCS / page).is_file() and examples(page)])
def test_python_examples_run(page, tmp_path, monkeypatch, registries_restored):
    monkeypatch.chdir(tmp_path)
    run_examples(page, marks=())


@pytest.mark.mnist
@pytest.mark.slow
@pytest.mark.parametrize("page", [page for page in PAGES if (DOCS / page).is_file() and any(mark == "mnist" for mark, _ in examples(page))])
def test_mnist_examples_run(page, tmp_path, monkeypatch, registries_restored, mnist_dir):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STOCHTP_DATA", str(mnist_dir))
    run_examples(page, marks=("mnist",))


def test_readme_stays_a_front_page():
    size = len((DOCS / README).read_bytes())
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; keep it under {README_MAX_BYTES} and move detail into docs/"


def test_readme_shows_the_python_api():
    assert len(examples(README)) >= 2, "README.md should show the Python API in ```python blocks"


def test_the_skip_and_mnist_marks_are_found():
    """The convention the example runner relies on: a mark on the line before the fence."""
    text = "<!-- skip -->\n```python\nraise SystemExit\n```\n\n```python\nx = 1\n```\n"
    assert [(m["mark"], m["code"]) for m in FENCE.finditer(text)] == [("skip", "raise SystemExit\n"), (None, "x = 1\n")]


def test_cli_reference_lists_every_command_and_option():
    gen_cli = load_gen_cli()
    source = (DOCS / "cli.md").read_text()
    assert gen_cli.MARKER in source, "docs/cli.md lost the marker its reference is rendered at"
    page = source.replace(gen_cli.MARKER, gen_cli.reference())
    parser = cli.build_parser()
    prose = source.split(gen_cli.MARKER)[0]
    for name, subparser in gen_cli.commands(parser):
        assert f"stochtp {name}" in prose, f"docs/cli.md says nothing about `stochtp {name}` before its reference"
        for option in gen_cli.option_strings(subparser):
            assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", page), f"stochtp {name} {option} is missing from docs/cli.md"
    for option in gen_cli.option_strings(parser):
        assert option in page
