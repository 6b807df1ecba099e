# The two commands a reader needs are `make book` and `make test`; both create .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard book/*.ipynb))
# Notebooks are tested single-threaded-deterministic on CPU, whatever the machine has.
NB_ENV := VBTUTOR_DEVICE=cpu VBTUTOR_PROGRESS=off
# MathJax is served from the book itself, so the HTML renders with no network.
MATHJAX_VERSION := 3.2.2
MATHJAX := _vendor/mathjax/tex-mml-chtml.js

.PHONY: book test lint unit nbval build-strict browser notebooks clean
# Root installs Debian packages directly; anyone else through sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $(STAMP)

$(MATHJAX):
	rm -rf _vendor/mathjax .mathjax && mkdir -p .mathjax _vendor/mathjax
	cd .mathjax && npm pack --silent mathjax@$(MATHJAX_VERSION) && tar xzf mathjax-*.tgz
	cd .mathjax/package/es5 && cp -r tex-mml-chtml.js input output a11y ui sre adaptors \
		$(CURDIR)/_vendor/mathjax/
	rm -rf .mathjax

book: $(STAMP) $(MATHJAX)
	$(BIN)/jupyter-book build . --quiet

test: $(STAMP)
	$(MAKE) lint unit nbval build-strict browser

lint: $(STAMP)
	$(BIN)/ruff check src tests tools book
	$(BIN)/ruff format --check src tests tools book

unit: $(STAMP)
	$(BIN)/pytest -q tests src/vbtutor

nbval: $(STAMP)
	$(NB_ENV) $(BIN)/pytest -q -p no:cacheprovider -o addopts="" --nbval --nbval-current-env \
		--nbval-sanitize-with book/nbval_sanitize.cfg $(NOTEBOOKS)

build-strict: $(STAMP) $(MATHJAX)
	rm -rf _build/html
	$(BIN)/jupyter-book build . -W -n --keep-going --quiet

# Opens every page of the built book in Debian's headless Chromium (never a downloaded one).
browser: $(STAMP)
	command -v chromium >/dev/null || $(SUDO) apt-get install -y -q chromium \
		|| { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium; }
	$(BIN)/pytest -q -p no:cacheprovider -o addopts="" tests/browser

notebooks: $(STAMP)
	$(NB_ENV) $(BIN)/python tools/execute_notebooks.py $(if $(NB),book/$(NB).ipynb,$(NOTEBOOKS))

clean:
	rm -rf _build _vendor/mathjax .pytest_cache .ruff_cache
	find . -name __pycache__ -not -path "./$(VENV)/*" -prune -exec rm -rf {} +
