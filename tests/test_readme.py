"""README.md stays a front page: every ```python block in it runs as written, and the file stays
under 25 KB. As on the docs pages, an HTML comment `<!-- mnist -->` on the line before a fence
marks a block that needs the official MNIST files: it runs, marked `mnist`, where they are found."""
import re

import pytest
from conftest import REPO_ROOT

README = REPO_ROOT / "README.md"
FENCE = re.compile(r"^(?:<!-- (?P<mark>mnist) -->\n)?```python\n(?P<code>.*?)^```$", re.MULTILINE | re.DOTALL)
MAX_BYTES = 25 * 1024


def examples():
    """A pytest param (code, line, needs MNIST) for each ```python block, in order."""
    text = README.read_text(encoding="utf-8")
    params = []
    for index, match in enumerate(FENCE.finditer(text)):
        line = text.count("\n", 0, match.start("code"))
        needs_mnist = match["mark"] == "mnist"
        marks = [pytest.mark.mnist, pytest.mark.slow] if needs_mnist else []
        params.append(pytest.param(match["code"], line, needs_mnist, id=f"block{index}-line{line}", marks=marks))
    return params


def test_readme_has_python_examples():
    assert len(examples()) >= 2, "README.md should show the Python API in ```python blocks"


@pytest.mark.parametrize("code, line, needs_mnist", examples())
def test_readme_example_runs(code, line, needs_mnist, request, tmp_path, monkeypatch):
    """The block runs in a fresh namespace, in an empty working folder (it may write files there)."""
    if needs_mnist:
        request.getfixturevalue("mnist_dir")  # skips where the official MNIST files are absent
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"README.md, block after line {line}", "exec"), {"__name__": "readme_example"})


def test_readme_stays_a_front_page():
    size = len(README.read_bytes())
    assert size <= MAX_BYTES, f"README.md is {size} bytes; keep it under {MAX_BYTES} and move detail into docs/"
