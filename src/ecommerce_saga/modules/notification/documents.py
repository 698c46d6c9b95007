"""Beanie documents of the notification module (collection `notifications`)."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from beanie import Document
from pydantic import Field
from pymongo import ASCENDING, DESCENDING, IndexModel

from ecommerce_saga.modules.notification.contract import NotificationStatus, NotificationType, OrderFacts
from ecommerce_saga.shared.clock import utcnow


class NotificationDocument(Document):
    """One notification; a unique index allows one per order and type.

    `read`, `status` and `sent_at` change by replacing the whole document (filtered on `version`),
    never by `$set`; only the integers `claimed_until_ms` and `version` change in place, when a
    call claims the record to send it.
    """

    id: str  # type: ignore[assignment]  # the notification id
    order_id: str
    customer_id: str
    type: NotificationType
    channel: str
    status: NotificationStatus
    read: bool = False
    subject: str
    message: str
    details: dict[str, str | int] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None
    recipient: str | None = None  # personal data: stored, shown to its customer and operators, never logged
    order: OrderFacts | None = None
    idempotency_key: str | None = None  # the key of the call that recorded it
    message_id: str | None = None  # derived from that key: the same on every attempt
    delivery_reply: str | None = None
    last_error: str | None = None
    claimed_until_ms: int = 0  # a send in progress; an integer, as it is `$set` and compared
    claim_key: str | None = None  # the idempotency key of the call holding the claim
    claim_attempt: int = 0  # and its attempt: a later attempt of the same key may take the claim over
    version: int = 0  # every write changes it; a replace is filtered on the version read

    class Settings:
        name = "notifications"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("order_id", ASCENDING), ("type", ASCENDING)], unique=True),
            IndexModel([("customer_id", ASCENDING)]),
            IndexModel([("created_at", DESCENDING)]),
        ]


DOCUMENT_MODELS: list[type[Document]] = [NotificationDocument]
"""The module's Beanie documents, registered by the composition root."""
