"""The consistency audit: passes on books the sagas kept, and names each kind of corruption."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from ecommerce_saga.bootstrap import audit_sources
from ecommerce_saga.cli import main as cli
from ecommerce_saga.cli import run_audit
from ecommerce_saga.operations.audit import audit
from tests.e2e.shop import ADDRESS, DECLINED_CARD, GOOD_CARD
from tests.integration.inprocess import shop_in_process

ADMIN = {"Authorization": "Bearer audit-admin"}
Db = AsyncDatabase[dict[str, Any]]


def _order(product: str, **overrides: Any) -> dict[str, Any]:
    body = {
        "customer_id": "cust-audit",
        "items": [{"product_id": product, "quantity": 2}],
        "payment": GOOD_CARD,
        "shipping_address": ADDRESS,
        "shipping_method": "STANDARD",
    }
    return {**body, **overrides}


@pytest.fixture
async def shop(
    mongo_url: str, mongo_db: Db, tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    """A shop whose books hold every outcome: completed, declined, unshippable, short, cancelled."""
    async with shop_in_process(mongo_url, mongo_db.name, tmp_path, "audit") as (client, app):
        product = {"product_id": "sku-a", "name": "A", "category": "t", "price_cents": 500, "quantity": 9}
        assert (await client.post("/api/inventory", json=product, headers=ADMIN)).status_code == 201
        orders = {}
        for name, body in {
            "completed": _order("sku-a"),
            "cancelled": _order("sku-a"),
            "declined": _order("sku-a", payment=DECLINED_CARD),
            "unshippable": _order("sku-a", shipping_address={**ADDRESS, "country": "BR"}),
            "short": _order("sku-a", items=[{"product_id": "sku-a", "quantity": 50}]),
        }.items():
            response = await client.post("/api/orders", json=body)
            orders[name] = response.json()["order_id"]
        cancelled = await client.post(f"/api/orders/{orders['cancelled']}/cancel")
        assert cancelled.json()["status"] == "CANCELLED", cancelled.text
        await app.state.container.engine.wait(orders["completed"], timeout=5)  # its confirmation
        yield client, orders


async def test_passes_on_books_the_sagas_kept_and_serves_the_report(
    shop: tuple[httpx.AsyncClient, dict[str, str]], mongo_db: Db
) -> None:
    client, _ = shop

    report = await audit(audit_sources(mongo_db))
    served = await client.get("/api/audit", headers=ADMIN)

    assert report.ok, report.summary()
    assert report.counts["orders.COMPLETED"] == 1
    assert report.counts["orders.FAILED"] == 3
    assert report.counts["orders.CANCELLED"] == 1
    assert report.stock == {"sku-a": {"available": 7, "reserved": 2}}
    assert served.status_code == 200
    assert served.json()["ok"] is True
    assert (await client.get("/api/audit", headers={"Authorization": ""})).status_code == 401


Tamper = Callable[[Db, dict[str, str]], Awaitable[Any]]


async def _double_charge(db: Db, orders: dict[str, str]) -> None:
    charge = await db.payment_gateway_transactions.find_one({"kind": "charge", "approved": True})
    assert charge is not None
    await db.payment_gateway_transactions.insert_one(
        {**charge, "_id": "charge:another-key", "reference": "x"}
    )


async def _lose_refund(db: Db, orders: dict[str, str]) -> None:
    await db.payment_gateway_transactions.delete_many({"kind": "refund"})


async def _leak_stock(db: Db, orders: dict[str, str]) -> None:
    await db.products.update_one({"_id": "sku-a"}, {"$inc": {"available": -1, "reserved": 1}})


async def _oversell(db: Db, orders: dict[str, str]) -> None:
    await db.products.update_one({"_id": "sku-a"}, {"$set": {"available": -1}})


async def _leave_a_hold(db: Db, orders: dict[str, str]) -> None:
    await db.products.update_one({"_id": "sku-a"}, {"$set": {"holds.ord_gone": 1}})


async def _keep_a_reservation(db: Db, orders: dict[str, str]) -> None:
    await db.reservations.update_one({"_id": orders["declined"]}, {"$set": {"status": "RESERVED"}})


async def _keep_the_courier(db: Db, orders: dict[str, str]) -> None:
    await db.shipments.update_one({"_id": orders["cancelled"]}, {"$set": {"status": "SCHEDULED"}})


async def _notify_twice(db: Db, orders: dict[str, str]) -> None:
    notice = await db.notifications.find_one({"order_id": orders["completed"]})
    assert notice is not None
    await db.notifications.drop_indexes()  # the unique (order, type) index forbids this, too
    await db.notifications.insert_one({**notice, "_id": "ntf_again"})


async def _strand_an_order(db: Db, orders: dict[str, str]) -> None:
    await db.orders.update_one({"_id": orders["completed"]}, {"$set": {"status": "PENDING"}})


async def _unpay_an_order(db: Db, orders: dict[str, str]) -> None:
    await db.payments.update_one({"_id": orders["completed"]}, {"$set": {"status": "REFUNDED"}})


async def _park_a_saga(db: Db, orders: dict[str, str]) -> None:
    await db.sagas.update_one({"_id": orders["completed"]}, {"$set": {"status": "REQUIRES_ATTENTION"}})


@pytest.mark.parametrize(
    ("tamper", "code"),
    [
        (_double_charge, "money.orphan_charge"),
        (_lose_refund, "money.kept"),
        (_leak_stock, "stock.reserved_mismatch"),
        (_oversell, "stock.negative"),
        (_leave_a_hold, "stock.unfinished"),
        (_keep_a_reservation, "order.stock_leaked"),
        (_keep_the_courier, "order.courier_kept"),
        (_notify_twice, "notification.duplicate"),
        (_strand_an_order, "order.stuck"),
        (_unpay_an_order, "order.not_paid"),
    ],
)
async def test_names_each_kind_of_corruption(
    shop: tuple[httpx.AsyncClient, dict[str, str]], mongo_db: Db, tamper: Tamper, code: str
) -> None:
    _, orders = shop
    await tamper(mongo_db, orders)

    report = await audit(audit_sources(mongo_db))

    assert not report.ok
    assert code in {finding.code for finding in report.violations}, report.summary()


async def test_a_parked_saga_leaves_the_books_unsettled(
    shop: tuple[httpx.AsyncClient, dict[str, str]], mongo_db: Db
) -> None:
    _, orders = shop
    await _park_a_saga(mongo_db, orders)

    report = await audit(audit_sources(mongo_db))

    assert report.parked == [orders["completed"]]
    assert not report.settled
    assert not report.ok


async def test_the_command_exits_non_zero_on_a_violation(
    shop: tuple[httpx.AsyncClient, dict[str, str]],
    mongo_url: str,
    mongo_db: Db,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, orders = shop
    assert await run_audit(mongo_url, mongo_db.name) == 0
    assert "audit: OK" in capsys.readouterr().out
    await _notify_twice(mongo_db, orders)

    assert await run_audit(mongo_url, mongo_db.name) == 1
    assert "notification.duplicate" in capsys.readouterr().out


def test_the_command_needs_a_database_url(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SHOP_MONGODB_URL", raising=False)

    assert cli(["audit"]) == 2
    assert "--url" in capsys.readouterr().err


def test_the_command_says_which_settings_are_invalid(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SHOP_MODULES", "order")  # a split process without its service token
    monkeypatch.delenv("SHOP_SERVICE_TOKEN", raising=False)

    assert cli(["audit", "--url", "mongodb://127.0.0.1:1"]) == 2
    assert "invalid settings: SHOP_SERVICE_TOKEN is required" in capsys.readouterr().err
