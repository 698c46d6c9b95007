"""An in-memory `ShippingService`: at most one shipment per order, to the countries it serves."""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime
from typing import TYPE_CHECKING

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
from ecommerce_saga.modules.shipping.domain import carrier_for, estimated_delivery, new_tracking_number
from ecommerce_saga.shared.clock import to_millisecond, utcnow
from ecommerce_saga.shared.contracts import Page
from ecommerce_saga.shared.ids import new_id
from tests.fakes.support import Journal, Outage, page_of

SERVED_COUNTRIES = ("US", "CA", "GB", "DE", "FR")


class FakeShippingService:
    """`ShippingService` in memory, delivering to `countries` only.

    `schedule` is idempotent per order; `cancel` cancels once, and records a tombstone for an
    order never scheduled so that a late schedule is refused. `make_unavailable` makes both
    raise `ServiceUnavailableError`. Carriers, tracking numbers and delivery dates follow the
    module's rules (`shipping.domain`), so the fake passes the module's spec.
    """

    def __init__(
        self,
        countries: Collection[str] = SERVED_COUNTRIES,
        journal: Journal | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.journal = journal if journal is not None else Journal()
        self.countries = frozenset(country.upper() for country in countries)
        self.shipments: dict[str, Shipment] = {}
        self._outage = Outage("shipping")
        self._clock = clock

    def _now(self) -> datetime:
        return to_millisecond(self._clock())

    def make_unavailable(self, times: int | None = None) -> None:
        """Fail the next `times` schedules and cancels (every one when None)."""
        self._outage.begin(times)

    def make_available(self) -> None:
        """Answer again."""
        self._outage.end()

    async def schedule(self, command: ScheduleShipment) -> Shipment:
        """See `ShippingService.schedule`."""
        self._outage.check()
        shipment = self.shipments.get(command.order_id)
        if shipment is None:
            if command.address.country not in self.countries:
                raise ShippingUnavailableError(
                    f"we do not deliver to {command.address.country}", country=command.address.country
                )
            shipment = self._new_shipment(command)
        if shipment.status is ShipmentStatus.CANCELLED:
            raise ShipmentCancelledError(f"the shipment of order {command.order_id} was cancelled")
        return shipment

    async def cancel(self, command: CancelShipment) -> Shipment:
        """See `ShippingService.cancel`."""
        self._outage.check()
        shipment = self.shipments.get(command.order_id)
        if shipment is None:  # a tombstone: a late schedule for this order must ship nothing
            now = self._now()
            shipment = Shipment(
                shipping_id=new_id("shp"), order_id=command.order_id, customer_id=None,
                status=ShipmentStatus.CANCELLED, method=ShippingMethod.STANDARD, carrier="",
                tracking_number="", estimated_delivery=None, address=None, created_at=now, updated_at=now,
            )  # fmt: skip
        elif shipment.status is ShipmentStatus.SCHEDULED:
            shipment = shipment.model_copy(
                update={"status": ShipmentStatus.CANCELLED, "updated_at": self._now()}
            )
            self.journal.record(command.order_id, "shipping.cancelled")
        self.shipments[command.order_id] = shipment
        return shipment

    async def get_shipment(self, shipping_id: str) -> Shipment:
        """See `ShippingService.get_shipment`."""
        for shipment in self.shipments.values():
            if shipment.shipping_id == shipping_id:
                return shipment
        raise ShipmentNotFoundError(f"no shipment {shipping_id!r}")

    async def list_shipments(self, query: ShipmentFilter) -> Page[Shipment]:
        """See `ShippingService.list_shipments`."""
        matching = sorted(
            (
                s
                for s in self.shipments.values()
                if (query.customer_id is None or s.customer_id == query.customer_id)
                and (query.status is None or s.status is query.status)
                and query.covers(s.created_at)
            ),
            key=lambda s: (s.created_at, s.order_id),
            reverse=True,
        )
        return page_of(matching, query)

    def _new_shipment(self, command: ScheduleShipment) -> Shipment:
        now = self._now()
        carrier = carrier_for(command.method, command.address.country)
        shipment = Shipment(
            shipping_id=new_id("shp"), order_id=command.order_id, customer_id=command.customer_id,
            status=ShipmentStatus.SCHEDULED, method=command.method, carrier=carrier,
            tracking_number=new_tracking_number(carrier),
            estimated_delivery=estimated_delivery(command.method, now.date()),
            address=command.address, created_at=now, updated_at=now,
        )  # fmt: skip
        self.shipments[command.order_id] = shipment
        self.journal.record(command.order_id, "shipping.scheduled")
        return shipment


if TYPE_CHECKING:
    from ecommerce_saga.modules.shipping.contract import ShippingService

    _conforms: ShippingService = FakeShippingService()
