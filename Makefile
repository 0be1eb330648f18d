# Quick start: `make demo` (sets up .venv, runs the default DTP / ST / REINFORCE comparison on MNIST),
# `make test` (sets up .venv, runs the whole test suite and builds the documentation site with
# `mkdocs build --strict`), `make docs` (the site alone, into site/), `make test-fast` (the tests marked neither
# `slow` nor `mnist`, for the edit-test loop).
# Datasets are read from $STOCHTP_DATA when it is set, else from data/ (downloaded there on first use).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: setup demo test test-fast docs bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[test,docs]'
	touch $@

setup: $(BIN)/.installed

demo: setup
	$(BIN)/stochtp run

test: setup
	$(BIN)/python -m pytest -q
	$(BIN)/mkdocs build --strict --quiet

docs: setup
	$(BIN)/mkdocs build --strict

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow and not mnist"

bench: setup
	$(BIN)/stochtp bench

clean:
	rm -rf $(VENV) results site
