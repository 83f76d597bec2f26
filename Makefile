# bbbprune — every target creates and uses the project virtual environment .venv
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SHELL := /bin/bash
JOBS ?= 2
SCALE ?= small
# JOBS: how many experiments train at once (each in its own process, one thread per job, so the
# numbers are the same for any JOBS); the sweep of one experiment runs its jobs one after another
# The default list: one experiment per published table, and our own tables. Searches
# (blundell_prior_grid, kefan_mlp_choice, kefan_lenet5_choice) run on their own.
EXPERIMENTS ?= blundell_table1 blundell_table2 vidlicka prasad molchanov_lenet molchanov_lenet5 \
  structured_lenet random_labels kefan_mlp kefan_lenet5 saha_simulated ssvi_mnist \
  calibration_mnist calibration_fmnist pretrained_to_pruned
# the longest first, so that the two lanes end together
LONGEST := molchanov_lenet5 prasad kefan_mlp pretrained_to_pruned blundell_table1
SCHEDULE = $(filter $(LONGEST),$(EXPERIMENTS)) $(filter-out $(LONGEST),$(EXPERIMENTS))
REPRODUCE_LOGS = $(or $(BBBPRUNE_RUNS),runs)/reproduce-$(SCALE)
THREADS := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
OVERRIDES ?=  # extra options for every train and table command, e.g. OVERRIDES=device=cpu

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

# the tests run in TEST_WORKERS processes of one thread each (a test file stays in one process)
TEST_WORKERS ?= 2
PYTEST = $(THREADS) $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

test: $(STAMP)  ## the test suite (quick: slow tests deselected)
	$(PYTEST)

test-all: $(STAMP)  ## every test, slow ones included
	$(PYTEST) -m ''

reproduce-tables:  ## venv, data, then train, prune and tabulate every experiment; results/README.md (resumable)
	@start=$$(date +%s); $(MAKE) --no-print-directory data || exit 1; \
	mkdir -p $(REPRODUCE_LOGS); rm -f $(REPRODUCE_LOGS)/times.tsv; \
	echo "== $(words $(EXPERIMENTS)) experiments, scale=$(SCALE), $(JOBS) at a time; logs in $(REPRODUCE_LOGS)/"; \
	$(MAKE) --no-print-directory -k -j$(JOBS) $(addprefix experiment-,$(SCHEDULE)); status=$$?; \
	total=$$(( $$(date +%s) - start )); printf 'total\t%s\n' $$total >> $(REPRODUCE_LOGS)/times.tsv; \
	$(BIN)/bbbprune overview scale=$(SCALE) overview.times=$(REPRODUCE_LOGS)/times.tsv \
	  'overview.experiments=[$(subst $(space),$(comma),$(strip $(EXPERIMENTS)))]' || status=1; \
	echo "== every table in $$((total / 60)) min $$((total % 60)) s (venv and data included)"; \
	sed 's/\t/: /; s/$$/ s/' $(REPRODUCE_LOGS)/times.tsv; exit $$status

space := $(subst ,, )
comma := ,
# blundell_table2 and vidlicka read blundell_table1's runs, structured_lenet molchanov_lenet's
# Sparse VD run: they start after those (when both are in the list)
experiment-blundell_table2 experiment-vidlicka: $(if $(filter blundell_table1,$(EXPERIMENTS)),experiment-blundell_table1)
experiment-structured_lenet: $(if $(filter molchanov_lenet,$(EXPERIMENTS)),experiment-molchanov_lenet)

experiment-%: $(STAMP)  ## (one experiment: its sweep, then its table; used by reproduce-tables)
	@s=$$(date +%s); echo "== $* started"; \
	$(THREADS) $(BIN)/bbbprune train -m experiment=$* scale=$(SCALE) train.resume=true $(OVERRIDES) 2>&1 \
	  | tee $(REPRODUCE_LOGS)/$*.log | sed -u 's/^/[$*] /'; status=$${PIPESTATUS[0]}; \
	$(BIN)/bbbprune table experiment=$* scale=$(SCALE) $(OVERRIDES) 2>&1 | sed 's/^/[$*] /'; \
	[ $${PIPESTATUS[0]} = 0 ] || status=1; \
	printf '%s\t%s\n' $* $$(( $$(date +%s) - s )) >> $(REPRODUCE_LOGS)/times.tsv; \
	echo "== $* done in $$(( $$(date +%s) - s )) s"; exit $$status

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
