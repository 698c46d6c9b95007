"""The saga operations API end to end: place orders in the real app process, read their sagas over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ADMIN_TOKEN, SERVICE_TOKEN, LiveApp
from tests.e2e.shop import DECLINED_CARD, new_product, order_body
from tests.identity_provider import customer_headers
from tests.waiting import eventually_blocking

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SERVICE = {"Authorization": f"Bearer {SERVICE_TOKEN}"}


@pytest.fixture
def http(live_app: LiveApp) -> Iterator[httpx.Client]:
    """A client of the one-process app."""
    with httpx.Client(base_url=live_app.url, timeout=30) as client:
        yield client


def place(http: httpx.Client, **overrides: Any) -> dict[str, Any]:
    """Place an order for a fresh product; return the settled order."""
    product = new_product(http, ADMIN, quantity=5)
    body = order_body(product, **overrides)
    response = http.post("/api/orders", json=body, headers=customer_headers(body["customer_id"]))
    assert response.status_code == 201, response.text
    order: dict[str, Any] = response.json()
    return order


def saga_of(http: httpx.Client, saga_id: str) -> dict[str, Any]:
    """The saga once it has finished (the notification step follows the order's outcome)."""
    saga: dict[str, Any] = eventually_blocking(
        lambda: http.get(f"/api/sagas/{saga_id}", headers=ADMIN).json(),
        lambda s: s.get("status") in ("COMPLETED", "COMPENSATED"),
    )
    return saga


def test_shows_every_step_of_the_saga_when_an_order_completes(http: httpx.Client) -> None:
    order = place(http)

    saga = saga_of(http, order["saga_id"])

    assert (saga["saga_type"], saga["status"], saga["correlation_id"]) == (
        "place-order", "COMPLETED", order["order_id"],
    )  # fmt: skip
    # place-order since version 2: no create_order step (its work is the saga's on_compensated hook)
    assert [(s["name"], s["status"]) for s in saga["steps"]] == [
        ("reserve_inventory", "SUCCEEDED"),
        ("process_payment", "SUCCEEDED"),
        ("schedule_shipping", "SUCCEEDED"),
        ("confirm_order", "SUCCEEDED"),
        ("send_confirmation", "SUCCEEDED"),
    ]
    assert all(h["duration_ms"] is not None and h["worker"] for h in saga["history"])
    assert saga["input"]["payment_token"] == "***"
    assert "4242424242424242" not in str(saga)
    assert saga["actions"] == {"retry": False, "cancel": False}


def test_shows_the_failure_and_the_compensations_when_the_card_is_declined(http: httpx.Client) -> None:
    order = place(http, payment=DECLINED_CARD)

    saga = saga_of(http, order["saga_id"])

    assert (saga["status"], saga["failure"]["code"]) == ("COMPENSATED", "payment.declined")
    assert saga["compensation"]["done"] == ["reserve_inventory", "on_compensated"]
    failed = [h for h in saga["history"] if h["status"] == "FAILED"]
    assert [(h["step"], h["error"]["code"]) for h in failed] == [("process_payment", "payment.declined")]


def test_lists_the_orders_sagas_when_filtered_by_order_id(http: httpx.Client) -> None:
    order = place(http)
    as_owner = customer_headers(order["customer_id"])
    http.post(f"/api/orders/{order['order_id']}/cancel", headers=as_owner).raise_for_status()

    page = eventually_blocking(
        lambda: http.get("/api/sagas", params={"order_id": order["order_id"]}, headers=ADMIN).json(),
        lambda p: {s["status"] for s in p["items"]} == {"COMPLETED"} and p["total"] == 2,
    )

    assert [s["saga_type"] for s in page["items"]] == ["cancel-order", "place-order"]
    completed = http.get("/api/sagas", params={"type": "cancel-order", "limit": 1}, headers=ADMIN).json()
    assert completed["items"][0]["saga_type"] == "cancel-order"


def test_refuses_operators_without_the_admin_token_or_on_finished_sagas(http: httpx.Client) -> None:
    order = place(http)
    saga_of(http, order["saga_id"])

    assert http.get("/api/sagas").status_code == 401
    assert http.get("/api/sagas", headers=SERVICE).status_code == 403
    retried = http.post(f"/api/sagas/{order['saga_id']}/retry", json={"reason": "why not"}, headers=ADMIN)
    cancelled = http.post(f"/api/sagas/{order['saga_id']}/cancel", json={"reason": "why not"}, headers=ADMIN)

    assert (retried.status_code, retried.json()["code"]) == (409, "saga.not_parked")
    assert (cancelled.status_code, cancelled.json()["code"]) == (409, "saga.not_cancellable")
    assert http.get("/api/sagas/missing-saga", headers=ADMIN).json()["code"] == "saga.not_found"
