# One-command entry points: `make demo` and `make test` (see README).
SHELL := /bin/bash
PYTHON ?= python3
# JupyterHub line to run against: 6 (default) or 5 (the pair z2jh chart 4.4.x ships:
# jupyterhub 5.5.0 + kubespawner 7.0.0, docs/kubernetes.md).
JUPYTERHUB_LINE ?= 6
ifeq ($(JUPYTERHUB_LINE),5)
VENV ?= .venv-hub5
PINS := "jupyterhub==5.5.0" "jupyterhub-kubespawner==7.0.0"
else
VENV ?= .venv
PINS := "jupyterhub>=6.1,<7"
endif
BIN := $(VENV)/bin
SOURCES := setup.cfg pyproject.toml Makefile
PYTEST_ARGS ?=

.PHONY: demo test setup setup-test proxy chromium docker-env lint bench clean

demo: setup proxy
	$(BIN)/jupyterhub -f config/local/jupyterhub_config.py

test: setup-test proxy chromium docker-env
	$(BIN)/python -m pytest $(PYTEST_ARGS)

setup: $(VENV)/.civis-installed

$(VENV)/.civis-installed: $(SOURCES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(PINS) jupyterlab ipykernel -e .
	touch $@

setup-test: setup $(VENV)/.civis-test-installed

$(VENV)/.civis-test-installed: $(SOURCES)
	$(BIN)/python -m pip install -q $(PINS) -e ".[test]"
	touch $@

proxy: node_modules/.bin/configurable-http-proxy

node_modules/.bin/configurable-http-proxy: package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

# Debian's Chromium for the browser tests (Playwright drives it; it never downloads a browser).
chromium:
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# A local Docker engine (vfs), a registry on 127.0.0.1:5000 and the notebook base image
# for the Docker backend and tests/docker (.ci/docker-env; idempotent, seconds when cached).
docker-env: setup
	PATH="$(abspath $(BIN)):$$PATH" .ci/docker-env

lint: setup-test
	$(BIN)/ruff check .

bench: setup-test proxy docker-env
	$(BIN)/python bench/spawn.py
	$(BIN)/python bench/query_cache.py

clean:
	rm -rf .demo build dist *.egg-info
