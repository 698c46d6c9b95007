"""Shipment records: the `ShipmentRepository` port, on MongoDB (Beanie) and in memory.

One shipment per order, keyed by the order id; tracking numbers are unique. Both
implementations pass `tests/contract/test_shipping_repository_contract.py`.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any, Protocol

from pydantic import BaseModel
from pymongo.errors import DuplicateKeyError

from ecommerce_saga.db.inserts import InsertGroup
from ecommerce_saga.db.queries import created_within
from ecommerce_saga.modules.shipping.contract import (
    Address,
    ShipmentFilter,
    ShipmentStatus,
    ShippingMethod,
)
from ecommerce_saga.modules.shipping.documents import ShipmentDocument
from ecommerce_saga.shared.clock import epoch_ms


class ShipmentRecord(BaseModel):
    """One order's shipment as stored. `tracking_key` is unique: the tracking number, or
    ``cancelled:<order id>`` for a tombstone that has none."""

    order_id: str
    shipping_id: str
    customer_id: str | None
    status: ShipmentStatus
    method: ShippingMethod
    carrier: str
    tracking_number: str
    tracking_key: str
    estimated_delivery: date | None
    address: Address | None
    created_at: datetime
    updated_at: datetime


class TrackingNumberTakenError(Exception):
    """Another shipment has this tracking number; draw another."""


class ShipmentRepository(Protocol):
    """Where the shipping module keeps its shipments."""

    async def add(self, shipment: ShipmentRecord) -> ShipmentRecord:
        """Store a new shipment, or return the order's shipment stored first (nothing written).

        Raises:
            TrackingNumberTakenError: If another order's shipment has its tracking key.
        """
        ...

    async def get(self, order_id: str) -> ShipmentRecord | None:
        """The order's shipment, or None."""
        ...

    async def by_shipping_id(self, shipping_id: str) -> ShipmentRecord | None:
        """The shipment with that id, or None."""
        ...

    async def save(self, shipment: ShipmentRecord) -> None:
        """Write an existing shipment whole."""
        ...

    async def find(self, query: ShipmentFilter) -> tuple[list[ShipmentRecord], int]:
        """A page of shipments matching `query`, newest first (then by order id, descending),
        and how many match in all."""
        ...


class BeanieShipmentRepository:
    """`ShipmentRepository` on MongoDB (collection `shipments`).

    Written whole (insert, replace), never with `$set`; times are filtered and sorted on
    `created_ms`, as the embedded database compares datetimes to the whole second only. The order
    path's insert and read go through PyMongo, the documents built as `ShipmentDocument` stores them.
    """

    def __init__(self) -> None:
        self._inserts = InsertGroup()  # concurrent inserts share a command

    async def add(self, shipment: ShipmentRecord) -> ShipmentRecord:
        """See `ShipmentRepository.add`."""
        try:
            await self._inserts.insert_one(ShipmentDocument.get_pymongo_collection(), _fields(shipment))
        except DuplicateKeyError:
            first = await self.get(shipment.order_id)
            if first is None:
                raise TrackingNumberTakenError(shipment.tracking_key) from None
            return first
        return shipment

    async def get(self, order_id: str) -> ShipmentRecord | None:
        """See `ShipmentRepository.get`."""
        raw = await ShipmentDocument.get_pymongo_collection().find_one({"_id": order_id})
        return None if raw is None else ShipmentRecord.model_validate({**raw, "order_id": raw["_id"]})

    async def by_shipping_id(self, shipping_id: str) -> ShipmentRecord | None:
        """See `ShipmentRepository.by_shipping_id`."""
        doc = await ShipmentDocument.find_one({"shipping_id": shipping_id})
        return None if doc is None else _record(doc)

    async def save(self, shipment: ShipmentRecord) -> None:
        """See `ShipmentRepository.save`."""
        await _document(shipment).replace()

    async def find(self, query: ShipmentFilter) -> tuple[list[ShipmentRecord], int]:
        """See `ShipmentRepository.find`."""
        criteria: dict[str, Any] = {}
        if query.customer_id is not None:
            criteria["customer_id"] = query.customer_id
        if query.status is not None:
            criteria["status"] = query.status.value
        docs, total = await created_within(ShipmentDocument, criteria, query)
        return [_record(doc) for doc in docs], total


def _fields(shipment: ShipmentRecord) -> dict[str, Any]:
    """The shipment as a `ShipmentDocument` stores it, built without Beanie's encoder (the order
    path inserts shipments with PyMongo): enums as their values, the delivery date as midnight
    UTC, `created_ms` beside `created_at`."""
    fields = shipment.model_dump(exclude={"order_id"})
    fields["status"], fields["method"] = shipment.status.value, shipment.method.value
    if shipment.estimated_delivery is not None:
        fields["estimated_delivery"] = datetime.combine(shipment.estimated_delivery, time.min)
    return {"_id": shipment.order_id, **fields, "created_ms": epoch_ms(shipment.created_at)}


def _document(shipment: ShipmentRecord) -> ShipmentDocument:
    fields = shipment.model_dump(exclude={"order_id"})
    return ShipmentDocument(id=shipment.order_id, created_ms=epoch_ms(shipment.created_at), **fields)


def _record(doc: ShipmentDocument) -> ShipmentRecord:
    return ShipmentRecord(order_id=doc.id, **doc.model_dump(include=set(ShipmentRecord.model_fields)))


class InMemoryShipmentRepository:
    """`ShipmentRepository` in a dict: for unit tests and a database-free shop."""

    def __init__(self) -> None:
        self._shipments: dict[str, ShipmentRecord] = {}

    async def add(self, shipment: ShipmentRecord) -> ShipmentRecord:
        """See `ShipmentRepository.add`."""
        first = self._shipments.get(shipment.order_id)
        if first is not None:
            return first.model_copy(deep=True)
        if any(s.tracking_key == shipment.tracking_key for s in self._shipments.values()):
            raise TrackingNumberTakenError(shipment.tracking_key)
        if any(s.shipping_id == shipment.shipping_id for s in self._shipments.values()):
            raise ValueError(f"shipping id {shipment.shipping_id} exists")
        self._shipments[shipment.order_id] = shipment.model_copy(deep=True)
        return shipment

    async def get(self, order_id: str) -> ShipmentRecord | None:
        """See `ShipmentRepository.get`."""
        found = self._shipments.get(order_id)
        return None if found is None else found.model_copy(deep=True)

    async def by_shipping_id(self, shipping_id: str) -> ShipmentRecord | None:
        """See `ShipmentRepository.by_shipping_id`."""
        for shipment in self._shipments.values():
            if shipment.shipping_id == shipping_id:
                return shipment.model_copy(deep=True)
        return None

    async def save(self, shipment: ShipmentRecord) -> None:
        """See `ShipmentRepository.save`."""
        self._shipments[shipment.order_id] = shipment.model_copy(deep=True)

    async def find(self, query: ShipmentFilter) -> tuple[list[ShipmentRecord], int]:
        """See `ShipmentRepository.find`."""
        matching = sorted(
            (
                s
                for s in self._shipments.values()
                if (query.customer_id is None or s.customer_id == query.customer_id)
                and (query.status is None or s.status is query.status)
                and query.covers(s.created_at)
            ),
            key=lambda s: (s.created_at, s.order_id),
            reverse=True,
        )
        page = matching[query.skip : query.skip + query.limit]
        return [s.model_copy(deep=True) for s in page], len(matching)
