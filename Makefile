# ssl4sar — one entry point for users and CI.
#   make test   unit, reference-equivalence and notebook smoke tests
#   make test-wheel  the built wheel in a fresh venv: `ssl4sar data list` + chapter 1 (about 7 min)
#   make book   execute every notebook (demo preset) and build the HTML book
#   make lint   ruff
#   make format / format-check   ruff format (apply / check; line width from pyproject.toml)
#   make bench  quick throughput / memory benchmark of this machine
#   make sync   regenerate copies: package manifest, chapter setup cells, notebooks/*.ipynb, Colab links
# The virtual environment .venv is (re)built from requirements/lock.txt when it is missing or older
# than the lock file or pyproject.toml.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PRESET ?= demo
DATA   ?=
SSL4SAR_DATA_DIR ?=
JOBS   ?= 1

export HF_HUB_OFFLINE := 1
export MPLBACKEND := Agg
export PYTHONHASHSEED := 0

.PHONY: help env test test-fast test-wheel lint format format-check book book-check bench sync clean

help:
	@sed -n '2,11p' Makefile

$(STAMP): requirements/lock.txt pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "ssl4sar needs Python >= 3.11, found " + sys.version'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=23.2"
	$(BIN)/python -m pip install --quiet -r requirements/lock.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

env: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -m "not wheel"

# Installs the wheel with PyTorch and Jupyter Book into a temporary venv: too slow for `make test`; .ci/run runs it.
test-wheel: $(STAMP)
	$(BIN)/python -m pytest -m wheel tests/test_wheel_install.py

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not notebooks"

lint: $(STAMP)
	$(BIN)/ruff check ssl4sar tests notebooks tools

FORMATTED := ssl4sar tests notebooks tools

format: $(STAMP)
	$(BIN)/ruff format $(FORMATTED)

format-check: $(STAMP)
	$(BIN)/ruff format --check $(FORMATTED)

book: $(STAMP)
	$(BIN)/python tools/book.py build --preset $(PRESET) $(if $(DATA),--caffe $(DATA)) $(if $(SSL4SAR_DATA_DIR),--ssl4sar $(SSL4SAR_DATA_DIR))

book-check: $(STAMP)
	$(BIN)/python tools/book.py check

bench: $(STAMP)
	$(BIN)/python -m ssl4sar.bench --quick --out bench_results

sync: $(STAMP)
	$(BIN)/python tools/sync.py

clean:
	rm -rf book/_build book/chapters/*.ipynb .pytest_cache
