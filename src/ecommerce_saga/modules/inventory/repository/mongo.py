"""`InventoryRepository` on MongoDB: stock moves by conditional `$inc`, with their marks."""

from __future__ import annotations

from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from ecommerce_saga.db.inserts import InsertGroup
from ecommerce_saga.db.queries import count
from ecommerce_saga.modules.inventory.contract import ProductFilter, ReservationStatus
from ecommerce_saga.modules.inventory.documents import ProductDocument, ReservationDocument
from ecommerce_saga.modules.inventory.pricing import CatalogPrice
from ecommerce_saga.modules.inventory.repository.port import (
    ACTIVE,
    Held,
    HoldRefused,
    Mark,
    ProductRecord,
    ReservationRecord,
    add_then_hold,
)
from ecommerce_saga.saga.stores.ordered import Insert, Update, write_in_order
from ecommerce_saga.shared.recent import Recent

_PRICE_FIELDS = {"name": 1, "price_cents": 1, "currency": 1}


def _price(found: dict[str, Any]) -> CatalogPrice:
    return CatalogPrice(
        name=str(found["name"]),
        price_cents=int(found["price_cents"]),
        currency=str(found.get("currency", "USD")),
    )


def _held(found: dict[str, Any], *, moved: bool) -> Held:
    return Held(
        name=str(found["name"]),
        price_cents=int(found["price_cents"]),
        currency=str(found.get("currency", "USD")),
        moved=moved,
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
        self._prices: Recent[str, CatalogPrice] = Recent(price_cache_size)
        self._inserts = InsertGroup()  # concurrent inserts share a command
        self._forget_batch = forget_batch
        self._forgotten: dict[str, set[str]] = {}  # product id → mark fields to unset with its next move

    async def _forgotten_first(self, product_id: str, mark: str) -> None:
        """If `mark` is forgotten on the product but still stored, unset it (and the others) now:
        a move that tests or sets a mark finds it as a forget left it, gone."""
        if mark in self._forgotten.get(product_id, ()):
            await self._move(product_id, {}, {})

    def _with_forgotten(
        self, product_id: str, update: dict[str, Any], touched: str | None = None
    ) -> tuple[dict[str, Any], frozenset[str]]:
        """`update` unsetting, too, the marks forgotten on the product (but not the `touched` one).

        The marks are taken off the queue while the update is in flight (`_requeue` puts them
        back if it did not match or failed): one forget is sent once, never by two concurrent
        moves. A second unset landing later could drop the same mark set again
        meanwhile by another process's move of the order, which needs it to give its units back.
        """
        waiting = self._forgotten.get(product_id)
        fields = frozenset(waiting - {touched} if touched else waiting) if waiting else frozenset()
        if not waiting or not fields:
            return update, fields
        waiting -= fields  # taken off the queue while in flight
        if not waiting:
            del self._forgotten[product_id]
        return {**update, "$unset": {**update.get("$unset", {}), **dict.fromkeys(fields, "")}}, fields

    def _requeue(self, product_id: str, fields: frozenset[str]) -> None:
        """`fields` were not unset (the update matched nothing, or failed): forget them again."""
        if fields:
            self._forgotten.setdefault(product_id, set()).update(fields)

    async def _move(
        self, product_id: str, criteria: dict[str, Any], update: dict[str, Any], touched: str | None = None
    ) -> bool:
        """One conditional update of the product, with its forgotten marks; True if it matched."""
        full, fields = self._with_forgotten(product_id, update, touched)
        if not full:
            return True  # nothing to write
        matched = False
        try:
            result = await ProductDocument.get_pymongo_collection().update_one(
                {"_id": product_id, **criteria}, full
            )
            matched = result.matched_count > 0
        finally:
            if not matched:
                self._requeue(product_id, fields)
        return matched

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
        total = await count(ProductDocument, criteria)
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
                self._prices.put(doc["_id"], price)
        return known

    async def restock(self, product_id: str, quantity: int) -> bool:
        """See `InventoryRepository.restock`."""
        return await self._move(product_id, {}, {"$inc": {"available": quantity}})

    async def hold(self, order_id: str, product_id: str, quantity: int) -> Held | HoldRefused:
        """See `InventoryRepository.hold`."""
        products = ProductDocument.get_pymongo_collection()
        criteria, update, fields = await self._hold_move(order_id, product_id, quantity)
        found = None
        try:
            found = await products.find_one_and_update(
                criteria,
                update,
                projection=_PRICE_FIELDS,
                return_document=ReturnDocument.AFTER,
            )
        finally:
            if found is None:
                self._requeue(product_id, fields)
        if found is not None:
            return self._remembered(product_id, _held(found, moved=True))
        return await self._not_moved(order_id, product_id)

    async def _hold_move(
        self, order_id: str, product_id: str, quantity: int
    ) -> tuple[dict[str, Any], dict[str, Any], frozenset[str]]:
        """A hold's conditional update: its criteria, its update (with the product's forgotten
        marks, taken off the queue: `_requeue` them unless it matched) and those marks."""
        mark = f"holds.{order_id}"
        await self._forgotten_first(product_id, mark)
        update, fields = self._with_forgotten(
            product_id,
            {"$inc": {"available": -quantity, "reserved": quantity}, "$set": {mark: quantity}},
            mark,
        )
        return {"_id": product_id, "available": {"$gte": quantity}, mark: {"$exists": False}}, update, fields

    def _remembered(self, product_id: str, held: Held) -> Held:
        """`held`, its price remembered (prices never change): the product's next reservation
        sends its insert and its first hold as one command."""
        self._prices.put(
            product_id, CatalogPrice(name=held.name, price_cents=held.price_cents, currency=held.currency)
        )
        return held

    async def _not_moved(self, order_id: str, product_id: str) -> Held | HoldRefused:
        """Why a hold moved nothing: held already by an earlier call, short of stock, or unknown.
        One read tells. It reads the marks whole: the embedded server ignores a projection of
        one (`holds.<id>`); they are the orders being reserved at this moment, a handful."""
        products = ProductDocument.get_pymongo_collection()
        found = await products.find_one({"_id": product_id}, {**_PRICE_FIELDS, "holds": 1})
        if found is None:
            return HoldRefused.UNKNOWN_PRODUCT
        if order_id not in (found.get("holds") or {}):
            return HoldRefused.SHORT_OF_STOCK
        return self._remembered(product_id, _held(found, moved=False))

    async def held_by(self, order_id: str) -> dict[str, int]:
        """See `InventoryRepository.held_by`: a scan of the products (no index covers a mark)."""
        mark = f"holds.{order_id}"
        found = ProductDocument.get_pymongo_collection().find({mark: {"$exists": True}}, {"holds": 1})
        return {doc["_id"]: int(doc["holds"][order_id]) async for doc in found}

    async def hold_marks(self) -> dict[str, dict[str, int]]:
        """See `InventoryRepository.hold_marks`: a scan of the products' marks (no index covers
        them), as stored: marks forgotten here but not yet unset are still listed."""
        found: dict[str, dict[str, int]] = {}
        async for doc in ProductDocument.get_pymongo_collection().find({}, {"holds": 1}):
            for order_id, units in (doc.get("holds") or {}).items():
                found.setdefault(order_id, {})[doc["_id"]] = int(units)
        return found

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

    async def add_reservation_holding(
        self, reservation: ReservationRecord, product_id: str, quantity: int
    ) -> tuple[ReservationRecord, Held | HoldRefused | None]:
        """See `InventoryRepository.add_reservation_holding`: the insert and the hold's conditional
        update as one ordered command (`write_in_order`) when the product's price is known here
        (prices never change, so the hold need not read it); else `add_reservation`, then `hold`."""
        price = self._prices.get(product_id)
        if price is None:
            return await add_then_hold(self, reservation, product_id, quantity)
        criteria, update, fields = await self._hold_move(reservation.order_id, product_id, quantity)
        moved = False
        try:
            matched = await write_in_order(
                [
                    Insert(ReservationDocument.get_pymongo_collection(), _reservation_fields(reservation)),
                    Update(ProductDocument.get_pymongo_collection(), criteria, update),
                ]
            )
            moved = matched[1] > 0
        except DuplicateKeyError:  # a repeat: the reservation stored first answers, nothing held
            stored = await self.reservation(reservation.order_id)
            assert stored is not None  # noqa: S101 - reservations are never deleted
            return stored, None
        finally:
            if not moved:
                self._requeue(product_id, fields)
        if moved:
            return reservation, Held(**price.model_dump(), moved=True)
        return reservation, await self._not_moved(reservation.order_id, product_id)

    async def add_reservation(self, reservation: ReservationRecord) -> ReservationRecord:
        """See `InventoryRepository.add_reservation`."""
        try:
            await self._inserts.insert_one(
                ReservationDocument.get_pymongo_collection(), _reservation_fields(reservation)
            )
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

    async def reservations(self, order_ids: list[str]) -> list[ReservationRecord]:
        """See `InventoryRepository.reservations`: one read per 500 orders."""
        found: list[ReservationRecord] = []
        collection = ReservationDocument.get_pymongo_collection()
        for start in range(0, len(order_ids), 500):
            async for doc in collection.find({"_id": {"$in": order_ids[start : start + 500]}}):
                record = _stored_reservation(doc)
                if record is not None:
                    found.append(record)
        return found

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
