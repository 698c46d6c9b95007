"""The import contracts fail the build: each forbidden import, planted in a copy of the code, breaks one.

A control run on the untouched copy passes, so a failure below is the planted import's doing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e  # runs lint-imports as a process

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "src/ecommerce_saga"

PLANTED = {
    "order sees payment's domain": ("modules/order/service.py", "ecommerce_saga.modules.payment.domain"),
    "order sees payment's HTTP client": ("modules/order/service.py", "ecommerce_saga.modules.payment.client"),
    "order sees inventory's router": ("modules/order/saga.py", "ecommerce_saga.modules.inventory.router"),
    "a router sees its service": ("modules/inventory/router.py", "ecommerce_saga.modules.inventory.service"),
    "a router sees its documents": (
        "modules/inventory/router.py",
        "ecommerce_saga.modules.inventory.documents",
    ),
    "the shared kernel imports a framework": ("shared/contracts.py", "fastapi"),
    "a contract imports the ODM": ("modules/payment/contract.py", "beanie"),
    "the engine core imports the Mongo store": ("saga/engine.py", "ecommerce_saga.saga.stores.mongo"),
    "a service imports its router": ("modules/shipping/service.py", "ecommerce_saga.modules.shipping.router"),
    "one module sees another's service": (
        "modules/payment/service.py",
        "ecommerce_saga.modules.shipping.service",
    ),
    "the audit reads a module's documents": (
        "operations/audit.py",
        "ecommerce_saga.modules.payment.documents",
    ),
    "the audit reads a module's books past its contract": (
        "operations/audit.py",
        "ecommerce_saga.modules.inventory.books",
    ),
    "the audit reads the database": ("operations/audit.py", "pymongo"),
    "a module's books see its service": ("modules/order/books.py", "ecommerce_saga.modules.order.service"),
}


def _lint(copy: Path) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"
    environment = {**os.environ, "PYTHONPATH": str(copy / "src")}
    return subprocess.run(
        [executable, "--config", str(copy / "pyproject.toml"), "--no-cache"],
        cwd=copy, env=environment, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The package and its contracts, copied where imports can be planted."""
    shutil.copytree(
        ROOT / PACKAGE, tmp_path / PACKAGE, ignore=shutil.ignore_patterns("__pycache__", "static")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_keeps_every_contract_when_nothing_is_planted(copy: Path) -> None:
    result = _lint(copy)

    assert result.returncode == 0, result.stdout[-3000:]


@pytest.mark.parametrize("case", sorted(PLANTED))
def test_breaks_a_contract_when_a_forbidden_import_is_planted(copy: Path, case: str) -> None:
    file, module = PLANTED[case]
    target = copy / PACKAGE / file
    target.write_text(target.read_text() + f"\nimport {module}  # planted\n")

    result = _lint(copy)

    assert result.returncode != 0, f"{case}: lint-imports kept every contract"
    assert "BROKEN" in result.stdout or "broken" in result.stdout, result.stdout[-2000:]
