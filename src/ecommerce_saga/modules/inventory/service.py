"""The inventory module's local implementation: all-or-nothing, oversell-proof reservations.

Each product remembers the units held for an order (the repository's marks), and a reservation
changes `available`, `reserved` and that mark in one atomic move; so a unit is never sold twice,
and reserving or releasing the same order twice has the effect of once, even when a worker dies
half-way through a multi-item reservation and the step runs again.
"""

from __future__ import annotations

import logging

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
    CatalogPrice,
    HoldRefused,
    InventoryRepository,
    Mark,
    ProductRecord,
    ReservationRecord,
)
from ecommerce_saga.shared.clock import utcnow
from ecommerce_saga.shared.contracts import Page

logger = logging.getLogger(__name__)

_WRITE_ATTEMPTS = 8
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
    return Reservation.model_validate(record.model_dump(exclude={"version"}))


class LocalInventoryService:
    """`InventoryService` on an `InventoryRepository`."""

    def __init__(self, repository: InventoryRepository) -> None:
        self._stock = repository

    async def quote(self, items: list[ItemQuantity]) -> Quote:
        """See `InventoryService.quote`."""
        wanted = sorted({item.product_id for item in items})
        prices = await self._stock.prices(wanted)
        currencies = {price.currency for price in prices.values()} or {"USD"}
        if len(currencies) > 1:
            raise InventoryUnavailableError("the items are priced in different currencies")
        priced = [_priced(item, prices.get(item.product_id)) for item in items]
        return Quote(
            items=priced,
            total_cents=sum(p.line_total_cents for p in priced),
            currency=currencies.pop(),
            unknown_products=[pid for pid in wanted if pid not in prices],
        )

    async def reserve(self, command: ReserveItems) -> Reservation:
        """See `InventoryService.reserve`."""
        doc = await self._reservation_for(command)
        if doc.status is ReservationStatus.RESERVED:
            await self._forget(doc, "holds")  # in case an earlier run stopped before it did
            return _reservation(doc)
        if doc.status in (ReservationStatus.RELEASED, ReservationStatus.RELEASING):
            raise ReservationReleasedError(f"the reservation of order {doc.order_id} was released")
        if doc.status is ReservationStatus.REJECTED:
            raise InventoryUnavailableError(self._shortage_text(doc))
        priced, shortage, held = await self._hold_all(doc)
        if shortage is not None:
            await self._undo_holds(doc, only=held)
            await self._transition(doc, ReservationStatus.REJECTED)
            raise InventoryUnavailableError(shortage)
        doc.items = priced
        doc.total_cents = sum(item.line_total_cents for item in priced)
        if not await self._transition(doc, ReservationStatus.RESERVED):
            await self._undo_holds(doc)  # released while this call was holding: give it all back
            raise ReservationReleasedError(f"the reservation of order {doc.order_id} was released meanwhile")
        await self._forget(doc, "holds")
        return _reservation(doc)

    async def release(self, command: ReleaseItems) -> Reservation:
        """See `InventoryService.release`."""
        # The usual case, a RESERVED reservation, is claimed and read in one conditional write.
        doc = await self._stock.claim_release(command.order_id) or await self._stock.reservation(
            command.order_id
        )
        if doc is None:  # a tombstone: a late reserve for the order holds nothing
            doc = await self._stock.add_reservation(
                self._new_reservation(command.order_id, [], released=True)
            )
        for _ in range(_WRITE_ATTEMPTS):
            if doc.status in (ReservationStatus.RELEASED, ReservationStatus.REJECTED):
                await self._forget(doc, "releases")
                return _reservation(doc)
            if doc.status is ReservationStatus.PENDING:  # a reservation that never finished
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

    @staticmethod
    def _new_reservation(
        order_id: str, items: list[PricedItem], *, released: bool = False
    ) -> ReservationRecord:
        now = utcnow()
        return ReservationRecord(
            order_id=order_id, reservation_id=f"res_{order_id}",
            status=ReservationStatus.RELEASED if released else ReservationStatus.PENDING,
            items=items, total_cents=0, currency="USD", created_at=now, updated_at=now,
        )  # fmt: skip

    async def _reservation_for(self, command: ReserveItems) -> ReservationRecord:
        """The order's reservation: a new PENDING one, or the one a previous call left."""
        unpriced = [_priced(item, None) for item in command.items]  # priced as the items are held
        # Add first: a replay finds the reservation in the way.
        return await self._stock.add_reservation(self._new_reservation(command.order_id, unpriced))

    async def _hold_all(self, doc: ReservationRecord) -> tuple[list[PricedItem], str | None, set[str]]:
        """Hold every item, reading its catalog price in the same move.

        Returns the priced items, a description of the first item that could not be held
        (unknown, or short of stock) or None when all are held, and the products held. Items are
        held in a fixed order and each run stops at its first refusal, so no run (this one or an
        earlier one cut short) ever held a product from the refused one on.
        """
        catalog: dict[str, CatalogPrice] = {}
        for product_id, quantity in _merged(doc.items):
            held = await self._stock.hold(doc.order_id, product_id, quantity)
            if isinstance(held, HoldRefused):
                return [], _refusal_text(held, product_id), set(catalog)
            catalog[product_id] = held
        if catalog:
            doc.currency = next(iter(catalog.values())).currency
        return [_priced(item, catalog[item.product_id]) for item in doc.items], None, set(catalog)

    async def _undo_holds(self, doc: ReservationRecord, only: set[str] | None = None) -> None:
        """Give back the items this order holds (those still marked as held), or `only` those products."""
        for product_id, quantity in _merged(doc.items):
            if only is None or product_id in only:
                await self._stock.undo_hold(doc.order_id, product_id, quantity)

    async def _forget(self, doc: ReservationRecord, mark: Mark) -> None:
        """Drop this order's marks once the reservation's status records the outcome."""
        await self._stock.forget(mark, doc.order_id, [product_id for product_id, _ in _merged(doc.items)])

    async def _transition(self, doc: ReservationRecord, status: ReservationStatus) -> bool:
        """Store `doc` with `status` unless it changed since it was read; False if it did."""
        expected = doc.version
        doc.status, doc.version, doc.updated_at = status, expected + 1, utcnow()
        return await self._stock.replace_reservation(doc, expected)

    async def _current(self, order_id: str) -> ReservationRecord:
        doc = await self._stock.reservation(order_id)
        assert doc is not None  # noqa: S101 - reservations are never deleted
        return doc

    @staticmethod
    def _shortage_text(doc: ReservationRecord) -> str:
        return f"order {doc.order_id}: the items were not available when it was reserved"

    async def get_product(self, product_id: str) -> Product:
        """See `InventoryService.get_product`."""
        record = await self._stock.product(product_id)
        if record is None:
            raise ProductNotFoundError(f"no product {product_id!r}")
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


def _priced(item: ItemQuantity | PricedItem, price: CatalogPrice | None) -> PricedItem:
    """`item` at its catalog price (0, nameless, for an unknown product)."""
    cents = price.price_cents if price else 0
    return PricedItem(
        product_id=item.product_id,
        name=price.name if price else "",
        quantity=item.quantity,
        price_cents=cents,
        line_total_cents=cents * item.quantity,
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
