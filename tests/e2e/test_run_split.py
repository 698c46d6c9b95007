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
    base = _free_run(5)
    env = {
        **os.environ,
        "SHOP_DATA_DIR": str(tmp_path),
        "SHOP_SERVICE_TOKEN": TOKEN,
        "SHOP_ADMIN_TOKEN": TOKEN,
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
        order = httpx.post(f"{urls[0]}/api/orders", json=order_body("sku-keyboard"), timeout=60).json()
        assert order["status"] == "COMPLETED", order
    finally:
        left = stop_tree(process, children)
    assert not left
