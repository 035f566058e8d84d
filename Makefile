# Two commands set everything up on a fresh machine:
#   make demo   create .venv, install, run the pipeline on the embedded demo data into runs/demo
#   make test   create .venv, install, run the test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test demo lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(VENV)/bin/workbench demo --out runs/demo

lint: $(STAMP)
	$(VENV)/bin/ruff check workbench tests
	$(VENV)/bin/ruff format --check workbench tests

format: $(STAMP)
	$(VENV)/bin/ruff format workbench tests

bench: $(STAMP)
	$(VENV)/bin/workbench bench data --n 100000

clean:
	rm -rf runs .pytest_cache .ruff_cache
