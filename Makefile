# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
VENDOR := src/pyfiledrop/web/static/vendor
ARGS   ?=

.PHONY: run test lint typecheck unit install assets browser-deps proxy-deps services bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev,s3,postgres]'
	touch $@

install: $(STAMP) assets

# Front-end libraries come pinned from npm (package-lock.json) and are copied, not built.
# Only Dropzone's script and licence: the page has its own stylesheet.
assets: $(VENDOR)/.copied

$(VENDOR)/.copied: package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	rm -rf $(VENDOR) && mkdir -p $(VENDOR)/dropzone
	cp node_modules/dropzone/dist/dropzone-min.js node_modules/dropzone/LICENSE $(VENDOR)/dropzone/
	touch $@

run: install
	$(BIN)/pyfiledrop serve $(ARGS)

# Debian's Chromium for the browser tests (Playwright's own browser download is not available here).
browser-deps:
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# Debian's nginx for the reverse-proxy test (tests/web/test_nginx.py runs docs/DEPLOY.md's block).
proxy-deps:
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; }

CHECKED := src tests $(wildcard bench)

lint: $(STAMP)
	$(BIN)/ruff format --check $(CHECKED)
	$(BIN)/ruff check $(CHECKED)

typecheck: $(STAMP)
	$(BIN)/mypy

# PostgreSQL for the scale-out tests: Debian's package (the tests run their own cluster in /tmp;
# S3 comes from moto in the dev extra). Where it can't be installed, those tests skip (not in CI).
services:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; } || echo "PostgreSQL could not be installed: its tests will be skipped"

unit: install browser-deps proxy-deps services
	$(BIN)/pytest -q $(ARGS)

test: install browser-deps proxy-deps lint typecheck unit

# The benchmark's own needs: matplotlib (the `bench` extra), peers in their own venv, nginx.
PEERS := bench/.peers
$(VENV)/.bench-installed: $(STAMP)
	$(BIN)/pip install -q -e '.[dev,s3,postgres,bench]'
	touch $@

$(PEERS)/.installed: bench/peers.txt
	test -x $(PEERS)/bin/python || $(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/pip install -q -r bench/peers.txt
	touch $@

bench: install $(VENV)/.bench-installed $(PEERS)/.installed
	@command -v nginx >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; }
	$(BIN)/python -m bench $(ARGS)

clean:
	rm -rf $(VENV) node_modules $(VENDOR) build dist
