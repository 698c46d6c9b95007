"""The catalog, stock levels and reservations: the `InventoryRepository` port, on MongoDB (Beanie)
and in memory.

Stock moves are atomic and happen once per order: `hold` takes units from `available` to
`reserved` and marks, in the same conditional update, that this order holds them; `undo_hold`
and `give_back` move them back once. The marks are forgotten once the reservation's own status
records the outcome. Both implementations pass `tests/contract/test_inventory_repository_contract.py`.

A product's name, price and currency never change once it is created (no operation changes
them), so the MongoDB repository remembers them; an operation that changes a price must forget
the remembered one.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from ecommerce_saga.modules.inventory.contract import PricedItem, ProductFilter, ReservationStatus
from ecommerce_saga.modules.inventory.documents import ProductDocument, ReservationDocument

Mark = Literal["holds", "releases"]
"""Which move of an order's units a product remembers: held for it, or given back."""
ACTIVE = (ReservationStatus.PENDING, ReservationStatus.RESERVED, ReservationStatus.RELEASING)
"""Reservations that hold, or may hold, stock."""


class CatalogPrice(BaseModel):
    """What a product costs, read with its stock move."""

    model_config = ConfigDict(frozen=True)

    name: str
    price_cents: int
    currency: str


class HoldRefused(StrEnum):
    """Why no units were held."""

    UNKNOWN_PRODUCT = "UNKNOWN_PRODUCT"
    SHORT_OF_STOCK = "SHORT_OF_STOCK"


class ProductRecord(BaseModel):
    """A product and its stock as stored."""

    product_id: str
    name: str
    category: str
    price_cents: int
    currency: str = "USD"
    available: int
    reserved: int = 0
    created_at: datetime


class ReservationRecord(BaseModel):
    """One order's reservation as stored; `version` counts the writes (optimistic concurrency)."""

    order_id: str
    reservation_id: str
    status: ReservationStatus
    items: list[PricedItem]
    total_cents: int
    currency: str
    version: int = 0
    created_at: datetime
    updated_at: datetime


class InventoryRepository(Protocol):
    """Where the inventory module keeps its catalog, stock and reservations."""

    async def add_product(self, product: ProductRecord) -> bool:
        """Store a new product; False if its id is taken (nothing written)."""
        ...

    async def product(self, product_id: str) -> ProductRecord | None:
        """The product, or None."""
        ...

    async def find_products(self, query: ProductFilter) -> tuple[list[ProductRecord], int]:
        """A page of products by category and stock, ordered by id, and how many match in all."""
        ...

    async def prices(self, product_ids: list[str]) -> dict[str, CatalogPrice]:
        """The catalog prices of those products that exist."""
        ...

    async def restock(self, product_id: str, quantity: int) -> bool:
        """Add `quantity` to the product's available units; False if there is no such product."""
        ...

    async def hold(self, order_id: str, product_id: str, quantity: int) -> CatalogPrice | HoldRefused:
        """Move `quantity` units from available to reserved for the order, once; the product's price.

        A repeat (the order holds the product already) moves nothing and answers the price too.
        """
        ...

    async def undo_hold(self, order_id: str, product_id: str, quantity: int) -> None:
        """Give back the units the order holds of the product (if it holds `quantity`); forget the hold."""
        ...

    async def give_back(self, order_id: str, product_id: str, quantity: int) -> None:
        """Move `quantity` reserved units back to available for the order, once (marked as released)."""
        ...

    async def forget(self, mark: Mark, order_id: str, product_ids: list[str]) -> None:
        """Drop the products' marks for the order, once the reservation's status records the move.

        The marks may stay stored until the product's next stock move or `flush`: a mark whose
        reservation has settled is never read again.
        """
        ...

    async def flush(self) -> None:
        """Store every `forget` not stored yet (at shutdown)."""
        ...

    async def add_reservation(self, reservation: ReservationRecord) -> ReservationRecord:
        """Store a new reservation, or return the order's reservation stored first (nothing written)."""
        ...

    async def reservation(self, order_id: str) -> ReservationRecord | None:
        """The order's reservation, or None."""
        ...

    async def replace_reservation(self, reservation: ReservationRecord, expected_version: int) -> bool:
        """Write the reservation whole if the stored one still has `expected_version`; False if not."""
        ...

    async def claim_release(self, order_id: str) -> ReservationRecord | None:
        """Move the order's reservation from RESERVED to RELEASING (its version up by one) in one
        conditional write; the reservation as stored then, or None if it was not RESERVED."""
        ...

    async def active_reservations(self, product_id: str, limit: int) -> list[ReservationRecord]:
        """The newest `limit` active reservations that include the product."""
        ...


_PRICE_FIELDS = {"name": 1, "price_cents": 1, "currency": 1}


def _price(found: dict[str, Any]) -> CatalogPrice:
    return CatalogPrice(
        name=str(found["name"]),
        price_cents=int(found["price_cents"]),
        currency=str(found.get("currency", "USD")),
    )


class BeanieInventoryRepository:
    """`InventoryRepository` on MongoDB (collections `products` and `reservations`).

    `available` and `reserved` change only by conditional `$inc`; the marks are the product
    document's `holds.<order_id>` and `releases.<order_id>`, set or unset in that same update.
    Reservations are written whole (insert, `replace` filtered on `version`).

    A `forget` costs no command of its own: the marks to drop are unset by the product's next
    stock move (`hold`, `undo_hold`, `give_back`, `restock`), in the same update, or by one
    update of their own once `forget_batch` of them wait on a product, and by `flush`. A mark
    whose forget is lost with the process stays stored; its reservation has settled, so nothing
    reads it again, and the audit does not count it as unfinished.

    Args:
        price_cache_size: How many products' catalog prices are remembered.
        forget_batch: How many forgotten marks may wait on one product for its next stock move.
    """

    def __init__(self, price_cache_size: int = 10_000, forget_batch: int = 64) -> None:
        self._prices: OrderedDict[str, CatalogPrice] = OrderedDict()
        self._price_cache_size = price_cache_size
        self._forget_batch = forget_batch
        self._forgotten: dict[str, set[str]] = {}  # product id → mark fields to unset with its next move

    def _remember_price(self, product_id: str, price: CatalogPrice) -> None:
        self._prices[product_id] = price
        self._prices.move_to_end(product_id)
        if len(self._prices) > self._price_cache_size:
            self._prices.popitem(last=False)

    async def _forgotten_first(self, product_id: str, mark: str) -> None:
        """If `mark` is forgotten on the product but still stored, unset it (and the others) now:
        a move that tests or sets a mark finds it as a forget left it, gone."""
        if mark in self._forgotten.get(product_id, ()):
            await self._move(product_id, {}, {})

    def _with_forgotten(
        self, product_id: str, update: dict[str, Any], touched: str | None = None
    ) -> tuple[dict[str, Any], frozenset[str]]:
        """`update` unsetting, too, the marks forgotten on the product (but not the `touched` one)."""
        waiting = self._forgotten.get(product_id)
        fields = frozenset(waiting - {touched} if touched else waiting) if waiting else frozenset()
        if not fields:
            return update, fields
        return {**update, "$unset": {**update.get("$unset", {}), **dict.fromkeys(fields, "")}}, fields

    def _unset(self, product_id: str, fields: frozenset[str]) -> None:
        """`fields` were unset on the product by a stored update."""
        waiting = self._forgotten.get(product_id)
        if waiting is not None and fields:
            waiting -= fields
            if not waiting:
                del self._forgotten[product_id]

    async def _move(
        self, product_id: str, criteria: dict[str, Any], update: dict[str, Any], touched: str | None = None
    ) -> bool:
        """One conditional update of the product, with its forgotten marks; True if it matched."""
        full, fields = self._with_forgotten(product_id, update, touched)
        if not full:
            return True  # nothing to write
        result = await ProductDocument.get_pymongo_collection().update_one(
            {"_id": product_id, **criteria}, full
        )
        if result.matched_count:
            self._unset(product_id, fields)
        return result.matched_count > 0

    async def add_product(self, product: ProductRecord) -> bool:
        """See `InventoryRepository.add_product`."""
        try:
            await ProductDocument(
                id=product.product_id, **product.model_dump(exclude={"product_id"})
            ).insert()
        except DuplicateKeyError:
            return False
        return True

    async def product(self, product_id: str) -> ProductRecord | None:
        """See `InventoryRepository.product`."""
        doc = await ProductDocument.get(product_id)
        return None if doc is None else _product(doc)

    async def find_products(self, query: ProductFilter) -> tuple[list[ProductRecord], int]:
        """See `InventoryRepository.find_products`."""
        criteria: dict[str, Any] = {}
        if query.category is not None:
            criteria["category"] = query.category
        if query.in_stock is not None:
            criteria["available"] = {"$gt": 0} if query.in_stock else {"$lte": 0}
        total = await ProductDocument.find(criteria).count()
        docs = await ProductDocument.find(criteria).sort("_id").skip(query.skip).limit(query.limit).to_list()
        return [_product(doc) for doc in docs], total

    async def prices(self, product_ids: list[str]) -> dict[str, CatalogPrice]:
        """See `InventoryRepository.prices`."""
        known = {pid: price for pid in product_ids if (price := self._prices.get(pid)) is not None}
        unknown = [pid for pid in product_ids if pid not in known]
        if unknown:
            found = ProductDocument.get_pymongo_collection().find({"_id": {"$in": unknown}}, _PRICE_FIELDS)
            async for doc in found:  # prices only: not the marks
                known[doc["_id"]] = price = _price(doc)
                self._remember_price(doc["_id"], price)
        return known

    async def restock(self, product_id: str, quantity: int) -> bool:
        """See `InventoryRepository.restock`."""
        return await self._move(product_id, {}, {"$inc": {"available": quantity}})

    async def hold(self, order_id: str, product_id: str, quantity: int) -> CatalogPrice | HoldRefused:
        """See `InventoryRepository.hold`."""
        products = ProductDocument.get_pymongo_collection()
        mark = f"holds.{order_id}"
        await self._forgotten_first(product_id, mark)
        update, fields = self._with_forgotten(
            product_id,
            {"$inc": {"available": -quantity, "reserved": quantity}, "$set": {mark: quantity}},
            mark,
        )
        found = await products.find_one_and_update(
            {"_id": product_id, "available": {"$gte": quantity}, mark: {"$exists": False}},
            update,
            projection=_PRICE_FIELDS,
            return_document=ReturnDocument.AFTER,
        )
        if found is not None:
            self._unset(product_id, fields)
        else:  # held already by an earlier call, short of stock, or unknown: one read tells
            # the marks whole: the embedded server ignores a projection of one (`holds.<id>`); they
            # are the orders being reserved at this moment, a handful
            found = await products.find_one({"_id": product_id}, {**_PRICE_FIELDS, "holds": 1})
            if found is None:
                return HoldRefused.UNKNOWN_PRODUCT
            if order_id not in (found.get("holds") or {}):
                return HoldRefused.SHORT_OF_STOCK
        return _price(found)

    async def undo_hold(self, order_id: str, product_id: str, quantity: int) -> None:
        """See `InventoryRepository.undo_hold`."""
        mark = f"holds.{order_id}"
        await self._forgotten_first(product_id, mark)
        await self._move(
            product_id,
            {mark: quantity},
            {"$inc": {"available": quantity, "reserved": -quantity}, "$unset": {mark: ""}},
            mark,
        )

    async def give_back(self, order_id: str, product_id: str, quantity: int) -> None:
        """See `InventoryRepository.give_back`."""
        mark = f"releases.{order_id}"
        await self._forgotten_first(product_id, mark)
        await self._move(
            product_id,
            {mark: {"$exists": False}},
            {"$inc": {"available": quantity, "reserved": -quantity}, "$set": {mark: quantity}},
            mark,
        )

    async def forget(self, mark: Mark, order_id: str, product_ids: list[str]) -> None:
        """See `InventoryRepository.forget`: left for each product's next stock move to unset, or
        unset at once, in one update, on a product where `forget_batch` wait."""
        field = f"{mark}.{order_id}"
        for product_id in product_ids:
            waiting = self._forgotten.setdefault(product_id, set())
            waiting.add(field)
            if len(waiting) >= self._forget_batch:
                await self._move(product_id, {}, {})

    async def flush(self) -> None:
        """See `InventoryRepository.flush`: one update per product with forgotten marks."""
        for product_id in list(self._forgotten):
            await self._move(product_id, {}, {})

    async def add_reservation(self, reservation: ReservationRecord) -> ReservationRecord:
        """See `InventoryRepository.add_reservation`."""
        try:
            await ReservationDocument.get_pymongo_collection().insert_one(_reservation_fields(reservation))
        except DuplicateKeyError:
            first = await self.reservation(reservation.order_id)
            assert first is not None  # noqa: S101 - reservations are never deleted
            return first
        return reservation

    async def reservation(self, order_id: str) -> ReservationRecord | None:
        """See `InventoryRepository.reservation`."""
        return _stored_reservation(
            await ReservationDocument.get_pymongo_collection().find_one({"_id": order_id})
        )

    async def replace_reservation(self, reservation: ReservationRecord, expected_version: int) -> bool:
        """See `InventoryRepository.replace_reservation`."""
        result = await ReservationDocument.get_pymongo_collection().replace_one(
            {"_id": reservation.order_id, "version": expected_version}, _reservation_fields(reservation)
        )
        return result.matched_count == 1

    async def claim_release(self, order_id: str) -> ReservationRecord | None:
        """See `InventoryRepository.claim_release`: a string `$set` and an `$inc`, which the embedded
        server applies as MongoDB does; `updated_at` changes with the RELEASED write that follows."""
        claimed = await ReservationDocument.get_pymongo_collection().find_one_and_update(
            {"_id": order_id, "status": ReservationStatus.RESERVED.value},
            {"$set": {"status": ReservationStatus.RELEASING.value}, "$inc": {"version": 1}},
            return_document=ReturnDocument.AFTER,
        )
        return _stored_reservation(claimed)

    async def active_reservations(self, product_id: str, limit: int) -> list[ReservationRecord]:
        """See `InventoryRepository.active_reservations`."""
        active = [status.value for status in ACTIVE]
        docs = (
            await ReservationDocument.find({"items.product_id": product_id, "status": {"$in": active}})
            .sort("-created_at")
            .limit(limit)
            .to_list()
        )
        return [_reservation(doc) for doc in docs]


def _product(doc: ProductDocument) -> ProductRecord:
    return ProductRecord(product_id=doc.id, **doc.model_dump(include=set(ProductRecord.model_fields)))


def _reservation_fields(reservation: ReservationRecord) -> dict[str, Any]:
    """The reservation as a `ReservationDocument` stores it, built without Beanie's encoder (the
    hot path writes reservations with PyMongo; the fields are plain strings, numbers and UTC
    datetimes, which PyMongo stores as Beanie would)."""
    fields = reservation.model_dump(exclude={"order_id"})
    fields["status"] = reservation.status.value
    return {"_id": reservation.order_id, **fields}


def _stored_reservation(raw: dict[str, Any] | None) -> ReservationRecord | None:
    return None if raw is None else ReservationRecord.model_validate({**raw, "order_id": raw["_id"]})


def _reservation(doc: ReservationDocument) -> ReservationRecord:
    return ReservationRecord(order_id=doc.id, **doc.model_dump(include=set(ReservationRecord.model_fields)))


class InMemoryInventoryRepository:
    """`InventoryRepository` in dicts: for unit tests and a database-free shop. Each method runs
    without awaiting, so it is atomic on the event loop, as the conditional updates are on MongoDB."""

    def __init__(self) -> None:
        self._products: dict[str, ProductRecord] = {}
        self._marks: dict[tuple[Mark, str], dict[str, int]] = {}  # (mark, product id) → order → units
        self._reservations: dict[str, ReservationRecord] = {}

    def marks(self, mark: Mark, product_id: str) -> dict[str, int]:
        """The orders the product has `mark`ed and their units (what the marks keep, for tests)."""
        return self._marks.setdefault((mark, product_id), {})

    async def add_product(self, product: ProductRecord) -> bool:
        """See `InventoryRepository.add_product`."""
        if product.product_id in self._products:
            return False
        self._products[product.product_id] = product.model_copy()
        return True

    async def product(self, product_id: str) -> ProductRecord | None:
        """See `InventoryRepository.product`."""
        found = self._products.get(product_id)
        return None if found is None else found.model_copy()

    async def find_products(self, query: ProductFilter) -> tuple[list[ProductRecord], int]:
        """See `InventoryRepository.find_products`."""
        matching = [
            p
            for _, p in sorted(self._products.items())
            if (query.category is None or p.category == query.category)
            and (query.in_stock is None or (p.available > 0) is query.in_stock)
        ]
        return [p.model_copy() for p in matching[query.skip : query.skip + query.limit]], len(matching)

    async def prices(self, product_ids: list[str]) -> dict[str, CatalogPrice]:
        """See `InventoryRepository.prices`."""
        return {pid: _catalog_price(p) for pid in product_ids if (p := self._products.get(pid)) is not None}

    async def restock(self, product_id: str, quantity: int) -> bool:
        """See `InventoryRepository.restock`."""
        product = self._products.get(product_id)
        if product is not None:
            product.available += quantity
        return product is not None

    async def hold(self, order_id: str, product_id: str, quantity: int) -> CatalogPrice | HoldRefused:
        """See `InventoryRepository.hold`."""
        product = self._products.get(product_id)
        if product is None:
            return HoldRefused.UNKNOWN_PRODUCT
        holds = self.marks("holds", product_id)
        if order_id not in holds:
            if product.available < quantity:
                return HoldRefused.SHORT_OF_STOCK
            product.available, product.reserved = product.available - quantity, product.reserved + quantity
            holds[order_id] = quantity
        return _catalog_price(product)

    async def undo_hold(self, order_id: str, product_id: str, quantity: int) -> None:
        """See `InventoryRepository.undo_hold`."""
        holds = self.marks("holds", product_id)
        product = self._products.get(product_id)
        if product is not None and holds.get(order_id) == quantity:
            product.available, product.reserved = product.available + quantity, product.reserved - quantity
            del holds[order_id]

    async def give_back(self, order_id: str, product_id: str, quantity: int) -> None:
        """See `InventoryRepository.give_back`."""
        releases = self.marks("releases", product_id)
        product = self._products.get(product_id)
        if product is not None and order_id not in releases:
            product.available, product.reserved = product.available + quantity, product.reserved - quantity
            releases[order_id] = quantity

    async def forget(self, mark: Mark, order_id: str, product_ids: list[str]) -> None:
        """See `InventoryRepository.forget`."""
        for product_id in product_ids:
            self.marks(mark, product_id).pop(order_id, None)

    async def flush(self) -> None:
        """See `InventoryRepository.flush`: nothing waits here (a forget is applied at once)."""

    async def add_reservation(self, reservation: ReservationRecord) -> ReservationRecord:
        """See `InventoryRepository.add_reservation`."""
        first = self._reservations.get(reservation.order_id)
        if first is not None:
            return first.model_copy(deep=True)
        self._reservations[reservation.order_id] = reservation.model_copy(deep=True)
        return reservation

    async def reservation(self, order_id: str) -> ReservationRecord | None:
        """See `InventoryRepository.reservation`."""
        found = self._reservations.get(order_id)
        return None if found is None else found.model_copy(deep=True)

    async def replace_reservation(self, reservation: ReservationRecord, expected_version: int) -> bool:
        """See `InventoryRepository.replace_reservation`."""
        current = self._reservations.get(reservation.order_id)
        if current is None or current.version != expected_version:
            return False
        self._reservations[reservation.order_id] = reservation.model_copy(deep=True)
        return True

    async def claim_release(self, order_id: str) -> ReservationRecord | None:
        """See `InventoryRepository.claim_release`."""
        current = self._reservations.get(order_id)
        if current is None or current.status is not ReservationStatus.RESERVED:
            return None
        current.status, current.version = ReservationStatus.RELEASING, current.version + 1
        return current.model_copy(deep=True)

    async def active_reservations(self, product_id: str, limit: int) -> list[ReservationRecord]:
        """See `InventoryRepository.active_reservations`."""
        matching = [
            r
            for r in self._reservations.values()
            if r.status in ACTIVE and any(item.product_id == product_id for item in r.items)
        ]
        matching.sort(key=lambda r: r.created_at, reverse=True)
        return [r.model_copy(deep=True) for r in matching[:limit]]


def _catalog_price(product: ProductRecord) -> CatalogPrice:
    return CatalogPrice(name=product.name, price_cents=product.price_cents, currency=product.currency)
