# Two commands: `make demo` (set up a fresh machine, run the main job) and `make test` (set up, run all tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Exact torch/torchvision builds this project's machines install from local disk; the package declares ranges.
CONSTRAINTS := -c constraints.txt

.PHONY: setup demo test wheel-check lint bench clean

$(BIN)/cxrlab: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(CONSTRAINTS) -e '.[dev]'
	touch $(BIN)/cxrlab

setup: $(BIN)/cxrlab

demo: setup
	$(BIN)/cxrlab demo --out runs/demo

# Fast tests plus the slow end-to-end ones (the demo and the import-layer contracts among them): what CI runs.
test: setup
	$(BIN)/python -m pytest -m "" -q

# Build the sdist and wheel, install the wheel into a fresh venv that already holds torch, run it from outside
# the clone (CI runs this before `make test`).
wheel-check: setup
	bash .ci/wheel-check

lint: setup
	$(BIN)/ruff check src tests benchmarks

# Every benchmark in full, each writing benchmarks/results/<name>.json (the files the docs' figures cite);
# bench_gpu says it was skipped on a machine without CUDA. The OOD and serve-load benchmarks measure a trained
# run: `make bench RUN=runs/NAME` (skipped without one). `make bench QUICK=1`: every --quick mode (seconds each,
# results/quick/, what tests/packaging/test_benchmarks.py runs).
bench: setup
	for f in benchmarks/bench_*.py; do \
	  case $$f in \
	    *bench_ood.py|*bench_serve_load.py) \
	      if [ -z "$(RUN)" ]; then echo "skip $$f: needs a trained run (make bench RUN=runs/NAME)"; continue; fi; \
	      $(BIN)/python $$f $(RUN) $(if $(QUICK),--quick) || exit 1;; \
	    *) $(BIN)/python $$f $(if $(QUICK),--quick) || exit 1;; \
	  esac; \
	done

clean:
	rm -rf $(VENV) build dist *.egg-info src/*.egg-info
