"""The inventory module's read port for the audit, on its own collections (`InventoryBooks`).

It reads the raw documents, not the Beanie models: the audit must see what a corrupted record
holds, and runs where the module is not hosted (the `audit` command, the order process).
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from ecommerce_saga.modules.inventory.contract import HeldQuantity, ReservationEntry, StockEntry
from ecommerce_saga.modules.inventory.documents import ProductDocument, ReservationDocument


class MongoInventoryBooks:
    """`InventoryBooks` on the `products` and `reservations` collections of `db`."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._products = db[ProductDocument.Settings.name]
        self._reservations = db[ReservationDocument.Settings.name]

    async def stock(self) -> list[StockEntry]:
        """See `InventoryBooks.stock`."""
        return [
            StockEntry(
                product_id=doc["_id"],
                available=doc.get("available", 0),
                reserved=doc.get("reserved", 0),
                pending_holds=sorted(doc.get("holds") or {}),
                pending_releases=sorted(doc.get("releases") or {}),
            )
            async for doc in self._products.find({})
        ]

    async def reservations(self) -> list[ReservationEntry]:
        """See `InventoryBooks.reservations`."""
        return [
            ReservationEntry(
                order_id=doc["_id"],
                status=_text(doc.get("status")),
                items=[
                    HeldQuantity(product_id=item["product_id"], quantity=item["quantity"])
                    for item in doc.get("items", [])
                ],
            )
            async for doc in self._reservations.find({})
        ]


def _text(value: object) -> str | None:
    return None if value is None else str(value)
