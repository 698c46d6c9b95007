"""The engine installs alone (engine/pyproject.toml) and runs the library examples without the shop.

A fresh virtual environment gets ``pip install ./engine[mongo]``, as docs/saga-engine.md says
(from a copy of the engine's files, so that the build leaves nothing in the working tree). The
shop's dependencies must not be importable there; the docs' example and the trip example (with
the in-memory store and on MongoDB) must run in it and print what the docs say.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.examples import ROOT, TRIP, documented, run_python

SHOP_ONLY = ["fastapi", "beanie", "httpx", "uvicorn", "nx_27017", "ecommerce_saga.bootstrap"]


def _copy_engine(into: Path) -> Path:
    """The engine's distribution files, laid out as in the repository; returns its folder."""
    shutil.copytree(ROOT / "engine", into / "engine", ignore=shutil.ignore_patterns("build", "*.egg-info"))
    shutil.copytree(
        ROOT / "src" / "ecommerce_saga" / "saga",
        into / "src" / "ecommerce_saga" / "saga",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    return into / "engine"


def _run(*command: str | Path, timeout: float = 300) -> str:
    environment = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    run = subprocess.run(
        [str(c) for c in command],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=environment,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    return run.stdout


@pytest.fixture(scope="module")
def engine_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The interpreter of a fresh virtual environment with only the engine (and PyMongo) installed."""
    root = tmp_path_factory.mktemp("engine-alone")
    engine = _copy_engine(root / "repo")
    _run(sys.executable, "-m", "venv", root / "venv")
    python = root / "venv" / "bin" / "python"
    _run(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", f"{engine}[mongo]")
    return python


@pytest.mark.e2e
def test_installs_without_the_shops_dependencies(engine_python: Path) -> None:
    probe = (
        "import importlib.util, sys\n"
        f"print([m for m in {SHOP_ONLY!r} if importlib.util.find_spec(m) is not None])\n"
        "import ecommerce_saga.saga, pydantic, pymongo\n"
        "print(ecommerce_saga.saga.__file__.startswith(sys.prefix))\n"
    )
    assert _run(engine_python, "-c", probe).splitlines() == ["[]", "True"]


@pytest.mark.e2e
def test_runs_the_docs_example_without_the_shop(engine_python: Path, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(documented("runnable-example", "python"))

    assert run_python(engine_python, script) == documented("expected-output", "text")


@pytest.mark.e2e
def test_runs_the_trip_example_on_both_stores_without_the_shop(engine_python: Path, mongo_url: str) -> None:
    expected = documented("trip-output", "text")

    assert run_python(engine_python, TRIP) == expected
    assert run_python(engine_python, TRIP, "--mongodb-url", mongo_url) == expected
