"""`ecommerce-saga demo` against a running app with the demo catalog: four orders, four outcomes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import start_app


def test_prints_each_outcome_with_its_history_when_run_against_the_demo_catalog(
    mongo_url: str, tmp_path: Path
) -> None:
    app = start_app(mongo_url, tmp_path, SHOP_DEMO_CATALOG="true")
    try:
        result = subprocess.run(
            [sys.executable, "-m", "ecommerce_saga", "demo", "--url", app.url],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    finally:
        app.stop()
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "a successful order: HTTP 201" in out and "COMPLETED" in out
    assert "an item out of stock: HTTP 201" in out and "INVENTORY_UNAVAILABLE" in out
    assert "a declined card: HTTP 201" in out and "PAYMENT_DECLINED" in out
    assert "an undeliverable country: HTTP 201" in out and "SHIPPING_UNAVAILABLE" in out
    assert out.count("compensation reserve_inventory") == 2  # declined card and undeliverable country
    assert "4242424242424242" not in out
