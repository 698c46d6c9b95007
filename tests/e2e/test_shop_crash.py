"""kill -9 the shop in the middle of a burst of orders: no order lost, no oversell, no double charge.

The order service (the saga coordinator: the whole app, or one of five services) runs with a
one-second saga lease. A burst of orders (some that will complete, some that
will be declined, some that cannot be shipped) is sent with Idempotency-Keys; the app is killed
with SIGKILL while their sagas are in flight, and started again on the same database. The client
then retries every request that got no answer, with the same key, as a real client would. Every
order must settle, and the books must balance across all five modules.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from ecommerce_saga.saga import SagaStatus
from ecommerce_saga.saga.stores.mongo import DEFAULT_COLLECTION as SAGA_COLLECTION
from tests.e2e.conftest import ADMIN_TOKEN, Shop, start_app, start_split
from tests.e2e.shop import ADDRESS, DECLINED_CARD, order_body, unique

STOCK = 6
ORDERS = 36
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _bodies(products: list[str]) -> list[tuple[str, dict[str, Any]]]:
    bodies = []
    for n in range(ORDERS):
        body = order_body(products[n % len(products)], quantity=1 + n % 2)
        if n % 6 == 4:
            body["payment"] = DECLINED_CARD
        if n % 6 == 5:
            body["shipping_address"] = {**ADDRESS, "country": "BR"}
        bodies.append((f"crash-{unique('key')}", body))
    return bodies


async def _send(client: httpx.AsyncClient, key: str, body: dict[str, Any]) -> str | None:
    headers = {"Idempotency-Key": key, "Prefer": "respond-async"}
    try:
        response = await client.post("/api/orders", json=body, headers=headers)
    except httpx.HTTPError:
        return None  # no answer: the client will retry with the same key
    assert response.status_code in (201, 202), response.text
    order_id: str = response.json()["order_id"]
    return order_id


async def _sagas_in_flight(mongo_url: str, db_name: str, at_least: int, timeout: float = 60) -> int:
    """Wait until the store shows `at_least` sagas running or compensating; return how many it shows."""
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    active = [str(status) for status in SagaStatus if status.is_active]
    deadline = time.monotonic() + timeout
    try:
        while True:
            count = await mongo[db_name][SAGA_COLLECTION].count_documents({"status": {"$in": active}})
            if count >= at_least or time.monotonic() > deadline:
                return count
            await asyncio.sleep(0.02)
    finally:
        await mongo.close()


async def _burst_then_kill(
    shop: Shop, bodies: list[tuple[str, dict[str, Any]]], kill: Any, mongo_url: str
) -> dict[str, str]:
    async with shop.async_client() as client:
        sends = [asyncio.create_task(_send(client, key, body)) for key, body in bodies]
        # Kill on a condition, not a timer: a loaded machine may not have started any saga yet.
        await _sagas_in_flight(mongo_url, shop.apps["order"].db_name, at_least=3)
        kill()
        answers = await asyncio.gather(*sends)
    return {key: order_id for (key, _), order_id in zip(bodies, answers, strict=True) if order_id}


def _settle(client: httpx.Client, order_ids: list[str], timeout: float = 90) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        orders = [client.get(f"/api/orders/{order_id}").json() for order_id in order_ids]
        pending = [o["order_id"] for o in orders if o["status"] not in ("COMPLETED", "FAILED")]
        if not pending or time.monotonic() > deadline:
            assert not pending, f"orders not settled: {pending}"
            return orders
        time.sleep(0.2)


def _items(client: httpx.Client, path: str, customer_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = client.get(path, params={"customer_id": customer_id, "limit": 100}).json()[
        "items"
    ]
    return items


@pytest.mark.parametrize("topology", ["monolith", "split"])
def test_balances_the_books_when_the_order_service_is_killed_mid_burst(
    mongo_url: str, tmp_path: Path, topology: str
) -> None:
    settings = {
        "SHOP_SAGA_LEASE_SECONDS": "1",
        "SHOP_SAGA_RECOVERY_INTERVAL_SECONDS": "0.5",
        "SHOP_ORDER_WAIT_SECONDS": "0",
        "SHOP_LOG_LEVEL": "WARNING",
    }
    if topology == "split":
        shop = start_split(mongo_url, tmp_path, **settings)
    else:
        app = start_app(mongo_url, tmp_path, **settings)
        shop = Shop.monolith(app)
    try:
        with shop.client() as client:
            products = [unique("sku") for _ in range(3)]
            for product in products:
                new = {
                    "product_id": product,
                    "name": "Widget",
                    "category": "crash",
                    "price_cents": 700,
                    "quantity": STOCK,
                }
                assert client.post("/api/inventory", json=new, headers=ADMIN).status_code == 201
        bodies = _bodies(products)
        coordinator = shop.apps["order"]
        answered = asyncio.run(
            _burst_then_kill(shop, bodies, lambda: coordinator.process.send_signal(signal.SIGKILL), mongo_url)
        )
        coordinator.process.wait(10)
        shop.apps["order"] = coordinator.restart()
        with shop.client() as client:
            order_ids = []
            for key, body in bodies:  # the client retries what got no answer, with the same key
                response = client.post(
                    "/api/orders", json=body, headers={"Idempotency-Key": key, "Prefer": "respond-async"}
                )
                assert response.status_code in (201, 202), response.text
                order_id = response.json()["order_id"]
                assert answered.get(key, order_id) == order_id  # a replay is the same order
                order_ids.append(order_id)
            orders = _settle(client, order_ids)
            _check_books(client, products, bodies, orders)
        interrupted = [o for o in orders if any(h["error_code"] == "saga.interrupted" for h in o["history"])]
        assert interrupted, f"the kill landed when no saga was in flight ({len(answered)}/{ORDERS} answered)"
    finally:
        for app in shop.apps.values():
            app.stop()


def _check_books(
    client: httpx.Client,
    products: list[str],
    bodies: list[tuple[str, dict[str, Any]]],
    orders: list[dict[str, Any]],
) -> None:
    completed = [o for o in orders if o["status"] == "COMPLETED"]
    assert completed and len(completed) < len(orders)  # both outcomes happened
    held = Counter()
    for order in completed:
        for item in order["items"]:
            held[item["product_id"]] += item["quantity"]
    for product in products:  # never oversold, nothing leaked or lost
        stock = client.get(f"/api/inventory/{product}").json()
        assert stock["available"] + stock["reserved"] == STOCK, stock
        assert stock["reserved"] == held[product], (product, stock, held[product])
    for (_, body), order in zip(bodies, orders, strict=True):
        payments = _items(client, "/api/payments", body["customer_id"])
        shipments = _items(client, "/api/shipping", body["customer_id"])
        notices = Counter(n["type"] for n in _items(client, "/api/notifications", body["customer_id"]))
        charged = [p for p in payments if p["status"] == "COMPLETED"]
        scheduled = [s for s in shipments if s["status"] == "SCHEDULED"]
        assert len(payments) <= 1 and len(shipments) <= 1, order["order_id"]  # never twice
        if order["status"] == "COMPLETED":
            assert [p["payment_id"] for p in charged] == [order["payment_id"]]
            assert [s["shipping_id"] for s in scheduled] == [order["shipping_id"]]
        else:
            assert charged == [] and scheduled == [], order  # a failed order keeps no money or courier
        assert all(count == 1 for count in notices.values()), notices
