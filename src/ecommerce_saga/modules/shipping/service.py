"""The shipping module's local implementation: one shipment per order, through its repository.

The order id keys the shipment, so scheduling the same order twice, or from two workers at
once, yields one shipment: the loser of the insert race gets the winner's. A cancel that
arrives before any schedule records a cancelled tombstone under the order id, so a late
schedule is refused instead of shipping a parcel that nobody will ever cancel.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from datetime import datetime

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
from ecommerce_saga.modules.shipping.domain import (
    carrier_for,
    estimated_delivery,
    new_tracking_number,
)
from ecommerce_saga.modules.shipping.repository import (
    ShipmentRecord,
    ShipmentRepository,
    TrackingNumberTakenError,
)
from ecommerce_saga.shared.clock import to_millisecond, utcnow
from ecommerce_saga.shared.contracts import Page
from ecommerce_saga.shared.ids import new_id

logger = logging.getLogger(__name__)

_INSERT_ATTEMPTS = 3  # a fresh tracking number per attempt; a collision is astronomically rare


def _shipment(record: ShipmentRecord) -> Shipment:
    return Shipment.model_validate(record.model_dump(exclude={"tracking_key"}))


class LocalShippingService:
    """`ShippingService` on a `ShipmentRepository`, delivering to the configured countries only."""

    def __init__(
        self,
        repository: ShipmentRepository,
        countries: Collection[str],
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._shipments = repository
        self._countries = frozenset(country.upper() for country in countries)
        self._clock = clock

    def _now(self) -> datetime:
        """The clock's time at MongoDB's millisecond precision, so a re-read compares equal."""
        return to_millisecond(self._clock())

    async def schedule(self, command: ScheduleShipment) -> Shipment:
        """See `ShippingService.schedule`."""
        if command.address.country not in self._countries and not await self._shipments.get(command.order_id):
            raise ShippingUnavailableError(
                f"we do not deliver to {command.address.country}",
                country=command.address.country,
            )
        record = await self._add_shipment(command)  # add first: a replay finds the shipment in the way
        if record.status is ShipmentStatus.CANCELLED:
            raise ShipmentCancelledError(f"the shipment of order {record.order_id} was cancelled")
        return _shipment(record)

    async def cancel(self, command: CancelShipment) -> Shipment:
        """See `ShippingService.cancel`."""
        record = await self._shipments.get(command.order_id)
        if record is None:  # a tombstone: a late schedule for this order must not ship anything
            record = await self._shipments.add(self._tombstone(command.order_id))
        if record.status is not ShipmentStatus.CANCELLED:
            record.status = ShipmentStatus.CANCELLED
            record.updated_at = self._now()
            await self._shipments.save(record)
            logger.info("shipment cancelled", extra={"order_id": record.order_id})
        return _shipment(record)

    async def _add_shipment(self, command: ScheduleShipment) -> ShipmentRecord:
        """Add the order's shipment, or return the one a concurrent caller added first."""
        for _ in range(_INSERT_ATTEMPTS):
            new = self._new_shipment(command)
            try:
                record = await self._shipments.add(new)
            except TrackingNumberTakenError:
                continue  # the tracking number was taken: draw another
            if record is new:
                logger.info(
                    "shipment scheduled",
                    extra={"order_id": new.order_id, "shipping_id": new.shipping_id, "carrier": new.carrier},
                )
            return record
        msg = f"could not draw a unique tracking number for order {command.order_id}"
        raise RuntimeError(msg)

    def _new_shipment(self, command: ScheduleShipment) -> ShipmentRecord:
        now = self._now()
        carrier = carrier_for(command.method, command.address.country)
        tracking_number = new_tracking_number(carrier)
        return ShipmentRecord(
            order_id=command.order_id, shipping_id=new_id("shp"), customer_id=command.customer_id,
            status=ShipmentStatus.SCHEDULED, method=command.method, carrier=carrier,
            tracking_number=tracking_number, tracking_key=tracking_number,
            estimated_delivery=estimated_delivery(command.method, now.date()),
            address=command.address, created_at=now, updated_at=now,
        )  # fmt: skip

    def _tombstone(self, order_id: str) -> ShipmentRecord:
        now = self._now()
        return ShipmentRecord(
            order_id=order_id, shipping_id=new_id("shp"), customer_id=None,
            status=ShipmentStatus.CANCELLED, method=ShippingMethod.STANDARD, carrier="",
            tracking_number="", tracking_key=f"cancelled:{order_id}",
            estimated_delivery=None, address=None, created_at=now, updated_at=now,
        )  # fmt: skip

    async def get_shipment(self, shipping_id: str) -> Shipment:
        """See `ShippingService.get_shipment`."""
        record = await self._shipments.by_shipping_id(shipping_id)
        if record is None:
            raise ShipmentNotFoundError(f"no shipment {shipping_id!r}")
        return _shipment(record)

    async def list_shipments(self, query: ShipmentFilter) -> Page[Shipment]:
        """See `ShippingService.list_shipments`."""
        records, total = await self._shipments.find(query)
        return Page(items=[_shipment(r) for r in records], total=total, limit=query.limit, skip=query.skip)
