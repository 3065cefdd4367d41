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

.PHONY: demo test setup setup-test proxy chromium labextension docker-env lint bench clean

demo: setup proxy labextension
	$(BIN)/jupyterhub -f config/local/jupyterhub_config.py

test: setup-test proxy chromium labextension docker-env
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

# The JupyterLab "Share…" extension (jupyterhub_civis/labextension): TypeScript from the
# npm registry, its node tests, then a prebuilt extension against the installed
# JupyterLab's shared packages; linked into the venv (the wheel ships it as data files).
LABEXT := jupyterhub_civis/labextension
LABEXT_OUT := jupyterhub_civis/labextension-build/jupyterhub-civis-share
LABEXT_LINK := $(VENV)/share/jupyter/labextensions/jupyterhub-civis-share
labextension: $(LABEXT_LINK)

$(LABEXT_OUT)/package.json: $(LABEXT)/package.json $(LABEXT)/tsconfig.json $(wildcard $(LABEXT)/src/*.ts $(LABEXT)/test/*.js) | setup
	cd $(LABEXT) && npm ci --no-audit --no-fund --loglevel=error && npm test
	cd $(LABEXT) && node_modules/.bin/build-labextension --core-path \
	  "$$($(CURDIR)/$(BIN)/python -c 'import jupyterlab, os; print(os.path.join(os.path.dirname(jupyterlab.__file__), "staging"))')" .

$(LABEXT_LINK): $(LABEXT_OUT)/package.json
	mkdir -p $(dir $@)
	ln -sfn $(CURDIR)/$(LABEXT_OUT) $@

# Debian's Chromium for the browser tests (Playwright drives it; it never downloads a browser).
chromium:
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# A local Docker engine (vfs), a registry on 127.0.0.1:5000 and the notebook base image
# for the Docker backend and tests/docker (.ci/docker-env; idempotent, seconds when cached).
docker-env: setup
	PATH="$(abspath $(BIN)):$$PATH" .ci/docker-env

lint: setup-test
	$(BIN)/ruff check .

bench: setup-test proxy labextension docker-env
	$(BIN)/python bench/spawn.py
	$(BIN)/python bench/query_cache.py
	$(BIN)/python bench/share.py
	$(BIN)/python bench/report.py

clean:
	rm -rf .demo build dist *.egg-info
