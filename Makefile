# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
VENDOR := src/pyfiledrop/web/static/vendor
DIST   ?= dist
ARGS   ?=

.PHONY: run test lint typecheck unit install install-dev assets dist browser-deps system-deps \
	proxy-deps node-deps services bench clean

# `make run` installs the runtime only; `make test` adds the test, lint and packaging tools and
# the scale-out backends to the same venv.
RUNTIME := $(VENV)/.installed-runtime
DEV     := $(VENV)/.installed-dev

$(RUNTIME): pyproject.toml setup.py $(VENDOR)/.copied
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e .
	touch $@

$(DEV): $(RUNTIME)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev,s3,postgres]'
	touch $@

install: $(RUNTIME)
install-dev: $(DEV)

# Front-end libraries come pinned from npm (package-lock.json) and are copied, not built, by
# tools/assets.py: the same step every wheel and sdist build runs (setup.py). Add new ones there.
assets: $(VENDOR)/.copied

$(VENDOR)/.copied: package.json package-lock.json tools/assets.py
	npm ci --omit=dev --no-audit --no-fund --silent
	$(PYTHON) tools/assets.py
	touch $@

run: install
	$(BIN)/pyfiledrop serve $(ARGS)

# Debian's Chromium for the browser tests (Playwright's own browser download is not available here).
browser-deps:
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# Debian tools the tests use: systemd-analyze checks the units in docs/DEPLOY.md.
system-deps:
	@command -v systemd-analyze >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null; }

# Debian's nginx for the reverse-proxy test (tests/web/test_nginx.py runs docs/DEPLOY.md's block).
proxy-deps:
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; }

CHECKED := src tests tools setup.py $(wildcard bench)

lint: $(DEV)
	$(BIN)/ruff format --check $(CHECKED)
	$(BIN)/ruff check $(CHECKED)

typecheck: $(DEV)
	$(BIN)/mypy

# PostgreSQL for the scale-out tests: Debian's package (the tests run their own cluster in /tmp;
# S3 comes from moto in the dev extra). Where it can't be installed, those tests skip (not in CI).
services:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; } || echo "PostgreSQL could not be installed: its tests will be skipped"

# npm packages only the tests and the bench use (tus-js-client, @tus/server + @tus/file-store,
# Uppy, Dropzone 5.7.6 for the article's page).
NODE_DEV := node_modules/.installed-dev
$(NODE_DEV): package.json package-lock.json $(VENDOR)/.copied
	npm ci --no-audit --no-fund --silent
	touch $@

node-deps: $(NODE_DEV)

unit: install-dev node-deps browser-deps system-deps proxy-deps services
	$(BIN)/pytest -q $(ARGS)

test: install-dev browser-deps lint typecheck unit

# The wheel and sdist, a zipapp (shiv) and a one-file executable (PyInstaller), in $(DIST)/.
dist: install-dev
	$(BIN)/python tools/dist.py --outdir $(DIST)

# The benchmark's own needs: matplotlib (the `bench` extra), peers in their own venv, nginx, and
# the npm dev packages (tus-js-client and the tus project's Node server).
PEERS := bench/.peers
$(VENV)/.bench-installed: $(DEV)
	$(BIN)/pip install -q -e '.[dev,s3,postgres,bench]'
	touch $@

$(PEERS)/.installed: bench/peers.txt
	test -x $(PEERS)/bin/python || $(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/pip install -q -r bench/peers.txt
	touch $@

bench: install-dev $(VENV)/.bench-installed $(PEERS)/.installed $(NODE_DEV)
	@command -v nginx >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; }
	$(BIN)/python -m bench $(ARGS)

clean:
	rm -rf $(VENV) node_modules $(VENDOR) build dist
