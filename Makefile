# All set-up goes through these targets: `make test` and `make demo` work on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CONSTRAINTS ?= $(if $(THROUGHPUT_CONSTRAINTS),$(THROUGHPUT_CONSTRAINTS),constraints.txt)
STAMP := $(VENV)/.installed

.PHONY: venv test demo bench bench-quick clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c $(CONSTRAINTS) -e '.[test,plots]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m mypy
	$(PY) -m pytest -q -p no:cacheprovider --runslow

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
.PHONY: bench-env
bench-env:
	$(PYTHON) -m venv $(BENCH_TRL_VENV)
	$(BENCH_TRL_VENV)/bin/python -m pip install -q -c $(CONSTRAINTS) -e '.[test,fast,hf]' trl
