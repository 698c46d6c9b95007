"""The app's shutdown stores the writes its repositories left for later, and goes on if it cannot.

The inventory unsets a settled reservation's marks with the product's next stock move; the marks
still waiting when the app stops are unset as it stops, so a clean shutdown leaves none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import AutoReconnect

from ecommerce_saga import bootstrap
from ecommerce_saga.bootstrap import Container
from ecommerce_saga.saga import SagaEngine
from tests.integration.inprocess import add_product, one_item_order, shop_in_process


async def test_a_clean_shutdown_leaves_no_mark_stored(
    mongo_url: str, mongo_db: AsyncDatabase[dict[str, Any]], tmp_path: Path
) -> None:
    async with shop_in_process(mongo_url, mongo_db.name, tmp_path, "flush") as (client, app):
        await add_product(client, "sku-flush", quantity=5)
        order = one_item_order("sku-flush", "cust-flush")
        placed = await client.post("/api/orders", json=order)
        assert placed.status_code in (200, 201), placed.text
        engine: SagaEngine = app.state.container.engine
        assert (await engine.wait(placed.json()["saga_id"], timeout=30)).status.value == "COMPLETED"
        stored = await mongo_db.products.find_one({"_id": "sku-flush"})
        assert stored is not None and list(stored["holds"]) == [placed.json()["order_id"]]  # waiting

    stored = await mongo_db.products.find_one({"_id": "sku-flush"})
    assert stored is not None
    assert (stored["holds"], stored["available"], stored["reserved"]) == ({}, 4, 1)


async def test_a_flush_the_database_refuses_is_logged_and_the_shutdown_goes_on(
    mongo_url: str, mongo_db: AsyncDatabase[dict[str, Any]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ran: list[str] = []

    async def refused() -> None:
        ran.append("refused")
        raise AutoReconnect("connection closed")

    async def stored() -> None:
        ran.append("stored")

    with caplog.at_level(logging.WARNING, logger="ecommerce_saga.bootstrap"):
        async with shop_in_process(mongo_url, mongo_db.name, tmp_path, "flush-refused") as (client, app):
            app.state.container.flushes[:0] = [refused, stored]  # before the inventory's own
            assert (await client.get("/readyz")).status_code == 200

    assert ran == ["refused", "stored"]
    assert [r.getMessage() for r in caplog.records if "not stored" in r.getMessage()] == [
        "writes left for shutdown were not stored: connection closed"
    ]


async def test_a_pass_whose_cancellation_surfaces_as_an_outage_stops_with_the_shutdown(
    mongo_url: str, mongo_db: AsyncDatabase[dict[str, Any]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def turns_cancel_into_outage() -> None:  # as a driver call cut short may report it
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise AutoReconnect("connection closed") from None

    with caplog.at_level(logging.WARNING, logger="ecommerce_saga.bootstrap"):
        async with shop_in_process(mongo_url, mongo_db.name, tmp_path, "flush-pass") as (client, app):
            container: Container = app.state.container
            container._repeat("a pass cut short", turns_cancel_into_outage, 60)
            assert (await client.get("/readyz")).status_code == 200

    task = next(task for task in container._background if task.get_name() == "a pass cut short")
    assert task.cancelled()  # not asleep until its next pass
    # the pass was neither taken for an outage nor left behind; the shop's own passes are not
    # this test's subject (once, in a full run, one of them was still stopping after 2 s)
    assert not [r.getMessage() for r in caplog.records if "a pass cut short skipped" in r.getMessage()]
    assert not [r for r in caplog.records if "a pass cut short" in (getattr(r, "tasks", None) or [])]


async def test_the_shutdown_goes_on_without_background_work_that_does_not_stop(
    mongo_url: str,
    mongo_db: AsyncDatabase[dict[str, Any]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bootstrap, "BACKGROUND_STOP_SECONDS", 0.2)
    released = asyncio.Event()

    async def stubborn() -> None:
        while not released.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await released.wait()

    try:
        with caplog.at_level(logging.WARNING, logger="ecommerce_saga.bootstrap"):
            async with shop_in_process(mongo_url, mongo_db.name, tmp_path, "flush-stuck") as (client, app):
                container: Container = app.state.container
                container._repeat("a stubborn pass", stubborn, 60)
                assert (await client.get("/readyz")).status_code == 200
    finally:
        released.set()  # let the stubborn pass end with the test, whatever the test found

    left = [r for r in caplog.records if "left behind" in r.getMessage()]
    assert len(left) == 1
    # on a loaded machine another pass may still be stopping when the short wait ends: it is
    # listed too, which is right; the stubborn one must be
    assert "a stubborn pass" in getattr(left[0], "tasks", [])
