# Two commands do everything on a fresh machine (no GPU needed, no network beyond PyPI):
#   make lab    prepare the environment and open the series in JupyterLab
#   make test   prepare the same environment and run every test (unit tests + nbval)
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
NBVAL  := --nbval-lax --nbval-current-env --nbval-cell-timeout=300

.PHONY: setup lab lint test test-second-engine test-unit test-notebooks html figures bench clean

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
# Then the series again on a second engine that is not the tiny one (SD v1.5's classes and PNDM scheduler,
# 128 px, random weights; python -m sdlab.sdshaped): no cell may assume the tiny engine's sizes or steps.
SDSHAPED := $(CURDIR)/build/sd-shaped   # absolute: the kernels run in notebooks/
test: setup lint
	HF_HUB_OFFLINE=1 PYTHONWARNINGS=error::FutureWarning $(PY) -m pytest tests notebooks $(NBVAL) -p no:cacheprovider
	$(MAKE) test-second-engine

test-second-engine: setup
	HF_HUB_OFFLINE=1 $(PY) -m sdlab.sdshaped $(SDSHAPED)
	SDLAB_ENGINE=$(SDSHAPED) HF_HUB_OFFLINE=1 PYTHONWARNINGS=error::FutureWarning $(PY) -m pytest notebooks $(NBVAL) -p no:cacheprovider

# ruff (line length 119, as diffusers; pyproject.toml) over the package, tests, scripts and the notebooks' code.
lint: setup
	$(VENV)/bin/ruff check .

test-unit: setup
	HF_HUB_OFFLINE=1 $(PY) -m pytest tests -p no:cacheprovider

test-notebooks: setup
	HF_HUB_OFFLINE=1 PYTHONWARNINGS=error::FutureWarning $(PY) -m pytest notebooks $(NBVAL) -p no:cacheprovider

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
