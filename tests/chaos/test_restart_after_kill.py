"""kill -9 the shop on its embedded database and start it again at once, twenty times in a row.

The app runs as `ecommerce-saga serve` with no SHOP_MONGODB_URL, so it starts its own embedded
database on one data folder, in a process group of its own. A load generator places orders;
once orders flow in the current incarnation, the whole process group is SIGKILLed and the same
command started again immediately on the same data folder and port — while the killed app's
database may still be dying; twice the pid file left behind is made to name another process (one
that exited, and a live `sleep`). Every start must succeed, and the `sleep` must be untouched.
Afterwards the client retries what got no answer, every order it was told about must be final,
and the audit (GET /api/audit) must balance.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from ecommerce_saga.db.embedded_owner import PID_FILE, describe
from ecommerce_saga.operations.audit import AuditReport
from tests.chaos.load import (
    ADMIN,
    SETTINGS,
    Catalog,
    LoadGenerator,
    check_outcomes,
    retry_unanswered,
    settle,
    stock_lost,
)
from tests.e2e.conftest import Shop, start_app_in_own_group

ROUNDS = 20


def _exited_pid(stranger: subprocess.Popen[bytes]) -> int:
    finished = subprocess.Popen(["true"])
    finished.wait(10)
    return finished.pid


PID_FILE_NAMES: dict[int, Callable[[subprocess.Popen[bytes]], int]] = {
    6: _exited_pid,
    12: lambda stranger: stranger.pid,
}
"""Rounds after whose kill the pid file names another process: one that exited, a live stranger."""


async def _until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} not within {timeout:g}s"
        await asyncio.sleep(0.02)


async def _kill_and_restart(
    shop: Shop, load: LoadGenerator, pid_file: Path, stranger: subprocess.Popen[bytes]
) -> list[float]:
    """Kill the app's process group once orders flow, restart at once; return each restart's seconds.

    Before two of the restarts the pid file is made to name a process that is not the server: one
    that has exited, then `stranger` (a live, unrelated process).
    """
    running = asyncio.create_task(load.run())
    restarts = []
    try:
        for round_ in range(ROUNDS):
            app, answered = shop.apps["order"], load.answered
            await _until(lambda: load.answered >= answered + 2, 60, "orders answered by this incarnation")  # noqa: B023
            os.killpg(app.process.pid, signal.SIGKILL)
            await asyncio.to_thread(app.process.wait, 10)
            if round_ in PID_FILE_NAMES:
                await asyncio.to_thread(pid_file.write_text, str(PID_FILE_NAMES[round_](stranger)))
            begun = time.monotonic()
            shop.apps["order"] = await asyncio.to_thread(app.restart)  # raises if the start fails
            restarts.append(time.monotonic() - begun)
        answered = load.answered
        await _until(lambda: load.answered >= answered + 2, 60, "orders answered after the last restart")
    finally:
        load.stop()
        await running
    return restarts


def _settled_audit(client: httpx.Client, timeout: float = 60) -> AuditReport:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get("/api/audit", headers=ADMIN)
        assert response.status_code == 200, response.text
        report = AuditReport.model_validate(response.json())
        if report.settled or time.monotonic() >= deadline:
            return report
        time.sleep(0.5)


def _servers_on(data_dir: Path) -> list[int]:
    """Live embedded servers whose command line names `data_dir`."""
    found = []
    for entry in Path("/proc").iterdir():
        server = describe(int(entry.name)) if entry.name.isdigit() else None
        if server is not None and server.is_embedded_server and server.data_dir == data_dir.resolve():
            found.append(server.pid)
    return found


@pytest.mark.e2e
def test_every_restart_succeeds_when_the_shop_is_killed_and_started_at_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    stranger = subprocess.Popen(["sleep", "300"])
    app = start_app_in_own_group(None, tmp_path, SHOP_DATA_DIR=str(data_dir), **SETTINGS)
    shop = Shop.monolith(app)
    try:
        with shop.client() as client:
            catalog = Catalog.create(client)
        load = LoadGenerator(shop.async_client, catalog, concurrency=4)

        restarts = asyncio.run(_kill_and_restart(shop, load, data_dir / PID_FILE, stranger))

        with shop.client() as client:
            retry_unanswered(client, load.sent)
            orders = settle(client, load.sent)
            statuses = check_outcomes(load.sent, orders)
            report = _settled_audit(client)
        print(f"{len(load.sent)} requests, {statuses}; restart to ready: "  # noqa: T201
              f"max {max(restarts):.2f}s, mean {sum(restarts) / len(restarts):.2f}s")  # fmt: skip
        assert len(restarts) == ROUNDS
        assert report.ok, report.summary()
        assert not stock_lost(report, catalog), stock_lost(report, catalog)
        assert stranger.poll() is None, "the unrelated process the pid file named was signalled"
    finally:
        shop.apps["order"].stop()
        stranger.kill()
        stranger.wait(10)
    assert _servers_on(data_dir) == [], "an embedded server outlived its app"
