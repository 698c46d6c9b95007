"""`ecommerce-saga run-split`: five services and one embedded database, started and stopped together."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from tests.e2e.conftest import descendants, stop_tree, wait_ready
from tests.e2e.shop import order_body

TOKEN = "split-token"


def _free_run(count: int) -> int:
    """A base port with `count` free ports from it."""
    for _ in range(50):
        base = random.randrange(20_000, 40_000)
        try:
            for offset in range(count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", base + offset))
        except OSError:
            continue
        return base
    raise RuntimeError("no run of free ports")


def test_serves_orders_and_leaves_nothing_behind_when_stopped(tmp_path: Path) -> None:
    base = _free_run(10)  # five API ports, then five management ports
    env = {
        **os.environ,
        "SHOP_DATA_DIR": str(tmp_path),
        "SHOP_SERVICE_TOKEN": TOKEN,
        "SHOP_ADMIN_TOKEN": TOKEN,
        "SHOP_METRICS_PORT": str(base + 5),
        "SHOP_OIDC_ISSUER": "",  # the development issuer, shared by the five through the data folder
    }
    env.pop("SHOP_MONGODB_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "ecommerce_saga", "run-split", "--base-port", str(base)],
        env=env, stdout=subprocess.DEVNULL, stderr=(tmp_path / "split.log").open("wb"),
    )  # fmt: skip
    try:
        urls = [f"http://127.0.0.1:{base + offset}" for offset in range(5)]
        wait_ready(urls, process, timeout=120)
        children = descendants(process.pid)
        assert len(children) >= 6  # five services and the database
        catalog = httpx.get(f"{urls[1]}/api/inventory").json()
        assert catalog["total"] > 0  # the inventory service loaded the demo catalog
        assert httpx.get(f"{urls[1]}/api/orders").status_code == 404  # it serves inventory only
        token = subprocess.run(
            [sys.executable, "-m", "ecommerce_saga", "token", "--customer", "cust-split"],
            env=env, capture_output=True, text=True, check=True, timeout=60,
        ).stdout.strip()  # fmt: skip
        as_customer = {"Authorization": f"Bearer {token}"}
        body = {key: value for key, value in order_body("sku-keyboard").items() if key != "customer_id"}
        order = httpx.post(f"{urls[0]}/api/orders", json=body, headers=as_customer, timeout=60).json()
        assert (order["status"], order["customer_id"]) == ("COMPLETED", "cust-split"), order
        payments = httpx.get(f"{urls[2]}/api/payments", headers=as_customer, timeout=30).json()
        assert [p["order_id"] for p in payments["items"]] == [
            order["order_id"]
        ]  # checked by the payment service
        metrics = httpx.get(f"http://127.0.0.1:{base + 5}/metrics", timeout=30).text
        assert "saga_completed_total" in metrics
    finally:
        left = stop_tree(process, children)
    assert not left
