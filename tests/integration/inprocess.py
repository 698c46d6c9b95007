"""The whole shop in the test's process, on the test's database, with an operator's client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from starlette.types import ASGIApp

from ecommerce_saga.main import create_app
from ecommerce_saga.settings import Settings
from tests.e2e.shop import ADDRESS, GOOD_CARD


@asynccontextmanager
async def shop_in_process(
    mongo_url: str,
    db_name: str,
    data_dir: Path,
    name: str,
    wrap: Callable[[ASGIApp], ASGIApp] | None = None,
    **settings: Any,
) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    """Start the shop (its lifespan included) on `db_name`; yield a client holding the admin
    token (``Bearer <name>-admin``) and the app. The shop stops, and its shutdown runs, on exit.
    `wrap`, if given, wraps the app as the client reaches it (an outermost middleware)."""
    values: dict[str, Any] = {
        "mongodb_url": mongo_url, "mongodb_db": db_name, "service_token": f"{name}-service",
        "admin_token": f"{name}-admin", "demo_catalog": False, "log_level": "WARNING",
        "data_dir": data_dir, "metrics_port": 0, **settings,
    }  # fmt: skip
    app = create_app(Settings(**values))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app if wrap is None else wrap(manager.app))
        headers = {"Authorization": f"Bearer {name}-admin"}
        async with httpx.AsyncClient(transport=transport, base_url="http://shop", headers=headers) as client:
            yield client, app


async def add_product(
    client: httpx.AsyncClient, product_id: str, *, quantity: int, price_cents: int = 100
) -> None:
    """Add `product_id` to the catalog through the API (the client holds the admin token)."""
    product = {"product_id": product_id, "name": product_id, "category": "t", "price_cents": price_cents}
    created = await client.post("/api/inventory", json={**product, "quantity": quantity})
    assert created.status_code == 201, created.text


def one_item_order(product_id: str, customer_id: str) -> dict[str, Any]:
    """An order body for one unit of `product_id`, paid with the good card, shipped to `ADDRESS`."""
    return {
        "customer_id": customer_id, "items": [{"product_id": product_id, "quantity": 1}],
        "payment": GOOD_CARD, "shipping_address": ADDRESS, "shipping_method": "STANDARD",
    }  # fmt: skip
