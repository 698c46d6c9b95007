"""The embedded MongoDB-wire server: starts, persists, fails clearly, and never outlives its parent."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from ecommerce_saga.db.connection import Database
from ecommerce_saga.db.embedded import LOG_FILE, DatabaseStartupError, EmbeddedMongo, free_port
from ecommerce_saga.db.embedded_owner import PID_FILE, read_pid
from ecommerce_saga.main import create_app
from ecommerce_saga.saga import StoreUnavailableError
from ecommerce_saga.saga.stores.mongo import MongoSagaStore
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
        "from ecommerce_saga.db.connection import EmbeddedMongo\n"
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


# ---------------------------------------------------------------- the previous incarnation (#16)


def _dead_pid() -> int:
    finished = subprocess.Popen(["true"])
    finished.wait(10)
    return finished.pid


def _orphan_server(data_dir: Path) -> subprocess.Popen[bytes]:
    """An embedded server on `data_dir` that a dead app started, and that ignored its death signal."""
    server = EmbeddedMongo(data_dir=data_dir, port=free_port())
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / LOG_FILE).open("ab") as log:
        orphan = subprocess.Popen(
            server.command(data_dir.resolve(), owner=_dead_pid()), stdout=log, stderr=log
        )
    pid_file = data_dir / PID_FILE
    deadline = time.monotonic() + 20
    while read_pid(pid_file) != orphan.pid:
        assert orphan.poll() is None, (data_dir / LOG_FILE).read_text()[-2000:]
        assert time.monotonic() < deadline, "the orphan never wrote its pid file"
        time.sleep(0.05)
    return orphan


def _started_and_stopped(data_dir: Path, takeover_seconds: float = 10.0) -> None:
    server = EmbeddedMongo(data_dir=data_dir, takeover_seconds=takeover_seconds)
    server.start()
    try:
        assert server.process is not None
        assert read_pid(data_dir / PID_FILE) == server.process.pid
    finally:
        server.stop()


def test_starts_when_the_pid_file_names_a_dead_process(tmp_path: Path) -> None:
    (tmp_path / PID_FILE).write_text(str(_dead_pid()))

    _started_and_stopped(tmp_path)


def test_starts_and_leaves_alone_an_unrelated_process_the_pid_file_names(tmp_path: Path) -> None:
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        (tmp_path / PID_FILE).write_text(str(stranger.pid))

        _started_and_stopped(tmp_path)

        assert stranger.poll() is None, "the unrelated process was signalled"
    finally:
        stranger.kill()
        stranger.wait(10)


def test_stops_a_previous_runs_server_that_outlived_its_app(tmp_path: Path) -> None:
    orphan = _orphan_server(tmp_path)
    try:
        _started_and_stopped(tmp_path, takeover_seconds=0.5)

        assert orphan.wait(10) is not None  # it was stopped, then the new server ran on the folder
    finally:
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait(10)


def test_refuses_a_data_folder_used_by_another_running_app(tmp_path: Path) -> None:
    first = EmbeddedMongo(data_dir=tmp_path)
    first.start()
    try:
        assert first.process is not None
        with pytest.raises(DatabaseStartupError, match=r"in use by the embedded database .* running process"):
            EmbeddedMongo(data_dir=tmp_path, takeover_seconds=0.5).start()
        assert first.process.poll() is None
        assert read_pid(tmp_path / PID_FILE) == first.process.pid
    finally:
        first.stop()


_WRITER_PARENT = """
import sys, time
from pathlib import Path
from ecommerce_saga.db.embedded import EmbeddedMongo
server = EmbeddedMongo(data_dir=Path(sys.argv[1]))
server.start()
print(server.process.pid, server.url, flush=True)
time.sleep(600)
"""


async def _write_through_the_kill(url: str, parent: subprocess.Popen[str]) -> list[int]:
    """Insert documents one by one; SIGKILL `parent` after 200; return the acknowledged ones."""
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(url, timeoutMS=5000)
    acknowledged: list[int] = []
    try:
        for n in itertools.count():
            if n == 200:  # the server dies with its app (SIGKILL), while this keeps writing
                parent.send_signal(signal.SIGKILL)
            try:
                await client["shop"]["writes"].insert_one({"_id": n, "payload": "x" * 200})
            except PyMongoError:
                return acknowledged  # the server is gone
            acknowledged.append(n)
    finally:
        await client.close()
    raise AssertionError("unreachable")  # pragma: no cover


async def _stored_ids(url: str) -> set[object]:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(url)
    try:
        return {doc["_id"] async for doc in client["shop"]["writes"].find({}, {"_id": 1})}
    finally:
        await client.close()


def test_loses_no_acknowledged_write_when_its_app_is_killed_mid_write(tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", _WRITER_PARENT, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    server_pid, url = parent.stdout.readline().split()

    acknowledged = asyncio.run(_write_through_the_kill(url, parent))

    parent.wait(10)
    assert _wait_gone(int(server_pid), 5), "the server outlived its killed app"
    again = EmbeddedMongo(data_dir=tmp_path, takeover_seconds=1)
    again.start()
    try:
        stored = asyncio.run(_stored_ids(again.url))
    finally:
        again.stop()
    assert len(acknowledged) >= 200
    assert set(acknowledged) <= stored, f"lost {len(set(acknowledged) - stored)} acknowledged writes"


# ---------------------------------------------------------------- a database that stops answering (#17)

BOUND = 1.0
MARGIN = 1.5
"""Generous for a loaded 2-core machine: the operations themselves take milliseconds."""


async def _bounded(operation: Awaitable[object], error: type[Exception]) -> float:
    begun = time.monotonic()
    with pytest.raises(error):
        await operation
    return time.monotonic() - begun


async def test_fails_every_operation_within_the_bound_when_the_database_stops_answering(
    tmp_path: Path,
) -> None:
    server = EmbeddedMongo(data_dir=tmp_path)
    server.start()
    database = Database.configure(server.url, "stall", tmp_path, operation_timeout=BOUND)
    store = MongoSagaStore(database.db["sagas"])
    try:
        await database.open()
        await database.db["things"].insert_one({"_id": "before"})
        assert server.process is not None
        server.process.send_signal(signal.SIGSTOP)
        try:
            waits = {
                "find": await _bounded(database.db["things"].find_one({"_id": "before"}), PyMongoError),
                "insert": await _bounded(database.db["things"].insert_one({"_id": "during"}), PyMongoError),
                "saga store": await _bounded(store.get("s-1"), StoreUnavailableError),
            }
            begun = time.monotonic()
            assert not await database.ping()
            waits["ping"] = time.monotonic() - begun
        finally:
            server.process.send_signal(signal.SIGCONT)
        assert max(waits.values()) < BOUND + MARGIN, waits
        assert await database.db["things"].find_one({"_id": "before"}) == {"_id": "before"}
    finally:
        await database.close()
        server.stop()
