# llmsec-aio: `make run` serves the gateway on its defaults, `make test` runs the whole suite.
# Everything is set up on demand and idempotently: a virtualenv in .venv, system packages by apt.

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-$(shell cat setup.cfg pyproject.toml | cksum | cut -d' ' -f1)
CONFIG ?= config.yaml
# Debian packages the tests drive for real: nginx-light (has auth_request), redis-server, and
# chromium for the browser tests (Playwright drives it; it never downloads a browser).
SYSTEM_PACKAGES = nginx-light redis-server chromium

.PHONY: run test demo bench install system-deps clean fuzz

run: $(STAMP)
	$(BIN)/llmsec-aio --config $(CONFIG) init
	exec $(BIN)/llmsec-aio --config $(CONFIG) serve

test: $(STAMP) system-deps
	$(BIN)/ruff check llmsec_aio tests bench
	$(BIN)/mypy
	$(BIN)/pytest

# Long fuzzing: 5,000 examples per test of tests/fuzz (`make test` runs 50 of each).
fuzz: $(STAMP) system-deps
	HYPOTHESIS_PROFILE=fuzz $(BIN)/pytest tests/fuzz

# The whole flow on this machine: NGINX :8080 -> gateway :9000 -> stub LLM :11434.
demo: $(STAMP) system-deps
	$(BIN)/llmsec-aio --config $(CONFIG) init
	$(BIN)/python -m tests.support.demo $(CONFIG)

# Performance figures against the issue's targets: writes bench/RESULTS.md and bench/results.json.
bench: $(STAMP) system-deps
	@missing=""; for p in wrk; do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	$(BIN)/python -m bench.run

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

# Installs only what is missing, so a second run costs one `dpkg -s` per package.
system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache
