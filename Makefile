# One verb per target; CI (.ci/run) calls exactly these. Every target installs what it needs first,
# so `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
DEB_PACKAGES := containerd docker-registry skopeo openssl
PYTEST_ARGS ?=

.PHONY: deps system-deps venv binaries protos lint test test-unit test-integration demo demo-teardown run bench bench-quick chaos cluster-up cluster-down clean

deps: system-deps venv binaries

# Debian packages for the node side (containerd, registry); installed only when missing.
system-deps:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

# kube-apiserver, kube-controller-manager, kubectl and etcd, built from Go modules into a cache outside the repo.
binaries:
	@bash localcluster/build-binaries.sh >/dev/null

protos: venv
	$(PY) scripts/gen_protos.py

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy services localcluster scripts tests bench
	$(PY) scripts/gen_protos.py --check

test: deps lint
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: venv
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

test-integration: deps
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

# The full fault and abuse suites (more rounds, more fuzz examples); a smoke subset runs in `make test`.
chaos: deps
	PREPULL_CHAOS_FULL=1 $(PY) -m pytest tests/chaos tests/abuse $(PYTEST_ARGS)

cluster-up: deps
	$(PY) -m localcluster up

cluster-down: venv
	$(PY) -m localcluster down

# The whole product on the local cluster, watched live; the cluster stays up (`make demo-teardown` stops it).
DEMO_ARGS ?=
demo: deps
	$(PY) -m localcluster demo $(DEMO_ARGS)

demo-teardown: deps
	$(PY) -m localcluster demo --teardown $(DEMO_ARGS)

# The three services in the foreground against the cluster in KUBECONFIG (default: the local cluster).
run: deps
	$(PY) -m localcluster run

# Benchmarks: `bench` is the full set (long; results to docs/benchmarks.md), `bench-quick` the small version CI
# runs so the harness cannot rot (results to /tmp/prepull-benchmarks-quick.md; nothing is asserted on timings).
bench: deps
	$(PY) -m bench

bench-quick: deps
	$(PY) -m bench --quick

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
