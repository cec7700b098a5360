# The two commands a new user needs: `make demo` and `make test`.
# Both build .venv from the pinned requirements first (once; again when they change).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slurm lint bench clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/snakemake --cores all

test: $(STAMP)
	$(BIN)/python -m pytest

# The workflow on a real single-node Slurm cluster (needs root: installs Slurm from Debian's
# packages if missing, starts and stops its daemons; about 2 minutes). See docs/slurm.md.
test-slurm: $(STAMP)
	bash tests/slurm/run_slurm_test.sh

lint: $(STAMP)
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile workflow/rules

bench: $(STAMP)
	$(BIN)/python bench/photometry_vs_tutorial.py
	$(BIN)/python bench/composite_vs_tutorial.py

clean:
	rm -rf results .snakemake logs benchmarks
