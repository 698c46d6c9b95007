# One command runs the app (`make run`), one runs every check (`make check`).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SRC := src tests benchmarks

.PHONY: run run-split demo check lint fmt typecheck imports test bench install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)  ## start the app on http://127.0.0.1:8000 with the embedded database
	$(BIN)/ecommerce-saga serve

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

imports: $(STAMP)
	$(BIN)/lint-imports

test: $(STAMP)
	$(BIN)/pytest

check: lint typecheck imports test  ## lint, types, import boundaries and the whole test suite

bench: $(STAMP)
	$(BIN)/python benchmarks/engine_bench.py

clean:
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache
