"""`ecommerce-saga serve --workers 2`: two uvicorn workers on one embedded database, started once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from ecommerce_saga.db.embedded import free_port
from tests.e2e.conftest import descendants, stop_tree, wait_ready
from tests.e2e.shop import order_body


def _command_line(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_two_workers_share_one_embedded_database_and_leave_nothing_behind(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ, "SHOP_DATA_DIR": str(tmp_path), "SHOP_SERVICE_TOKEN": "t", "SHOP_ADMIN_TOKEN": "t",
        "SHOP_OIDC_ISSUER": "",
    }  # fmt: skip
    env.pop("SHOP_MONGODB_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "ecommerce_saga", "serve", "--workers", "2", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=(tmp_path / "serve.log").open("wb"),
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready([url], process, timeout=120)
        children = descendants(process.pid)
        databases = [pid for pid in children if "nx_27017" in _command_line(pid)]
        workers = [pid for pid in children if "spawn_main" in _command_line(pid)]
        token = subprocess.run(
            [sys.executable, "-m", "ecommerce_saga", "token", "--customer", "cust-workers"],
            env=env, capture_output=True, text=True, check=True, timeout=60,
        ).stdout.strip()  # fmt: skip
        body = {key: value for key, value in order_body("sku-keyboard").items() if key != "customer_id"}
        orders = [  # each worker checks the development issuer's tokens: they share its key
            httpx.post(
                f"{url}/api/orders", json=body, timeout=60, headers={"Authorization": f"Bearer {token}"}
            )
            for _ in range(6)
        ]
        catalog = httpx.get(f"{url}/api/inventory/sku-keyboard").json()

        assert len(databases) == 1, [_command_line(pid) for pid in children]  # started once, by the parent
        assert len(workers) == 2, [_command_line(pid) for pid in children]
        assert [order.json()["status"] for order in orders] == ["COMPLETED"] * 6
        assert catalog["reserved"] == 6  # the demo catalog, loaded once and shared
    finally:
        left = stop_tree(process, children)
    assert not left
