"""`InventoryRepository` in memory: for unit tests and a database-free shop."""

from __future__ import annotations

from ecommerce_saga.modules.inventory.contract import ProductFilter, ReservationStatus
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

    async def hold(self, order_id: str, product_id: str, quantity: int) -> Held | HoldRefused:
        """See `InventoryRepository.hold`."""
        product = self._products.get(product_id)
        if product is None:
            return HoldRefused.UNKNOWN_PRODUCT
        holds = self.marks("holds", product_id)
        moved = order_id not in holds
        if moved:
            if product.available < quantity:
                return HoldRefused.SHORT_OF_STOCK
            product.available, product.reserved = product.available - quantity, product.reserved + quantity
            holds[order_id] = quantity
        return Held(**_catalog_price(product).model_dump(), moved=moved)

    async def held_by(self, order_id: str) -> dict[str, int]:
        """See `InventoryRepository.held_by`."""
        return {
            product_id: marked[order_id]
            for (mark, product_id), marked in self._marks.items()
            if mark == "holds" and order_id in marked
        }

    async def hold_marks(self) -> dict[str, dict[str, int]]:
        """See `InventoryRepository.hold_marks`."""
        found: dict[str, dict[str, int]] = {}
        for (mark, product_id), marked in sorted(self._marks.items()):
            for order_id, units in marked.items():
                if mark == "holds":
                    found.setdefault(order_id, {})[product_id] = units
        return found

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

    async def add_reservation_holding(
        self, reservation: ReservationRecord, product_id: str, quantity: int
    ) -> tuple[ReservationRecord, Held | HoldRefused | None]:
        """See `InventoryRepository.add_reservation_holding`."""
        return await add_then_hold(self, reservation, product_id, quantity)

    async def reservation(self, order_id: str) -> ReservationRecord | None:
        """See `InventoryRepository.reservation`."""
        found = self._reservations.get(order_id)
        return None if found is None else found.model_copy(deep=True)

    async def reservations(self, order_ids: list[str]) -> list[ReservationRecord]:
        """See `InventoryRepository.reservations`."""
        return [
            r.model_copy(deep=True) for oid in order_ids if (r := self._reservations.get(oid)) is not None
        ]

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
