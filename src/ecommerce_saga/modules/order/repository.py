"""Order records: the `OrderRepository` port, on MongoDB (Beanie) and in memory.

An order is written whole: inserted once (its id and its idempotency key, if any, are unique),
then replaced only if its `version` is unchanged. Both implementations pass
`tests/contract/test_order_repository_contract.py`. What this process remembers of the orders
it works on, and who waits for them, is `OrderTracker`'s (tracker.py), above either implementation.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Protocol

from beanie import SortDirection
from pydantic import BaseModel, Field
from pymongo.errors import DuplicateKeyError

from ecommerce_saga.db.encoding import stored_fields
from ecommerce_saga.db.inserts import InsertGroup
from ecommerce_saga.db.queries import count
from ecommerce_saga.modules.order.contract import (
    FailureReason,
    OrderFilter,
    OrderLine,
    OrderStatus,
    PaymentSummary,
)
from ecommerce_saga.modules.order.documents import OrderDocument
from ecommerce_saga.modules.shipping.contract import Address, ShippingMethod
from ecommerce_saga.saga.stores.ordered import Insert, Replace
from ecommerce_saga.shared.clock import utcnow


class OrderRecord(BaseModel):
    """An order as stored; `version` counts the writes (optimistic concurrency)."""

    order_id: str
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


class OrderRepository(Protocol):
    """Where the order module keeps its orders."""

    async def add(self, order: OrderRecord) -> bool:
        """Store a new order; False if its id or its idempotency key is taken (nothing written)."""
        ...

    async def get(self, order_id: str) -> OrderRecord | None:
        """The order, or None."""
        ...

    async def by_idempotency_key(self, key: str) -> OrderRecord | None:
        """The order placed with `key`, or None."""
        ...

    async def replace(self, order: OrderRecord, expected_version: int) -> bool:
        """Write the order whole if the stored one still has `expected_version`; False if not."""
        ...

    async def pending_since_before(self, cutoff: datetime, limit: int) -> list[OrderRecord]:
        """PENDING orders created before `cutoff` (at most `limit`, oldest first)."""
        ...

    async def find(self, query: OrderFilter) -> tuple[list[OrderRecord], int]:
        """A page of orders matching `query`, newest first (then by id, descending), and how many
        match in all."""
        ...


class BeanieOrderRepository:
    """`OrderRepository` on MongoDB (collection `orders`). The order path's insert and replace
    go through PyMongo with the document as Beanie stores it (`stored_fields`); reads use Beanie."""

    def __init__(self) -> None:
        self._inserts = InsertGroup()  # concurrent inserts share a command

    async def add(self, order: OrderRecord) -> bool:
        """See `OrderRepository.add`."""
        write = self.insert_write(order)
        try:
            await self._inserts.insert_one(write.collection, write.document)
        except DuplicateKeyError:
            return False
        return True

    @staticmethod
    def insert_write(order: OrderRecord) -> Insert:
        """`add`'s insert as a write for a saga store to make first, in the command that stores
        the order's saga (`SagaEngine.start(preceded_by=...)`); a duplicate id or idempotency key
        refuses it as it refuses `add`."""
        return Insert(OrderDocument.get_pymongo_collection(), stored_fields(order, id_field="order_id"))

    async def get(self, order_id: str) -> OrderRecord | None:
        """See `OrderRepository.get`."""
        doc = await OrderDocument.get(order_id)
        return None if doc is None else _record(doc)

    async def by_idempotency_key(self, key: str) -> OrderRecord | None:
        """See `OrderRepository.by_idempotency_key`."""
        doc = await OrderDocument.find_one({"idempotency_key": key})
        return None if doc is None else _record(doc)

    async def replace(self, order: OrderRecord, expected_version: int) -> bool:
        """See `OrderRepository.replace`."""
        write = self.replace_write(order, expected_version)
        result = await write.collection.replace_one(write.criteria, write.document)
        return result.matched_count == 1

    @staticmethod
    def replace_write(order: OrderRecord, expected_version: int) -> Replace:
        """`replace`'s write, for a saga store to make right after the save that opens a step
        (`SagaStep.riding`); it matches nothing if the stored order's version is not `expected_version`."""
        current = {"_id": order.order_id, "version": expected_version}
        stored = stored_fields(order, id_field="order_id")
        return Replace(OrderDocument.get_pymongo_collection(), current, stored)

    async def pending_since_before(self, cutoff: datetime, limit: int) -> list[OrderRecord]:
        """See `OrderRepository.pending_since_before`: the oldest PENDING orders, then those among
        them created before `cutoff` (the same as filtering on both, since the oldest come first).
        The filter is the status alone, which the embedded server serves from its index: with a
        range on the datetime beside it, its time grew with the collection (docs/performance.md,
        item 35)."""
        docs = (
            await OrderDocument.find({"status": str(OrderStatus.PENDING)})
            .sort([("created_at", SortDirection.ASCENDING)])
            .limit(limit)
            .to_list()
        )
        return [_record(doc) for doc in docs if doc.created_at < cutoff]

    async def find(self, query: OrderFilter) -> tuple[list[OrderRecord], int]:
        """See `OrderRepository.find`."""
        criteria: dict[str, Any] = {}
        if query.customer_id is not None:
            criteria["customer_id"] = query.customer_id
        if query.status is not None:
            criteria["status"] = str(query.status)
        total = await count(OrderDocument, criteria)
        docs = (
            await OrderDocument.find(criteria)
            .sort([("created_at", SortDirection.DESCENDING), ("_id", SortDirection.DESCENDING)])
            .skip(query.skip)
            .limit(query.limit)
            .to_list()
        )
        return [_record(doc) for doc in docs], total


def _record(doc: OrderDocument) -> OrderRecord:
    return OrderRecord(order_id=doc.id, **doc.model_dump(include=set(OrderRecord.model_fields)))


class InMemoryOrderRepository:
    """`OrderRepository` in a dict: for unit tests and a database-free shop. Each method runs
    without awaiting, so it is atomic on the event loop, as the conditional writes are on MongoDB."""

    def __init__(self) -> None:
        self._orders: dict[str, OrderRecord] = {}

    async def add(self, order: OrderRecord) -> bool:
        """See `OrderRepository.add`."""
        key = order.idempotency_key
        if order.order_id in self._orders or (key is not None and self._by_key(key) is not None):
            return False
        self._orders[order.order_id] = order.model_copy(deep=True)
        return True

    async def get(self, order_id: str) -> OrderRecord | None:
        """See `OrderRepository.get`."""
        found = self._orders.get(order_id)
        return None if found is None else found.model_copy(deep=True)

    async def by_idempotency_key(self, key: str) -> OrderRecord | None:
        """See `OrderRepository.by_idempotency_key`."""
        found = self._by_key(key)
        return None if found is None else found.model_copy(deep=True)

    def _by_key(self, key: str) -> OrderRecord | None:
        return next((o for o in self._orders.values() if o.idempotency_key == key), None)

    async def replace(self, order: OrderRecord, expected_version: int) -> bool:
        """See `OrderRepository.replace`."""
        stored = self._orders.get(order.order_id)
        if stored is None or stored.version != expected_version:
            return False
        self._orders[order.order_id] = order.model_copy(deep=True)
        return True

    async def pending_since_before(self, cutoff: datetime, limit: int) -> list[OrderRecord]:
        """See `OrderRepository.pending_since_before`."""
        pending = sorted(
            (o for o in self._orders.values() if o.status is OrderStatus.PENDING and o.created_at < cutoff),
            key=lambda o: o.created_at,
        )
        return [o.model_copy(deep=True) for o in pending[:limit]]

    async def find(self, query: OrderFilter) -> tuple[list[OrderRecord], int]:
        """See `OrderRepository.find`."""
        matching = sorted(
            (
                o
                for o in self._orders.values()
                if (query.customer_id is None or o.customer_id == query.customer_id)
                and (query.status is None or o.status is query.status)
            ),
            key=lambda o: (o.created_at, o.order_id),
            reverse=True,
        )
        page = matching[query.skip : query.skip + query.limit]
        return [o.model_copy(deep=True) for o in page], len(matching)
