# Two commands matter: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CACHE ?= $(HOME)/.cache/raresift

.PHONY: demo test test-fast lint data browser venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/raresift demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# System data sets of shared/DATA.md (Debian packages) and the weka Reuters files, unpacked
# into $(CACHE). Skips with a note where apt-get is unavailable or not root.
data:
	@if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
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

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache raresift-demo
