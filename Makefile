# Two commands do everything on a fresh machine (no GPU needed, no network beyond PyPI):
#   make lab    prepare the environment and open the series in JupyterLab
#   make test   prepare the same environment and run every test (unit tests + nbval)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
NBVAL  := --nbval-lax --nbval-current-env --nbval-cell-timeout=300

.PHONY: setup lab lint test test-tiny-engine test-second-engine test-unit test-notebooks html figures bench clean

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

test-tiny-engine: setup
	$(PYTEST) tests notebooks $(NBVAL)

test-second-engine: setup $(SDSHAPED)/model_index.json
	SDLAB_ENGINE=$(SDSHAPED) $(PYTEST) notebooks $(NBVAL)

$(SDSHAPED)/model_index.json: sdlab/sdshaped.py sdlab/gpubench.py | setup
	HF_HUB_OFFLINE=1 $(PY) -m sdlab.sdshaped $(SDSHAPED)

# ruff (line length 119, as diffusers; pyproject.toml) over the package, tests, scripts and the notebooks' code.
lint: setup
	$(VENV)/bin/ruff check .

test-unit: setup
	$(PYTEST) tests

test-notebooks: setup
	$(PYTEST) notebooks $(NBVAL)

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
