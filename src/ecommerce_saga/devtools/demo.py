"""`ecommerce-saga demo`: a walk-through of four orders against a running server."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

import httpx

logger = logging.getLogger(__name__)

_ADDRESS = {
    "name": "Ada Lovelace",
    "street": "12 St James's Square",
    "city": "London",
    "postal_code": "SW1Y 4JH",
    "country": "GB",
}
_CARD = {
    "method": "CREDIT_CARD",
    "card_number": "4242424242424242",
    "expiry_month": 12,
    "expiry_year": 2030,
    "cvv": "123",
    "cardholder_name": "Ada Lovelace",
}

DEMO_CUSTOMER = "cust-ada"
"""Whose token the demo orders with (the orders carry no `customer_id`: it is the token's)."""
DEMO_EMAIL = "ada@example.com"
"""The `email` of the demo customer's token: where the shop tells her about her orders."""

DEMO_ORDERS: list[tuple[str, dict[str, Any]]] = [
    (
        "a successful order",
        {
            "items": [
                {"product_id": "sku-keyboard", "quantity": 1},
                {"product_id": "sku-mouse", "quantity": 2},
            ],
            "payment": _CARD,
            "shipping_address": _ADDRESS,
            "shipping_method": "EXPRESS",
        },
    ),
    (
        "an item out of stock",
        {
            "items": [{"product_id": "sku-vintage-camera", "quantity": 1}],
            "payment": _CARD,
            "shipping_address": _ADDRESS,
        },
    ),
    (
        "a declined card",
        {
            "items": [{"product_id": "sku-monitor", "quantity": 1}],
            "payment": {**_CARD, "card_number": "4000000000000002"},
            "shipping_address": _ADDRESS,
        },
    ),
    (
        "an undeliverable country",
        {
            "items": [{"product_id": "sku-webcam", "quantity": 1}],
            "payment": _CARD,
            "shipping_address": {**_ADDRESS, "country": "BR", "city": "São Paulo"},
        },
    ),
]


def _print_order(title: str, status_code: int, order: dict[str, Any], out: TextIO) -> None:
    outcome = order.get("status", "?")
    reason = (
        f" ({order['failure_reason']}: {order.get('failure_detail')})" if order.get("failure_reason") else ""
    )
    out.write(f"\n== {title}: HTTP {status_code}, order {order.get('order_id')} {outcome}{reason}\n")
    out.write(f"   total {order.get('total_cents', 0) / 100:.2f} {order.get('currency', '')}")
    if order.get("tracking_number"):
        out.write(f", tracking {order['tracking_number']}, arrives {order.get('estimated_delivery')}")
    out.write("\n")
    for entry in order.get("history", []):
        error = f"  [{entry['error_code']}] {entry['error']}" if entry.get("error_code") else ""
        duration = f"{entry['duration_ms']:.1f} ms" if entry.get("duration_ms") is not None else "…"
        out.write(
            f"   {entry['phase']:<12} {entry['step']:<20} #{entry['attempt']} "
            f"{entry['status']:<9} {duration:>9}{error}\n"
        )


def _notice_of(client: httpx.Client, order_id: str, wait_seconds: float) -> dict[str, Any] | None:
    """The order's notification once it was sent or refused (None if none within `wait_seconds`)."""
    deadline = time.monotonic() + wait_seconds
    while True:
        response = client.get("/api/notifications", params={"limit": 100})
        if response.status_code == 404:  # split: the notification service is on another port
            return None
        if response.status_code == 200:
            for notice in response.json()["items"]:
                if notice["order_id"] == order_id and notice["status"] != "PENDING":
                    return dict(notice)
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.2)


def _print_notice(notice: dict[str, Any] | None, out: TextIO) -> None:
    if notice is None:
        out.write("   email: not known here yet (see GET /api/notifications on the notification service)\n")
        return
    out.write(
        f"   email {notice['type']} to {notice.get('recipient') or 'nobody'}: {notice['status']}"
        f" — {notice.get('delivery_reply') or ''}\n"
    )


def run_demo(base_url: str, token: str, out: TextIO = sys.stdout, notice_wait_seconds: float = 10.0) -> int:
    """Place the four demo orders as the customer of `token` and print their outcomes; 0 on success."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base_url, timeout=30, headers=headers) as client:
        try:
            client.get("/healthz").raise_for_status()
        except httpx.HTTPError as exc:
            out.write(f"cannot reach {base_url}: {exc}\nStart the server first: make run\n")
            return 1
        for title, body in DEMO_ORDERS:
            response = client.post("/api/orders", json=body)
            order = response.json()
            if response.status_code >= 400:
                out.write(
                    f"\n== {title}: HTTP {response.status_code} {order.get('code')}: {order.get('detail')}\n"
                )
                continue
            if response.status_code == 202:
                order = client.get(response.headers["Location"]).json()
            _print_order(title, response.status_code, order, out)
            _print_notice(_notice_of(client, order["order_id"], notice_wait_seconds), out)
    return 0
