# Every target bootstraps .venv itself, so a fresh clone needs only Python >= 3.11 and pip.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# pytest-xdist workers: XLA runs single-threaded in each process (mdptheory/_xla.py), so one per core.
JOBS ?= 2
PEERS := mushroom-rl==1.10.2 rlberry-scool==0.7.3

.PHONY: verify verify-full test test-all bench figures venv clean

verify: $(STAMP)  ## every registered claim in quick mode: table + figures/quick/ (+ REPORT.md)
	$(BIN)/mdptheory verify --quick

verify-full: $(STAMP)  ## every claim at paper scale (slow)
	$(BIN)/mdptheory verify --full

test: $(STAMP)  ## the test suite (quick configurations; what CI runs)
	$(BIN)/python -m pytest -n $(JOBS) --dist load $(PYTEST_ARGS)

test-all: $(STAMP)  ## the test suite including the slow, paper-scale studies
	$(BIN)/python -m pytest -n $(JOBS) --dist load -m "slow or not slow" $(PYTEST_ARGS)

bench: $(STAMP)  ## speed against peers and baselines measured in the same run (see benchmarks/README.md)
	$(BIN)/python -m benchmarks

figures: verify

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test,ray,bench]"
	# The peer libraries of benchmarks/vi_peers.py. Their own pins (numpy < 2, gymnasium 0.29, torch) conflict
	# with this project's, and only their numpy dynamic-programming code is used, so they come without deps.
	$(BIN)/python -m pip install -q --no-deps $(PEERS)
	touch $(STAMP)

clean:
	rm -rf $(VENV) results .pytest_cache .hypothesis
