"""One `ShipmentRepository` spec, run against every repository: in memory and MongoDB (Beanie)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from beanie import init_beanie
from beanie.odm.utils.dump import get_dict
from pymongo.asynchronous.database import AsyncDatabase

from ecommerce_saga.modules.shipping.contract import (
    Address,
    ShipmentFilter,
    ShipmentStatus,
    ShippingMethod,
)
from ecommerce_saga.modules.shipping.documents import DOCUMENT_MODELS, ShipmentDocument
from ecommerce_saga.modules.shipping.repository import (
    BeanieShipmentRepository,
    InMemoryShipmentRepository,
    ShipmentRecord,
    ShipmentRepository,
    TrackingNumberTakenError,
)
from ecommerce_saga.shared.clock import epoch_ms

AT = datetime(2030, 3, 1, 12, 30, 15, 123000, tzinfo=UTC)  # millisecond precision, as MongoDB keeps
LONDON = Address(name="Ada", street="1 Square", city="London", postal_code="SW1", country="GB")


def a_shipment(order_id: str | None = None, **fields: Any) -> ShipmentRecord:
    tracking = f"1Z{uuid.uuid4().int % 10**18:018d}"
    values: dict[str, Any] = {
        "order_id": order_id or f"ord_{uuid.uuid4().hex[:12]}", "shipping_id": f"shp_{uuid.uuid4().hex}",
        "customer_id": "cus_ada", "status": ShipmentStatus.SCHEDULED, "method": ShippingMethod.EXPRESS,
        "carrier": "UPS", "tracking_number": tracking, "tracking_key": tracking,
        "estimated_delivery": date(2030, 3, 5), "address": LONDON, "created_at": AT, "updated_at": AT,
    }  # fmt: skip
    return ShipmentRecord(**{**values, **fields})


class ShipmentRepositorySpec:
    """What every `ShipmentRepository` must do; subclasses provide the `repository` fixture."""

    async def test_reads_back_every_field_when_added(self, repository: ShipmentRepository) -> None:
        shipment = a_shipment()

        assert await repository.add(shipment) == shipment

        assert await repository.get(shipment.order_id) == shipment
        assert await repository.by_shipping_id(shipment.shipping_id) == shipment

    async def test_reads_back_a_tombstone_when_added(self, repository: ShipmentRepository) -> None:
        tombstone = a_shipment(
            status=ShipmentStatus.CANCELLED, customer_id=None, carrier="", tracking_number="",
            tracking_key="cancelled:x", estimated_delivery=None, address=None,
        )  # fmt: skip

        await repository.add(tombstone)

        assert await repository.get(tombstone.order_id) == tombstone

    async def test_answers_none_when_unknown(self, repository: ShipmentRepository) -> None:
        assert await repository.get("ord_missing") is None
        assert await repository.by_shipping_id("shp_missing") is None

    async def test_keeps_the_first_when_an_order_is_added_twice(self, repository: ShipmentRepository) -> None:
        first = a_shipment()
        await repository.add(first)

        again = await repository.add(a_shipment(first.order_id, method=ShippingMethod.OVERNIGHT))

        assert again == first
        assert await repository.get(first.order_id) == first

    async def test_keeps_one_when_added_concurrently(self, repository: ShipmentRepository) -> None:
        order_id = f"ord_{uuid.uuid4().hex[:12]}"

        stored = await asyncio.gather(*(repository.add(a_shipment(order_id)) for _ in range(10)))

        assert len({s.shipping_id for s in stored}) == 1
        assert await repository.get(order_id) == stored[0]

    async def test_refuses_a_taken_tracking_number(self, repository: ShipmentRepository) -> None:
        first = await repository.add(a_shipment())

        with pytest.raises(TrackingNumberTakenError):
            await repository.add(
                a_shipment(tracking_number=first.tracking_number, tracking_key=first.tracking_key)
            )

    async def test_does_not_share_state_with_the_caller(self, repository: ShipmentRepository) -> None:
        shipment = a_shipment()
        as_added = shipment.model_copy(deep=True)
        await repository.add(shipment)
        read = await repository.get(shipment.order_id)
        assert read is not None

        shipment.status = read.status = ShipmentStatus.CANCELLED

        assert await repository.get(shipment.order_id) == as_added

    async def test_writes_the_whole_shipment_when_saved(self, repository: ShipmentRepository) -> None:
        shipment = await repository.add(a_shipment())
        shipment.status, shipment.updated_at = ShipmentStatus.CANCELLED, AT + timedelta(milliseconds=1)

        await repository.save(shipment)

        assert await repository.get(shipment.order_id) == shipment

    async def test_finds_newest_first_by_customer_status_and_time(
        self, repository: ShipmentRepository
    ) -> None:
        customer = f"cus_{uuid.uuid4().hex[:8]}"
        times = [AT + timedelta(milliseconds=n) for n in (0, 1, 2, 999, 1000)]
        stored = [await repository.add(a_shipment(customer_id=customer, created_at=t)) for t in times]
        await repository.add(a_shipment(customer_id="cus_other", created_at=AT))
        cancelled = stored[1]
        cancelled.status = ShipmentStatus.CANCELLED
        await repository.save(cancelled)

        found, total = await repository.find(ShipmentFilter(customer_id=customer))
        assert (total, found) == (5, stored[::-1])

        window, total = await repository.find(
            ShipmentFilter(customer_id=customer, from_=times[1], to=times[3])
        )
        assert (total, [s.order_id for s in window]) == (2, [stored[2].order_id, stored[1].order_id])

        by_status, total = await repository.find(
            ShipmentFilter(customer_id=customer, status=ShipmentStatus.CANCELLED)
        )
        assert (total, by_status) == (1, [cancelled])

    async def test_pages_when_finding(self, repository: ShipmentRepository) -> None:
        customer = f"cus_{uuid.uuid4().hex[:8]}"
        stored = [await repository.add(a_shipment(customer_id=customer, created_at=AT)) for _ in range(5)]
        newest_first = sorted(stored, key=lambda s: s.order_id, reverse=True)  # ties: by order id

        pages = [
            await repository.find(ShipmentFilter(customer_id=customer, limit=2, skip=s)) for s in (0, 2, 4)
        ]

        assert [total for _, total in pages] == [5, 5, 5]
        assert [s for page, _ in pages for s in page] == newest_first


class TestInMemoryShipmentRepository(ShipmentRepositorySpec):
    @pytest.fixture
    def repository(self) -> ShipmentRepository:
        return InMemoryShipmentRepository()


class TestBeanieShipmentRepository(ShipmentRepositorySpec):
    @pytest.fixture
    async def repository(self, mongo_db: AsyncDatabase[dict[str, Any]]) -> ShipmentRepository:
        await init_beanie(database=mongo_db, document_models=DOCUMENT_MODELS)
        return BeanieShipmentRepository()

    async def test_stores_a_shipment_as_its_beanie_document_would(
        self, repository: ShipmentRepository, mongo_db: AsyncDatabase[dict[str, Any]]
    ) -> None:
        shipment = a_shipment()
        assert shipment.estimated_delivery is not None and shipment.address is not None

        await repository.add(shipment)

        stored = await mongo_db[ShipmentDocument.Settings.name].find_one({"_id": shipment.order_id})
        fields = shipment.model_dump(exclude={"order_id"})
        expected = get_dict(
            ShipmentDocument(id=shipment.order_id, created_ms=epoch_ms(AT), **fields), to_db=True
        )
        # Beanie stores the date as a naive midnight, which MongoDB keeps (and reads back) as UTC.
        assert stored == {**expected, "estimated_delivery": datetime(2030, 3, 5, tzinfo=UTC)}
