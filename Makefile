# Quick start:  `make run` (set up, open the app)   `make test` (set up, run the tests)
PYTHON ?= python3
VENV   ?= .venv
# torch: on Linux without an NVIDIA GPU the CPU build from PyTorch's CPU wheel index (the default
# index would serve a multi-GB CUDA build), falling back to the default index if it cannot be
# reached (packaging/install_torch.sh). To choose: make run TORCH="torch==2.13.0 --index-url <index>"
TORCH  ?=
BIN    := $(VENV)/bin

.PHONY: setup run test lint bench clean

$(BIN)/.genlab-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	bash packaging/install_torch.sh $(BIN)/pip $(TORCH)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

setup: $(BIN)/.genlab-installed

run: setup
	$(BIN)/genlab

lint: setup
	$(BIN)/lint-imports

# one worker per core (at most 4), each on one thread (tests/conftest.py); plain `pytest` runs them in one process
test: lint
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -n auto --maxprocesses 4 --dist worksteal

bench: setup
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
