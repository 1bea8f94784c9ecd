# The two commands of the README: `make demo` and `make test`. Both create .venv if missing and
# install everything they need into it, as on a fresh machine.
VENV    ?= .venv
PYTHON  ?= python3
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
DEMO    ?= demo-output

# package:command pairs. wrk and h2load drive the chaos tests (tests/reliability/test_chaos.py).
DEBIAN_PACKAGES := prometheus:prometheus nginx:nginx wrk:wrk nghttp2-client:h2load
# The static policy scanner of the k8s manifests (tests/deploy/test_k8s.py). It pins its own dependency
# tree, so it gets a venv of its own.
CHECKOV_VENV    ?= .venv-checkov
CHECKOV_VERSION := 3.3.30
CHECKOV_STAMP   := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)

# The Open Inference Protocol's generated stubs and Triton's clients (--enable_v2_protocol and its
# tests). Without its pins: it asks for protobuf<7, but its generated code runs on the protobuf 7
# that grpcio-health-checking needs; its own dependencies are in pyproject.toml.
TRITONCLIENT    := tritonclient==2.73.0

.PHONY: install policy-tools system-deps test lint demo clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps $(TRITONCLIENT)
	touch $(STAMP)

install: $(STAMP)

$(CHECKOV_STAMP):
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet checkov==$(CHECKOV_VERSION)
	touch $(CHECKOV_STAMP)

policy-tools: $(CHECKOV_STAMP)

# Real Prometheus and nginx processes are started by the tests: install the Debian packages when
# they are missing and we are root; otherwise say what is missing (the tests that need them fail
# with that message).
system-deps:
	@missing=""; for pair in $(DEBIAN_PACKAGES); do p=$${pair%%:*}; c=$${pair#*:}; \
	  command -v $$c >/dev/null || test -x /usr/sbin/$$c || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "missing Debian packages:$$missing (sudo apt-get install$$missing)"; fi; \
	fi

lint: install
	$(BIN)/ruff check .

test: install policy-tools system-deps lint
	CHECKOV=$(abspath $(CHECKOV_VENV))/bin/checkov $(BIN)/pytest -q

# Export two versions of the digits CNN with TFLite variants, serve them, query REST and gRPC,
# publish a third version while serving, show the metrics (scripts/demo.sh).
demo: install
	DEMO=$(DEMO) BIN=$(BIN) bash scripts/demo.sh

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) $(DEMO) artifacts
