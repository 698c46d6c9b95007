"""The inventory module's local implementation: all-or-nothing, oversell-proof reservations.

Each product remembers the units held for an order (the repository's marks), and a reservation
changes `available`, `reserved` and that mark in one atomic move; so a unit is never sold twice,
and reserving or releasing the same order twice has the effect of once, even when a worker dies
half-way through a multi-item reservation and the step runs again.

A reserve adds the order's reservation PENDING before it holds anything, then records the
outcome over it (RESERVED, or REJECTED): a repeat finds the reservation in its way and, once an
outcome is recorded, answers it without holding anything. A repeat must not hold: once the
outcome is recorded the order's marks are forgotten, so a hold would move the units a second
time, and a repeat that died before giving them back would leave them held for nobody.

Calls of one order run one at a time in a process (a reserve or release waits for the one in
flight), so only calls in different processes (replicas, a retry that reached another one) race.
Those find the reservation PENDING together and finish it together: see `_answer` for how each
tells its own moves that belong to the recorded hold from those to give back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ecommerce_saga.modules.inventory import pricing
from ecommerce_saga.modules.inventory.contract import (
    InventoryUnavailableError,
    ItemQuantity,
    NewProduct,
    PricedItem,
    Product,
    ProductExistsError,
    ProductFilter,
    ProductHold,
    ProductNotFoundError,
    Quote,
    ReleaseItems,
    Reservation,
    ReservationReleasedError,
    ReservationStatus,
    ReserveItems,
    Restock,
)
from ecommerce_saga.modules.inventory.repository import (
    Held,
    HoldRefused,
    InventoryRepository,
    Mark,
    ProductRecord,
    ReservationRecord,
)
from ecommerce_saga.shared.clock import utcnow
from ecommerce_saga.shared.contracts import Page
from ecommerce_saga.shared.keyed_lock import KeyedLock

logger = logging.getLogger(__name__)

_WRITE_ATTEMPTS = 8
STRAY_HOLD_SWEEP_SECONDS = 60.0
"""How often a process hosting the inventory gives back holds no reservation records (at start, then
every this many seconds): see `LocalInventoryService.give_back_unrecorded_holds`."""
_SHOWN_RESERVATIONS = 50


def _product(record: ProductRecord, reservations: list[ProductHold] | None = None) -> Product:
    return Product(
        product_id=record.product_id,
        name=record.name,
        category=record.category,
        price_cents=record.price_cents,
        currency=record.currency,
        available=record.available,
        reserved=record.reserved,
        in_stock=record.available > 0,
        reservations=reservations or [],
    )


def _reservation(record: ReservationRecord) -> Reservation:
    return Reservation.model_validate(record.model_dump(exclude={"version", "found_held"}))


class LocalInventoryService:
    """`InventoryService` on an `InventoryRepository`."""

    def __init__(self, repository: InventoryRepository) -> None:
        self._stock = repository
        self._orders: KeyedLock[str] = KeyedLock()  # one reserve or release of an order at a time

    async def quote(self, items: list[ItemQuantity]) -> Quote:
        """See `InventoryService.quote`."""
        return pricing.quote(items, await self._stock.prices(sorted({item.product_id for item in items})))

    async def reserve(self, command: ReserveItems) -> Reservation:
        """See `InventoryService.reserve`."""
        async with self._orders.holding(command.order_id):
            return await self._reserve(command)

    async def _reserve(self, command: ReserveItems) -> Reservation:
        """Reserve the order's items (one call of the order at a time in this process).

        The order's reservation is added PENDING first. A repeat finds it in its way: a recorded
        outcome is answered as it is (`_recorded`), nothing held; a PENDING one (a concurrent
        call's, or an earlier run's cut short) is finished by this call too: the holds are the
        order's (a held product is not held again), and the first outcome recorded over it is the
        one every call answers (`_answer`).
        """
        unpriced = [pricing.priced(item, None) for item in command.items]  # priced as the items are held
        ours = self._new_reservation(command.order_id, unpriced, ReservationStatus.PENDING)
        product_id, quantity = _merged(ours.items)[0]  # the first product's hold goes with the insert
        first, held = await self._stock.add_reservation_holding(ours, product_id, quantity)
        if first.status is not ReservationStatus.PENDING:
            return await self._recorded(first)
        holds = await self._hold_all(ours, {product_id: held} if held is not None else {})
        ours.status = ReservationStatus.REJECTED
        if holds.shortage is None:
            ours.items = holds.priced
            ours.total_cents = sum(item.line_total_cents for item in holds.priced)
            ours.status = ReservationStatus.RESERVED
            ours.found_held = sorted(holds.held - holds.moved)
        return await self._answer(await self._finish_pending(first, ours), ours, holds)

    async def _recorded(self, doc: ReservationRecord) -> Reservation:
        """Answer a repeat with the outcome recorded before it (it holds nothing itself).

        Only the call that recorded RESERVED forgets the order's marks; a repeat does not. Had it
        forgotten them too, the forget could drop the mark of a concurrent call's move made after
        the first forget, which that call needs to give its units back (`_answer`).
        """
        if doc.status is ReservationStatus.RESERVED:
            return _reservation(doc)
        if doc.status is ReservationStatus.REJECTED:
            await self._undo_holds(doc)  # in case the rejecting run stopped before it gave them back
            raise InventoryUnavailableError(self._shortage_text(doc))
        raise ReservationReleasedError(f"the reservation of order {doc.order_id} was released")

    async def _answer(self, first: ReservationRecord, ours: ReservationRecord, holds: _Holds) -> Reservation:
        """Answer a reserve with the outcome recorded over the PENDING reservation, `first` (`ours`
        if this call recorded it; else RESERVED, REJECTED or RELEASED by another call).

        Until an outcome is recorded a product is moved once for the order: its mark keeps
        other calls from moving it again. The recording call then forgets the marks, so a call
        still holding after that moves a product a second time. Hence, when another call
        recorded the outcome:
        - RESERVED: what this call moved is part of the recorded hold if the recording call
          found it held (`found_held`); if that call moved it itself, this call's move came
          after the record, and is given back;
        - REJECTED: every hold of the order is given back, the ones this call found too;
        - RELEASED (a release finished the reservation): what this call moved is given back.
        Each give-back is conditional on the order's mark, so a unit is given back once.
        """
        if first.status is ReservationStatus.RESERVED:
            if first is ours:
                await self._forget(first, "holds")
            else:
                await self._undo_holds(ours, only=holds.moved - set(first.found_held))
            return _reservation(first)
        if first.status is ReservationStatus.REJECTED:  # this call's, or another's
            await self._undo_holds(ours, only=holds.held)
            raise InventoryUnavailableError(holds.shortage or self._shortage_text(first))
        await self._undo_holds(ours, only=holds.moved)  # RELEASED: never this call's outcome
        raise ReservationReleasedError(f"the reservation of order {first.order_id} was released")

    async def _finish_pending(self, pending: ReservationRecord, ours: ReservationRecord) -> ReservationRecord:
        """Record this call's outcome over the order's PENDING reservation; what is stored then
        (this call's, or what another call recorded first)."""
        ours.created_at = pending.created_at
        if await self._transition(ours, ours.status, expected=pending.version):
            return ours
        return await self._current(pending.order_id)

    async def release(self, command: ReleaseItems) -> Reservation:
        """See `InventoryService.release`."""
        async with self._orders.holding(command.order_id):
            return await self._release(command)

    async def _release(self, command: ReleaseItems) -> Reservation:
        """Release the order's reservation (one call of the order at a time in this process)."""
        # The usual case, a RESERVED reservation, is claimed and read in one conditional write.
        doc = await self._stock.claim_release(command.order_id) or await self._stock.reservation(
            command.order_id
        )
        if doc is None:  # a tombstone: a late reserve for the order records nothing
            doc = await self._stock.add_reservation(
                self._new_reservation(command.order_id, [], ReservationStatus.RELEASED)
            )
        for _ in range(_WRITE_ATTEMPTS):
            if doc.status in (ReservationStatus.RELEASED, ReservationStatus.REJECTED):
                await self._settle_released(doc)
                return _reservation(doc)
            if doc.status is ReservationStatus.PENDING:  # no outcome recorded: give back what is held
                await self._undo_holds(doc)
                if await self._transition(doc, ReservationStatus.RELEASED):
                    return _reservation(doc)
                stored = False
            elif doc.status is ReservationStatus.RESERVED:
                stored = await self._transition(doc, ReservationStatus.RELEASING)
            else:  # RELEASING: give each item back once, then record it
                for product_id, quantity in _merged(doc.items):
                    await self._stock.give_back(doc.order_id, product_id, quantity)
                stored = await self._transition(doc, ReservationStatus.RELEASED)
            if not stored:  # changed by another call since it was read: read what it wrote
                doc = await self._current(doc.order_id)
        raise RuntimeError(f"the reservation of order {command.order_id} kept changing")  # pragma: no cover

    async def _settle_released(self, doc: ReservationRecord) -> None:
        """Finish the release of a RELEASED or REJECTED reservation, once more (each move is once)."""
        if _is_tombstone(doc):  # a late reserve may hold items it could not record
            for product_id, quantity in sorted((await self._stock.held_by(doc.order_id)).items()):
                await self._stock.undo_hold(doc.order_id, product_id, quantity)
        elif doc.status is ReservationStatus.RELEASED:
            await self._forget(doc, "releases")
        else:  # REJECTED: its reserve may have stopped before it gave back what it held
            await self._undo_holds(doc)

    async def give_back_unrecorded_holds(self) -> list[str]:
        """Give back units held for orders whose reservation never recorded a hold; those orders.

        Such units were held by a reserve that was still holding when the reservation was
        REJECTED, or RELEASED before any outcome was recorded (a release of a PENDING
        reservation, or a release's tombstone), and whose process died before it gave them back:
        no later call of the order would find them. Every give-back is conditional on its mark,
        so a reserve that gives the units back too, or another process's sweep, moves them once.
        """
        marks = await self._stock.hold_marks()
        stray = [doc for doc in await self._stock.reservations(sorted(marks)) if _records_no_hold(doc)]
        for doc in stray:
            for product_id, units in sorted(marks[doc.order_id].items()):
                await self._stock.undo_hold(doc.order_id, product_id, units)
        if stray:
            logger.warning(
                "gave back units held for orders whose reservation records no hold",
                extra={"orders": [doc.order_id for doc in stray][:20]},
            )
        return [doc.order_id for doc in stray]

    @staticmethod
    def _new_reservation(
        order_id: str, items: list[PricedItem], status: ReservationStatus
    ) -> ReservationRecord:
        now = utcnow()
        return ReservationRecord(
            order_id=order_id, reservation_id=f"res_{order_id}", status=status, items=items,
            total_cents=0, currency="USD", created_at=now, updated_at=now,
        )  # fmt: skip

    async def _hold_all(self, doc: ReservationRecord, done: dict[str, Held | HoldRefused]) -> _Holds:
        """Hold every item of `doc`, with its catalog price; `done` are holds already made.

        Items are held in a fixed order and each run stops at its first refusal, so no run
        (this one or an earlier one cut short) ever held a product from the refused one on.
        """
        catalog: dict[str, Held] = {}
        for product_id, quantity in _merged(doc.items):
            held = (
                done[product_id]
                if product_id in done
                else await self._stock.hold(doc.order_id, product_id, quantity)
            )
            if isinstance(held, HoldRefused):
                return _Holds(catalog, [], _refusal_text(held, product_id))
            catalog[product_id] = held
        if catalog:
            doc.currency = next(iter(catalog.values())).currency
        return _Holds(catalog, [pricing.priced(item, catalog[item.product_id]) for item in doc.items], None)

    async def _undo_holds(self, doc: ReservationRecord, only: set[str] | None = None) -> None:
        """Give back the items this order holds (those still marked as held), or `only` those products."""
        for product_id, quantity in _merged(doc.items):
            if only is None or product_id in only:
                await self._stock.undo_hold(doc.order_id, product_id, quantity)

    async def _forget(self, doc: ReservationRecord, mark: Mark) -> None:
        """Drop this order's marks once the reservation's status records the outcome."""
        await self._stock.forget(mark, doc.order_id, [product_id for product_id, _ in _merged(doc.items)])

    async def _transition(
        self, doc: ReservationRecord, status: ReservationStatus, expected: int | None = None
    ) -> bool:
        """Store `doc` with `status` unless the stored one changed since it was read (its version is
        not `expected`, `doc`'s own by default); False if it did."""
        expected = doc.version if expected is None else expected
        doc.status, doc.version, doc.updated_at = status, expected + 1, utcnow()
        return await self._stock.replace_reservation(doc, expected)

    async def _current(self, order_id: str) -> ReservationRecord:
        doc = await self._stock.reservation(order_id)
        assert doc is not None  # noqa: S101 - reservations are never deleted
        return doc

    @staticmethod
    def _shortage_text(doc: ReservationRecord) -> str:
        return f"order {doc.order_id}: the items were not available when it was reserved"

    async def get_product(self, product_id: str, *, with_reservations: bool = True) -> Product:
        """See `InventoryService.get_product`: without reservations, one read."""
        record = await self._stock.product(product_id)
        if record is None:
            raise ProductNotFoundError(f"no product {product_id!r}")
        if not with_reservations:
            return _product(record)
        active = await self._stock.active_reservations(product_id, _SHOWN_RESERVATIONS)
        holds = [
            ProductHold(
                order_id=r.order_id,
                quantity=sum(i.quantity for i in r.items if i.product_id == product_id),
            )
            for r in active
        ]
        return _product(record, holds)

    async def list_products(self, query: ProductFilter) -> Page[Product]:
        """See `InventoryService.list_products`."""
        records, total = await self._stock.find_products(query)
        return Page(items=[_product(r) for r in records], total=total, limit=query.limit, skip=query.skip)

    async def create_product(self, product: NewProduct) -> Product:
        """See `InventoryService.create_product`."""
        record = ProductRecord(
            product_id=product.product_id,
            name=product.name,
            category=product.category,
            price_cents=product.price_cents,
            currency=product.currency,
            available=product.quantity,
            created_at=utcnow(),
        )
        if not await self._stock.add_product(record):
            raise ProductExistsError(f"product {product.product_id!r} exists")
        return _product(record)

    async def restock(self, product_id: str, restock: Restock) -> Product:
        """See `InventoryService.restock`."""
        if not await self._stock.restock(product_id, restock.quantity):
            raise ProductNotFoundError(f"no product {product_id!r}")
        return await self.get_product(product_id)


@dataclass(frozen=True, slots=True)
class _Holds:
    """What one reserve call held: the products with their prices, the items priced (all held) and
    the first refusal's description (None if every item is held)."""

    catalog: dict[str, Held]
    priced: list[PricedItem]
    shortage: str | None

    @property
    def held(self) -> set[str]:
        """The products the order holds (this call moved them, or found them held)."""
        return set(self.catalog)

    @property
    def moved(self) -> set[str]:
        """The products this call moved units of."""
        return {product_id for product_id, held in self.catalog.items() if held.moved}


def _is_tombstone(doc: ReservationRecord) -> bool:
    """True for a release's tombstone: added RELEASED (never written since), so no hold of the
    order was ever recorded; the order's holds are a late reserve's, not given back yet."""
    return doc.status is ReservationStatus.RELEASED and doc.version == 0


def _records_no_hold(doc: ReservationRecord) -> bool:
    """True for a reservation that never recorded a hold and never will: REJECTED, or RELEASED at
    version 0 or 1 (a release's tombstone, or a PENDING reservation released). One that recorded
    RESERVED is RELEASED at version 2 or later (RELEASING comes between)."""
    return doc.status is ReservationStatus.REJECTED or (
        doc.status is ReservationStatus.RELEASED and doc.version <= 1
    )


def _refusal_text(refused: HoldRefused, product_id: str) -> str:
    if refused is HoldRefused.UNKNOWN_PRODUCT:
        return f"unknown product {product_id}"
    return f"not enough stock of {product_id}"


def _merged(items: list[PricedItem]) -> list[tuple[str, int]]:
    """Quantities by product, adding up repeated lines, in product order (a fixed lock order)."""
    merged: dict[str, int] = {}
    for item in items:
        merged[item.product_id] = merged.get(item.product_id, 0) + item.quantity
    return sorted(merged.items())
