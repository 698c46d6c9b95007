"""The `InventoryRepository` port: what the inventory module stores, and the operations on it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal, Protocol

from pydantic import BaseModel

from ecommerce_saga.modules.inventory.contract import PricedItem, ProductFilter, ReservationStatus
from ecommerce_saga.modules.inventory.pricing import CatalogPrice

Mark = Literal["holds", "releases"]
"""Which move of an order's units a product remembers: held for it, or given back."""
ACTIVE = (ReservationStatus.PENDING, ReservationStatus.RESERVED, ReservationStatus.RELEASING)
"""Reservations that hold, or may hold, stock."""


class Held(CatalogPrice):
    """A hold of the order's units of a product, and the product's price."""

    moved: bool
    """True if this call moved the units; False if the order held them already (an earlier or a
    concurrent call did)."""


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
    found_held: list[str] = []
    """Products whose units the call that recorded the outcome found held for the order by another
    call (it moved the others itself): what tells a concurrent call whether its own move of a
    product is part of the recorded hold or one made after it, to give back."""


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

    async def hold(self, order_id: str, product_id: str, quantity: int) -> Held | HoldRefused:
        """Move `quantity` units from available to reserved for the order, once; the product's price.

        A repeat (the order holds the product already) moves nothing and answers the price too,
        with `moved` False.
        """
        ...

    async def held_by(self, order_id: str) -> dict[str, int]:
        """The products the order holds units of (marked as held), and how many of each.

        Reads every product's marks: for the rare release that finds no reservation recorded.
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

    async def add_reservation_holding(
        self, reservation: ReservationRecord, product_id: str, quantity: int
    ) -> tuple[ReservationRecord, Held | HoldRefused | None]:
        """`add_reservation`, then, if it stored `reservation`, `hold` of the product for its order.

        Returns the reservation stored first and the hold's answer (None, and nothing held, if
        another reservation of the order was stored first). The MongoDB repository sends both
        writes as one command where it can.
        """
        ...

    async def hold_marks(self) -> dict[str, dict[str, int]]:
        """Every order's marks of held units as stored, by order, then product.

        Reads every product's marks: for the periodic sweep of holds no reservation records.
        """
        ...

    async def reservations(self, order_ids: list[str]) -> list[ReservationRecord]:
        """The reservations of these orders (those that have one)."""
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


async def add_then_hold(
    repository: InventoryRepository, reservation: ReservationRecord, product_id: str, quantity: int
) -> tuple[ReservationRecord, Held | HoldRefused | None]:
    """`InventoryRepository.add_reservation_holding` as two calls: `add_reservation`, then, if it
    stored `reservation`, `hold` (what a repository that cannot send both at once does)."""
    first = await repository.add_reservation(reservation)
    if first is not reservation:
        return first, None
    return first, await repository.hold(reservation.order_id, product_id, quantity)
