"""Beanie documents of the shipping module (collection `shipments`)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, ClassVar

from beanie import Document
from pydantic import Field, model_validator
from pymongo import ASCENDING, DESCENDING, IndexModel

from ecommerce_saga.modules.shipping.contract import Address, ShipmentStatus, ShippingMethod
from ecommerce_saga.shared.clock import epoch_ms, utcnow


class ShipmentDocument(Document):
    """One order's shipment; the order id is the document id, so there is one per order.

    `tracking_key` is the tracking number, or ``cancelled:<order id>`` for a tombstone that has
    none: a unique index on it keeps tracking numbers unique (MongoDB's unique indexes count
    empty strings and nulls as values, and the embedded server has no partial indexes).
    Queries and sorting by time use `created_ms` (epoch milliseconds, equal to `created_at`):
    nx-27017 0.8.1 compares datetimes in queries to the whole second only.
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
    created_ms: int
    updated_at: datetime = Field(default_factory=utcnow)

    class Settings:
        name = "shipments"
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("shipping_id", ASCENDING)], unique=True),
            IndexModel([("tracking_key", ASCENDING)], unique=True),
            IndexModel([("customer_id", ASCENDING)]),
            # Not (created_ms, _id): nx-27017 0.8.1 fails every insert when an index includes _id.
            IndexModel([("created_ms", DESCENDING)]),
        ]

    @model_validator(mode="before")
    @classmethod
    def _created_ms_of_older_shipments(cls, data: Any) -> Any:
        """Shipments stored before `created_ms` existed read with it derived from `created_at`."""
        if (
            isinstance(data, dict)
            and "created_ms" not in data
            and isinstance(data.get("created_at"), datetime)
        ):
            return {**data, "created_ms": epoch_ms(data["created_at"])}
        return data


DOCUMENT_MODELS: list[type[Document]] = [ShipmentDocument]
"""The module's Beanie documents, registered by the composition root."""
