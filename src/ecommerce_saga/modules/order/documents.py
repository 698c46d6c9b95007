"""Beanie documents of the order module (collection `orders`)."""

from __future__ import annotations

from datetime import date, datetime

from beanie import Document
from pydantic import Field
from pymongo import ASCENDING, DESCENDING, IndexModel

from ecommerce_saga.modules.order.contract import (
    FailureReason,
    OrderLine,
    OrderStatus,
    PaymentSummary,
)
from ecommerce_saga.modules.shipping.contract import Address, ShippingMethod
from ecommerce_saga.shared.clock import utcnow


class OrderDocument(Document):
    """An order record. Written whole (insert, or replace filtered on `version`)."""

    id: str  # type: ignore[assignment]  # the order id
    saga_id: str
    cancel_saga_id: str | None = None
    customer_id: str
    status: OrderStatus = OrderStatus.PENDING
    failure_reason: FailureReason | None = None
    failure_detail: str | None = None
    items: list[OrderLine]
    total_cents: int
    currency: str
    shipping_address: Address
    shipping_method: ShippingMethod
    payment: PaymentSummary
    payment_token: str
    payment_id: str | None = None
    shipping_id: str | None = None
    tracking_number: str | None = None
    estimated_delivery: date | None = None
    contact_email: str | None = None  # personal data: never logged
    idempotency_key: str | None = None
    request_hash: str | None = None
    version: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    class Settings:
        name = "orders"
        indexes = [
            IndexModel([("customer_id", ASCENDING)]),
            IndexModel([("status", ASCENDING)]),
            IndexModel([("created_at", DESCENDING)]),
            IndexModel(
                [("idempotency_key", ASCENDING)],
                unique=True,
                partialFilterExpression={"idempotency_key": {"$type": "string"}},
            ),
        ]


DOCUMENT_MODELS: list[type[Document]] = [OrderDocument]
"""The module's Beanie documents, registered by the composition root."""
