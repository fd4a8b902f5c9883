# deskctl: `make demo` and `make test` do all the set-up on a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DESKCTL := $(VENV)/bin/deskctl
# Tests reach PostgreSQL here; each run creates (and drops) its own throwaway database.
export DESKCTL_TEST_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
DEMO_DB ?= $(CURDIR)/desk.db
DEMO_N ?= 3000
BENCH_N ?= 100000
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install install-test demo test lint cli-reference bench bench-pg stress clean

help: ## Show this help
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	@# An editable install is not byte-compiled; without this (and with
	@# PYTHONDONTWRITEBYTECODE set) every deskctl process recompiles its own modules.
	$(PY) -m compileall -q deskctl
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed ## Create .venv and install deskctl

install-test: $(VENV)/.installed-test ## Install deskctl and what the tests need

demo: install ## Build a sample SQLite desk (desk.db) and show it working
	rm -f $(DEMO_DB) $(DEMO_DB)-wal $(DEMO_DB)-shm
	$(DESKCTL) --db sqlite:///$(DEMO_DB) db upgrade
	$(DESKCTL) --db sqlite:///$(DEMO_DB) demo --conversations $(DEMO_N) --seed 42
	@echo; echo '$$ deskctl list --status new,open --limit 10'
	@DESKCTL_USER=admin $(DESKCTL) --db sqlite:///$(DEMO_DB) list --status new,open --sort -priority,created --limit 10 --format table
	@echo; echo '$$ deskctl transfer --from alice --to group:billing --limit 5 --message "Alice is on leave"'
	@DESKCTL_USER=admin $(DESKCTL) --db sqlite:///$(DEMO_DB) transfer --from alice --to group:billing --limit 5 --message "Alice is on leave" --format table
	@echo; echo '$$ deskctl report volume --by week'
	@DESKCTL_USER=admin $(DESKCTL) --db sqlite:///$(DEMO_DB) report volume --by week --since 30d --format table
	@echo; echo "Try it yourself: export DESKCTL_DATABASE_URL=sqlite:///$(DEMO_DB) DESKCTL_USER=admin; $(DESKCTL) --help"

# Bytecode is cached for the tests even where PYTHONDONTWRITEBYTECODE is set: else each
# pytest worker rewrites and compiles every test module, and each `deskctl` process the
# tests start recompiles whatever changed since the install (a merge, an edit).
test: lint ## Lint, then every test on SQLite and PostgreSQL
	$(PY) -m compileall -q deskctl
	PYTHONDONTWRITEBYTECODE= $(PY) -m pytest -n 2 $(PYTEST_ARGS)

lint: install-test ## ruff, import contracts, mypy on the lower layers, migrations match models, CLI reference up to date
	$(VENV)/bin/ruff check deskctl tests bench
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy
	$(PY) -m tests.check_migrations
	$(PY) -m deskctl.clidoc --check docs/cli-reference.md

cli-reference: install ## Regenerate docs/cli-reference.md from the commands' help
	$(PY) -m deskctl.clidoc > docs/cli-reference.md.tmp
	mv docs/cli-reference.md.tmp docs/cli-reference.md

bench: install-test ## Benchmarks on SQLite (BENCH_N conversations); figures and ratios
	$(PY) -m bench.run --engine sqlite --n $(BENCH_N)

bench-pg: install-test ## Benchmarks on PostgreSQL (DESKCTL_TEST_POSTGRES_URL)
	$(PY) -m bench.run --engine postgresql --n $(BENCH_N)

stress: install-test ## The concurrency and reliability suites at full size
	PYTHONDONTWRITEBYTECODE= DESKCTL_STRESS=1 $(PY) -m pytest -n 2 tests/concurrency tests/reliability $(PYTEST_ARGS)

clean: ## Remove the virtualenv, caches and the demo desk
	rm -rf $(VENV) .pytest_cache .ruff_cache $(DEMO_DB) $(DEMO_DB)-wal $(DEMO_DB)-shm
