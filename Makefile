# Quick start:  `make run` (set up, open the app)   `make test` (set up, run the tests)
PYTHON ?= python3
VENV   ?= .venv
# The CPU build of torch by default, so a laptop without a GPU does not download a multi-GB CUDA
# build. For a GPU: make run TORCH="torch==2.13.0 --index-url <PyTorch's CUDA wheel index>"
TORCH  ?= torch==2.13.0
BIN    := $(VENV)/bin

.PHONY: setup run test lint bench clean

$(BIN)/.genlab-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

setup: $(BIN)/.genlab-installed

run: setup
	$(BIN)/genlab

lint: setup
	$(BIN)/lint-imports

test: lint
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

bench: setup
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
