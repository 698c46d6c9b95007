"""Helpers for the end-to-end shop tests: products and order bodies (polling: `tests.waiting`)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

GOOD_CARD = {
    "method": "CREDIT_CARD",
    "card_number": "4242424242424242",
    "expiry_month": 12,
    "expiry_year": 2031,
    "cvv": "123",
    "cardholder_name": "Grace Hopper",
}
DECLINED_CARD = {**GOOD_CARD, "card_number": "4000000000000002"}
ADDRESS = {
    "name": "Grace Hopper",
    "street": "1 Navy Way",
    "city": "Arlington",
    "state": "VA",
    "postal_code": "22202",
    "country": "US",
}


def unique(prefix: str) -> str:
    """A fresh id, so tests never share data."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def new_product(client: httpx.Client, admin: dict[str, str], quantity: int, price_cents: int = 1250) -> str:
    """Create a product with `quantity` units; return its id."""
    product_id = unique("sku")
    body = {
        "product_id": product_id,
        "name": "Widget",
        "category": "e2e",
        "price_cents": price_cents,
        "quantity": quantity,
    }
    response = client.post("/api/inventory", json=body, headers=admin)
    assert response.status_code == 201, response.text
    return product_id


def order_body(product_id: str, quantity: int = 1, **overrides: Any) -> dict[str, Any]:
    """A valid order for `quantity` of `product_id`."""
    body: dict[str, Any] = {
        "customer_id": unique("cust"),
        "items": [{"product_id": product_id, "quantity": quantity}],
        "payment": GOOD_CARD,
        "shipping_address": ADDRESS,
        "shipping_method": "STANDARD",
    }
    body.update(overrides)
    return body


def items_of(client: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    """The `items` of a list endpoint."""
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items
