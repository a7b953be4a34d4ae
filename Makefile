# All set-up goes through these targets: `make test` and `make demo` work on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CONSTRAINTS ?= $(if $(THROUGHPUT_CONSTRAINTS),$(THROUGHPUT_CONSTRAINTS),constraints.txt)
STAMP := $(VENV)/.installed
# Some machines set PYTHONDONTWRITEBYTECODE (this one does): then every fresh interpreter the tests and
# benchmarks start compiles throughput's ~175 modules again (0.3 s of each process's start-up here).
unexport PYTHONDONTWRITEBYTECODE

.PHONY: venv test demo bench bench-quick clean

$(STAMP): pyproject.toml setup.py constraints.txt throughput/capture/_fastphase.c throughput/capture/_bypass.c throughput/capture/_sigterm.c
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c $(CONSTRAINTS) -e '.[test,plots]'
	touch $(STAMP)

venv: $(STAMP)

# Two pytest workers (pytest-xdist), whole files per worker so module fixtures run once: on a 2-core
# machine the suite is mostly one busy core at a time, so this about halves its wall time.
# --no-loadscope-reorder keeps the order tests/conftest.py sets (files with slow tests first); xdist's
# own order (most tests first) left a one-test, one-minute file for the end, run while the other worker
# had nothing left.
TEST_WORKERS ?= 2
PYTEST_ARGS := -q -p no:cacheprovider --runslow -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

test: $(STAMP)
	$(PY) -m mypy
	$(PY) -m pytest $(PYTEST_ARGS)

# The suite 5 times in a row with a busy loop on one core (issue 12): each run's duration and load average,
# logged to reports/benchmarks/test_under_load.md. Exits non-zero if any run fails.
.PHONY: test-under-load
test-under-load: $(STAMP)
	$(PY) tests/run_under_load.py --runs 5 --log reports/benchmarks/test_under_load.md -- $(PYTEST_ARGS)

.PHONY: typecheck
typecheck: $(STAMP)
	$(PY) -m mypy

demo: $(STAMP)
	$(VENV)/bin/throughput demo

bench: $(STAMP)
	$(PY) -m benchmarks.run_all

bench-quick: $(STAMP)
	$(PY) -m benchmarks.run_all --quick

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

# A separate environment holding TRL for benchmarks/packing.py's comparison and for the drop-in tests
# (`benchmarks/.venv-trl/bin/python -m pytest -q -m hf tests/packing`). TRL is never a dependency of
# throughput; torch stays pinned through the constraints.
BENCH_TRL_VENV ?= benchmarks/.venv-trl
BENCH_TRL_STAMP := $(BENCH_TRL_VENV)/.installed
.PHONY: bench-env test-hf
$(BENCH_TRL_STAMP): pyproject.toml constraints.txt benchmarks/trl-requirements.txt
	$(PYTHON) -m venv $(BENCH_TRL_VENV)
	$(BENCH_TRL_VENV)/bin/python -m pip install -q -c $(CONSTRAINTS) -e '.[test,fast,hf]' -r benchmarks/trl-requirements.txt
	touch $(BENCH_TRL_STAMP)

bench-env: $(BENCH_TRL_STAMP)

# The packing drop-in against TRL's own pack_dataset (tests marked hf; skipped by `make test`, where
# `datasets` is not installed).
test-hf: $(BENCH_TRL_STAMP)
	$(BENCH_TRL_VENV)/bin/python -m pytest -q -p no:cacheprovider -m hf tests/packing

# The compatibility matrix (compat/, reports/benchmarks/compat.md): Lightning, transformers, Accelerate
# and safetensors in an environment of their own, never dependencies of throughput; torch stays pinned
# through the constraints, which compat.check_env verifies. Exits non-zero naming the rows that fail.
# COMPAT_ARGS passes options, e.g. COMPAT_ARGS="--rows fsdp2 --repeat 3".
COMPAT_VENV ?= compat/.venv
COMPAT_STAMP := $(COMPAT_VENV)/.installed
.PHONY: compat compat-env
$(COMPAT_STAMP): pyproject.toml constraints.txt compat/requirements.txt
	$(PYTHON) -m venv $(COMPAT_VENV)
	$(COMPAT_VENV)/bin/python -m pip install -q --upgrade pip
	$(COMPAT_VENV)/bin/python -m pip install -q -c $(CONSTRAINTS) -e . -r compat/requirements.txt
	$(COMPAT_VENV)/bin/python -m compat.check_env $(CONSTRAINTS)
	touch $(COMPAT_STAMP)

compat-env: $(COMPAT_STAMP)

compat: $(COMPAT_STAMP)
	$(COMPAT_VENV)/bin/python -m compat.run $(COMPAT_ARGS)
