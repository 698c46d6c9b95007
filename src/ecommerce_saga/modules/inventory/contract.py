"""The inventory module's contract: its port, DTOs and errors. Other modules import only this."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Protocol

from pydantic import ConfigDict, Field

from ecommerce_saga.shared.contracts import (
    SAFE_ID_PATTERN,
    ConflictError,
    ContractError,
    FrozenModel,
    NotFoundError,
    Page,
    PageRequest,
)

ProductId = Annotated[str, Field(pattern=SAFE_ID_PATTERN, examples=["sku-keyboard"])]
OrderId = Annotated[str, Field(pattern=SAFE_ID_PATTERN, examples=["ord_3f2a9c"])]
Quantity = Annotated[int, Field(ge=1, le=1000, strict=True)]
"""Units of one product in an order line: a JSON integer (not `true`, `"3"` or `3.0`)."""
CATEGORY_PATTERN = r"^[A-Za-z0-9 _-]+$"


class ItemQuantity(FrozenModel):
    """A product and how many of it."""

    product_id: ProductId
    quantity: Quantity


class PricedItem(FrozenModel):
    """An item priced from the catalog."""

    product_id: str
    name: str
    quantity: int
    price_cents: int
    line_total_cents: int


class Quote(FrozenModel):
    """Catalog prices for a list of items (the client never sets prices).

    Unknown products are priced 0 and listed in `unknown_products`; reserving them fails.
    """

    items: list[PricedItem]
    total_cents: int
    currency: str
    unknown_products: list[str] = Field(default_factory=list)


class QuoteRequest(FrozenModel):
    """Items to price."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"items": [{"product_id": "sku-keyboard", "quantity": 1}]}]}
    )

    items: list[ItemQuantity] = Field(min_length=1, max_length=50)


class ProductHold(FrozenModel):
    """Stock of one product held for one order."""

    order_id: str
    quantity: int


class Product(FrozenModel):
    """A catalog product and its stock levels."""

    product_id: str
    name: str
    category: str
    price_cents: int
    currency: str
    available: int
    reserved: int
    in_stock: bool
    reservations: list[ProductHold] = Field(
        default_factory=list,
        description="The newest 50 active reservations of this product (only on the single-product view).",
    )


class NewProduct(FrozenModel):
    """A product to add to the catalog."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "product_id": "sku-keyboard",
                    "name": "Mechanical keyboard",
                    "category": "peripherals",
                    "price_cents": 8999,
                    "currency": "USD",
                    "quantity": 50,
                }
            ]
        }
    )

    product_id: ProductId
    name: str = Field(min_length=1, max_length=200)
    category: str = Field(min_length=1, max_length=100, pattern=CATEGORY_PATTERN)
    price_cents: int = Field(ge=0, le=100_000_000, strict=True)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    quantity: int = Field(ge=0, le=1_000_000, strict=True)


class Restock(FrozenModel):
    """Units to add to a product's available stock."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"quantity": 25}]})

    quantity: int = Field(ge=1, le=1_000_000, strict=True)


class ProductFilter(PageRequest):
    """Which products to list."""

    category: str | None = Field(default=None, max_length=100, pattern=CATEGORY_PATTERN)
    in_stock: bool | None = None


class ReservationStatus(StrEnum):
    """Where a reservation is."""

    PENDING = "PENDING"
    RESERVED = "RESERVED"
    REJECTED = "REJECTED"
    RELEASING = "RELEASING"
    RELEASED = "RELEASED"


class ReserveItems(FrozenModel):
    """Reserve every item for an order, or none of them."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "order_id": "ord_3f2a9c",
                    "items": [{"product_id": "sku-keyboard", "quantity": 1}],
                    "idempotency_key": "ord_3f2a9c:reserve_inventory",
                }
            ]
        }
    )

    order_id: OrderId
    items: list[ItemQuantity] = Field(min_length=1, max_length=50)
    idempotency_key: str = Field(min_length=1, max_length=200)


class ReleaseItems(FrozenModel):
    """Give back what was reserved for an order (a no-op if nothing was)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"order_id": "ord_3f2a9c", "idempotency_key": "ord_3f2a9c:reserve_inventory:compensate"}
            ]
        }
    )

    order_id: OrderId
    idempotency_key: str = Field(min_length=1, max_length=200)


class Reservation(FrozenModel):
    """Stock held for one order."""

    reservation_id: str
    order_id: str
    status: ReservationStatus
    items: list[PricedItem]
    total_cents: int
    currency: str
    created_at: datetime
    updated_at: datetime


class InventoryUnavailableError(ContractError):
    """An item is unknown or not in stock in the quantity asked for."""

    code = "inventory.unavailable"
    status = 409
    title = "Inventory unavailable"


class ProductNotFoundError(NotFoundError):
    """No product with that id."""

    code = "inventory.product_not_found"
    title = "Product not found"


class ProductExistsError(ConflictError):
    """A product with that id exists already."""

    code = "inventory.product_exists"
    title = "Product exists"


class ReservationReleasedError(ConflictError):
    """The order's reservation was released already; it cannot be reserved again."""

    code = "inventory.reservation_released"
    title = "Reservation released"


class InventoryService(Protocol):
    """The inventory module's port."""

    async def quote(self, items: list[ItemQuantity]) -> Quote:
        """Price `items` from the catalog; unknown products are listed, not raised."""
        ...

    async def reserve(self, command: ReserveItems) -> Reservation:
        """Reserve all items or none; idempotent per order.

        Raises:
            InventoryUnavailableError: If a product is unknown or short of stock.
            ReservationReleasedError: If the order's reservation was released already.
        """
        ...

    async def release(self, command: ReleaseItems) -> Reservation:
        """Release the order's reservation; idempotent, and a no-op if nothing was reserved."""
        ...

    async def get_product(self, product_id: str, *, with_reservations: bool = True) -> Product:
        """One product with its stock and, unless `with_reservations` is False, its active
        reservations (they name orders: operators see them, the public does not).

        Raises:
            ProductNotFoundError: If there is no such product.
        """
        ...

    async def list_products(self, query: ProductFilter) -> Page[Product]:
        """Products by category and stock, ordered by id."""
        ...

    async def create_product(self, product: NewProduct) -> Product:
        """Add a product to the catalog.

        Raises:
            ProductExistsError: If the id is taken.
        """
        ...

    async def restock(self, product_id: str, restock: Restock) -> Product:
        """Add stock to a product.

        Raises:
            ProductNotFoundError: If there is no such product.
        """
        ...


# The read port the consistency audit uses (`operations/audit.py`): the module's records as
# stored, read whole, for rules that span modules. `books.py` implements it on the collections.


class HeldQuantity(FrozenModel):
    """A product and how many of its units a reservation names."""

    product_id: str
    quantity: int


class ReservationEntry(FrozenModel):
    """One order's reservation, as stored.

    Attributes:
        order_id: The order it belongs to; there is one reservation per order.
        status: The stored status, unparsed (None if missing), so that a value no
            `ReservationStatus` names is reported rather than refused.
        items: The units it names, by product.
    """

    order_id: str
    status: str | None
    items: list[HeldQuantity]


class StockEntry(FrozenModel):
    """One product's stock counters, as stored, and the markers of moves still in progress.

    Attributes:
        product_id: The product.
        available: Units that can be reserved.
        reserved: Units held by reservations.
        pending_holds: Orders (sorted) whose hold mark the product keeps: the reservation moved
            units that its status may not record yet. A mark stays stored a while after its
            reservation records the move (until the product's next stock move), or for good if
            the process that would have unset it stopped; the audit tells these apart by the
            reservation's status.
        pending_releases: The same for releases.
    """

    product_id: str
    available: int
    reserved: int
    pending_holds: list[str] = Field(default_factory=list)
    pending_releases: list[str] = Field(default_factory=list)


class InventoryBooks(Protocol):
    """The inventory module's read port: its records as stored, for the consistency audit.

    Read-only and unpaged: each call reads one collection whole, in one pass.
    """

    async def stock(self) -> list[StockEntry]:
        """Every product's counters and pending markers."""
        ...

    async def reservations(self) -> list[ReservationEntry]:
        """Every reservation, whatever its status."""
        ...
