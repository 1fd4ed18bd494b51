# Two commands do everything on a fresh machine (no GPU needed, no network beyond PyPI):
#   make lab    prepare the environment and open the series in JupyterLab
#   make test   prepare the same environment and run every test (unit tests + nbval, then the book and the browser)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
NBVAL  := --nbval-lax --nbval-current-env --nbval-cell-timeout=300

.PHONY: setup lab lint test test-tiny-engine test-second-engine test-unit test-notebooks test-browser book html figures \
	bench clean

setup: $(VENV)/.installed

# torch==2.13.0 first: it is a CPU build found on local disk here; a bare `torch` requirement
# resolved by pip would fetch a multi-GB CUDA build instead.
$(VENV)/.installed: requirements.txt pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

lab: setup
	HF_HUB_OFFLINE=$${HF_HUB_OFFLINE:-0} $(VENV)/bin/jupyter lab notebooks/

# PYTHONWARNINGS reaches the notebooks' kernels too: a FutureWarning there fails the cell.
# The series runs twice: on the tiny engine (with the unit tests), and on a second engine that is not the tiny
# one (SD v1.5's classes and PNDM scheduler, 128 px, random weights; python -m sdlab.sdshaped), where no cell may
# assume the tiny engine's sizes or steps. `make test` runs the two passes side by side, one torch thread each:
# the tiny engine's small operators gain little from a second thread, and two one-thread processes do not spin
# against each other in OpenMP (two-thread ones would). On 2 cores that takes ~7 minutes instead of ~11 in a row.
SDSHAPED := $(CURDIR)/build/sd-shaped# absolute: the kernels run in notebooks/
THREADS ?= 2
PYTEST := HF_HUB_OFFLINE=1 PYTHONWARNINGS=error::FutureWarning OMP_NUM_THREADS=$(THREADS) $(PY) -m pytest -p no:cacheprovider
test: setup lint $(SDSHAPED)/model_index.json
	$(MAKE) -j2 --output-sync=target THREADS=1 test-tiny-engine test-second-engine
	$(MAKE) -j2 --output-sync=target THREADS=1 book
	$(MAKE) test-browser

# The browser tests (marker `browser`, tests/test_browser.py) run in test-browser only.
test-tiny-engine: setup
	$(PYTEST) tests notebooks $(NBVAL) -m "not browser"

test-second-engine: setup $(SDSHAPED)/model_index.json
	SDLAB_ENGINE=$(SDSHAPED) $(PYTEST) notebooks $(NBVAL)

$(SDSHAPED)/model_index.json: sdlab/sdshaped.py sdlab/gpubench.py | setup
	HF_HUB_OFFLINE=1 $(PY) -m sdlab.sdshaped $(SDSHAPED)

# ruff (line length 119, as diffusers; pyproject.toml) over the package, tests, scripts and the notebooks' code.
lint: setup
	$(VENV)/bin/ruff check .

test-unit: setup
	$(PYTEST) tests -m "not browser"

test-notebooks: setup
	$(PYTEST) notebooks $(NBVAL)

# The book: the series executed (book/execute.py: a fresh kernel per notebook, run in notebooks/, failing on any cell
# error, writing only to $(BOOK_SRC)), then book/* beside it and Sphinx (myst-nb, sphinx-book-theme; it executes
# nothing) into $(BOOK)/. A notebook is executed again only when it, the package or the environment changed;
# `make -j2 THREADS=1 book` executes two at a time. Open $(BOOK)/index.html. Built, never committed.
BOOK_NOTEBOOKS ?= notebooks
BOOK_SRC ?= build/book-src
BOOK ?= build/book
BOOK_PAGES := $(patsubst $(BOOK_NOTEBOOKS)/%,$(BOOK_SRC)/%,$(wildcard $(BOOK_NOTEBOOKS)/[0-9]*.ipynb))
SDLAB_FILES := $(shell find sdlab -type f ! -path '*/__pycache__/*')
book: $(BOOK)/index.html

$(BOOK_SRC)/%.ipynb: $(BOOK_NOTEBOOKS)/%.ipynb book/execute.py $(SDLAB_FILES) $(VENV)/.installed
	HF_HUB_OFFLINE=1 PYTHONWARNINGS=error::FutureWarning OMP_NUM_THREADS=$(THREADS) $(PY) book/execute.py $< $@

$(BOOK)/index.html: $(BOOK_PAGES) book/conf.py book/index.md $(wildcard book/_static/*) $(VENV)/.installed
	rm -rf $(BOOK) $(BOOK_SRC)/_static
	cp book/conf.py book/index.md $(BOOK_SRC)/ && cp -r book/_static $(BOOK_SRC)/
	for f in $(BOOK_SRC)/*.ipynb; do test -e "$(BOOK_NOTEBOOKS)/$${f##*/}" || rm -v "$$f"; done
	$(VENV)/bin/sphinx-build -b html -W --keep-going -q -d $(BOOK).doctrees $(BOOK_SRC) $(BOOK) \
		|| { rm -rf $(BOOK); exit 1; }
	@echo "The book: $(BOOK)/index.html"

# Headless Chromium (Debian's: apt-get install -y chromium, or SDLAB_CHROMIUM=/path) drives the series in JupyterLab
# and the built book: the explorers run, their dials move the pictures, everything fits a 1280x800 screen.
# Screenshots go to build/screenshots/. SDLAB_BROWSER_NOTEBOOKS=all (or a comma list) widens the JupyterLab test.
test-browser: book
	SDLAB_REQUIRE_BOOK=1 SDLAB_BOOK_DIR=$(abspath $(BOOK)) SDLAB_BROWSER_DIR=$(abspath $(BOOK_NOTEBOOKS)) \
		$(PYTEST) -m browser tests/test_browser.py

# The executed series as HTML, for reading without a kernel (built, not committed).
html: setup
	mkdir -p build/html
	HF_HUB_OFFLINE=1 $(VENV)/bin/jupyter nbconvert --to html --execute --output-dir build/html notebooks/*.ipynb

figures: setup
	$(PY) -m sdlab.shapes
	$(PY) scripts/make_figures.py

bench: setup
	$(PY) -m sdlab.bench

clean:
	rm -rf build .pytest_cache
