"""The notification module's read port for the audit, on its own collection (`NotificationBooks`).

It reads the raw documents, not the Beanie models: the audit must see what a corrupted record
holds, and runs where the module is not hosted (the `audit` command, the order process).
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from ecommerce_saga.modules.notification.contract import NotificationEntry
from ecommerce_saga.modules.notification.documents import NotificationDocument


class MongoNotificationBooks:
    """`NotificationBooks` on the `notifications` collection of `db`."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._notifications = db[NotificationDocument.Settings.name]

    async def notifications(self) -> list[NotificationEntry]:
        """See `NotificationBooks.notifications`."""
        return [
            NotificationEntry(notification_id=doc["_id"], order_id=doc["order_id"], type=str(doc["type"]))
            async for doc in self._notifications.find({})
        ]
