"""Order records: optimistic-concurrency updates and in-process waiters for settled orders."""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any

from beanie import SortDirection
from beanie.exceptions import DocumentNotFound
from pymongo.errors import DuplicateKeyError

from ecommerce_saga.modules.order.contract import OrderFilter, OrderStatus
from ecommerce_saga.modules.order.documents import OrderDocument
from ecommerce_saga.shared.clock import utcnow


class StaleOrderError(Exception):
    """The order changed between read and write; read it again."""


class OrderRepository:
    """Reads and writes order documents; wakes waiters when an order's status changes.

    It remembers the orders it last inserted, stored or read (the newest `recent_size`), as it
    wrote or read them, so that an update starts from the remembered version instead of reading
    it again: the write is conditional on that version, and a stale one only costs the read it
    would have cost anyway. Remembered documents are never changed in place.
    """

    def __init__(self, recent_size: int = 1024) -> None:
        self._waiters: dict[str, _Waiter] = {}
        self._recent: OrderedDict[str, OrderDocument] = OrderedDict()
        self._recent_size = recent_size

    def _remember(self, doc: OrderDocument) -> None:
        self._recent[doc.id] = doc
        self._recent.move_to_end(doc.id)
        if len(self._recent) > self._recent_size:
            self._recent.popitem(last=False)

    async def insert(self, doc: OrderDocument) -> bool:
        """Insert a new order; False if its id or idempotency key exists."""
        try:
            await doc.insert()
        except DuplicateKeyError:
            return False
        self._remember(doc)
        return True

    async def get(self, order_id: str) -> OrderDocument | None:
        """The order, or None."""
        doc = await OrderDocument.get(order_id)
        if doc is not None:
            self._remember(doc)
        return doc

    async def recent(self, order_id: str) -> OrderDocument | None:
        """The order as this process last inserted, stored or read it; else read now (None if absent).

        No read for an order this process is working on. Another process's later change to the
        order is not seen: use it where what was last stored here will do (the facts a notice
        tells the customer), and `get` where the latest status matters.
        """
        doc = self._recent.get(order_id)
        return doc if doc is not None else await self.get(order_id)

    async def by_idempotency_key(self, key: str) -> OrderDocument | None:
        """The order placed with `key`, or None."""
        return await OrderDocument.find_one({"idempotency_key": key})

    async def update(
        self,
        order_id: str,
        change: Callable[[OrderDocument], None],
        *,
        allowed_from: Collection[OrderStatus] | None = None,
        attempts: int = 5,
    ) -> OrderDocument | None:
        """Apply `change` and store the order, if its status is in `allowed_from`.

        Returns the stored order, or None if it does not exist or its status is not allowed.
        Retries on concurrent changes. `change` assigns fields; it must not change a value in
        place (a list, a sub-document), which the remembered order shares with its copy.
        """
        remembered = self._recent.get(order_id)
        for _ in range(attempts):
            if remembered is not None and (allowed_from is None or remembered.status in allowed_from):
                # a shallow copy will do: changes assign fields, never change what a field holds
                doc: OrderDocument | None = remembered.model_copy()
            else:  # not remembered, stale, or remembered in a status that may have moved on
                doc = await self.get(order_id)
            remembered = None  # a second pass reads what the concurrent writer stored
            if doc is None or (allowed_from is not None and doc.status not in allowed_from):
                return None
            expected = doc.version
            change(doc)
            doc.version = expected + 1
            doc.updated_at = utcnow()
            try:
                await OrderDocument.find_one({"_id": order_id, "version": expected}).replace_one(doc)
            except DocumentNotFound:
                self._recent.pop(order_id, None)
                continue
            self._remember(doc)
            self._wake(doc)
            return doc
        raise StaleOrderError(order_id)

    async def pending_since_before(self, cutoff: datetime, limit: int) -> list[OrderDocument]:
        """PENDING orders created before `cutoff` (at most `limit`, oldest first)."""
        return (
            await OrderDocument.find({"status": str(OrderStatus.PENDING), "created_at": {"$lt": cutoff}})
            .sort([("created_at", SortDirection.ASCENDING)])
            .limit(limit)
            .to_list()
        )

    async def find(self, query: OrderFilter) -> tuple[list[OrderDocument], int]:
        """Orders matching `query`, newest first, and their total count."""
        criteria: dict[str, Any] = {}
        if query.customer_id is not None:
            criteria["customer_id"] = query.customer_id
        if query.status is not None:
            criteria["status"] = str(query.status)
        total = await OrderDocument.find(criteria).count()
        docs = (
            await OrderDocument.find(criteria)
            .sort([("created_at", SortDirection.DESCENDING), ("_id", SortDirection.DESCENDING)])
            .skip(query.skip)
            .limit(query.limit)
            .to_list()
        )
        return docs, total

    async def wait_settled(
        self,
        order_id: str,
        timeout: float,
        known: OrderDocument | None = None,
        poll: Callable[[], bool] = lambda: True,
    ) -> OrderDocument | None:
        """Wait up to `timeout` seconds for the order to be settled; return it as it is then.

        Changes made in this process wake the waiter with the changed order (no read). Changes
        made elsewhere (a saga resumed by another replica) are seen by polling, done only while
        `poll()` is true, so that waiting on sagas run here adds no load to the database.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        waiter = self._waiters.setdefault(order_id, _Waiter())
        waiter.users += 1
        try:
            doc = known if known is not None else await self.get(order_id)
            while doc is not None and not doc.status.is_settled:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                polling = poll()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        waiter.changed.wait(), min(remaining, _POLL_SECONDS) if polling else remaining
                    )
                waiter.changed.clear()
                if waiter.latest is not None:
                    doc, waiter.latest = waiter.latest, None
                elif polling or loop.time() >= deadline:
                    doc = await self.get(order_id)
            return doc
        finally:
            waiter.users -= 1
            if waiter.users == 0:
                self._waiters.pop(order_id, None)

    def _wake(self, doc: OrderDocument) -> None:
        waiter = self._waiters.get(doc.id)
        if waiter is not None:
            waiter.latest = doc
            waiter.changed.set()


_POLL_SECONDS = 0.25


class _Waiter:
    """Requests waiting for one order to change."""

    def __init__(self) -> None:
        self.changed = asyncio.Event()
        self.latest: OrderDocument | None = None
        self.users = 0
