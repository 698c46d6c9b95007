"""The order module's read port for the audit, on its own collection (`OrderBooks`).

It reads the raw documents, not the Beanie models: the audit must see what a corrupted record
holds, and runs without the app (the `audit` command).
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from ecommerce_saga.modules.order.contract import OrderEntry
from ecommerce_saga.modules.order.documents import OrderDocument


class MongoOrderBooks:
    """`OrderBooks` on the `orders` collection of `db`."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._orders = db[OrderDocument.Settings.name]

    async def orders(self) -> list[OrderEntry]:
        """See `OrderBooks.orders`."""
        return [
            OrderEntry(
                order_id=doc["_id"],
                status=None if doc.get("status") is None else str(doc["status"]),
                saga_id=doc.get("saga_id"),
                cancel_saga_id=doc.get("cancel_saga_id"),
                payment_id=doc.get("payment_id"),
                shipping_id=doc.get("shipping_id"),
                total_cents=doc.get("total_cents"),
            )
            async for doc in self._orders.find({})
        ]
