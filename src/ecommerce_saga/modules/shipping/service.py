"""The shipping module's local implementation: one shipment document per order, on MongoDB.

The order id is the shipment's document id, so scheduling the same order twice, or from two
workers at once, yields one shipment: the loser of the insert race reads the winner's. A cancel
that arrives before any schedule records a cancelled tombstone under the order id, so a late
schedule is refused instead of shipping a parcel that nobody will ever cancel.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from ecommerce_saga.modules.shipping.contract import (
    CancelShipment,
    ScheduleShipment,
    Shipment,
    ShipmentCancelledError,
    ShipmentFilter,
    ShipmentNotFoundError,
    ShipmentStatus,
    ShippingMethod,
    ShippingUnavailableError,
)
from ecommerce_saga.modules.shipping.documents import ShipmentDocument
from ecommerce_saga.modules.shipping.domain import (
    carrier_for,
    estimated_delivery,
    new_tracking_number,
)
from ecommerce_saga.shared.clock import utcnow
from ecommerce_saga.shared.contracts import Page
from ecommerce_saga.shared.ids import new_id

logger = logging.getLogger(__name__)

_INSERT_ATTEMPTS = 3  # a fresh tracking number per attempt; a collision is astronomically rare


def _shipment(doc: ShipmentDocument) -> Shipment:
    return Shipment(
        shipping_id=doc.shipping_id,
        order_id=doc.id,
        customer_id=doc.customer_id,
        status=doc.status,
        method=doc.method,
        carrier=doc.carrier,
        tracking_number=doc.tracking_number,
        estimated_delivery=doc.estimated_delivery,
        address=doc.address,
        created_at=doc.created_at,
        updated_at=doc.updated_at,
    )


class LocalShippingService:
    """`ShippingService` on MongoDB, delivering to the configured countries only."""

    def __init__(self, countries: Collection[str], clock: Callable[[], datetime] = utcnow) -> None:
        self._countries = frozenset(country.upper() for country in countries)
        self._clock = clock

    def _now(self) -> datetime:
        """The clock's time at MongoDB's millisecond precision, so a re-read compares equal."""
        now = self._clock()
        return now.replace(microsecond=now.microsecond // 1000 * 1000)

    async def schedule(self, command: ScheduleShipment) -> Shipment:
        """See `ShippingService.schedule`."""
        if command.address.country not in self._countries and not await ShipmentDocument.get(
            command.order_id
        ):
            raise ShippingUnavailableError(
                f"we do not deliver to {command.address.country}",
                country=command.address.country,
            )
        doc = await self._insert_shipment(command)  # insert first: a replay finds the shipment in the way
        if doc.status is ShipmentStatus.CANCELLED:
            raise ShipmentCancelledError(f"the shipment of order {doc.id} was cancelled")
        return _shipment(doc)

    async def cancel(self, command: CancelShipment) -> Shipment:
        """See `ShippingService.cancel`."""
        doc = await ShipmentDocument.get(command.order_id)
        if doc is None:
            doc = self._tombstone(command.order_id)
            try:
                await doc.insert()  # a late schedule for this order must not ship anything
                return _shipment(doc)
            except DuplicateKeyError:
                doc = await ShipmentDocument.get(command.order_id)
                assert doc is not None  # noqa: S101 - it was just inserted by someone
        if doc.status is not ShipmentStatus.CANCELLED:
            doc.status = ShipmentStatus.CANCELLED
            doc.updated_at = self._now()
            await doc.replace()
            logger.info("shipment cancelled", extra={"order_id": doc.id})
        return _shipment(doc)

    async def _insert_shipment(self, command: ScheduleShipment) -> ShipmentDocument:
        """Insert the order's shipment, or return the one a concurrent caller inserted first."""
        for _ in range(_INSERT_ATTEMPTS):
            doc = self._new_shipment(command)
            try:
                await doc.insert()
            except DuplicateKeyError:
                raced = await ShipmentDocument.get(command.order_id)
                if raced is not None:
                    return raced
                continue  # the tracking number was taken: draw another
            logger.info(
                "shipment scheduled",
                extra={"order_id": doc.id, "shipping_id": doc.shipping_id, "carrier": doc.carrier},
            )
            return doc
        msg = f"could not draw a unique tracking number for order {command.order_id}"
        raise RuntimeError(msg)

    def _new_shipment(self, command: ScheduleShipment) -> ShipmentDocument:
        now = self._now()
        carrier = carrier_for(command.method, command.address.country)
        tracking_number = new_tracking_number(carrier)
        return ShipmentDocument(
            id=command.order_id, shipping_id=new_id("shp"), customer_id=command.customer_id,
            status=ShipmentStatus.SCHEDULED, method=command.method, carrier=carrier,
            tracking_number=tracking_number, tracking_key=tracking_number,
            estimated_delivery=estimated_delivery(command.method, now.date()),
            address=command.address, created_at=now, updated_at=now,
        )  # fmt: skip

    def _tombstone(self, order_id: str) -> ShipmentDocument:
        now = self._now()
        return ShipmentDocument(
            id=order_id, shipping_id=new_id("shp"), customer_id=None,
            status=ShipmentStatus.CANCELLED, method=ShippingMethod.STANDARD, carrier="",
            tracking_number="", tracking_key=f"cancelled:{order_id}",
            estimated_delivery=None, address=None, created_at=now, updated_at=now,
        )  # fmt: skip

    async def get_shipment(self, shipping_id: str) -> Shipment:
        """See `ShippingService.get_shipment`."""
        doc = await ShipmentDocument.find_one({"shipping_id": shipping_id})
        if doc is None:
            raise ShipmentNotFoundError(f"no shipment {shipping_id!r}")
        return _shipment(doc)

    async def list_shipments(self, query: ShipmentFilter) -> Page[Shipment]:
        """See `ShippingService.list_shipments`."""
        criteria: dict[str, Any] = {}
        if query.customer_id is not None:
            criteria["customer_id"] = query.customer_id
        if query.status is not None:
            criteria["status"] = query.status.value
        created: dict[str, datetime] = {}
        if query.from_ is not None:
            created["$gte"] = query.from_
        if query.to is not None:
            created["$lt"] = query.to
        if created:
            criteria["created_at"] = created
        total = await ShipmentDocument.find(criteria).count()
        docs = (
            await ShipmentDocument.find(criteria)
            .sort("-created_at", "-_id")
            .skip(query.skip)
            .limit(query.limit)
            .to_list()
        )
        return Page(items=[_shipment(d) for d in docs], total=total, limit=query.limit, skip=query.skip)
