# bbbprune — every target creates and uses the project virtual environment .venv
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
JOBS ?= 1
SCALE ?= small
# JOBS>1: train each experiment's sweep with that many local worker processes (hydra joblib)
LAUNCHER = $(if $(filter-out 0 1,$(JOBS)),hydra/launcher=joblib hydra.launcher.n_jobs=$(JOBS))
EXPERIMENTS ?= blundell_table1 blundell_table2 vidlicka prasad blundell_prior_grid blundell_table2_seeds \
  molchanov_lenet molchanov_lenet5 structured_lenet random_labels kefan_mlp kefan_lenet5 kefan_lenet5_layered kefan_lenet5_long kefan_lenet5_full kefan_lenet5_full_long kefan_cifar \
  saha_simulated ssvi_mnist calibration_mnist calibration_fmnist

.PHONY: help venv data test test-all reproduce-tables tables lint benchmark benchmark-sweep clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/' | expand -t 20

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)  ## create .venv and install bbbprune (editable) with test tools

data: $(STAMP)  ## provision MNIST and Fashion-MNIST under data/
	$(BIN)/bbbprune data dataset=mnist
	$(BIN)/bbbprune data dataset=fmnist

test: $(STAMP)  ## the test suite (quick: slow tests deselected)
	$(BIN)/python -m pytest -q

test-all: $(STAMP)  ## every test, slow ones included
	$(BIN)/python -m pytest -q -m ''

reproduce-tables: data  ## train, prune and write every table under results/ (incremental, resumable)
	@status=0; for e in $(EXPERIMENTS); do \
	  echo "== $$e (scale=$(SCALE))"; \
	  $(BIN)/bbbprune train -m experiment=$$e scale=$(SCALE) train.resume=true $(LAUNCHER) || status=1; \
	  $(BIN)/bbbprune table experiment=$$e scale=$(SCALE) || exit 1; \
	done; exit $$status  # a failed job: the table lists it, the other jobs and tables still ran

tables: $(STAMP)  ## rewrite the tables from the records already on disk
	@for e in $(EXPERIMENTS); do $(BIN)/bbbprune table experiment=$$e scale=$(SCALE) || exit 1; done

PEERS := blitz-bayesian-pytorch==0.2.8 bayesian-torch==0.5.0

benchmark: $(STAMP)  ## trainer overhead, BBB step, LeNet-5 epoch, export -> results/benchmarks.txt
	$(BIN)/pip install --quiet --no-deps $(PEERS)
	$(BIN)/python scripts/benchmarks.py

benchmark-sweep: $(STAMP)  ## 4 jobs: joblib with 2 workers against serial (results/benchmarks_sweep.txt)
	$(BIN)/python scripts/bench_sweep.py

lint: $(STAMP)  ## ruff check and format check; the import layering (lint-imports)
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts
	$(BIN)/lint-imports

clean:  ## remove runs and caches (keeps data/ and results/)
	rm -rf runs multirun outputs .pytest_cache
