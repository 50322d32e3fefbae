# The two commands of the README: `make run` and `make test`.
# Both create .venv and install what they need; a second run reuses it.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
DEBIAN_TEST_PACKAGES := $(shell grep -v '^\s*\#' scripts/debian-test-packages.txt)
DEBIAN_RUN_PACKAGES := kamailio kamailio-tls-modules
DEBIAN_BENCH_PACKAGES := $(shell grep -v '^\s*\#' scripts/debian-bench-packages.txt)

.PHONY: run test lint typecheck pytest bench debian-test-packages clean

run: $(RUN_STAMP)
	@# Kamailio is the SIP edge; without it (not root, no package) serve says what is missing.
	-@scripts/ensure-debian-packages $(DEBIAN_RUN_PACKAGES)
	@# Demo mode: the customer page may create its own contact without an API key.
	ASSISTLINE_HTTP_DEMO=$${ASSISTLINE_HTTP_DEMO:-true} $(BIN)/assistline serve

test: $(DEV_STAMP) debian-test-packages
	$(BIN)/ruff check assistline tests bench hatch_build.py
	$(BIN)/ruff format --check assistline tests bench hatch_build.py
	$(BIN)/mypy
	$(BIN)/pytest

lint: $(DEV_STAMP)
	$(BIN)/ruff check assistline tests bench hatch_build.py
	$(BIN)/ruff format --check assistline tests bench hatch_build.py

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

pytest: $(DEV_STAMP) debian-test-packages
	$(BIN)/pytest

bench: $(DEV_STAMP)
	scripts/ensure-debian-packages $(DEBIAN_BENCH_PACKAGES)
	@set -e; for script in bench/*.py; do \
	    case $$script in */_*) continue;; esac; \
	    echo "== $$script"; $(BIN)/python $$script; \
	done

debian-test-packages:
	scripts/ensure-debian-packages $(DEBIAN_TEST_PACKAGES)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml hatch_build.py $(wildcard assistline/*/*.c) | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(DEV_STAMP): pyproject.toml hatch_build.py $(wildcard assistline/*/*.c) | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(RUN_STAMP)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache build dist
