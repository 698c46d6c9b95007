"""The shipping contract, run against every `ShippingService`.

`ShippingServiceContract` holds the behaviour; `TestLocalShippingService` runs it against the
local service on the test database, `TestLocalShippingServiceInMemory` against the local service
on the in-memory repository, `TestHttpShippingService` against `HttpShippingService` talking to
that service's router in-process (see `tests/contract/http_adapter.py`), and
`TestFakeShippingService` against the fake the order module's unit tests use.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from beanie import init_beanie
from pymongo.asynchronous.database import AsyncDatabase

from ecommerce_saga.modules.shipping.client import HttpShippingService
from ecommerce_saga.modules.shipping.contract import (
    Address,
    CancelShipment,
    ScheduleShipment,
    ShipmentCancelledError,
    ShipmentFilter,
    ShipmentNotFoundError,
    ShipmentStatus,
    ShippingMethod,
    ShippingService,
    ShippingUnavailableError,
)
from ecommerce_saga.modules.shipping.documents import DOCUMENT_MODELS
from ecommerce_saga.modules.shipping.repository import BeanieShipmentRepository, InMemoryShipmentRepository
from ecommerce_saga.modules.shipping.router import build_router
from ecommerce_saga.modules.shipping.service import LocalShippingService
from ecommerce_saga.settings import DEFAULT_COUNTRIES
from tests.contract.http_adapter import TOKENS, served_over_http
from tests.fakes import FakeShippingService

LONDON = Address(
    name="Ada Lovelace", street="12 St James's Square", city="London",
    postal_code="SW1Y 4JH", country="GB",
)  # fmt: skip
NEW_YORK = LONDON.model_copy(update={"city": "New York", "postal_code": "10001", "country": "US"})
SAO_PAULO = LONDON.model_copy(update={"city": "São Paulo", "postal_code": "01000", "country": "BR"})


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def _schedule(order_id: str, customer_id: str = "cus_ada", **changes: Any) -> ScheduleShipment:
    fields = {"customer_id": customer_id, "address": LONDON, "idempotency_key": f"{order_id}:ship"}
    return ScheduleShipment(order_id=order_id, **{**fields, **changes})


def _cancel(order_id: str) -> CancelShipment:
    return CancelShipment(order_id=order_id, idempotency_key=f"{order_id}:cancel")


async def _open_connections(service: ShippingService) -> None:
    """Read in parallel first, so that the calls under test overlap instead of queueing for connections."""
    await asyncio.gather(*(service.list_shipments(ShipmentFilter()) for _ in range(10)))


class SteppingClock:
    """A clock that moves one second forward every time it is read."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


class ShippingServiceContract:
    """What every `ShippingService` does. Subclasses provide the `service` fixture."""

    async def test_schedules_shipment_when_country_is_served(self, service: ShippingService) -> None:
        order_id = _id("ord")

        shipment = await service.schedule(_schedule(order_id, method=ShippingMethod.EXPRESS))

        assert shipment.order_id == order_id
        assert shipment.customer_id == "cus_ada"
        assert shipment.status is ShipmentStatus.SCHEDULED
        assert shipment.method is ShippingMethod.EXPRESS
        assert shipment.carrier == "FedEx International"
        assert shipment.tracking_number.startswith("FX")
        assert shipment.address == LONDON
        assert shipment.estimated_delivery is not None
        assert shipment.estimated_delivery.weekday() < 5
        assert shipment.estimated_delivery > shipment.created_at.date()
        assert await service.get_shipment(shipment.shipping_id) == shipment

    async def test_uses_domestic_carrier_when_shipping_within_the_us(self, service: ShippingService) -> None:
        shipment = await service.schedule(_schedule(_id("ord"), address=NEW_YORK))

        assert shipment.method is ShippingMethod.STANDARD
        assert shipment.carrier == "USPS"

    async def test_refuses_shipment_when_country_is_not_served(self, service: ShippingService) -> None:
        order_id = _id("ord")

        with pytest.raises(ShippingUnavailableError) as caught:
            await service.schedule(_schedule(order_id, address=SAO_PAULO))

        assert caught.value.code == "shipping.unavailable"
        assert caught.value.retryable is False
        assert (await service.list_shipments(ShipmentFilter(customer_id="cus_ada"))).total == 0

    async def test_returns_same_shipment_when_scheduled_twice(self, service: ShippingService) -> None:
        order_id = _id("ord")
        first = await service.schedule(_schedule(order_id))

        again = await service.schedule(_schedule(order_id, method=ShippingMethod.OVERNIGHT))

        assert again == first

    async def test_creates_one_shipment_when_scheduled_concurrently(self, service: ShippingService) -> None:
        order_id, customer_id = _id("ord"), _id("cus")
        await _open_connections(service)

        shipments = await asyncio.gather(
            *(service.schedule(_schedule(order_id, customer_id)) for _ in range(10))
        )

        assert len({s.shipping_id for s in shipments}) == 1
        assert len({s.tracking_number for s in shipments}) == 1
        listed = await service.list_shipments(ShipmentFilter(customer_id=customer_id))
        assert listed.total == 1

    async def test_cancels_shipment_when_it_was_scheduled(self, service: ShippingService) -> None:
        order_id = _id("ord")
        scheduled = await service.schedule(_schedule(order_id))

        cancelled = await service.cancel(_cancel(order_id))

        assert cancelled.status is ShipmentStatus.CANCELLED
        assert cancelled.shipping_id == scheduled.shipping_id
        assert cancelled.tracking_number == scheduled.tracking_number
        assert cancelled.updated_at >= scheduled.updated_at
        assert await service.get_shipment(scheduled.shipping_id) == cancelled

    async def test_records_one_tombstone_when_cancelled_concurrently_before_scheduling(
        self, service: ShippingService
    ) -> None:
        order_id = _id("ord")
        await _open_connections(service)

        cancelled = await asyncio.gather(*(service.cancel(_cancel(order_id)) for _ in range(10)))

        assert len({s.shipping_id for s in cancelled}) == 1
        assert {s.status for s in cancelled} == {ShipmentStatus.CANCELLED}

    async def test_changes_nothing_when_cancelled_twice(self, service: ShippingService) -> None:
        order_id = _id("ord")
        await service.schedule(_schedule(order_id))
        first = await service.cancel(_cancel(order_id))

        second = await service.cancel(_cancel(order_id))

        assert second == first

    async def test_refuses_late_schedule_when_cancelled_before_scheduling(
        self, service: ShippingService
    ) -> None:
        order_id = _id("ord")

        tombstone = await service.cancel(_cancel(order_id))

        assert tombstone.status is ShipmentStatus.CANCELLED
        assert tombstone.order_id == order_id
        assert (tombstone.carrier, tombstone.tracking_number) == ("", "")
        with pytest.raises(ShipmentCancelledError) as caught:
            await service.schedule(_schedule(order_id))
        assert caught.value.code == "shipping.cancelled"
        assert await service.cancel(_cancel(order_id)) == tombstone

    async def test_refuses_schedule_when_shipment_was_cancelled(self, service: ShippingService) -> None:
        order_id = _id("ord")
        await service.schedule(_schedule(order_id))
        await service.cancel(_cancel(order_id))

        with pytest.raises(ShipmentCancelledError):
            await service.schedule(_schedule(order_id))

    async def test_raises_not_found_when_shipment_is_unknown(self, service: ShippingService) -> None:
        with pytest.raises(ShipmentNotFoundError) as caught:
            await service.get_shipment(_id("shp"))

        assert caught.value.code == "shipping.not_found"

    async def test_lists_by_customer_and_status_when_filtered(self, service: ShippingService) -> None:
        ada, bob = _id("cus"), _id("cus")
        orders = [_id("ord") for _ in range(3)]
        for order_id in orders:
            await service.schedule(_schedule(order_id, ada))
        await service.schedule(_schedule(_id("ord"), bob))
        await service.cancel(_cancel(orders[0]))

        everything = await service.list_shipments(ShipmentFilter(customer_id=ada))
        cancelled = await service.list_shipments(
            ShipmentFilter(customer_id=ada, status=ShipmentStatus.CANCELLED)
        )
        scheduled = await service.list_shipments(
            ShipmentFilter(customer_id=ada, status=ShipmentStatus.SCHEDULED)
        )

        assert everything.total == 3
        assert {s.order_id for s in everything.items} == set(orders)
        assert [s.order_id for s in cancelled.items] == [orders[0]]
        assert {s.order_id for s in scheduled.items} == set(orders[1:])

    async def test_pages_newest_first_when_listing(self, service: ShippingService) -> None:
        customer_id = _id("cus")
        for _ in range(5):
            await service.schedule(_schedule(_id("ord"), customer_id))

        everything = await service.list_shipments(ShipmentFilter(customer_id=customer_id))
        first = await service.list_shipments(ShipmentFilter(customer_id=customer_id, limit=2))
        second = await service.list_shipments(ShipmentFilter(customer_id=customer_id, limit=2, skip=2))
        last = await service.list_shipments(ShipmentFilter(customer_id=customer_id, skip=4))

        created = [s.created_at for s in everything.items]
        assert created == sorted(created, reverse=True)
        assert first.items + second.items + last.items == everything.items
        assert (first.total, first.limit, first.skip) == (5, 2, 0)
        assert len(last.items) == 1

    async def test_lists_by_creation_time_when_given_from_and_to(self, service: ShippingService) -> None:
        customer_id = _id("cus")
        for _ in range(4):
            await service.schedule(_schedule(_id("ord"), customer_id))
        everything = (await service.list_shipments(ShipmentFilter(customer_id=customer_id))).items
        start, end = everything[2].created_at, everything[0].created_at

        window = await service.list_shipments(ShipmentFilter(customer_id=customer_id, from_=start, to=end))

        expected = [s for s in everything if start <= s.created_at < end]
        assert window.items == expected
        assert window.total == len(expected)


class TestLocalShippingService(ShippingServiceContract):
    """The contract against `LocalShippingService` on the embedded database."""

    @pytest.fixture
    async def service(self, mongo_db: AsyncDatabase[dict[str, Any]]) -> ShippingService:
        await init_beanie(database=mongo_db, document_models=DOCUMENT_MODELS)
        clock = SteppingClock(datetime.now(UTC))
        return LocalShippingService(BeanieShipmentRepository(), DEFAULT_COUNTRIES, clock=clock)


class TestLocalShippingServiceInMemory(ShippingServiceContract):
    """The contract against `LocalShippingService` on the in-memory repository (no database)."""

    @pytest.fixture
    def service(self) -> ShippingService:
        clock = SteppingClock(datetime.now(UTC))
        return LocalShippingService(InMemoryShipmentRepository(), DEFAULT_COUNTRIES, clock=clock)

    # Local only, the tests below: they configure the service (clock, countries).
    async def test_delivers_next_monday_when_shipped_overnight_on_friday(self) -> None:
        friday_noon = datetime(2030, 1, 4, 12, tzinfo=UTC)
        service = LocalShippingService(InMemoryShipmentRepository(), ["GB"], clock=lambda: friday_noon)

        overnight = await service.schedule(_schedule(_id("ord"), method=ShippingMethod.OVERNIGHT))
        standard = await service.schedule(_schedule(_id("ord")))

        assert overnight.estimated_delivery == date(2030, 1, 7)
        assert overnight.carrier == "DHL Express"
        assert standard.estimated_delivery == date(2030, 1, 11)
        assert overnight.created_at == friday_noon

    async def test_refuses_country_when_it_is_not_configured(self) -> None:
        service = LocalShippingService(InMemoryShipmentRepository(), ["us"])

        with pytest.raises(ShippingUnavailableError):
            await service.schedule(_schedule(_id("ord")))
        assert (await service.schedule(_schedule(_id("ord"), address=NEW_YORK))).carrier == "USPS"


class TestHttpShippingService(ShippingServiceContract):
    """The contract against `HttpShippingService` and the shipping router, in-process."""

    @pytest.fixture
    async def service(self, mongo_db: AsyncDatabase[dict[str, Any]]) -> AsyncIterator[ShippingService]:
        await init_beanie(database=mongo_db, document_models=DOCUMENT_MODELS)
        clock = SteppingClock(datetime.now(UTC))
        local = LocalShippingService(BeanieShipmentRepository(), DEFAULT_COUNTRIES, clock=clock)
        async with served_over_http("shipping", build_router(local, TOKENS)) as client:
            yield HttpShippingService(client)


class TestFakeShippingService(ShippingServiceContract):
    """The contract against the unit tests' in-memory fake, so that it stays faithful to it."""

    @pytest.fixture
    def service(self) -> ShippingService:
        return FakeShippingService(DEFAULT_COUNTRIES, clock=SteppingClock(datetime.now(UTC)))
