"""End-to-end fixtures: the app started as a real process, over real HTTP, on the test database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ecommerce_saga.persistence import free_port

SERVICE_TOKEN = "e2e-service-token"
ADMIN_TOKEN = "e2e-admin-token"


@dataclass
class LiveApp:
    """A running app process."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path
    db_name: str

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_app(mongo_url: str, log_dir: Path, db_name: str | None = None, **env: str) -> LiveApp:
    """Start `ecommerce-saga serve` on a free port and wait until /readyz answers 200."""
    port = free_port()
    db_name = db_name or f"e2e_{uuid.uuid4().hex[:10]}"
    log = log_dir / f"app-{port}.log"
    environment = {
        **os.environ,
        "SHOP_MONGODB_URL": mongo_url,
        "SHOP_MONGODB_DB": db_name,
        "SHOP_SERVICE_TOKEN": SERVICE_TOKEN,
        "SHOP_ADMIN_TOKEN": ADMIN_TOKEN,
        "SHOP_DEMO_CATALOG": "false",
        "SHOP_LOG_FORMAT": "json",
        **env,
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "ecommerce_saga", "serve", "--port", str(port)],
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    app = LiveApp(url=f"http://127.0.0.1:{port}", process=process, log=log, db_name=db_name)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the app exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{app.url}/readyz", timeout=1).status_code == 200:
                return app
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    app.stop()
    raise RuntimeError(f"the app did not become ready:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def live_app(mongo_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    """One app process shared by the end-to-end tests (each test uses its own products and customers)."""
    app = start_app(mongo_url, tmp_path_factory.mktemp("app"))
    try:
        yield app
    finally:
        app.stop()


@pytest.fixture
def client(live_app: LiveApp) -> Iterator[httpx.Client]:
    """An HTTP client for the live app."""
    with httpx.Client(base_url=live_app.url, timeout=30) as http:
        yield http


@pytest.fixture
def admin_headers() -> dict[str, str]:
    """Headers carrying the admin token."""
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def service_headers() -> dict[str, str]:
    """Headers carrying the service token."""
    return {"Authorization": f"Bearer {SERVICE_TOKEN}"}
