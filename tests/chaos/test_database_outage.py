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

from ecommerce_saga.db.embedded import EmbeddedMongo, free_port
from tests.chaos.load import (
    ADMIN,
    SETTINGS,
    Catalog,
    LoadGenerator,
    answered_more,
    audit_books,
    check_outcomes,
    retry_unanswered,
    settle,
)
from tests.e2e.conftest import Shop, start_app
from tests.waiting import eventually_blocking

OUTAGE_SECONDS = 4.0
"""The server stays down at least this long ..."""
MAX_OUTAGE_SECONDS = 60.0
"""... and longer, up to this, until the app has shown the outage (a loaded machine is slow)."""


def _status(url: str, headers: dict[str, str] | None = None) -> int | None:
    try:
        return httpx.get(url, timeout=15, headers=headers).status_code
    except httpx.HTTPError:
        return None


async def _outage_under_load(
    shop: Shop, server: EmbeddedMongo, load: LoadGenerator
) -> dict[str, list[int | None]]:
    """Kill the server mid-load, probe the app while it is down, start the server again.

    Each phase ends on a condition, not a timer: orders flow before the kill; the server stays down
    for at least OUTAGE_SECONDS and until the app has shown the outage (readiness 503, an order
    read 503, a new order refused with 503) or MAX_OUTAGE_SECONDS pass; after the restart the
    shop answers new orders before the load stops. The checks after say what was expected.
    """
    running = asyncio.create_task(load.run())
    seen: dict[str, list[int | None]] = {"readyz": [], "order": []}

    def outage_shown() -> bool:
        refused = any(request.status == 503 for request in load.sent)
        return 503 in seen["readyz"] and 503 in seen["order"] and refused

    try:
        await answered_more(load, than=3)
        assert server.process is not None
        server.process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(server.process.wait, 10)
        down_since = time.monotonic()
        while time.monotonic() < down_since + OUTAGE_SECONDS or (
            not outage_shown() and time.monotonic() < down_since + MAX_OUTAGE_SECONDS
        ):
            seen["readyz"].append(await asyncio.to_thread(_status, f"{shop.url}/readyz"))
            order = f"{shop.url}/api/orders/ord_unknown"
            seen["order"].append(await asyncio.to_thread(_status, order, ADMIN))
            await asyncio.sleep(0.2)
        server.start()  # from this thread: the server's parent-death signal follows its parent thread
        await answered_more(load, than=load.answered)  # load again on the recovered database
    finally:
        load.stop()
        await running
    return seen


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
        assert (
            eventually_blocking(
                lambda: _status(f"{shop.url}/readyz"), lambda status: status == 200, timeout=20
            )
            == 200
        )
        with shop.client() as client:
            retry_unanswered(client, load.sent)
            orders = settle(client, load.sent)
        check_outcomes(load.sent, orders)
        asyncio.run(audit_books(server.url, app.db_name, catalog))
        assert app.process.poll() is None, "the app died with its database"
    finally:
        app.stop()
        server.stop()
