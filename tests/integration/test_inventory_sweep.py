"""A process hosting the inventory gives back, when it starts, units held for orders whose
reservation never recorded a hold (`LocalInventoryService.give_back_unrecorded_holds`).

Staged: a reservation released while PENDING, then a hold a reserve still running made and never
gave back because its process died (the repository's own move, as that reserve made it).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from pymongo.asynchronous.database import AsyncDatabase

from ecommerce_saga.modules.inventory.contract import PricedItem, ReleaseItems, ReservationStatus
from ecommerce_saga.modules.inventory.repository import BeanieInventoryRepository, ReservationRecord
from tests.integration.inprocess import shop_in_process
from tests.waiting import eventually

PRODUCT = {"product_id": "sku-sweep", "name": "S", "category": "t", "price_cents": 500, "quantity": 9}


async def _stock(client: httpx.AsyncClient) -> tuple[int, int]:
    """The product's available and reserved units."""
    product: dict[str, Any] = (await client.get("/api/inventory/sku-sweep")).json()
    return product["available"], product["reserved"]


async def test_a_process_hosting_the_inventory_gives_back_stray_holds_when_it_starts(
    mongo_url: str, mongo_db: AsyncDatabase[dict[str, Any]], tmp_path: Path
) -> None:
    async with shop_in_process(mongo_url, mongo_db.name, tmp_path, "sweep") as (client, app):
        assert (await client.post("/api/inventory", json=PRODUCT)).status_code == 201
        repository = BeanieInventoryRepository()
        now = datetime.now(UTC)
        item = PricedItem(product_id="sku-sweep", name="", quantity=2, price_cents=0, line_total_cents=0)
        await repository.add_reservation(
            ReservationRecord(
                order_id="ord-sweep", reservation_id="res_ord-sweep", status=ReservationStatus.PENDING,
                items=[item], total_cents=0, currency="USD", created_at=now, updated_at=now,
            )
        )  # fmt: skip
        inventory = app.state.container.inventory
        released = await inventory.release(ReleaseItems(order_id="ord-sweep", idempotency_key="k"))
        assert released.status is ReservationStatus.RELEASED
        await repository.hold("ord-sweep", "sku-sweep", 2)  # the reserve still holding; then it died
        assert await _stock(client) == (7, 2)

    def all_back(stock: tuple[int, int]) -> bool:
        return stock == (9, 0)

    async with shop_in_process(mongo_url, mongo_db.name, tmp_path, "sweep") as (client, _):
        assert all_back(await eventually(lambda: _stock(client), all_back, what="the units are back"))
