"""The inventory module's local implementation: all-or-nothing, oversell-proof reservations.

Each product's units held for an order live in the product document (`holds.<order_id>`), and a
reservation changes `available`, `reserved` and that hold in one conditional update; so a unit
is never sold twice, and reserving or releasing the same order twice has the effect of once,
even when a worker dies half-way through a multi-item reservation and the step runs again.
"""

from __future__ import annotations

import logging
from typing import Any

from beanie.exceptions import DocumentNotFound
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

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
from ecommerce_saga.modules.inventory.documents import ProductDocument, ReservationDocument
from ecommerce_saga.shared.clock import utcnow
from ecommerce_saga.shared.contracts import Page

logger = logging.getLogger(__name__)


def _product(doc: ProductDocument, reservations: list[ProductHold] | None = None) -> Product:
    return Product(
        product_id=doc.id,
        name=doc.name,
        category=doc.category,
        price_cents=doc.price_cents,
        currency=doc.currency,
        available=doc.available,
        reserved=doc.reserved,
        in_stock=doc.available > 0,
        reservations=reservations or [],
    )


def _reservation(doc: ReservationDocument) -> Reservation:
    return Reservation(
        reservation_id=doc.reservation_id,
        order_id=doc.id,
        status=doc.status,
        items=doc.items,
        total_cents=doc.total_cents,
        currency=doc.currency,
        created_at=doc.created_at,
        updated_at=doc.updated_at,
    )


class LocalInventoryService:
    """`InventoryService` on MongoDB."""

    async def quote(self, items: list[ItemQuantity]) -> Quote:
        """See `InventoryService.quote`."""
        wanted = sorted({item.product_id for item in items})
        found = ProductDocument.get_pymongo_collection().find({"_id": {"$in": wanted}}, _PRICE_FIELDS)
        docs = {doc["_id"]: doc async for doc in found}  # prices only: not the holds
        currencies = {str(doc.get("currency", "USD")) for doc in docs.values()} or {"USD"}
        if len(currencies) > 1:
            raise InventoryUnavailableError("the items are priced in different currencies")
        priced = [_priced(item, docs.get(item.product_id)) for item in items]
        return Quote(
            items=priced,
            total_cents=sum(p.line_total_cents for p in priced),
            currency=currencies.pop(),
            unknown_products=[pid for pid in wanted if pid not in docs],
        )

    async def reserve(self, command: ReserveItems) -> Reservation:
        """See `InventoryService.reserve`."""
        doc = await self._reservation_for(command)
        if doc.status is ReservationStatus.RESERVED:
            await self._clear_markers(doc, _HOLDS)  # in case an earlier run stopped before it did
            return _reservation(doc)
        if doc.status in (ReservationStatus.RELEASED, ReservationStatus.RELEASING):
            raise ReservationReleasedError(f"the reservation of order {doc.id} was released")
        if doc.status is ReservationStatus.REJECTED:
            raise InventoryUnavailableError(self._shortage_text(doc))
        priced, shortage = await self._hold_all(doc)
        if shortage is not None:
            await self._undo_holds(doc)
            await self._transition(doc, ReservationStatus.REJECTED)
            raise InventoryUnavailableError(shortage)
        doc.items = priced
        doc.total_cents = sum(item.line_total_cents for item in priced)
        if not await self._transition(doc, ReservationStatus.RESERVED):
            await self._undo_holds(doc)  # released while this call was holding: give it all back
            raise ReservationReleasedError(f"the reservation of order {doc.id} was released meanwhile")
        await self._clear_markers(doc, _HOLDS)
        return _reservation(doc)

    async def release(self, command: ReleaseItems) -> Reservation:
        """See `InventoryService.release`."""
        doc = await ReservationDocument.get(command.order_id)
        if doc is None:
            doc = await self._tombstone(command.order_id)
        for _ in range(_WRITE_ATTEMPTS):
            if doc.status in (ReservationStatus.RELEASED, ReservationStatus.REJECTED):
                await self._clear_markers(doc, _RELEASES)
                return _reservation(doc)
            if doc.status is ReservationStatus.PENDING:  # a reservation that never finished
                await self._undo_holds(doc)
                if await self._transition(doc, ReservationStatus.RELEASED):
                    return _reservation(doc)
            elif doc.status is ReservationStatus.RESERVED:
                await self._transition(doc, ReservationStatus.RELEASING)
            else:  # RELEASING: give each item back once, then record it
                await self._give_back(doc)
                await self._transition(doc, ReservationStatus.RELEASED)
            doc = await self._current(doc.id)
        raise RuntimeError(f"the reservation of order {command.order_id} kept changing")  # pragma: no cover

    async def _tombstone(self, order_id: str) -> ReservationDocument:
        """Record a release before any reservation, so a late reserve for the order holds nothing."""
        doc = ReservationDocument(
            id=order_id, reservation_id=f"res_{order_id}", status=ReservationStatus.RELEASED,
            items=[], total_cents=0, currency="USD",
        )  # fmt: skip
        try:
            await doc.insert()
        except DuplicateKeyError:
            return await self._current(order_id)
        return doc

    async def _reservation_for(self, command: ReserveItems) -> ReservationDocument:
        """The order's reservation: a new PENDING one, or the one a previous call left."""
        doc = ReservationDocument(
            id=command.order_id,
            reservation_id=f"res_{command.order_id}",
            status=ReservationStatus.PENDING,
            items=[_priced(item, None) for item in command.items],  # priced as the items are held
            total_cents=0,
            currency="USD",
        )
        try:
            await doc.insert()  # insert first: a replay finds the reservation in the way
        except DuplicateKeyError:
            existing = await ReservationDocument.get(command.order_id)
            assert existing is not None  # noqa: S101 - the duplicate exists
            return existing
        return doc

    async def _hold_all(self, doc: ReservationDocument) -> tuple[list[PricedItem], str | None]:
        """Hold every item, reading its catalog price in the same update.

        Returns the priced items, and a description of the first item that could not be held
        (unknown, or short of stock), or None when all are held.
        """
        products = ProductDocument.get_pymongo_collection()
        hold = f"{_HOLDS}.{doc.id}"
        catalog: dict[str, dict[str, Any]] = {}
        for product_id, quantity in sorted(_merged(doc.items).items()):
            found = await products.find_one_and_update(
                {"_id": product_id, "available": {"$gte": quantity}, hold: {"$exists": False}},
                {"$inc": {"available": -quantity, "reserved": quantity}, "$set": {hold: quantity}},
                projection=_PRICE_FIELDS,
                return_document=ReturnDocument.AFTER,
            )
            if found is None:  # held already by an earlier run, short of stock, or unknown
                found = await products.find_one({"_id": product_id, hold: {"$exists": True}}, _PRICE_FIELDS)
                if found is None:
                    known = await products.find_one({"_id": product_id}, _PRICE_FIELDS)
                    return (
                        [],
                        f"not enough stock of {product_id}" if known else f"unknown product {product_id}",
                    )
            catalog[product_id] = found
        doc.currency = next(iter(catalog.values())).get("currency", doc.currency) if catalog else doc.currency
        return [_priced(item, catalog[item.product_id]) for item in doc.items], None

    async def _undo_holds(self, doc: ReservationDocument) -> None:
        """Give back the items this order holds (those still marked as held)."""
        products = ProductDocument.get_pymongo_collection()
        hold = f"{_HOLDS}.{doc.id}"
        for product_id, quantity in sorted(_merged(doc.items).items()):
            await products.update_one(
                {"_id": product_id, hold: quantity},
                {"$inc": {"available": quantity, "reserved": -quantity}, "$unset": {hold: ""}},
            )

    async def _give_back(self, doc: ReservationDocument) -> None:
        """Return a RESERVED order's items, each once: a release marker makes a repeat a no-op."""
        products = ProductDocument.get_pymongo_collection()
        marker = f"{_RELEASES}.{doc.id}"
        for product_id, quantity in sorted(_merged(doc.items).items()):
            await products.update_one(
                {"_id": product_id, marker: {"$exists": False}},
                {"$inc": {"available": quantity, "reserved": -quantity}, "$set": {marker: quantity}},
            )

    @staticmethod
    async def _clear_markers(doc: ReservationDocument, kind: str) -> None:
        """Drop this order's markers once the reservation's status records the outcome."""
        products = ProductDocument.get_pymongo_collection()
        marker = f"{kind}.{doc.id}"
        for product_id in sorted(_merged(doc.items)):
            await products.update_one(
                {"_id": product_id, marker: {"$exists": True}}, {"$unset": {marker: ""}}
            )

    @staticmethod
    async def _transition(doc: ReservationDocument, status: ReservationStatus) -> bool:
        """Store `doc` with `status` unless it changed since it was read; False if it did."""
        expected = doc.version
        doc.status, doc.version, doc.updated_at = status, expected + 1, utcnow()
        try:
            await ReservationDocument.find_one({"_id": doc.id, "version": expected}).replace_one(doc)
        except DocumentNotFound:
            return False
        return True

    @staticmethod
    async def _current(order_id: str) -> ReservationDocument:
        doc = await ReservationDocument.get(order_id)
        assert doc is not None  # noqa: S101 - reservations are never deleted
        return doc

    @staticmethod
    def _shortage_text(doc: ReservationDocument) -> str:
        return f"order {doc.id}: the items were not available when it was reserved"

    async def get_product(self, product_id: str) -> Product:
        """See `InventoryService.get_product`."""
        doc = await ProductDocument.get(product_id)
        if doc is None:
            raise ProductNotFoundError(f"no product {product_id!r}")
        active = (
            await ReservationDocument.find({"items.product_id": product_id, "status": {"$in": _ACTIVE}})
            .sort("-created_at")
            .limit(_SHOWN_RESERVATIONS)
            .to_list()
        )
        holds = [
            ProductHold(
                order_id=r.id, quantity=sum(i.quantity for i in r.items if i.product_id == product_id)
            )
            for r in active
        ]
        return _product(doc, holds)

    async def list_products(self, query: ProductFilter) -> Page[Product]:
        """See `InventoryService.list_products`."""
        criteria: dict[str, Any] = {}
        if query.category is not None:
            criteria["category"] = query.category
        if query.in_stock is not None:
            criteria["available"] = {"$gt": 0} if query.in_stock else {"$lte": 0}
        found = ProductDocument.find(criteria)
        total = await found.count()
        docs = await ProductDocument.find(criteria).sort("_id").skip(query.skip).limit(query.limit).to_list()
        return Page(items=[_product(d) for d in docs], total=total, limit=query.limit, skip=query.skip)

    async def create_product(self, product: NewProduct) -> Product:
        """See `InventoryService.create_product`."""
        doc = ProductDocument(
            id=product.product_id,
            name=product.name,
            category=product.category,
            price_cents=product.price_cents,
            currency=product.currency,
            available=product.quantity,
        )
        try:
            await doc.insert()
        except DuplicateKeyError:
            raise ProductExistsError(f"product {product.product_id!r} exists") from None
        return _product(doc)

    async def restock(self, product_id: str, restock: Restock) -> Product:
        """See `InventoryService.restock`."""
        result = await ProductDocument.get_pymongo_collection().update_one(
            {"_id": product_id}, {"$inc": {"available": restock.quantity}}
        )
        if result.matched_count == 0:
            raise ProductNotFoundError(f"no product {product_id!r}")
        return await self.get_product(product_id)


def _priced(item: ItemQuantity | PricedItem, product: dict[str, Any] | None) -> PricedItem:
    """`item` at its catalog price (0, nameless, for an unknown product)."""
    price = int(product["price_cents"]) if product else 0
    return PricedItem(
        product_id=item.product_id,
        name=str(product["name"]) if product else "",
        quantity=item.quantity,
        price_cents=price,
        line_total_cents=price * item.quantity,
    )


_PRICE_FIELDS = {"name": 1, "price_cents": 1, "currency": 1}
_HOLDS = "holds"
_RELEASES = "releases"
_WRITE_ATTEMPTS = 8
_ACTIVE = [
    ReservationStatus.PENDING.value,
    ReservationStatus.RESERVED.value,
    ReservationStatus.RELEASING.value,
]
_SHOWN_RESERVATIONS = 50


def _merged(items: list[PricedItem]) -> dict[str, int]:
    """Quantities by product, adding up repeated lines."""
    merged: dict[str, int] = {}
    for item in items:
        merged[item.product_id] = merged.get(item.product_id, 0) + item.quantity
    return merged
