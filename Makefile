# Quick start: `make demo` (sets up .venv, runs the default DTP / ST / REINFORCE comparison on MNIST),
# `make test` (sets up .venv, runs the whole test suite).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
SHARED_MNIST := $(wildcard ../shared/data/mnist/train-images-idx3-ubyte.gz)
ifneq ($(SHARED_MNIST),)
export STOCHTP_DATA ?= $(abspath ../shared/data/mnist)
endif

.PHONY: setup demo test bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

setup: $(BIN)/.installed

demo: setup
	$(BIN)/stochtp run

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/stochtp bench

clean:
	rm -rf $(VENV) results
