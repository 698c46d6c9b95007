"""The order module's contract: its port, DTOs and errors."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Protocol

from pydantic import ConfigDict, EmailStr, Field
from pydantic.config import JsonDict

from ecommerce_saga.modules.inventory.contract import ItemQuantity
from ecommerce_saga.modules.payment.contract import PaymentDetails, PaymentMethodKind
from ecommerce_saga.modules.shipping.contract import Address, ShippingMethod
from ecommerce_saga.shared.contracts import (
    SAFE_ID_PATTERN,
    ConflictError,
    FrozenModel,
    InvalidRequestError,
    NotFoundError,
    Page,
    PageRequest,
)

CustomerId = Annotated[str, Field(pattern=SAFE_ID_PATTERN, examples=["cust-42"])]
ContactEmail = Annotated[
    EmailStr,
    Field(
        max_length=254,
        examples=["ada@example.com"],
        description="Where the customer is told about the order; default: the `email` of their token.",
    ),
]


class OrderStatus(StrEnum):
    """An order's status. PENDING while its saga runs; REQUIRES_ATTENTION when an operator must act."""

    PENDING = "PENDING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLING = "CANCELLING"
    CANCELLED = "CANCELLED"
    REQUIRES_ATTENTION = "REQUIRES_ATTENTION"

    @property
    def is_settled(self) -> bool:
        """True once the order has an outcome the customer can act on."""
        return self in (OrderStatus.COMPLETED, OrderStatus.FAILED, OrderStatus.CANCELLED)


class FailureReason(StrEnum):
    """Why an order failed."""

    INVENTORY_UNAVAILABLE = "INVENTORY_UNAVAILABLE"
    PAYMENT_DECLINED = "PAYMENT_DECLINED"
    SHIPPING_UNAVAILABLE = "SHIPPING_UNAVAILABLE"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    CANCELLED_BY_OPERATOR = "CANCELLED_BY_OPERATOR"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"


PLACE_ORDER_EXAMPLE: JsonDict = {
    "customer_id": "cust-ada",
    "items": [{"product_id": "sku-keyboard", "quantity": 1}],
    "payment": {
        "method": "CREDIT_CARD",
        "card_number": "4242424242424242",
        "expiry_month": 12,
        "expiry_year": 2030,
        "cvv": "123",
        "cardholder_name": "Ada Lovelace",
    },
    "shipping_address": {
        "name": "Ada Lovelace",
        "street": "12 St James's Square",
        "city": "London",
        "postal_code": "SW1Y 4JH",
        "country": "GB",
    },
    "shipping_method": "EXPRESS",
}


class PlaceOrder(FrozenModel):
    """A customer's order. Prices come from the catalog, never from the client."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                PLACE_ORDER_EXAMPLE,
                {
                    "customer_id": "cust-grace",
                    "items": [{"product_id": "sku-mouse", "quantity": 2}],
                    "payment": {"method": "PAYPAL", "paypal_email": "grace@example.com"},
                    "shipping_address": {
                        "name": "Grace Hopper",
                        "street": "1 Navy Way",
                        "city": "Arlington",
                        "state": "VA",
                        "postal_code": "22202",
                        "country": "US",
                    },
                    "expected_total_cents": 5998,
                },
            ]
        }
    )

    customer_id: CustomerId
    items: list[ItemQuantity] = Field(min_length=1, max_length=50)
    payment: PaymentDetails
    shipping_address: Address
    shipping_method: ShippingMethod = ShippingMethod.STANDARD
    expected_total_cents: int | None = Field(
        default=None,
        ge=0,
        strict=True,
        description="If given and the catalog total differs, the order is refused (409).",
    )
    contact_email: ContactEmail | None = None


class CreateOrder(FrozenModel):
    """Saga endpoint: create an order record and start its saga without waiting."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"order": PLACE_ORDER_EXAMPLE, "idempotency_key": "checkout-7f3a"}]}
    )

    order: PlaceOrder
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")


class CancelOrder(FrozenModel):
    """Saga endpoint: start the cancellation of a COMPLETED order."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"order_id": "ord_3f2a9c"}]})

    order_id: str = Field(pattern=SAFE_ID_PATTERN)


class OrderLine(FrozenModel):
    """An ordered item at its catalog price."""

    product_id: str
    name: str
    quantity: int
    price_cents: int
    line_total_cents: int


class PaymentSummary(FrozenModel):
    """How the order is paid: never more than brand and last four digits."""

    method: PaymentMethodKind
    brand: str | None = None
    last4: str | None = None


class HistoryItem(FrozenModel):
    """One step attempt, compensation or operator action of the order's sagas."""

    saga: str
    step: str
    phase: str
    attempt: int
    status: str
    started_at: datetime
    ended_at: datetime | None = None
    duration_ms: float | None = None
    error_code: str | None = None
    error: str | None = None
    actor: str | None = None
    reason: str | None = None


class Order(FrozenModel):
    """An order with its saga's transaction history."""

    order_id: str
    saga_id: str
    customer_id: str
    status: OrderStatus
    stage: str | None = Field(default=None, description="The step the saga is on, while it runs.")
    failure_reason: FailureReason | None = None
    failure_detail: str | None = None
    items: list[OrderLine]
    total_cents: int
    currency: str
    shipping_address: Address
    shipping_method: ShippingMethod
    payment: PaymentSummary
    payment_id: str | None = None
    shipping_id: str | None = None
    tracking_number: str | None = None
    estimated_delivery: date | None = None
    contact_email: str | None = None
    created_at: datetime
    updated_at: datetime
    history: list[HistoryItem] = Field(default_factory=list)


class OrderSummary(FrozenModel):
    """An order in a list (no history)."""

    order_id: str
    saga_id: str
    customer_id: str
    status: OrderStatus
    failure_reason: FailureReason | None = None
    total_cents: int
    currency: str
    created_at: datetime
    updated_at: datetime


class OrderFilter(PageRequest):
    """Which orders to list."""

    customer_id: str | None = Field(default=None, pattern=SAFE_ID_PATTERN)
    status: OrderStatus | None = None


class PlacedOrder(FrozenModel):
    """The answer to placing an order: the order, and whether its outcome is known yet."""

    order: Order
    settled: bool
    replayed: bool = False


class OrderNotFoundError(NotFoundError):
    """No order with that id."""

    code = "order.not_found"
    title = "Order not found"


class PriceChangedError(ConflictError):
    """The catalog total differs from the client's `expected_total_cents`."""

    code = "order.price_changed"
    title = "Price changed"


class IdempotencyKeyReusedError(InvalidRequestError):
    """The Idempotency-Key was used before with a different request body."""

    code = "order.idempotency_key_reused"
    title = "Idempotency key reused"


class OrderNotCancellableError(ConflictError):
    """Only COMPLETED orders can be cancelled by the customer."""

    code = "order.not_cancellable"
    title = "Order cannot be cancelled"


class OrderService(Protocol):
    """The order module's port."""

    async def place(
        self, command: PlaceOrder, *, idempotency_key: str | None = None, wait_seconds: float | None = None
    ) -> PlacedOrder:
        """Create the order and start its saga; wait up to `wait_seconds` for the outcome.

        Raises:
            PriceChangedError: If `expected_total_cents` differs from the catalog total.
            IdempotencyKeyReusedError: If the key was used with a different body.
        """
        ...

    async def get(self, order_id: str) -> Order:
        """The order with its saga history.

        Raises:
            OrderNotFoundError: If there is no such order.
        """
        ...

    async def list(self, query: OrderFilter) -> Page[OrderSummary]:
        """Orders by customer and status, newest first."""
        ...

    async def cancel(
        self, order_id: str, *, wait_seconds: float | None = None, customer_id: str | None = None
    ) -> PlacedOrder:
        """Cancel a COMPLETED order: cancel shipping, refund, release items, notify.

        `customer_id`, when given, is the only customer whose order may be cancelled (a customer
        cancelling their own); None for an operator or another module.

        Raises:
            OrderNotFoundError: If there is no such order, or it is not `customer_id`'s.
            OrderNotCancellableError: If the order is not COMPLETED.
        """
        ...


# The read port the consistency audit uses (`operations/audit.py`): the module's records as
# stored, read whole, for rules that span modules. `books.py` implements it on the collection.


class OrderEntry(FrozenModel):
    """One order, as stored: what the audit holds the other modules' records against.

    Attributes:
        order_id: The order.
        status: The stored status, unparsed (None if missing), so that a value no
            `OrderStatus` names is reported rather than refused.
        saga_id: The saga that placed it.
        cancel_saga_id: The saga that cancelled it, if any.
        payment_id: The payment it names, once paid.
        shipping_id: The shipment it names, once scheduled.
        total_cents: What it costs, in minor units.
    """

    order_id: str
    status: str | None
    saga_id: str | None
    cancel_saga_id: str | None = None
    payment_id: str | None = None
    shipping_id: str | None = None
    total_cents: int | None = None


class OrderBooks(Protocol):
    """The order module's read port: its records as stored, for the consistency audit.

    Read-only and unpaged: each call reads the collection whole, in one pass.
    """

    async def orders(self) -> list[OrderEntry]:
        """Every order, whatever its status."""
        ...
