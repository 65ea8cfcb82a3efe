# Two commands: `make demo` (set up a fresh machine, run the main job) and `make test` (set up, run all tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint bench clean

$(BIN)/cxrlab: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/cxrlab

setup: $(BIN)/cxrlab

demo: setup
	$(BIN)/cxrlab demo --out runs/demo

# Fast tests plus the slow end-to-end ones (the demo among them), exactly what CI runs.
test: setup
	$(BIN)/python -m pytest -m "" -q

lint: setup
	$(BIN)/ruff check src tests benchmarks

bench: setup
	for f in benchmarks/bench_*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
