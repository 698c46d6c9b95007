"""An in-memory `InventoryService`: a catalog with stock levels and one reservation per order."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

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
from ecommerce_saga.shared.clock import utcnow
from ecommerce_saga.shared.contracts import Page
from tests.fakes.support import Journal, Outage, page_of


@dataclass
class Stock:
    """A catalog product and its stock levels."""

    name: str
    category: str
    price_cents: int
    currency: str
    available: int
    reserved: int = 0


class FakeInventoryService:
    """`InventoryService` in memory.

    Reservations are all-or-nothing and idempotent per order; a release before any reservation
    leaves a tombstone that refuses a late reservation, as the contract asks. `make_unavailable`
    makes `reserve` and `release` raise `ServiceUnavailableError`; while `reserve_gate` is set
    to an unset event, `reserve` waits for it (to hold a saga mid-way).
    """

    def __init__(self, journal: Journal | None = None) -> None:
        self.journal = journal if journal is not None else Journal()
        self.products: dict[str, Stock] = {}
        self.reservations: dict[str, Reservation] = {}
        self.reserve_gate: asyncio.Event | None = None
        self._outage = Outage("inventory")

    def add_product(
        self, product_id: str, *, price_cents: int = 1000, quantity: int = 10, currency: str = "USD"
    ) -> None:
        """Put a product in the catalog (test set-up)."""
        self.products[product_id] = Stock(
            name=f"Product {product_id}", category="misc", price_cents=price_cents, currency=currency,
            available=quantity,
        )  # fmt: skip

    def make_unavailable(self, times: int | None = None) -> None:
        """Fail the next `times` reserves and releases (every one when None)."""
        self._outage.begin(times)

    def make_available(self) -> None:
        """Answer again."""
        self._outage.end()

    async def quote(self, items: list[ItemQuantity]) -> Quote:
        """See `InventoryService.quote`."""
        priced = [self._priced(item) for item in items]
        known = [self.products[i.product_id] for i in items if i.product_id in self.products]
        currencies = {stock.currency for stock in known} or {"USD"}
        if len(currencies) > 1:
            raise InventoryUnavailableError("the items are priced in different currencies")
        unknown = sorted({i.product_id for i in items if i.product_id not in self.products})
        return Quote(
            items=priced,
            total_cents=sum(p.line_total_cents for p in priced),
            currency=currencies.pop(),
            unknown_products=unknown,
        )

    async def reserve(self, command: ReserveItems) -> Reservation:
        """See `InventoryService.reserve`."""
        self._outage.check()
        if self.reserve_gate is not None:
            await self.reserve_gate.wait()
        existing = self.reservations.get(command.order_id)
        if existing is not None:
            return self._repeat(existing)
        wanted = _merged(command.items)
        missing = [pid for pid in wanted if pid not in self.products]
        short = [
            pid for pid, qty in wanted.items() if pid not in missing and self.products[pid].available < qty
        ]
        quote = await self.quote(command.items)
        if missing or short:
            self._store(command.order_id, ReservationStatus.REJECTED, quote)
            what = (
                f"unknown product(s): {', '.join(missing)}" if missing else f"not enough stock of {short[0]}"
            )
            raise InventoryUnavailableError(what)
        for product_id, quantity in wanted.items():
            stock = self.products[product_id]
            stock.available, stock.reserved = stock.available - quantity, stock.reserved + quantity
        self.journal.record(command.order_id, "inventory.reserved")
        return self._store(command.order_id, ReservationStatus.RESERVED, quote)

    async def release(self, command: ReleaseItems) -> Reservation:
        """See `InventoryService.release`."""
        self._outage.check()
        existing = self.reservations.get(command.order_id)
        if existing is None:  # a tombstone: a late reserve for this order must hold nothing
            return self._store(command.order_id, ReservationStatus.RELEASED, None)
        if existing.status is not ReservationStatus.RESERVED:
            return existing
        for product_id, quantity in _merged(existing.items).items():
            stock = self.products[product_id]
            stock.available, stock.reserved = stock.available + quantity, stock.reserved - quantity
        self.journal.record(command.order_id, "inventory.released")
        released = existing.model_copy(update={"status": ReservationStatus.RELEASED, "updated_at": utcnow()})
        self.reservations[command.order_id] = released
        return released

    async def get_product(self, product_id: str, *, with_reservations: bool = True) -> Product:
        """See `InventoryService.get_product`."""
        if product_id not in self.products:
            raise ProductNotFoundError(f"no product {product_id!r}")
        product = self._product(product_id)
        return product if with_reservations else product.model_copy(update={"reservations": []})

    async def list_products(self, query: ProductFilter) -> Page[Product]:
        """See `InventoryService.list_products`."""
        matching = [
            self._product(pid)
            for pid, stock in sorted(self.products.items())
            if (query.category is None or stock.category == query.category)
            and (query.in_stock is None or (stock.available > 0) == query.in_stock)
        ]
        return page_of(matching, query)

    async def create_product(self, product: NewProduct) -> Product:
        """See `InventoryService.create_product`."""
        if product.product_id in self.products:
            raise ProductExistsError(f"product {product.product_id!r} exists")
        self.products[product.product_id] = Stock(
            name=product.name, category=product.category, price_cents=product.price_cents,
            currency=product.currency, available=product.quantity,
        )  # fmt: skip
        return self._product(product.product_id)

    async def restock(self, product_id: str, restock: Restock) -> Product:
        """See `InventoryService.restock`."""
        if product_id not in self.products:
            raise ProductNotFoundError(f"no product {product_id!r}")
        self.products[product_id].available += restock.quantity
        return self._product(product_id)

    def _repeat(self, existing: Reservation) -> Reservation:
        if existing.status is ReservationStatus.RELEASED:
            raise ReservationReleasedError(f"the reservation of order {existing.order_id} was released")
        if existing.status is ReservationStatus.REJECTED:
            raise InventoryUnavailableError(f"order {existing.order_id}: the items were not available")
        return existing

    def _store(self, order_id: str, status: ReservationStatus, quote: Quote | None) -> Reservation:
        now = utcnow()
        reservation = Reservation(
            reservation_id=f"res_{order_id}", order_id=order_id, status=status,
            items=quote.items if quote else [], total_cents=quote.total_cents if quote else 0,
            currency=quote.currency if quote else "USD", created_at=now, updated_at=now,
        )  # fmt: skip
        self.reservations[order_id] = reservation
        return reservation

    def _priced(self, item: ItemQuantity) -> PricedItem:
        stock = self.products.get(item.product_id)
        price = stock.price_cents if stock else 0
        return PricedItem(
            product_id=item.product_id, name=stock.name if stock else "", quantity=item.quantity,
            price_cents=price, line_total_cents=price * item.quantity,
        )  # fmt: skip

    def _product(self, product_id: str) -> Product:
        stock = self.products[product_id]
        holds = [
            ProductHold(order_id=r.order_id, quantity=_merged(r.items)[product_id])
            for r in self.reservations.values()
            if r.status is ReservationStatus.RESERVED and product_id in _merged(r.items)
        ]
        return Product(
            product_id=product_id, name=stock.name, category=stock.category,
            price_cents=stock.price_cents, currency=stock.currency, available=stock.available,
            reserved=stock.reserved, in_stock=stock.available > 0, reservations=holds,
        )  # fmt: skip


def _merged(items: list[ItemQuantity] | list[PricedItem]) -> dict[str, int]:
    merged: dict[str, int] = {}
    for item in items:
        merged[item.product_id] = merged.get(item.product_id, 0) + item.quantity
    return merged


if TYPE_CHECKING:
    from ecommerce_saga.modules.inventory.contract import InventoryService

    _conforms: InventoryService = FakeInventoryService()
