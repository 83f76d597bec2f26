# bbbprune — every target creates and uses the project virtual environment .venv
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
JOBS ?= 1
SCALE ?= small
EXPERIMENTS ?= blundell_table1 blundell_table2 vidlicka prasad molchanov_lenet

.PHONY: help venv data test test-all reproduce-tables tables lint benchmark clean

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
	@for e in $(EXPERIMENTS); do \
	  echo "== $$e (scale=$(SCALE))"; \
	  $(BIN)/bbbprune train -m experiment=$$e scale=$(SCALE) train.resume=true || exit 1; \
	  $(BIN)/bbbprune table experiment=$$e scale=$(SCALE) || exit 1; \
	done

tables: $(STAMP)  ## rewrite the tables from the records already on disk
	@for e in $(EXPERIMENTS); do $(BIN)/bbbprune table experiment=$$e scale=$(SCALE) || exit 1; done

benchmark: $(STAMP)  ## trainer-overhead and BBB step-cost benchmarks
	$(BIN)/python scripts/bench_trainer_overhead.py
	$(BIN)/python scripts/bench_bbb_step.py

lint: $(STAMP)  ## ruff check and format check
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts

clean:  ## remove runs and caches (keeps data/ and results/)
	rm -rf runs multirun outputs .pytest_cache
