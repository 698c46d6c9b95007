"""The database goes away for a few seconds under load, and comes back.

The app runs against a database server of the test's own (the embedded one, on a fixed port and
data folder). Mid-load the server is killed; while it is down the app must say so — readiness
false, and 503 problem+json with Retry-After for requests that need the database — and never a
500. The server is then started again on the same data; the app must reconnect by itself, finish
the sagas that were in flight, and leave books that pass the audit.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
import pytest

from ecommerce_saga.persistence import EmbeddedMongo, free_port
from tests.chaos.load import (
    ADMIN,
    SETTINGS,
    Catalog,
    LoadGenerator,
    audit_books,
    check_outcomes,
    retry_unanswered,
    settle,
)
from tests.e2e.conftest import Shop, start_app
from tests.e2e.shop import eventually

OUTAGE_SECONDS = 4.0


def _status(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=15, headers=ADMIN).status_code
    except httpx.HTTPError:
        return None


async def _outage_under_load(
    shop: Shop, server: EmbeddedMongo, load: LoadGenerator
) -> dict[str, list[int | None]]:
    """Kill the server mid-load, probe the app while it is down, start the server again."""
    running = asyncio.create_task(load.run())
    seen: dict[str, list[int | None]] = {"readyz": [], "order": []}
    try:
        await asyncio.sleep(1.5)
        assert server.process is not None
        server.process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(server.process.wait, 10)
        down_until = time.monotonic() + OUTAGE_SECONDS
        while time.monotonic() < down_until:
            seen["readyz"].append(await asyncio.to_thread(_status, f"{shop.url}/readyz"))
            seen["order"].append(await asyncio.to_thread(_status, f"{shop.url}/api/orders/ord_unknown"))
            await asyncio.sleep(0.2)
        server.start()  # from this thread: the server's parent-death signal follows its parent thread
        await asyncio.sleep(2.0)  # load again on the recovered database
    finally:
        load.stop()
        await running
    return seen


@pytest.mark.timeout(240)
def test_answers_503_while_the_database_is_down_and_finishes_everything_after(tmp_path: Path) -> None:
    server = EmbeddedMongo(data_dir=tmp_path / "db", port=free_port())
    server.start()
    app = start_app(server.url, tmp_path, **SETTINGS)
    shop = Shop.monolith(app)
    try:
        with shop.client() as client:
            catalog = Catalog.create(client)
        load = LoadGenerator(shop.async_client, catalog, concurrency=4)

        seen = asyncio.run(_outage_under_load(shop, server, load))

        assert 503 in seen["readyz"], seen  # readiness went false ...
        assert set(seen["readyz"]) <= {200, 503}, seen
        assert 503 in seen["order"], seen  # ... and the API said "come back later", never 500
        assert set(seen["order"]) <= {404, 503}, seen
        refused = [request for request in load.sent if request.status == 503]
        assert refused, "no order was refused while the database was down"
        assert eventually(lambda: _status(f"{shop.url}/readyz"), lambda status: status == 200, 20) == 200
        with shop.client() as client:
            retry_unanswered(client, load.sent)
            orders = settle(client, load.sent)
        check_outcomes(load.sent, orders)
        asyncio.run(audit_books(server.url, app.db_name, catalog))
        assert app.process.poll() is None, "the app died with its database"
    finally:
        app.stop()
        server.stop()
