# The two commands a reader needs are `make book` and `make test`; both create .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Two install levels: the book's build tools only (make book), and everything (the rest).
BOOK_STAMP := $(VENV)/.book-installed
STAMP := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard book/*.ipynb))
# Notebooks are executed and tested on the CPU with one thread (vbtutor.setup for torch,
# the variables below for NumPy's and scikit-learn's BLAS), whatever the machine has, with
# progress bars off so stored outputs stay deterministic. One thread per process also
# lets make test run its two chains side by side on two cores.
ONE_THREAD := OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
NB_ENV := VBTUTOR_DEVICE=cpu VBTUTOR_PROGRESS=off $(ONE_THREAD)
# MathJax is served from the book itself, so the HTML renders with no network.
MATHJAX_VERSION := 3.2.2
MATHJAX := _vendor/mathjax/tex-mml-chtml.js

.PHONY: book test checks configs lint unit smoke nbval portability build-strict browser notebooks \
	bench-widgets lab clean
# Root installs Debian packages directly; anyone else through sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(BOOK_STAMP): requirements-book.txt | $(BIN)/python
	@echo "== Installing the book's build tools (requirements-book.txt) into $(VENV)"
	$(BIN)/python -m pip install --progress-bar on -r requirements-book.txt
	touch $@

$(STAMP): requirements.txt requirements-book.txt pyproject.toml $(BOOK_STAMP)
	@echo "== Installing the full stack (requirements.txt): torch, scientific Python,"
	@echo "== JupyterLab, test tools. The first time this downloads a few hundred MB."
	$(BIN)/python -m pip install --progress-bar on -r requirements.txt
	touch $@

$(MATHJAX):
	rm -rf _vendor/mathjax .mathjax && mkdir -p .mathjax _vendor/mathjax
	cd .mathjax && npm pack --silent mathjax@$(MATHJAX_VERSION) && tar xzf mathjax-*.tgz
	cd .mathjax/package/es5 && cp -r tex-mml-chtml.js input output a11y ui sre adaptors \
		$(CURDIR)/_vendor/mathjax/
	rm -rf .mathjax

# The HTML is built from the outputs stored in the notebooks: no kernel, no torch.
book: $(BOOK_STAMP) $(MATHJAX)
	$(BIN)/jupyter-book build . --quiet
	@echo "== The book is in _build/html/index.html"

# Two chains side by side, one per core, of about equal length: the checks on this CPU,
# and the other configurations (the full one for a few steps, then the strict nbval pass
# on a simulated other CPU, the longest single step).
test: $(STAMP)
	$(MAKE) -j2 --output-sync=line checks configs

# -j1: a sub-make inherits -j2, and these steps must run in this order (the browser
# test reads the book that build-strict writes).
checks: $(STAMP)
	$(MAKE) -j1 lint unit nbval build-strict browser

configs: $(STAMP)
	$(MAKE) -j1 smoke portability

lint: $(STAMP)
	$(BIN)/ruff check src tests tools book
	$(BIN)/ruff format --check src tests tools book

unit: $(STAMP)
	$(ONE_THREAD) $(BIN)/pytest -q tests src/vbtutor

# Every chapter's full configuration (VBTUTOR_FULL=1, meant for a GPU) for a few steps on
# the CPU, so that it cannot break unnoticed; claims about trained models are listed, not
# enforced (tools/smoke_full.py, which sets its environment; NB=slug for one chapter).
smoke: $(STAMP)
	$(NB_ENV) $(BIN)/python tools/smoke_full.py \
		$(if $(NB),$(foreach n,$(NB),book/$(n).ipynb),$(NOTEBOOKS))

nbval: $(STAMP)
	$(NB_ENV) $(BIN)/pytest -q -p no:cacheprovider -o addopts="" --nbval --nbval-current-env \
		--nbval-sanitize-with book/nbval_sanitize.cfg $(NOTEBOOKS)

# The same strict nbval on a simulated other CPU: torch without vector kernels, MKL and
# OpenBLAS limited to SSE4.2. Cells whose printed digits depend on the CPU's rounding are
# tagged nbval-ignore-output and assert the claims the prose makes (tests/test_book.py).
PORTABLE_CPU := ATEN_CPU_CAPABILITY=default MKL_ENABLE_INSTRUCTIONS=SSE4_2 \
	OPENBLAS_CORETYPE=Nehalem
portability: $(STAMP)
	$(PORTABLE_CPU) $(NB_ENV) $(BIN)/pytest -q -p no:cacheprovider -o addopts="" --nbval \
		--nbval-current-env --nbval-sanitize-with book/nbval_sanitize.cfg $(NOTEBOOKS)

build-strict: $(BOOK_STAMP) $(MATHJAX)
	rm -rf _build/html
	$(BIN)/jupyter-book build . -W -n --keep-going --quiet

# Opens every page of the built book in Debian's headless Chromium (never a downloaded one).
browser: $(STAMP)
	command -v chromium >/dev/null || $(SUDO) apt-get install -y -q chromium \
		|| { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium; }
	$(BIN)/pytest -q -p no:cacheprovider -o addopts="" tests/browser

notebooks: $(STAMP)
	$(NB_ENV) $(BIN)/python tools/execute_notebooks.py \
		$(if $(NB),$(foreach n,$(NB),book/$(n).ipynb),$(NOTEBOOKS))

# Time each chapter's explorer updates after running the chapter (book/explorers.json):
# a benchmark for authors, not part of make test.
bench-widgets: $(STAMP)
	$(NB_ENV) $(BIN)/python tools/bench_explorers.py \
		$(if $(NB),$(foreach n,$(NB),book/$(n).ipynb),$(NOTEBOOKS))

# Open the chapters in JupyterLab to run them and move their sliders.
lab: $(STAMP)
	$(BIN)/jupyter lab book/

clean:
	rm -rf _build _vendor/mathjax .pytest_cache .ruff_cache
	find . -name __pycache__ -not -path "./$(VENV)/*" -prune -exec rm -rf {} +
