"""The inventory module's local implementation: all-or-nothing, oversell-proof reservations.

Each product's units held for an order live in the product document (`holds.<order_id>`), and a
reservation changes `available`, `reserved` and that hold in one conditional update; so a unit
is never sold twice, and reserving or releasing the same order twice has the effect of once,
even when a worker dies half-way through a multi-item reservation and the step runs again.
"""

from __future__ import annotations

import logging
from typing import Any

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


def _product(doc: ProductDocument) -> Product:
    return Product(
        product_id=doc.id,
        name=doc.name,
        category=doc.category,
        price_cents=doc.price_cents,
        currency=doc.currency,
        available=doc.available,
        reserved=doc.reserved,
        in_stock=doc.available > 0,
        reservations=[ProductHold(order_id=k, quantity=v) for k, v in sorted(doc.holds.items())],
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
        docs = {d.id: d for d in await ProductDocument.find({"_id": {"$in": wanted}}).to_list()}
        currencies = {doc.currency for doc in docs.values()} or {"USD"}
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
            return _reservation(doc)
        if doc.status is ReservationStatus.RELEASED:
            raise ReservationReleasedError(f"the reservation of order {doc.id} was released")
        if doc.status is ReservationStatus.REJECTED:
            raise InventoryUnavailableError(self._shortage_text(doc))
        shortage = await self._hold_all(doc)
        if shortage is not None:
            await self._release_holds(doc)
            await self._set_status(doc, ReservationStatus.REJECTED)
            raise InventoryUnavailableError(f"not enough stock of {shortage}")
        await self._set_status(doc, ReservationStatus.RESERVED)
        return _reservation(doc)

    async def release(self, command: ReleaseItems) -> Reservation:
        """See `InventoryService.release`."""
        doc = await ReservationDocument.get(command.order_id)
        if doc is None:
            doc = ReservationDocument(
                id=command.order_id,
                reservation_id=f"res_{command.order_id}",
                status=ReservationStatus.RELEASED,
                items=[],
                total_cents=0,
                currency="USD",
            )
            try:
                await doc.insert()  # a tombstone: a late reserve for this order must not hold stock
                return _reservation(doc)
            except DuplicateKeyError:
                doc = await ReservationDocument.get(command.order_id)
                assert doc is not None  # noqa: S101 - it was just inserted by someone
        if doc.status is not ReservationStatus.RELEASED:
            await self._release_holds(doc)
            await self._set_status(doc, ReservationStatus.RELEASED)
        return _reservation(doc)

    async def _reservation_for(self, command: ReserveItems) -> ReservationDocument:
        existing = await ReservationDocument.get(command.order_id)
        if existing is not None:
            return existing
        quote = await self.quote(command.items)
        if quote.unknown_products:
            raise InventoryUnavailableError(f"unknown product(s): {', '.join(quote.unknown_products)}")
        doc = ReservationDocument(
            id=command.order_id,
            reservation_id=f"res_{command.order_id}",
            status=ReservationStatus.PENDING,
            items=quote.items,
            total_cents=quote.total_cents,
            currency=quote.currency,
        )
        try:
            await doc.insert()
        except DuplicateKeyError:
            raced = await ReservationDocument.get(command.order_id)
            assert raced is not None  # noqa: S101 - the duplicate exists
            return raced
        return doc

    async def _hold_all(self, doc: ReservationDocument) -> str | None:
        """Hold every item; return the first product short of stock, or None."""
        products = ProductDocument.get_pymongo_collection()
        hold = f"holds.{doc.id}"
        for item in sorted(_merged(doc.items).items()):
            product_id, quantity = item
            result = await products.update_one(
                {"_id": product_id, "available": {"$gte": quantity}, hold: {"$exists": False}},
                {"$inc": {"available": -quantity, "reserved": quantity}, "$set": {hold: quantity}},
            )
            if result.modified_count == 0 and not await products.find_one(
                {"_id": product_id, hold: {"$exists": True}}
            ):
                return product_id
        return None

    async def _release_holds(self, doc: ReservationDocument) -> None:
        products = ProductDocument.get_pymongo_collection()
        hold = f"holds.{doc.id}"
        for product_id, quantity in sorted(_merged(doc.items).items()):
            await products.update_one(
                {"_id": product_id, hold: quantity},
                {"$inc": {"available": quantity, "reserved": -quantity}, "$unset": {hold: ""}},
            )

    @staticmethod
    async def _set_status(doc: ReservationDocument, status: ReservationStatus) -> None:
        doc.status = status
        doc.updated_at = utcnow()
        await doc.replace()

    @staticmethod
    def _shortage_text(doc: ReservationDocument) -> str:
        return f"order {doc.id}: the items were not available when it was reserved"

    async def get_product(self, product_id: str) -> Product:
        """See `InventoryService.get_product`."""
        doc = await ProductDocument.get(product_id)
        if doc is None:
            raise ProductNotFoundError(f"no product {product_id!r}")
        return _product(doc)

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


def _priced(item: ItemQuantity, doc: ProductDocument | None) -> PricedItem:
    price = doc.price_cents if doc else 0
    return PricedItem(
        product_id=item.product_id,
        name=doc.name if doc else "",
        quantity=item.quantity,
        price_cents=price,
        line_total_cents=price * item.quantity,
    )


def _merged(items: list[PricedItem]) -> dict[str, int]:
    """Quantities by product, adding up repeated lines."""
    merged: dict[str, int] = {}
    for item in items:
        merged[item.product_id] = merged.get(item.product_id, 0) + item.quantity
    return merged
