"""The app's shutdown stores the writes its repositories left for later.

The inventory unsets a settled reservation's marks with the product's next stock move; the marks
still waiting when the app stops are unset as it stops, so a clean shutdown leaves none.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from pymongo.asynchronous.database import AsyncDatabase

from ecommerce_saga.main import create_app
from ecommerce_saga.saga import SagaEngine
from ecommerce_saga.settings import Settings
from tests.e2e.shop import ADDRESS, GOOD_CARD

ADMIN = {"Authorization": "Bearer flush-admin"}


async def test_a_clean_shutdown_leaves_no_mark_stored(
    mongo_url: str, mongo_db: AsyncDatabase[dict[str, Any]], tmp_path: Path
) -> None:
    settings = Settings(
        mongodb_url=mongo_url, mongodb_db=mongo_db.name, service_token="flush-service",
        admin_token="flush-admin", demo_catalog=False, log_level="WARNING", data_dir=tmp_path,
        metrics_port=0,
    )  # fmt: skip
    app = create_app(settings)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://shop", headers=ADMIN) as client:
            product = {
                "product_id": "sku-flush",
                "name": "F",
                "category": "t",
                "price_cents": 100,
                "quantity": 5,
            }
            assert (await client.post("/api/inventory", json=product)).status_code == 201
            order = {
                "customer_id": "cust-flush", "items": [{"product_id": "sku-flush", "quantity": 1}],
                "payment": GOOD_CARD, "shipping_address": ADDRESS, "shipping_method": "STANDARD",
            }  # fmt: skip
            placed = await client.post("/api/orders", json=order)
            assert placed.status_code in (200, 201), placed.text
            engine: SagaEngine = app.state.container.engine
            assert (await engine.wait(placed.json()["saga_id"], timeout=30)).status.value == "COMPLETED"
            stored = await mongo_db.products.find_one({"_id": "sku-flush"})
            assert stored is not None and list(stored["holds"]) == [placed.json()["order_id"]]  # waiting

    stored = await mongo_db.products.find_one({"_id": "sku-flush"})
    assert stored is not None
    assert (stored["holds"], stored["available"], stored["reserved"]) == ({}, 4, 1)
