# Every target bootstraps .venv from nothing but Python 3.11 and the package registries.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
GEN := generated/binance-userstream-client
STAMP := $(VENV)/.installed

.PHONY: install generate check test test-latest demo docs bench peers clean

install: $(STAMP)

$(STAMP): requirements/dev.txt requirements/docs.txt pyproject.toml $(GEN)/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -r requirements/dev.txt -r requirements/docs.txt
	$(BIN)/python -m pip install --quiet -e ./$(GEN) -e .
	touch $(STAMP)

generate: $(STAMP)
	$(BIN)/python scripts/generate.py

check: $(STAMP)
	$(BIN)/openapi-spec-validator spec/userdatastream.yaml
	$(BIN)/python scripts/generate.py --check
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts
	$(BIN)/ruff check --config $(GEN)/pyproject.toml $(GEN)
	$(BIN)/mypy --strict src $(GEN)/binance_userstream_client

# Two pytest-xdist workers, one per core of the 2-core machines the suite is kept fast on (5 1/2 minutes
# of pytest where one process took 9): the suite's tests share no state but what each starts itself.
test: check
	$(BIN)/python -m pytest -n 2

# The suite against the newest release of every dependency the package's bounds allow (what a
# user's fresh `pip install` gets), in its own venv built anew each time: the tools and test
# libraries stay pinned by requirements/dev.txt, then the package's dependencies are upgraded eagerly.
# `make test` keeps the pinned versions alone. PYTEST_ARGS="-x -q" narrows the run. pip may report
# that a pinned tool (openapi-python-client) wants an older release: the package does not use it.
LATEST := .venv-latest
test-latest:
	rm -rf $(LATEST)
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install --quiet --upgrade "pip>=24"
	$(LATEST)/bin/python -m pip install --quiet -r requirements/dev.txt -r requirements/docs.txt
	$(LATEST)/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager -e ./$(GEN) -e .
	$(LATEST)/bin/python scripts/dependency_versions.py
	$(LATEST)/bin/python -m pytest $(PYTEST_ARGS)

# The documentation site (mkdocs.yml) into site/, strictly: a broken link, a missing reference or a
# docstring mkdocstrings cannot render fails it. `make test` builds it too (tests/test_docs_site.py).
# The reference pages under docs/reference/ (but api.md) are written by `make generate`.
docs: $(STAMP)
	$(BIN)/mkdocs build --strict --site-dir site

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

# The benchmark's own venv: python-binance, Binance's SDK and the servers stay out of the project's
# environment. `make bench BENCH_ARGS="--only stream"` (or rest, account, fleet) runs one part.
BENCH := .venv-bench
$(BENCH)/.installed: requirements/bench.txt pyproject.toml $(GEN)/pyproject.toml
	test -x $(BENCH)/bin/python || $(PYTHON) -m venv $(BENCH)
	$(BENCH)/bin/python -m pip install --quiet --upgrade "pip>=24"
	$(BENCH)/bin/python -m pip install --quiet -r requirements/bench.txt
	$(BENCH)/bin/python -m pip install --quiet ./$(GEN) .
	touch $@

bench: peers
	$(BENCH)/bin/python scripts/bench.py $(BENCH_ARGS)

# Clients nobody here wrote, against the simulator, unchanged but for their URLs: python-binance
# 1.0.37 (AsyncClient.create() and every user socket), ccxt 4.5.90's three Binance exchanges,
# Binance's spot, USD-M and COIN-M SDKs, and a client written from Binance's docs alone.
peers: $(BENCH)/.installed
	$(BENCH)/bin/python -m pip install --quiet --no-deps --force-reinstall ./$(GEN) .
	$(BENCH)/bin/python scripts/check_python_binance.py
	$(BENCH)/bin/python scripts/check_ccxt.py
	$(BENCH)/bin/python scripts/check_binance_sdks.py
	$(BENCH)/bin/python scripts/check_docs_only.py

clean:
	rm -rf $(VENV) $(BENCH) $(LATEST) site .pytest_cache .mypy_cache .ruff_cache
