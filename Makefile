# The two commands a new user needs: `make demo` and `make test`.
# Both build .venv from the pinned requirements first (once; again when they change).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slurm lint bench bench-psf bench-psf-scaling bench-artificial bench-cosmic-rays bench-pulls bench-varying-psf bench-isolated clean

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

# PSF photometry against its anchors (issue 11): photutils 3.1.1 and crowdsource in .venv-bench, on
# Python >= 3.12 (the first of python3.12, python3.13 or a pyenv 3.12+ that runs; or BENCH_PYTHON=...).
# Arguments through BENCH_ARGS, e.g. make bench-psf BENCH_ARGS=--quick
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed
BENCH_PYTHON ?= $(firstword $(foreach p,python3.12 python3.13 $(wildcard $(HOME)/.pyenv/versions/3.1[2-9]*/bin/python3),\
	$(if $(shell $(p) -c 'import sys; print(sys.version_info >= (3, 12))' 2>/dev/null | grep True),$(p))))

$(BENCH_STAMP): bench/requirements-anchors.txt
	@test -n "$(BENCH_PYTHON)" || { echo "bench-psf needs Python >= 3.12: set BENCH_PYTHON=/path/to/python3.12"; exit 1; }
	test -x $(BENCH_VENV)/bin/python || $(BENCH_PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -r bench/requirements-anchors.txt
	sed -n 's/^# --no-deps: //p' bench/requirements-anchors.txt | xargs $(BENCH_VENV)/bin/python -m pip install --quiet --no-deps
	touch $(BENCH_STAMP)

bench-psf: $(STAMP) $(BENCH_STAMP)
	$(BIN)/python bench/psf_vs_anchors.py $(BENCH_ARGS)

# The PSF path's CPU time and memory against the frame's pixels and stars (issue 11; ~3 min)
bench-psf-scaling: $(STAMP)
	$(BIN)/python bench/psf_scaling.py $(BENCH_ARGS)

# Artificial-star passes against crowdsource re-run with the artificial stars (issue 12; ~6 min)
bench-artificial: $(STAMP) $(BENCH_STAMP)
	$(BIN)/python bench/artificial_stars_speed.py $(BENCH_ARGS)

# Finding a single exposure's cosmic rays, against astroscrappy called whole (issue 13; ~3 min)
bench-cosmic-rays: $(STAMP)
	$(BIN)/python bench/cosmic_rays_speed.py $(BENCH_ARGS)

# What the PSF path's errors mean in a crowded core: pulls against the truth, with the unseen
# neighbours' light counted, and between two exposures (issue 11; about a minute)
bench-pulls: $(STAMP)
	$(BIN)/python bench/crowded_pulls.py $(BENCH_ARGS)

# A PSF that changes across the frame against one PSF per tile (issue 11; about 10 s)
bench-varying-psf: $(STAMP)
	$(BIN)/python bench/varying_psf.py $(BENCH_ARGS)

# Isolated bright stars against their photon-noise limit on 27 sparse frames (issue 11; ~1 min)
bench-isolated: $(STAMP)
	$(BIN)/python bench/isolated_stars.py $(BENCH_ARGS)

clean:
	rm -rf results .snakemake logs benchmarks
