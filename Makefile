# hq-sweep: `make demo` runs a real sweep, `make test` runs the test suite.
# Both install into a local virtual environment first (no root, no system Redis needed).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/hq-sweep run examples/digits.yaml --workers 2

# Two test processes: most integration tests wait on real processes, not the CPU. The Slurm
# tests share one cluster, so they run in turn in one of them (xdist_group "slurm").
test: $(STAMP)
	$(BIN)/pytest -q -n 2 --dist loadgroup

lint: $(STAMP)
	$(BIN)/ruff check hq_sweep workers scripts tests
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python scripts/bench_noop.py --trials 20000
	$(BIN)/python scripts/bench_reports.py
	$(BIN)/python scripts/bench_amortization.py
	$(BIN)/python scripts/bench_pruning.py
	$(BIN)/python scripts/bench_define_by_run.py
	$(BIN)/python scripts/bench_define_by_run_quality.py
	$(BIN)/python scripts/bench_results_scale.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
