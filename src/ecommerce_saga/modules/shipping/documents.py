"""Beanie documents of the shipping module (collection `shipments`)."""

from __future__ import annotations

from datetime import date, datetime
from typing import ClassVar

from beanie import Document
from pydantic import Field
from pymongo import ASCENDING, DESCENDING, IndexModel

from ecommerce_saga.modules.shipping.contract import Address, ShipmentStatus, ShippingMethod
from ecommerce_saga.shared.clock import utcnow


class ShipmentDocument(Document):
    """One order's shipment; the order id is the document id, so there is one per order.

    `tracking_key` is the tracking number, or ``cancelled:<order id>`` for a tombstone that has
    none: a unique index on it keeps tracking numbers unique (MongoDB's unique indexes count
    empty strings and nulls as values, and the embedded server has no partial indexes).
    """

    id: str  # type: ignore[assignment]  # the order id
    shipping_id: str
    customer_id: str | None
    status: ShipmentStatus
    method: ShippingMethod
    carrier: str
    tracking_number: str
    tracking_key: str
    estimated_delivery: date | None
    address: Address | None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    class Settings:
        name = "shipments"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("shipping_id", ASCENDING)], unique=True),
            IndexModel([("tracking_key", ASCENDING)], unique=True),
            IndexModel([("customer_id", ASCENDING)]),
            IndexModel([("created_at", DESCENDING)]),
        ]


DOCUMENT_MODELS: list[type[Document]] = [ShipmentDocument]
"""The module's Beanie documents, registered by the composition root."""
