# Two commands do everything (README): `make book` and `make test`. Both are incremental: stamps
# record what is installed, so a second run only redoes what changed.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BACKGROUND := .cache/background/austen/.complete
WIDGET_JS := book/_vendor/.complete
CHROMIUM := .cache/.chromium
# Training chapter budget: `ci` (minutes, used by CI and nbval) or `full` (the shipped model's run).
BUDGET ?= ci
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
CI_BOOK := .cache/book-ci

.PHONY: help setup test unit book html reproduce clean

help:
	@echo "make book   set up .venv, execute every chapter, build book/_build/html/index.html"
	@echo "make test   set up .venv, run unit/integration tests, execute the book (papermill), compare it with the committed outputs, browser check"
	@echo "make setup  only the environment: .venv, background prose, widget JS, chromium"
	@echo "make unit   the fast tests only (under a minute; make test runs them all)"
	@echo "make reproduce  the committed results again (README's commands, then make book BUDGET=full), timed"

setup: $(STAMP) $(BACKGROUND) $(WIDGET_JS)

$(STAMP): requirements.txt pyproject.toml
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

$(BACKGROUND): scripts/fetch_background.sh | $(STAMP)
	bash scripts/fetch_background.sh $(PY)

$(WIDGET_JS): scripts/vendor_widget_js.sh
	bash scripts/vendor_widget_js.sh

$(CHROMIUM):
	command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends chromium; }
	mkdir -p $(@D) && touch $@

# Tests run in two workers with one torch thread each: the two cores, never oversubscribed (a third thread
# beside two busy ones stalls them all). Most of the time goes to the real CLI in subprocesses.
PYTEST := RMT_NUM_THREADS=1 $(PY) -m pytest -q -n 2 -p no:cacheprovider

# The fast layer (under a minute): everything but the tests marked slow (subprocesses of the real CLI,
# training, DDP, SIGKILL-resume, benchmarks), which `make test` runs with the rest.
unit: setup
	$(PYTEST) tests --ignore=tests/browser --ignore=tests/book_outputs -m "not slow"

# Each chapter is executed once (papermill, into $(CI_BOOK)); tests/book_outputs then holds that execution to
# the committed outputs by nbval's rules (what `pytest --nbval book/` checks, without executing it all again),
# and tests/browser drives the HTML built from it. The committed chapters carry the ci budget's outputs.
test: setup $(CHROMIUM)
	$(PYTEST) tests --ignore=tests/browser --ignore=tests/book_outputs
	$(PY) scripts/run_book.py --budget $(BUDGET) --output $(CI_BOOK)
	if [ "$(BUDGET)" = ci ]; then RMT_BOOK_EXECUTED=$(CI_BOOK) $(PY) -m pytest -q tests/book_outputs -p no:cacheprovider; \
	else echo "BUDGET=$(BUDGET): the committed outputs are the ci budget's; not compared"; fi
	RMT_BOOK_HTML=$(CI_BOOK)/_build/html $(PY) -m pytest -q tests/browser

book: setup
	$(PY) scripts/run_book.py --budget $(BUDGET) --output book
	@echo "Book built: $(abspath book/_build/html/index.html)"

html: setup
	$(VENV)/bin/jupyter-book build -W -n --keep-going --builder html book/
	@echo "Book built: $(abspath book/_build/html/index.html)"

# The README's training and evaluation commands, then `make book BUDGET=full`, each timed
# (scripts/reproduce.py): it rewrites data/model, data/baseline, data/results and, in place with the full
# budgets' outputs, book/ (`make book` puts the ci outputs that `make test` compares with back).
reproduce: setup
	$(PY) scripts/reproduce.py --output data/results/reproduction.json

clean:
	rm -rf book/_build $(CI_BOOK)
