"""One `OrderRepository` spec, run against every repository: in memory and MongoDB (Beanie).

It also runs `OrderTracker` (what a process remembers of its orders) on each: two trackers on one
repository behave as two processes on one database.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from beanie import init_beanie
from pymongo.asynchronous.database import AsyncDatabase

from ecommerce_saga.modules.order.contract import (
    FailureReason,
    OrderFilter,
    OrderLine,
    OrderStatus,
    PaymentSummary,
)
from ecommerce_saga.modules.order.documents import DOCUMENT_MODELS, OrderDocument
from ecommerce_saga.modules.order.repository import (
    BeanieOrderRepository,
    InMemoryOrderRepository,
    OrderRecord,
    OrderRepository,
)
from ecommerce_saga.modules.order.tracker import OrderTracker
from ecommerce_saga.modules.payment.contract import PaymentMethodKind
from ecommerce_saga.modules.shipping.contract import Address, ShippingMethod

AT = datetime(2030, 3, 1, 12, 30, 15, 123000, tzinfo=UTC)  # millisecond precision, as MongoDB keeps
LONDON = Address(name="Ada", street="1 Square", city="London", postal_code="SW1", country="GB")


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def an_order(**fields: Any) -> OrderRecord:
    order_id = fields.pop("order_id", None) or _id("ord")
    values: dict[str, Any] = {
        "order_id": order_id, "saga_id": order_id, "customer_id": "cus_ada",
        "items": [OrderLine(product_id="p-1", name="Desk", quantity=2, price_cents=90, line_total_cents=180)],
        "total_cents": 180, "currency": "EUR", "shipping_address": LONDON,
        "shipping_method": ShippingMethod.EXPRESS,
        "payment": PaymentSummary(method=PaymentMethodKind.CREDIT_CARD, brand="visa", last4="4242"),
        "payment_token": "tok_1", "created_at": AT, "updated_at": AT,
    }  # fmt: skip
    return OrderRecord(**{**values, **fields})


def _completed(order: OrderRecord) -> None:
    order.status = OrderStatus.COMPLETED


class OrderRepositorySpec:
    """What every `OrderRepository` must do; subclasses provide the `repository` fixture."""

    async def test_reads_back_every_field_when_added(self, repository: OrderRepository) -> None:
        order = an_order(
            cancel_saga_id="c-1", status=OrderStatus.FAILED, failure_reason=FailureReason.PAYMENT_DECLINED,
            failure_detail="declined", payment_id="pay_1", shipping_id="shp_1", tracking_number="1Z",
            estimated_delivery=date(2030, 3, 5), contact_email="ada@example.com", idempotency_key="k-1",
            request_hash="abc", version=4,
        )  # fmt: skip

        assert await repository.add(order)

        assert await repository.get(order.order_id) == order
        assert await repository.by_idempotency_key("k-1") == order
        assert await repository.get(_id("ord")) is None
        assert await repository.by_idempotency_key(_id("key")) is None

    async def test_refuses_an_order_whose_id_or_idempotency_key_is_taken(
        self, repository: OrderRepository
    ) -> None:
        key = _id("key")
        first = an_order(idempotency_key=key)
        assert await repository.add(first)

        assert not await repository.add(an_order(order_id=first.order_id, customer_id="cus_bob"))
        assert not await repository.add(an_order(idempotency_key=key))
        assert await repository.add(an_order())  # orders without a key never clash
        assert await repository.add(an_order())
        assert await repository.get(first.order_id) == first

    async def test_keeps_one_when_an_idempotency_key_is_added_concurrently(
        self, repository: OrderRepository
    ) -> None:
        key, customer = _id("key"), _id("cus")
        racing = [an_order(idempotency_key=key, customer_id=customer) for _ in range(5)]

        added = await asyncio.gather(*(repository.add(order) for order in racing))

        assert added.count(True) == 1
        stored, total = await repository.find(OrderFilter(customer_id=customer))
        assert (stored, total) == ([racing[added.index(True)]], 1)

    async def test_replaces_only_when_the_version_is_unchanged(self, repository: OrderRepository) -> None:
        order = an_order()
        await repository.add(order)
        completed = order.model_copy(update={"status": OrderStatus.COMPLETED, "version": 1})
        failed = order.model_copy(update={"status": OrderStatus.FAILED, "version": 1})

        assert await repository.replace(completed, expected_version=0)
        assert not await repository.replace(failed, expected_version=0)
        assert not await repository.replace(an_order(version=1), expected_version=0)  # never added
        assert await repository.get(order.order_id) == completed

    async def test_lists_pending_orders_created_before_a_cutoff_oldest_first(
        self, repository: OrderRepository
    ) -> None:
        customer = _id("cus")
        orders = [
            an_order(customer_id=customer, created_at=AT - timedelta(minutes=m), status=status)
            for m, status in [(3, OrderStatus.PENDING), (9, OrderStatus.PENDING), (6, OrderStatus.COMPLETED),
                              (7, OrderStatus.PENDING), (0, OrderStatus.PENDING)]
        ]  # fmt: skip
        for order in orders:
            await repository.add(order)

        pending = await repository.pending_since_before(AT - timedelta(minutes=1), limit=100)
        first_two = await repository.pending_since_before(AT - timedelta(minutes=1), limit=2)

        mine = [o for o in pending if o.customer_id == customer]
        assert mine == [orders[1], orders[3], orders[0]]
        assert len(first_two) == 2
        assert all(o.created_at < AT - timedelta(minutes=1) for o in pending)

    async def test_lists_by_customer_and_status_newest_first_in_pages(
        self, repository: OrderRepository
    ) -> None:
        ada = _id("cus")
        statuses = [OrderStatus.COMPLETED, OrderStatus.FAILED, OrderStatus.COMPLETED, OrderStatus.PENDING]
        orders = [
            an_order(customer_id=ada, status=status, created_at=AT + timedelta(seconds=n))
            for n, status in enumerate(statuses)
        ]
        for order in orders:
            await repository.add(order)
        await repository.add(an_order(customer_id=_id("cus")))

        everything, total = await repository.find(OrderFilter(customer_id=ada))
        completed, completed_total = await repository.find(
            OrderFilter(customer_id=ada, status=OrderStatus.COMPLETED)
        )
        page, paged_total = await repository.find(OrderFilter(customer_id=ada, limit=2, skip=1))

        assert (everything, total) == ([orders[3], orders[2], orders[1], orders[0]], 4)
        assert (completed, completed_total) == ([orders[2], orders[0]], 2)
        assert (page, paged_total) == ([orders[2], orders[1]], 4)

    async def test_breaks_ties_by_id_descending_when_created_at_once(
        self, repository: OrderRepository
    ) -> None:
        ada = _id("cus")
        for suffix in ("a", "c", "b"):
            await repository.add(an_order(customer_id=ada, order_id=f"ord_{ada}_{suffix}"))

        found, _ = await repository.find(OrderFilter(customer_id=ada))

        assert [o.order_id[-1] for o in found] == ["c", "b", "a"]

    # ------------------------------------------------------------ the order tracker on this repository

    async def test_a_book_updates_from_the_order_it_remembers(self, repository: OrderRepository) -> None:
        book = OrderTracker(repository)
        order = an_order()
        await book.insert(order)

        updated = await book.update(order.order_id, _completed, allowed_from=[OrderStatus.PENDING])

        assert updated is not None and (updated.status, updated.version) == (OrderStatus.COMPLETED, 1)
        assert await repository.get(order.order_id) == updated
        assert await book.recent(order.order_id) == updated

    async def test_a_book_keeps_what_another_book_wrote_meanwhile(self, repository: OrderRepository) -> None:
        here, elsewhere = OrderTracker(repository), OrderTracker(repository)
        order = an_order()
        await here.insert(order)

        def detail(o: OrderRecord) -> None:
            o.failure_detail = "noted elsewhere"

        def track(o: OrderRecord) -> None:
            o.tracking_number = "TRACK-2"

        await elsewhere.update(order.order_id, detail)
        updated = await here.update(order.order_id, track)

        stored = await repository.get(order.order_id)
        assert updated is not None and stored is not None
        assert (stored.failure_detail, stored.tracking_number, stored.version) == (
            "noted elsewhere",
            "TRACK-2",
            2,
        )
        assert updated == stored

    async def test_a_book_refuses_an_update_when_another_book_moved_the_status_on(
        self, repository: OrderRepository
    ) -> None:
        here, elsewhere = OrderTracker(repository), OrderTracker(repository)
        order = an_order()
        await here.insert(order)

        await elsewhere.update(order.order_id, _completed, allowed_from=[OrderStatus.PENDING])
        refused = await here.update(order.order_id, _completed, allowed_from=[OrderStatus.PENDING])

        assert refused is None
        stored = await repository.get(order.order_id)
        assert stored is not None and (stored.status, stored.version) == (OrderStatus.COMPLETED, 1)

    async def test_a_book_wakes_a_waiter_when_the_order_settles(self, repository: OrderRepository) -> None:
        book = OrderTracker(repository)
        order = an_order()
        await book.insert(order)

        waiting = asyncio.create_task(
            book.wait_settled(order.order_id, timeout=5, known=order, poll=lambda: False)
        )
        await asyncio.sleep(0)  # the waiter is registered before the update
        await book.update(order.order_id, _completed)
        settled = await waiting

        assert settled is not None and settled.status is OrderStatus.COMPLETED

    async def test_a_book_sees_another_books_change_by_polling(self, repository: OrderRepository) -> None:
        here, elsewhere = OrderTracker(repository), OrderTracker(repository)
        order = an_order()
        await here.insert(order)

        waiting = asyncio.create_task(here.wait_settled(order.order_id, timeout=5, known=order))
        await elsewhere.update(order.order_id, _completed)
        settled = await waiting

        assert settled is not None and settled.status is OrderStatus.COMPLETED


class TestInMemoryOrderRepository(OrderRepositorySpec):
    @pytest.fixture
    def repository(self) -> OrderRepository:
        return InMemoryOrderRepository()


class TestBeanieOrderRepository(OrderRepositorySpec):
    @pytest.fixture
    async def repository(self, mongo_db: AsyncDatabase[dict[str, Any]]) -> OrderRepository:
        await init_beanie(database=mongo_db, document_models=DOCUMENT_MODELS)
        return BeanieOrderRepository()

    async def test_stores_only_the_records_fields(self, repository: OrderRepository) -> None:
        order = an_order(idempotency_key=_id("key"), request_hash="abc")
        await repository.add(order)

        raw = await OrderDocument.get_pymongo_collection().find_one({"_id": order.order_id})

        assert raw is not None
        assert set(raw) - {"_id", "revision_id"} == set(OrderRecord.model_fields) - {"order_id"}
        assert raw["payment"] == {"method": "CREDIT_CARD", "brand": "visa", "last4": "4242"}

    async def test_stores_an_order_as_its_beanie_document_would(self, repository: OrderRepository) -> None:
        # The order path writes with PyMongo (`stored_fields`), not Beanie's encoder: the same document.
        order = an_order(
            cancel_saga_id="c-1", status=OrderStatus.FAILED, failure_reason=FailureReason.PAYMENT_DECLINED,
            failure_detail="declined", payment_id="pay_1", shipping_id="shp_1", tracking_number="1Z",
            estimated_delivery=date(2030, 3, 5), contact_email="ada@example.com", idempotency_key=_id("key"),
            request_hash="abc", version=4,
        )  # fmt: skip
        orders = OrderDocument.get_pymongo_collection()
        replaced_with = order.model_copy(update={"status": OrderStatus.COMPLETED, "version": 5})

        await repository.add(order)
        added = await orders.find_one({"_id": order.order_id})
        assert await repository.replace(replaced_with, expected_version=4)
        replaced = await orders.find_one({"_id": order.order_id})

        assert added == await _as_beanie_stores(order)
        assert replaced == await _as_beanie_stores(replaced_with)


async def _as_beanie_stores(order: OrderRecord) -> dict[str, Any] | None:
    """`order` as Beanie's own insert stores it (in place of the stored one, which it deletes)."""
    orders = OrderDocument.get_pymongo_collection()
    await orders.delete_one({"_id": order.order_id})
    await OrderDocument(id=order.order_id, **order.model_dump(exclude={"order_id"})).insert()
    return await orders.find_one({"_id": order.order_id})
