# NeuroFuse: two commands on a fresh machine.
#   make demo   simulate the demo dataset and run the workflow on it
#   make test   run the test suite
# Both create the virtual environment .venv/ with the pinned dependencies first.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
UV     := $(BIN)/uv
UV_VERSION := 0.13.9
STAMP  := $(VENV)/.installed
DEMO   := data/demo
CORES  ?= 2

.PHONY: all demo test venv lint dag clean clean-demo

all: demo

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv==$(UV_VERSION)
	$(UV) pip sync --quiet --python $(BIN)/python --find-links /opt/wheels requirements.lock
	$(UV) pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $@

venv: $(STAMP)

$(DEMO)/dataset_description.json: | $(STAMP)
	$(BIN)/neurofuse simulate $(DEMO) --preset demo

demo: $(STAMP) $(DEMO)/dataset_description.json
	$(BIN)/snakemake --profile profiles/local --cores $(CORES)

test: $(STAMP)
	$(BIN)/pytest -n $(CORES) --dist loadgroup --durations=25

lint: $(STAMP)
	$(BIN)/snakemake --lint

dag: $(STAMP)
	$(BIN)/snakemake --dag > results/dag.dot && echo "DAG written to results/dag.dot"

clean:
	rm -rf results .snakemake

clean-demo: clean
	rm -rf $(DEMO)
