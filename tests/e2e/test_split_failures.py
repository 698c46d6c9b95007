"""Split topology under failure: a participant service down or frozen when the saga reaches it.

Placing an order needs the inventory service (prices) and the payment service (the card is
tokenized before the saga starts), so the outages here hit the services the saga reaches later:
shipping (down, then back) and notification (frozen: requests queue unanswered, time out, and
are all answered at once when it thaws — duplicates included).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Shop, start_split
from tests.e2e.shop import ADDRESS, items_of, new_product, order_body, unique
from tests.waiting import eventually_blocking


@pytest.fixture(scope="module")
def fragile_shop(mongo_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    """Five services with short HTTP timeouts and a long retry budget, so outages are ridden out."""
    shop = start_split(
        mongo_url, tmp_path_factory.mktemp("fragile"),
        SHOP_HTTP_TIMEOUT_SECONDS="1", SHOP_SAGA_STEP_ATTEMPTS="40", SHOP_ORDER_WAIT_SECONDS="0.5",
    )  # fmt: skip
    try:
        yield shop
    finally:
        for app in shop.apps.values():
            app.stop()


@pytest.fixture
def shop_client(fragile_shop: Shop) -> Iterator[httpx.Client]:
    with fragile_shop.client() as http:
        yield http


def _failed_attempts(client: httpx.Client, order_id: str, step: str) -> int:
    history = client.get(f"/api/orders/{order_id}").json()["history"]
    return sum(1 for h in history if h["step"] == step and h["phase"] == "action" and h["status"] == "FAILED")


def _place(client: httpx.Client, body: dict[str, Any]) -> str:
    response = client.post("/api/orders", json=body, headers={"Prefer": "respond-async"})
    assert response.status_code == 202, response.text
    order_id: str = response.json()["order_id"]
    return order_id


def _settled(
    client: httpx.Client, order_id: str, statuses: tuple[str, ...] = ("COMPLETED", "FAILED")
) -> dict[str, Any]:
    order: dict[str, Any] = eventually_blocking(
        lambda: client.get(f"/api/orders/{order_id}").json(), lambda o: o["status"] in statuses, timeout=60
    )
    return order


def _customer(client: httpx.Client, kind: str, customer_id: str) -> list[dict[str, Any]]:
    return items_of(client, f"/api/{kind}", customer_id=customer_id)


def test_completes_once_when_the_shipping_service_comes_back(
    fragile_shop: Shop, shop_client: httpx.Client, admin_headers: dict[str, str]
) -> None:
    product = new_product(shop_client, admin_headers, quantity=3)
    body = order_body(product)
    fragile_shop.apps["shipping"].stop()
    try:
        order_id = _place(shop_client, body)
        retries = eventually_blocking(
            lambda: _failed_attempts(shop_client, order_id, "schedule_shipping"), lambda n: n >= 2
        )
        assert retries >= 2
        assert shop_client.get(f"/api/orders/{order_id}").json()["status"] == "PENDING"
    finally:
        fragile_shop.apps["shipping"] = fragile_shop.apps["shipping"].restart()
    order = _settled(shop_client, order_id)
    assert order["status"] == "COMPLETED"
    customer = body["customer_id"]
    assert [p["status"] for p in _customer(shop_client, "payments", customer)] == ["COMPLETED"]
    assert [s["shipping_id"] for s in _customer(shop_client, "shipping", customer)] == [order["shipping_id"]]
    notes = eventually_blocking(lambda: _customer(shop_client, "notifications", customer), bool)
    assert [n["type"] for n in notes] == ["ORDER_CONFIRMED"]


def test_refunds_once_when_the_shipping_service_comes_back_and_refuses(
    fragile_shop: Shop, shop_client: httpx.Client, admin_headers: dict[str, str]
) -> None:
    product = new_product(shop_client, admin_headers, quantity=2)
    body = order_body(product, shipping_address={**ADDRESS, "country": "BR"})
    fragile_shop.apps["shipping"].stop()
    try:
        order_id = _place(shop_client, body)
        eventually_blocking(
            lambda: _failed_attempts(shop_client, order_id, "schedule_shipping"), lambda n: n >= 1
        )
    finally:
        fragile_shop.apps["shipping"] = fragile_shop.apps["shipping"].restart()
    order = _settled(shop_client, order_id)
    assert (order["status"], order["failure_reason"]) == ("FAILED", "SHIPPING_UNAVAILABLE")
    stock = shop_client.get(f"/api/inventory/{product}").json()
    assert (stock["available"], stock["reserved"]) == (2, 0)
    assert [p["status"] for p in _customer(shop_client, "payments", body["customer_id"])] == ["REFUNDED"]


def test_notifies_once_when_the_notification_service_is_frozen_for_a_while(
    fragile_shop: Shop, shop_client: httpx.Client, admin_headers: dict[str, str]
) -> None:
    product = new_product(shop_client, admin_headers, quantity=3)
    body = order_body(product, contact_email=f"{unique('frozen')}@example.com")  # mailed to the outbox
    notification = fragile_shop.apps["notification"].process
    os.kill(notification.pid, signal.SIGSTOP)
    try:
        order_id = _place(shop_client, body)
        order = _settled(shop_client, order_id, ("COMPLETED",))  # confirmation is best effort: never blocks
        timeouts = eventually_blocking(
            lambda: _failed_attempts(shop_client, order_id, "send_confirmation"), lambda n: n >= 2
        )
        assert timeouts >= 2
    finally:
        os.kill(notification.pid, signal.SIGCONT)
    confirmed = eventually_blocking(
        lambda: shop_client.get(f"/api/orders/{order_id}").json()["history"],
        lambda h: any(e["step"] == "send_confirmation" and e["status"] == "SUCCEEDED" for e in h),
        timeout=60,
    )
    assert confirmed
    notes = _customer(shop_client, "notifications", body["customer_id"])
    assert [(n["type"], n["status"]) for n in notes] == [("ORDER_CONFIRMED", "SENT")]
    assert order["status"] == "COMPLETED"
    assert len(_customer(shop_client, "payments", body["customer_id"])) == 1
