"""The orders this process works on: optimistic-concurrency updates over an `OrderRepository`,
the orders it last saw, and in-process waiters for settled orders."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Collection
from datetime import datetime

from ecommerce_saga.modules.order.contract import OrderFilter, OrderStatus
from ecommerce_saga.modules.order.repository import OrderRecord, OrderRepository
from ecommerce_saga.shared.clock import utcnow
from ecommerce_saga.shared.recent import Recent


class StaleOrderError(Exception):
    """The order changed between read and write; read it again."""


class OrderTracker:
    """Reads and writes orders through a repository; wakes waiters when an order's status changes.

    It remembers the orders it last added, stored or read (the newest `recent_size`), as it
    wrote or read them, so that an update starts from the remembered version instead of reading
    it again: the write is conditional on that version, and a stale one only costs the read it
    would have cost anyway. Remembered orders are never changed in place. Several books on one
    repository behave as several processes on one database.
    """

    def __init__(self, repository: OrderRepository, recent_size: int = 1024) -> None:
        self._repository = repository
        self._waiters: dict[str, _Waiter] = {}
        self._recent: Recent[str, OrderRecord] = Recent(recent_size)

    def _remember(self, order: OrderRecord) -> None:
        self._recent.put(order.order_id, order)

    async def insert(self, order: OrderRecord) -> bool:
        """Store a new order; False if its id or idempotency key exists."""
        if not await self._repository.add(order):
            return False
        self._remember(order)
        return True

    def inserted(self, order: OrderRecord) -> None:
        """`order` was stored another way (with its saga's insert): remember it as `insert` does."""
        self._remember(order)

    async def get(self, order_id: str) -> OrderRecord | None:
        """The order, or None."""
        order = await self._repository.get(order_id)
        if order is not None:
            self._remember(order)
        return order

    def remembered(self, order_id: str) -> OrderRecord | None:
        """The order as this process last inserted, stored or read it, if it is remembered; no read."""
        return self._recent.get(order_id)

    async def recent(self, order_id: str) -> OrderRecord | None:
        """The order as this process last inserted, stored or read it; else read now (None if absent).

        No read for an order this process is working on. Another process's later change to the
        order is not seen: use it where what was last stored here will do (the facts a notice
        tells the customer), and `get` where the latest status matters.
        """
        order = self.remembered(order_id)
        return order if order is not None else await self.get(order_id)

    async def by_idempotency_key(self, key: str) -> OrderRecord | None:
        """The order placed with `key`, or None."""
        return await self._repository.by_idempotency_key(key)

    async def update(
        self,
        order_id: str,
        change: Callable[[OrderRecord], None],
        *,
        allowed_from: Collection[OrderStatus] | None = None,
        attempts: int = 5,
    ) -> OrderRecord | None:
        """Apply `change` and store the order, if its status is in `allowed_from`.

        Returns the stored order, or None if it does not exist or its status is not allowed.
        Retries on concurrent changes. `change` assigns fields; it must not change a value in
        place (a list, a sub-model), which the remembered order shares with its copy.
        """
        remembered = self._recent.get(order_id)
        for _ in range(attempts):
            if remembered is not None and (allowed_from is None or remembered.status in allowed_from):
                current: OrderRecord | None = remembered
            else:  # not remembered, stale, or remembered in a status that may have moved on
                current = await self.get(order_id)
            remembered = None  # a second pass reads what the concurrent writer stored
            if current is None or (allowed_from is not None and current.status not in allowed_from):
                return None
            order = _changed(current, change)
            if not await self._repository.replace(order, current.version):
                self._recent.discard(order_id)
                continue
            self.stored(order)
            return order
        raise StaleOrderError(order_id)

    def changed(
        self, order_id: str, change: Callable[[OrderRecord], None], *, allowed_from: Collection[OrderStatus]
    ) -> tuple[OrderRecord, int] | None:
        """The remembered order with `change` applied, as `update` would store it, and the version
        the stored one must have; None if it is not remembered in a status of `allowed_from`.

        Nothing is read or written: store it another way, then call `stored` with it.
        """
        remembered = self._recent.get(order_id)
        if remembered is None or remembered.status not in allowed_from:
            return None
        return _changed(remembered, change), remembered.version

    def stored(self, order: OrderRecord) -> None:
        """`order`, from `changed`, was stored: remember it, and wake who waits for it."""
        self._remember(order)
        self._wake(order)

    async def pending_since_before(self, cutoff: datetime, limit: int) -> list[OrderRecord]:
        """PENDING orders created before `cutoff` (at most `limit`, oldest first)."""
        return await self._repository.pending_since_before(cutoff, limit)

    async def find(self, query: OrderFilter) -> tuple[list[OrderRecord], int]:
        """Orders matching `query`, newest first, and their total count."""
        return await self._repository.find(query)

    async def wait_settled(
        self,
        order_id: str,
        timeout: float,
        known: OrderRecord | None = None,
        poll: Callable[[], bool] = lambda: True,
    ) -> OrderRecord | None:
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
            order = known if known is not None else await self.get(order_id)
            while order is not None and not order.status.is_settled:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                polling = poll()
                with contextlib.suppress(TimeoutError):  # not wait_for: no task, woken at once
                    async with asyncio.timeout(min(remaining, _POLL_SECONDS) if polling else remaining):
                        await waiter.changed.wait()
                waiter.changed.clear()
                if waiter.latest is not None:
                    order, waiter.latest = waiter.latest, None
                elif polling or loop.time() >= deadline:
                    order = await self.get(order_id)
            return order
        finally:
            waiter.users -= 1
            if waiter.users == 0:
                self._waiters.pop(order_id, None)

    def _wake(self, order: OrderRecord) -> None:
        waiter = self._waiters.get(order.order_id)
        if waiter is not None:
            waiter.latest = order
            waiter.changed.set()


_POLL_SECONDS = 0.25


def _changed(order: OrderRecord, change: Callable[[OrderRecord], None]) -> OrderRecord:
    """A copy of `order` with `change` applied, its next version, updated now."""
    # a shallow copy will do: changes assign fields, never change what a field holds
    changed = order.model_copy()
    change(changed)
    changed.version = order.version + 1
    changed.updated_at = utcnow()
    return changed


class _Waiter:
    """Requests waiting for one order to change."""

    def __init__(self) -> None:
        self.changed = asyncio.Event()
        self.latest: OrderRecord | None = None
        self.users = 0
