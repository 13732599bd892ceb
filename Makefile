# Bosun — developer entry points. `make demo` and `make test` work on a fresh machine.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

UV_VERSION := 0.13.9
PY := uv run --frozen
export LITELLM_LOCAL_MODEL_COST_MAP := True
export KUBECONFIG ?= $(CURDIR)/.cluster/kubeconfig

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

.PHONY: uv
uv:
	@command -v uv >/dev/null 2>&1 && [ "$$(uv --version | cut -d' ' -f2)" = "$(UV_VERSION)" ] || \
	  python3 -m pip install --quiet "uv==$(UV_VERSION)"

# Compiled as the image is (Dockerfile): every operator the tests and the bench start then loads bytecode
# instead of compiling each module from source (which it also cannot cache where PYTHONDONTWRITEBYTECODE is
# set): about 1.7 s less per start. The last line imports the tool server once with writing allowed, so
# that the modules beartype's import hook rewrites (FastMCP's key_value) get their own cached bytecode too.
.PHONY: venv
venv: uv ## install the pinned Python dependencies (uv.lock) into .venv, compiled to bytecode
	uv sync --frozen --quiet --compile-bytecode
	uv run --frozen python -m compileall -q operator tools
	PYTHONDONTWRITEBYTECODE= uv run --frozen python -c "import bosun_tools.server"

.PHONY: binaries
binaries: ## build the control plane, kwok, helm and tests/kstatus from Go modules (cached outside the repo)
	bash tests/cluster/build.sh
	bash tests/kstatus/build.sh

.PHONY: cluster-up
cluster-up: venv ## start the local control plane on 127.0.0.1 (no-op when up)
	$(PY) python tests/cluster/localcluster.py up

.PHONY: cluster-down
cluster-down: ## stop exactly the processes cluster-up started
	@if [ -x .venv/bin/python ]; then .venv/bin/python tests/cluster/localcluster.py down; \
	  else echo "nothing to stop (.venv missing)"; fi

.PHONY: cluster-status
cluster-status: venv ## show the running cluster's processes and their memory
	$(PY) python tests/cluster/localcluster.py status

.PHONY: crds
crds: venv ## regenerate crds/ (and the chart's copies) from the pydantic models
	$(PY) python -m bosun.api.crdgen crds/
	cp crds/bosun.dev_*.yaml charts/bosun/crds/
	cp crds/identity-policy.yaml charts/bosun/files/identity-policy.yaml

.PHONY: lint
lint: venv ## ruff (lint + format check), mypy --strict and the import contracts (pyproject.toml)
	$(PY) ruff check .
	$(PY) ruff format --check .
	$(PY) mypy
	$(PY) lint-imports --no-cache

.PHONY: test
test: venv binaries ## lint, then every test against the real local control plane
	$(MAKE) --no-print-directory lint
	$(PY) pytest -q $(PYTEST_ARGS)

.PHONY: krew
krew: venv ## build the krew release of kubectl bosun into dist/krew/ (archive and manifest)
	bash krew/build.sh

.PHONY: operator
operator: cluster-up ## run the operator in the foreground against $$KUBECONFIG (default .cluster/kubeconfig)
	"$$(bash tests/cluster/build.sh)/kubectl" apply --server-side --force-conflicts -f crds/
	$(PY) python -m bosun

# The local cluster's users: bob asks, alice approves, carol has no rights (tests/cluster/localcluster.py).
CONSOLE_USER ?= bob
CONSOLE_PORT ?= 8080
.PHONY: console
console: cluster-up ## the web console on 127.0.0.1:8080 (CONSOLE_PORT) as a local-cluster user (CONSOLE_USER=bob, alice, carol)
	$(PY) bosun console --kubeconfig .cluster/users/$(CONSOLE_USER).kubeconfig --port $(CONSOLE_PORT)

.PHONY: demo
demo: cluster-up ## the main job end to end: a task proposes, is approved, executes and verifies
	bash examples/demo.sh

.PHONY: bench
bench: cluster-up ## speed, CPU and memory of Bosun against a floor operator (a few min); BOSUN_BENCH_FAILOVER=1 adds the failover drill (9 min)
	$(PY) python -m tests.bench
