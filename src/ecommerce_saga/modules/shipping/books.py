"""The shipping module's read port for the audit, on its own collection (`ShippingBooks`).

It reads the raw documents, not the Beanie models: the audit must see what a corrupted record
holds, and runs where the module is not hosted (the `audit` command, the order process).
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from ecommerce_saga.modules.shipping.contract import ShipmentEntry
from ecommerce_saga.modules.shipping.documents import ShipmentDocument


class MongoShippingBooks:
    """`ShippingBooks` on the `shipments` collection of `db`."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._shipments = db[ShipmentDocument.Settings.name]

    async def shipments(self) -> list[ShipmentEntry]:
        """See `ShippingBooks.shipments`."""
        return [
            ShipmentEntry(
                order_id=doc["_id"],
                shipping_id=doc.get("shipping_id"),
                status=None if doc.get("status") is None else str(doc["status"]),
            )
            async for doc in self._shipments.find({})
        ]
