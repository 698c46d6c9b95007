"""The embedded MongoDB-wire server: starts, persists, fails clearly, and never outlives its parent."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pymongo import AsyncMongoClient

from ecommerce_saga.main import create_app
from ecommerce_saga.persistence import Database, DatabaseStartupError, EmbeddedMongo, free_port
from ecommerce_saga.settings import Settings
from tests.conftest import process_is_alive


def _wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            finished, _ = os.waitpid(pid, os.WNOHANG)  # reap it if it was our child
        except ChildProcessError:
            finished = 0
        if finished == pid or not process_is_alive(pid):
            return True
        time.sleep(0.05)
    return False


async def test_keeps_data_when_restarted_on_the_same_folder(tmp_path: Path) -> None:
    server = EmbeddedMongo(data_dir=tmp_path)
    server.start()
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(server.url)
    await client["shop"]["things"].insert_one({"_id": "kept", "n": 1})
    await client.close()
    server.stop()
    again = EmbeddedMongo(data_dir=tmp_path)
    again.start()
    try:
        client = AsyncMongoClient(again.url)
        assert await client["shop"]["things"].find_one({"_id": "kept"}) == {"_id": "kept", "n": 1}
        await client.close()
    finally:
        again.stop()


def test_explains_when_the_data_folder_is_unusable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(DatabaseStartupError, match=r"data folder .* is unusable"):
        EmbeddedMongo(data_dir=blocker / "data").start()


def test_explains_when_the_server_cannot_take_its_port(tmp_path: Path) -> None:
    with socket.socket() as squatter:  # something else holds the port the server was given
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        server = EmbeddedMongo(data_dir=tmp_path, port=squatter.getsockname()[1])
        with pytest.raises(DatabaseStartupError, match=r"exited with code [^0].*address already in use"):
            server.start(timeout=20)


def test_stops_the_server_when_its_parent_is_killed(tmp_path: Path) -> None:
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from ecommerce_saga.persistence import EmbeddedMongo\n"
        "server = EmbeddedMongo(data_dir=Path(sys.argv[1]))\n"
        "server.start()\n"
        "print(server.process.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    server_pid = int(parent.stdout.readline())
    assert process_is_alive(server_pid)
    parent.send_signal(signal.SIGKILL)
    parent.wait(10)
    assert _wait_gone(server_pid), f"embedded server {server_pid} outlived its killed parent"


async def test_starts_and_stops_the_server_with_the_app(tmp_path: Path) -> None:
    app = create_app(
        Settings(data_dir=tmp_path, demo_catalog=True, service_token="t", admin_token="t", metrics_port=0)
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        assert (await client.get("/readyz")).status_code == 503
        async with LifespanManager(app):
            assert (await client.get("/readyz")).json() == {"status": "ready"}
            products = (await client.get("/api/inventory", params={"limit": 100})).json()
            assert products["total"] >= 5
            server = app.state.container.database.embedded
            pid = server.process.pid
        assert _wait_gone(pid)
        assert (await client.get("/readyz")).status_code == 503


async def test_waits_for_a_database_that_starts_after_the_app(tmp_path: Path) -> None:
    server = EmbeddedMongo(data_dir=tmp_path / "late", port=free_port())
    database = Database.configure(server.url, "late", tmp_path, start_timeout=15)
    opening = asyncio.create_task(database.open())
    await asyncio.sleep(1.5)
    assert not opening.done()  # still waiting, not failed
    server.start()
    try:
        await asyncio.wait_for(opening, 15)
        assert await database.ping()
    finally:
        await database.close()
        server.stop()


async def test_gives_up_on_an_unreachable_database_after_the_start_timeout(tmp_path: Path) -> None:
    database = Database.configure(
        f"mongodb://127.0.0.1:{free_port()}/?directConnection=true", "none", tmp_path, start_timeout=1
    )

    with pytest.raises(DatabaseStartupError, match="does not answer"):
        await asyncio.wait_for(database.open(), 10)
