"""Beanie documents of the inventory module (collections `products` and `reservations`)."""

from __future__ import annotations

from datetime import datetime

from beanie import Document
from pydantic import Field
from pymongo import ASCENDING, IndexModel

from ecommerce_saga.modules.inventory.contract import PricedItem, ReservationStatus
from ecommerce_saga.shared.clock import utcnow


class ProductDocument(Document):
    """A product and its stock.

    `available` and `reserved` change only by conditional `$inc`. While an order's reservation
    or release is in flight, `holds.<order_id>` / `releases.<order_id>` mark that this order's
    units were moved, in the same atomic update, so a repeated call moves them only once; the
    markers are dropped once the reservation's own status records the outcome, so the document
    stays small however many orders a product has.
    """

    id: str  # type: ignore[assignment]  # the product id is the document id
    name: str
    category: str
    price_cents: int
    currency: str = "USD"
    available: int
    reserved: int = 0
    holds: dict[str, int] = Field(default_factory=dict)
    releases: dict[str, int] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=utcnow)

    class Settings:
        name = "products"
        indexes = [IndexModel([("category", ASCENDING)])]


class ReservationDocument(Document):
    """One order's reservation; the order id is the document id, so there is one per order."""

    id: str  # type: ignore[assignment]  # the order id
    reservation_id: str
    status: ReservationStatus
    items: list[PricedItem]
    total_cents: int
    currency: str
    version: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    found_held: list[str] = Field(default_factory=list)

    class Settings:
        name = "reservations"
        # Compound on purpose: nx-27017 0.8.1 answers nothing to a sorted query that uses a
        # single-field index on an array path (docs/embedded-database.md).
        indexes = [IndexModel([("items.product_id", ASCENDING), ("status", ASCENDING)])]


DOCUMENT_MODELS: list[type[Document]] = [ProductDocument, ReservationDocument]
"""The module's Beanie documents, registered by the composition root."""
