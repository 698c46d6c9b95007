"""The mail relay goes away for a while under load, and comes back.

Orders must keep completing while no email can leave (a notice is best effort, after the pivot);
once the relay is back, every order's notice must arrive — exactly one per order, none twice —
and the books must pass the audit.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.chaos.load import (
    SETTINGS,
    Catalog,
    LoadGenerator,
    audit_books,
    check_outcomes,
    retry_unanswered,
    settle,
)
from tests.e2e.conftest import Shop, start_app
from tests.smtp_server import TestSmtpServer

pytestmark = pytest.mark.e2e

ORDERS_WHILE_DOWN = 30
"""Orders answered while the relay is down before it comes back."""


async def _until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {timeout:g}s"
        await asyncio.sleep(0.1)


async def _relay_outage_under_load(smtp: TestSmtpServer, load: LoadGenerator) -> set[str]:
    """Stop the relay once mail flows, keep it down until enough orders were answered; the orders then."""
    running = asyncio.create_task(load.run())
    try:
        await _until(lambda: len(smtp.received) >= 3, 30, "no mail flowed")
        smtp.stop()
        answered_before = {r.order_id for r in load.sent if r.order_id}
        await _until(lambda: load.answered >= len(answered_before) + ORDERS_WHILE_DOWN, 60, "too few orders")
        during = {r.order_id for r in load.sent if r.order_id} - answered_before
        smtp.start()
        await asyncio.sleep(0.5)  # some load on the relay just back
    finally:
        load.stop()
        await running
    return {order_id for order_id in during if order_id}


def test_keeps_completing_orders_and_mails_every_notice_once_when_the_relay_is_down(
    mongo_url: str, tmp_path: Path
) -> None:
    smtp = TestSmtpServer().start()
    app = start_app(mongo_url, tmp_path, **SETTINGS, **smtp.settings(), SHOP_SMTP_TIMEOUT_SECONDS="1")
    shop = Shop.monolith(app)
    try:
        with shop.client() as client:
            catalog = Catalog.create(client)
        load = LoadGenerator(shop.async_client, catalog, concurrency=4, emails=True)

        during = asyncio.run(_relay_outage_under_load(smtp, load))

        with shop.client() as client:
            retry_unanswered(client, load.sent)
            orders = settle(client, load.sent)
        check_outcomes(load.sent, orders)
        completed_while_down = [o for o in orders if o["order_id"] in during and o["status"] == "COMPLETED"]
        assert completed_while_down, "no order completed while the relay was down"
        expected = {o["order_id"] for o in orders}
        deadline = time.monotonic() + 90
        while {r.message["X-Order-Id"] for r in smtp.received} < expected:
            assert time.monotonic() < deadline, "some notices never arrived after the relay came back"
            time.sleep(0.25)
        report = asyncio.run(audit_books(mongo_url, app.db_name, catalog))
    finally:
        app.stop()
        smtp.stop()
    per_order = Counter(r.message["X-Order-Id"] for r in smtp.received)
    assert [order for order, count in per_order.items() if count > 1] == []
    assert set(per_order) == expected
    status_of = {o["order_id"]: o["status"] for o in orders}
    for received in smtp.received:
        kind = received.message["X-Notification-Type"]
        assert kind == (
            "ORDER_CONFIRMED" if status_of[received.message["X-Order-Id"]] == "COMPLETED" else "ORDER_FAILED"
        )
    assert report.ok
