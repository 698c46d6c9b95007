"""The shop end to end: a real app process, real HTTP, the embedded database."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.e2e.conftest import Shop
from tests.e2e.shop import DECLINED_CARD, items_of, new_product, order_body
from tests.waiting import eventually_blocking


def _steps(order: dict[str, object]) -> list[tuple[str, str, str]]:
    history = order["history"]
    assert isinstance(history, list)
    return [(h["phase"], h["step"], h["status"]) for h in history]


def _stock(client: httpx.Client, product_id: str) -> tuple[int, int]:
    product = client.get(f"/api/inventory/{product_id}").json()
    return product["available"], product["reserved"]


def test_completes_and_touches_every_module_when_all_goes_well(
    client: httpx.Client, admin_headers: dict[str, str]
) -> None:
    product = new_product(client, admin_headers, quantity=5, price_cents=1999)
    body = order_body(product, quantity=2, shipping_method="EXPRESS")
    response = client.post("/api/orders", json=body)
    assert response.status_code == 201, response.text
    order = response.json()
    assert order["status"] == "COMPLETED"
    assert order["total_cents"] == 3998
    assert order["items"][0]["price_cents"] == 1999
    assert order["payment"] == {"method": "CREDIT_CARD", "brand": "visa", "last4": "4242"}
    assert order["tracking_number"] and order["payment_id"] and order["shipping_id"]
    # The answer comes once the order is settled; the best-effort confirmation may still be going.
    order = eventually_blocking(
        lambda: client.get(f"/api/orders/{order['order_id']}").json(),
        lambda o: ("action", "send_confirmation", "SUCCEEDED") in _steps(o),
    )
    # place-order since version 2: no create_order step (its work is the saga's on_compensated hook)
    assert [s for s in _steps(order) if s[2] == "SUCCEEDED"] == [
        ("action", "reserve_inventory", "SUCCEEDED"),
        ("action", "process_payment", "SUCCEEDED"),
        ("action", "schedule_shipping", "SUCCEEDED"),
        ("action", "confirm_order", "SUCCEEDED"),
        ("action", "send_confirmation", "SUCCEEDED"),
    ]
    assert _stock(client, product) == (3, 2)
    payment = client.get(f"/api/payments/{order['payment_id']}").json()
    assert (payment["status"], payment["amount_cents"], payment["last4"]) == ("COMPLETED", 3998, "4242")
    shipment = client.get(f"/api/shipping/{order['shipping_id']}").json()
    assert (shipment["status"], shipment["method"]) == ("SCHEDULED", "EXPRESS")
    notes = items_of(client, "/api/notifications", customer_id=body["customer_id"])
    assert [n["type"] for n in notes] == ["ORDER_CONFIRMED"]
    assert "4242424242424242" not in response.text


def test_shows_a_products_reservations_to_operators_only(
    shop: Shop, client: httpx.Client, admin_headers: dict[str, str]
) -> None:
    product = new_product(client, admin_headers, quantity=5)
    order = client.post("/api/orders", json=order_body(product, quantity=2)).json()
    assert order["status"] == "COMPLETED", order

    seen_by_operator = client.get(f"/api/inventory/{product}").json()
    with shop.client(token=None) as anonymous:
        seen_by_anyone = anonymous.get(f"/api/inventory/{product}").json()

    assert seen_by_operator["reservations"] == [{"order_id": order["order_id"], "quantity": 2}]
    assert seen_by_anyone["reservations"] == []
    assert (seen_by_anyone["available"], seen_by_anyone["reserved"]) == (3, 2)


def test_fails_with_nothing_to_undo_when_out_of_stock(
    client: httpx.Client, admin_headers: dict[str, str]
) -> None:
    product = new_product(client, admin_headers, quantity=1)
    body = order_body(product, quantity=2)
    order = client.post("/api/orders", json=body).json()
    assert (order["status"], order["failure_reason"]) == ("FAILED", "INVENTORY_UNAVAILABLE")
    assert order["failure_detail"]
    assert ("compensation", "reserve_inventory", "SUCCEEDED") not in _steps(order)
    assert _stock(client, product) == (1, 0)
    assert items_of(client, "/api/payments", customer_id=body["customer_id"]) == []
    notes = eventually_blocking(
        lambda: items_of(client, "/api/notifications", customer_id=body["customer_id"]), bool
    )
    assert [n["type"] for n in notes] == ["ORDER_FAILED"]


def test_releases_items_when_payment_is_declined(client: httpx.Client, admin_headers: dict[str, str]) -> None:
    product = new_product(client, admin_headers, quantity=4)
    body = order_body(product, quantity=3, payment=DECLINED_CARD)
    order = client.post("/api/orders", json=body).json()
    assert (order["status"], order["failure_reason"]) == ("FAILED", "PAYMENT_DECLINED")
    assert ("compensation", "reserve_inventory", "SUCCEEDED") in _steps(order)
    assert _stock(client, product) == (4, 0)
    payments = items_of(client, "/api/payments", customer_id=body["customer_id"])
    assert [(p["status"], p["decline_code"]) for p in payments] == [("DECLINED", "card_declined")]
    assert items_of(client, "/api/shipping", customer_id=body["customer_id"]) == []


def test_refunds_and_releases_when_shipping_is_unavailable(
    client: httpx.Client, admin_headers: dict[str, str]
) -> None:
    product = new_product(client, admin_headers, quantity=2)
    body = order_body(product, shipping_address={**order_body(product)["shipping_address"], "country": "BR"})
    order = client.post("/api/orders", json=body).json()
    assert (order["status"], order["failure_reason"]) == ("FAILED", "SHIPPING_UNAVAILABLE")
    undone = lambda o: [s[1] for s in _steps(o) if s[0] == "compensation" and s[2] == "SUCCEEDED"]  # noqa: E731
    order = eventually_blocking(
        lambda: client.get(f"/api/orders/{order['order_id']}").json(), lambda o: len(undone(o)) == 3
    )
    assert undone(order) == ["process_payment", "reserve_inventory", "on_compensated"]
    assert _stock(client, product) == (2, 0)
    payments = items_of(client, "/api/payments", customer_id=body["customer_id"])
    assert [p["status"] for p in payments] == ["REFUNDED"]
    notes = eventually_blocking(
        lambda: items_of(client, "/api/notifications", customer_id=body["customer_id"]), bool
    )
    assert [n["type"] for n in notes] == ["ORDER_FAILED"]


def test_returns_the_same_order_when_replayed_with_the_same_key(
    client: httpx.Client, admin_headers: dict[str, str]
) -> None:
    product = new_product(client, admin_headers, quantity=5)
    body = order_body(product)
    key = {"Idempotency-Key": f"key-{product}"}
    first = client.post("/api/orders", json=body, headers=key)
    second = client.post("/api/orders", json=body, headers=key)
    assert first.status_code == second.status_code == 201
    assert first.json()["order_id"] == second.json()["order_id"]
    assert ("idempotent-replayed" not in first.headers, second.headers["Idempotent-Replayed"]) == (
        True,
        "true",
    )
    assert len(items_of(client, "/api/payments", customer_id=body["customer_id"])) == 1
    assert _stock(client, product) == (4, 1)
    other = client.post(
        "/api/orders", json={**body, "items": [{"product_id": product, "quantity": 2}]}, headers=key
    )
    assert other.status_code == 422
    assert other.headers["content-type"] == "application/problem+json"
    assert other.json()["code"] == "order.idempotency_key_reused"


def test_has_the_effect_of_once_when_saga_endpoints_are_replayed(
    client: httpx.Client, admin_headers: dict[str, str], service_headers: dict[str, str]
) -> None:
    product = new_product(client, admin_headers, quantity=5)
    order = client.post("/api/orders", json=order_body(product, quantity=2)).json()
    oid, customer = order["order_id"], order["customer_id"]
    key = f"{oid}:replay"
    calls = [
        (
            "/api/inventory/reserve",
            {"order_id": oid, "items": [{"product_id": product, "quantity": 2}], "idempotency_key": key},
        ),
        (
            "/api/shipping/schedule",
            {
                "order_id": oid,
                "customer_id": customer,
                "address": order["shipping_address"],
                "method": "STANDARD",
                "idempotency_key": key,
            },
        ),
        (
            "/api/notifications/send",
            {"order_id": oid, "customer_id": customer, "type": "ORDER_CONFIRMED", "idempotency_key": key},
        ),
    ]
    for path, payload in calls:
        for _ in range(2):
            response = client.post(path, json=payload, headers=service_headers)
            assert response.status_code == 200, (path, response.text)
    assert _stock(client, product) == (3, 2)
    assert len(items_of(client, "/api/shipping", customer_id=customer)) == 1
    assert len(items_of(client, "/api/notifications", customer_id=customer)) == 1
    for path, payload in [
        ("/api/payments/refund", {"order_id": oid, "idempotency_key": key}),
        ("/api/inventory/release", {"order_id": oid, "idempotency_key": key}),
        ("/api/shipping/cancel", {"order_id": oid, "idempotency_key": key}),
    ]:
        first = client.post(path, json=payload, headers=service_headers)
        second = client.post(path, json=payload, headers=service_headers)
        assert first.status_code == second.status_code == 200, (path, first.text)
        assert first.json() == second.json()
    assert _stock(client, product) == (5, 0)
    payments = items_of(client, "/api/payments", customer_id=customer)
    assert [p["status"] for p in payments] == ["REFUNDED"]
    assert (
        client.post("/api/inventory/reserve", json=calls[0][1], headers={"Authorization": ""}).status_code
        == 401
    )
    assert client.post("/api/inventory/reserve", json=calls[0][1]).status_code == 403  # an operator


def test_undoes_everything_when_the_customer_cancels(
    client: httpx.Client, admin_headers: dict[str, str]
) -> None:
    product = new_product(client, admin_headers, quantity=3)
    body = order_body(product, quantity=2)
    order = client.post("/api/orders", json=body).json()
    assert order["status"] == "COMPLETED"
    cancelled = client.post(f"/api/orders/{order['order_id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    final = eventually_blocking(
        lambda: client.get(f"/api/orders/{order['order_id']}").json(), lambda o: o["status"] == "CANCELLED"
    )
    assert final["status"] == "CANCELLED"
    assert _stock(client, product) == (3, 0)
    assert client.get(f"/api/payments/{order['payment_id']}").json()["status"] == "REFUNDED"
    assert client.get(f"/api/shipping/{order['shipping_id']}").json()["status"] == "CANCELLED"
    notes = eventually_blocking(
        lambda: items_of(client, "/api/notifications", customer_id=body["customer_id"]), lambda n: len(n) == 2
    )
    assert sorted(n["type"] for n in notes) == ["ORDER_CANCELLED", "ORDER_CONFIRMED"]
    again = client.post(f"/api/orders/{order['order_id']}/cancel")
    assert again.status_code == 409
    assert again.json()["code"] == "order.not_cancellable"


def test_refuses_to_cancel_when_the_order_failed(client: httpx.Client, admin_headers: dict[str, str]) -> None:
    product = new_product(client, admin_headers, quantity=0)
    order = client.post("/api/orders", json=order_body(product)).json()
    response = client.post(f"/api/orders/{order['order_id']}/cancel")
    assert response.status_code == 409


def test_answers_202_with_a_location_when_asked_to_respond_async(
    client: httpx.Client, admin_headers: dict[str, str]
) -> None:
    product = new_product(client, admin_headers, quantity=2)
    response = client.post("/api/orders", json=order_body(product), headers={"Prefer": "respond-async"})
    assert response.status_code == 202
    location = response.headers["Location"]
    final = eventually_blocking(lambda: client.get(location).json(), lambda o: o["status"] == "COMPLETED")
    assert final["status"] == "COMPLETED"


def test_refuses_the_order_when_the_price_changed(
    client: httpx.Client, admin_headers: dict[str, str]
) -> None:
    product = new_product(client, admin_headers, quantity=2, price_cents=500)
    response = client.post("/api/orders", json=order_body(product, expected_total_cents=400))
    assert response.status_code == 409
    assert response.json()["code"] == "order.price_changed"
    assert client.post("/api/orders", json=order_body(product, expected_total_cents=500)).status_code == 201


def test_rejects_a_card_that_fails_the_luhn_check(
    client: httpx.Client, admin_headers: dict[str, str]
) -> None:
    product = new_product(client, admin_headers, quantity=2)
    body = order_body(product, payment={**order_body(product)["payment"], "card_number": "4242424242424241"})
    response = client.post("/api/orders", json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "4242424242424241" not in response.text


def test_fails_with_inventory_unavailable_when_the_product_is_unknown(client: httpx.Client) -> None:
    order = client.post("/api/orders", json=order_body("sku-does-not-exist")).json()
    assert (order["status"], order["failure_reason"]) == ("FAILED", "INVENTORY_UNAVAILABLE")


@pytest.mark.parametrize(
    "path",
    [
        '/api/orders?customer_id={"$ne":null}',
        "/api/orders?status[$ne]=x&status=$where",
        '/api/payments?customer_id={"$gt":""}',
        "/api/inventory?category=$where",
        "/api/orders/$where",
    ],
)
def test_rejects_operators_when_smuggled_in_the_query(client: httpx.Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_rejects_operators_when_smuggled_in_the_body(
    client: httpx.Client, admin_headers: dict[str, str]
) -> None:
    product = new_product(client, admin_headers, quantity=1)
    body = order_body(product)
    for bad in ({"customer_id": {"$ne": None}}, {"items": [{"product_id": {"$gt": ""}, "quantity": 1}]}):
        response = client.post("/api/orders", json={**body, **bad})
        assert response.status_code == 422
    assert _stock(client, product) == (1, 0)


async def test_never_oversells_when_many_orders_race(
    shop: Shop, client: httpx.Client, admin_headers: dict[str, str]
) -> None:
    stock = 5
    product = new_product(client, admin_headers, quantity=stock)
    async with shop.async_client() as http:
        responses = await asyncio.gather(
            *(http.post("/api/orders", json=order_body(product)) for _ in range(24))
        )
    orders = [r.json() for r in responses]
    assert all(r.status_code in (201, 202) for r in responses)
    finals = [
        eventually_blocking(
            lambda o=o: client.get(f"/api/orders/{o['order_id']}").json(),
            lambda x: x["status"] in ("COMPLETED", "FAILED"),
        )
        for o in orders
    ]
    completed = [o for o in finals if o["status"] == "COMPLETED"]
    assert len(completed) == stock
    assert {o["failure_reason"] for o in finals if o["status"] == "FAILED"} == {"INVENTORY_UNAVAILABLE"}
    available, reserved = _stock(client, product)
    assert (available, reserved) == (0, stock)
    assert available + reserved == stock


def test_lists_a_customers_orders_by_status_when_asked(
    client: httpx.Client, admin_headers: dict[str, str]
) -> None:
    product = new_product(client, admin_headers, quantity=1)
    body = order_body(product)
    first = client.post("/api/orders", json=body).json()
    second = client.post("/api/orders", json=body).json()  # out of stock now
    assert (first["status"], second["status"]) == ("COMPLETED", "FAILED")
    everything = client.get("/api/orders", params={"customer_id": body["customer_id"]}).json()
    assert everything["total"] == 2
    assert {o["order_id"] for o in everything["items"]} == {first["order_id"], second["order_id"]}
    failed = client.get("/api/orders", params={"customer_id": body["customer_id"], "status": "FAILED"}).json()
    assert [o["order_id"] for o in failed["items"]] == [second["order_id"]]
    page = client.get(
        "/api/orders", params={"customer_id": body["customer_id"], "limit": 1, "skip": 1}
    ).json()
    assert (page["total"], len(page["items"]), page["limit"], page["skip"]) == (2, 1, 1, 1)
    assert client.get("/api/orders", params={"limit": 1000}).status_code == 422


def test_creates_and_cancels_through_the_saga_endpoints_when_called_with_the_service_token(
    client: httpx.Client, admin_headers: dict[str, str], service_headers: dict[str, str]
) -> None:
    product = new_product(client, admin_headers, quantity=2)
    body = {"order": order_body(product), "idempotency_key": f"create-{product}"}
    assert client.post("/api/orders/create", json=body, headers={"Authorization": ""}).status_code == 401
    assert client.post("/api/orders/create", json=body).status_code == 403  # an operator is not the service
    created = client.post("/api/orders/create", json=body, headers=service_headers)
    assert created.status_code == 200, created.text
    order_id = created.json()["order_id"]
    again = client.post("/api/orders/create", json=body, headers=service_headers).json()
    assert again["order_id"] == order_id
    completed = eventually_blocking(
        lambda: client.get(f"/api/orders/{order_id}").json(), lambda o: o["status"] == "COMPLETED"
    )
    assert completed["status"] == "COMPLETED"
    cancel = client.post("/api/orders/cancel", json={"order_id": order_id}, headers=service_headers)
    assert cancel.status_code == 200, cancel.text
    final = eventually_blocking(
        lambda: client.get(f"/api/orders/{order_id}").json(), lambda o: o["status"] == "CANCELLED"
    )
    assert final["status"] == "CANCELLED"
    assert _stock(client, product) == (2, 0)
