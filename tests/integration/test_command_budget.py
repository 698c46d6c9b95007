"""Database commands per order: a successful order and each failure branch stay within a budget.

Counted, not timed: every command the app sends to its database while one order is placed and its
saga runs to the end (the confirmation or failure notice included) is seen by a PyMongo
`CommandListener`, on the embedded database. The budgets are what the order path needs today; a
change that adds a read-back or a write shows here as a failure, with the commands listed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from ecommerce_saga.saga import SagaEngine
from tests.commands import COMMANDS
from tests.e2e.shop import ADDRESS, DECLINED_CARD, GOOD_CARD
from tests.integration.inprocess import shop_in_process

SUCCESS_BUDGET = 10
"""Commands for an order that completes (its confirmation included)."""
THREE_PRODUCTS_BUDGET = 13
"""Commands for an order of three products that completes (a hold per product; the first order of
two of them, so their catalog prices are read once)."""
FAILURE_BUDGETS = {"out_of_stock": 9, "declined": 13, "unshippable": 16}
"""Commands for an order that fails, by branch (its compensations and failure notice included)."""
CANCELLATION_BUDGET = 14
"""Commands for the cancellation of a completed order (its refund, release and notice included):
the saga's 2 writes (cancel-order saves its retriable steps with its final write), 9 for the
participants, the order's two updates, and 3 reads of the order and its sagas by the request."""

ADMIN = {"Authorization": "Bearer budget-admin"}


def _order(**overrides: Any) -> dict[str, Any]:
    body = {
        "customer_id": "cust-budget",
        "items": [{"product_id": "sku-budget", "quantity": 1}],
        "payment": GOOD_CARD,
        "shipping_address": ADDRESS,
        "shipping_method": "STANDARD",
    }
    return {**body, **overrides}


BRANCHES = {
    "out_of_stock": _order(items=[{"product_id": "sku-budget", "quantity": 500}]),
    "declined": _order(payment=DECLINED_CARD),
    "unshippable": _order(shipping_address={**ADDRESS, "country": "BR"}),
}


@pytest.fixture
async def shop(
    mongo_url: str, mongo_db: AsyncDatabase[dict[str, Any]], tmp_path: Path
) -> AsyncIterator[tuple[httpx.AsyncClient, SagaEngine]]:
    """The monolith in-process, with a product in stock; recovery passes kept out of the count."""
    async with shop_in_process(
        mongo_url, mongo_db.name, tmp_path, "budget", saga_recovery_interval_seconds=3600
    ) as (client, app):
        product = {
            "product_id": "sku-budget",
            "name": "B",
            "category": "t",
            "price_cents": 700,
            "quantity": 50,
        }
        for product_id in ("sku-budget", "sku-budget-2", "sku-budget-3"):
            created = await client.post("/api/inventory", json={**product, "product_id": product_id})
            assert created.status_code == 201, created.text
        engine: SagaEngine = app.state.container.engine
        await _place(client, engine, _order())  # warm-up: caches, indexes, first connections
        COMMANDS.database = mongo_db.name
        try:
            yield client, engine
        finally:
            COMMANDS.database = None


async def _place(client: httpx.AsyncClient, engine: SagaEngine, body: dict[str, Any]) -> dict[str, Any]:
    """Place an order and wait until its saga has ended (its notice sent); return the order."""
    response = await client.post("/api/orders", json=body)
    assert response.status_code in (200, 201), response.text
    order: dict[str, Any] = response.json()
    state = await engine.wait(order["saga_id"], timeout=30)
    assert not state.status.is_active, state.status
    return order


async def _count(
    client: httpx.AsyncClient, engine: SagaEngine, body: dict[str, Any]
) -> tuple[str, Counter[str]]:
    COMMANDS.seen.clear()
    order = await _place(client, engine, body)
    return order["status"], Counter(COMMANDS.seen)


def _listing(seen: Counter[str]) -> str:
    return ", ".join(f"{name} x{n}" for name, n in seen.most_common())


async def test_a_successful_order_stays_within_its_command_budget(
    shop: tuple[httpx.AsyncClient, SagaEngine],
) -> None:
    status, seen = await _count(*shop, _order())

    assert status == "COMPLETED"
    assert seen.total() <= SUCCESS_BUDGET, f"{seen.total()} commands: {_listing(seen)}"


async def test_an_order_of_three_products_stays_within_its_command_budget(
    shop: tuple[httpx.AsyncClient, SagaEngine],
) -> None:
    items = [{"product_id": p, "quantity": 1} for p in ("sku-budget", "sku-budget-2", "sku-budget-3")]
    status, seen = await _count(*shop, _order(items=items))

    assert status == "COMPLETED"
    assert seen.total() <= THREE_PRODUCTS_BUDGET, f"{seen.total()} commands: {_listing(seen)}"


@pytest.mark.parametrize("branch", sorted(BRANCHES))
async def test_a_failed_order_stays_within_its_branch_budget(
    shop: tuple[httpx.AsyncClient, SagaEngine], branch: str
) -> None:
    status, seen = await _count(*shop, BRANCHES[branch])

    assert status == "FAILED"
    assert seen.total() <= FAILURE_BUDGETS[branch], f"{seen.total()} commands: {_listing(seen)}"


async def test_a_cancellation_stays_within_its_budget(shop: tuple[httpx.AsyncClient, SagaEngine]) -> None:
    client, engine = shop
    order = await _place(client, engine, _order())
    COMMANDS.seen.clear()

    response = await client.post(f"/api/orders/{order['order_id']}/cancel")
    assert response.status_code in (200, 201, 202), response.text
    state = await engine.wait(f"{order['order_id']}-cancel", timeout=30)
    seen = Counter(COMMANDS.seen)

    assert state.status.value == "COMPLETED", state.status
    assert (await client.get(f"/api/orders/{order['order_id']}")).json()["status"] == "CANCELLED"
    assert seen.total() <= CANCELLATION_BUDGET, f"{seen.total()} commands: {_listing(seen)}"
