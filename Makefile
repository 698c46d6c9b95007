# One command runs the app (`make run`), one runs every check (`make check`).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SRC := src tests benchmarks examples

.PHONY: run run-split demo check coverage lint fmt typecheck imports test test-fast bench bench-load install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)  ## start the app on http://127.0.0.1:8000 with the embedded database (text logs)
	SHOP_LOG_FORMAT=$${SHOP_LOG_FORMAT:-text} $(BIN)/ecommerce-saga serve

run-split: $(STAMP)  ## the five modules as five services on ports 8000-8004, one embedded database
	$(BIN)/ecommerce-saga run-split

demo: $(STAMP)  ## place four demo orders against a running server
	$(BIN)/ecommerce-saga demo

fmt: $(STAMP)
	$(BIN)/ruff format $(SRC)
	$(BIN)/ruff check --fix $(SRC)

lint: $(STAMP)
	$(BIN)/ruff format --check $(SRC)
	$(BIN)/ruff check $(SRC)

typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/mypy benchmarks
	$(BIN)/mypy examples

imports: $(STAMP)
	$(BIN)/lint-imports

test: $(STAMP)
	$(BIN)/pytest

test-fast: $(STAMP)  ## the tests that start no process (no app, no database): under a minute
	$(BIN)/pytest -q -m "not e2e"

check: lint typecheck imports test  ## lint, types, import boundaries and the whole test suite

coverage: $(STAMP)  ## the test suite under coverage (branches), with a report
	$(BIN)/coverage run -m pytest -q
	$(BIN)/coverage report --skip-covered --sort=cover

bench: $(STAMP)
	$(BIN)/python benchmarks/engine_bench.py

bench-load: $(STAMP)  ## the load benchmark and its chart (docs/images/load-bench.png); installs wrk, matplotlib, py-spy
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python benchmarks/load_bench.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache

# --- Deployment: the container image, the Helm chart, compose (docs/deploy.md) -----------------
# Their tools install themselves into .tools/ (scripts/tools.sh). `hadolint` (about 10 s from a
# clean machine) and `helm-check` (about 2 minutes from a clean machine, 41-54 s after) are part of
# `check`; `image-test` (root, podman; about 80 s on the first run, 8 s after) runs on its own.
DEPLOY_SCRIPTS := build-podman.sh run-local.sh push-to-openshift.sh deploy-openshift.sh \
	scripts/image-test.sh scripts/helm-check.sh scripts/tools.sh scripts/compose-secrets.sh

.PHONY: image image-test helm-check hadolint

image:  ## build the container image with buildah/podman (./build-podman.sh)
	./build-podman.sh

image-test:  ## build the image offline on a debootstrap base, run it as an arbitrary UID, check /readyz
	scripts/image-test.sh

helm-check:  ## lint, render and validate the Helm chart (every shape; kubernetes-validate, Route schema, checkov, README) and compose.yaml
	scripts/helm-check.sh

hadolint:  ## lint the Containerfile (hadolint) and the deployment scripts (shellcheck)
	scripts/tools.sh hadolint shellcheck
	.tools/bin/hadolint Containerfile
	.tools/bin/shellcheck $(DEPLOY_SCRIPTS)

check: hadolint helm-check
