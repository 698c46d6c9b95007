"""The usage example in docs/saga-engine.md runs as written and prints what the page says."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.examples import documented as _block_after

pytestmark = pytest.mark.e2e  # runs the docs' example as a Python process


def test_prints_the_documented_output_when_the_docs_example_runs(tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(_block_after("runnable-example", "python"))

    run = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )

    assert run.returncode == 0, run.stderr
    assert run.stdout == _block_after("expected-output", "text")


def test_imports_only_the_saga_package_when_showing_usage() -> None:
    imports = re.findall(
        r"^(?:from|import) ([\w.]+)", _block_after("runnable-example", "python"), re.MULTILINE
    )

    assert {name for name in imports if name.startswith("ecommerce_saga")} <= {
        "ecommerce_saga.saga",
        "ecommerce_saga.saga.stores.memory",
    }
    assert {name.split(".")[0] for name in imports} <= {"asyncio", "typing", "pydantic", "ecommerce_saga"}
