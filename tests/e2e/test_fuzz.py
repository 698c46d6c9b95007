"""API fuzzing: schemathesis runs every check against the live app's OpenAPI document."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import LiveApp, start_app

TOKEN = "fuzz-token"


@pytest.fixture(scope="module")
def fuzzed_app(mongo_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    """An app of its own (the fuzzer creates data), whose service and admin tokens are one, so that
    schemathesis, which sends one Authorization header, reaches every operation."""
    app = start_app(
        mongo_url,
        tmp_path_factory.mktemp("fuzz"),
        SHOP_SERVICE_TOKEN=TOKEN,
        SHOP_ADMIN_TOKEN=TOKEN,
        SHOP_DEMO_CATALOG="true",
        SHOP_ORDER_WAIT_SECONDS="2",
    )
    try:
        yield app
    finally:
        app.stop()


def test_finds_no_server_errors_or_schema_violations_when_fuzzed(fuzzed_app: LiveApp) -> None:
    live_app = fuzzed_app
    executable = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or "schemathesis"
    command = [
        executable, "run", f"{live_app.url}/openapi.json",
        "--checks", "all",
        "--max-examples", os.environ.get("SHOP_FUZZ_EXAMPLES", "25"),
        "--header", f"Authorization: Bearer {TOKEN}",
        # one worker: CPython 3.11's ast.parse, which hypothesis calls, is not thread-safe
        "--workers", "1",
        "--no-color",
    ]  # fmt: skip
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=600, check=False, cwd=Path(__file__).parents[2]
    )
    report = result.stdout[-6000:] + result.stderr[-2000:]
    assert result.returncode == 0, report
