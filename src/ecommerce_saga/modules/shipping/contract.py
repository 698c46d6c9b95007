"""The shipping module's contract: its port, DTOs and errors. Other modules import only this."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Protocol

from pydantic import ConfigDict, Field, StringConstraints, field_validator

from ecommerce_saga.shared.contracts import (
    SAFE_ID_PATTERN,
    ConflictError,
    ContractError,
    CreatedWithin,
    FrozenModel,
    NotFoundError,
    Page,
)

OrderId = Annotated[str, Field(pattern=SAFE_ID_PATTERN, examples=["ord_3f2a9c"])]
"""An order's id."""
CustomerId = Annotated[str, Field(pattern=SAFE_ID_PATTERN, examples=["cus_42"])]
"""A customer's id."""
COUNTRY_PATTERN = r"^[A-Z]{2}$"
"""An ISO 3166-1 alpha-2 country code, upper case."""
_Line = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
_Street = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
_PostalCode = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20)]


class Address(FrozenModel):
    """Where to deliver; `country` is an ISO 3166-1 alpha-2 code (lower case is accepted)."""

    name: _Line = Field(examples=["Ada Lovelace"])
    street: _Street = Field(examples=["12 St James's Square"])
    city: _Line = Field(examples=["London"])
    state: _Line | None = None
    postal_code: _PostalCode = Field(examples=["SW1Y 4JH"])
    country: str = Field(pattern=COUNTRY_PATTERN, examples=["GB"])

    @field_validator("country", mode="before")
    @classmethod
    def _upper_case_country(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value


class ShippingMethod(StrEnum):
    """How fast to ship: STANDARD in 5 business days, EXPRESS in 2, OVERNIGHT the next one."""

    STANDARD = "STANDARD"
    EXPRESS = "EXPRESS"
    OVERNIGHT = "OVERNIGHT"


class ShipmentStatus(StrEnum):
    """Where a shipment is."""

    SCHEDULED = "SCHEDULED"
    CANCELLED = "CANCELLED"


class ScheduleShipment(FrozenModel):
    """Schedule the delivery of an order (at most one shipment per order)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "order_id": "ord_3f2a9c",
                    "customer_id": "cust-ada",
                    "address": {
                        "name": "Ada Lovelace",
                        "street": "12 St James's Square",
                        "city": "London",
                        "postal_code": "SW1Y 4JH",
                        "country": "GB",
                    },
                    "method": "EXPRESS",
                    "idempotency_key": "ord_3f2a9c:schedule_shipping",
                }
            ]
        }
    )

    order_id: OrderId
    customer_id: CustomerId
    address: Address
    method: ShippingMethod = ShippingMethod.STANDARD
    idempotency_key: str = Field(min_length=1, max_length=200)


class CancelShipment(FrozenModel):
    """Cancel an order's shipment (recorded even if none was scheduled yet)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"order_id": "ord_3f2a9c", "idempotency_key": "ord_3f2a9c:schedule_shipping:compensate"}
            ]
        }
    )

    order_id: OrderId
    idempotency_key: str = Field(min_length=1, max_length=200)


class Shipment(FrozenModel):
    """One order's shipment.

    A shipment cancelled before it was scheduled (a tombstone) has no customer, address or
    delivery date, and an empty carrier and tracking number.
    """

    shipping_id: str
    order_id: str
    customer_id: str | None
    status: ShipmentStatus
    method: ShippingMethod
    carrier: str
    tracking_number: str
    estimated_delivery: date | None
    address: Address | None
    created_at: datetime
    updated_at: datetime


class ShipmentFilter(CreatedWithin):
    """Which shipments to list: by customer, status and creation time (`from_` ≤ t < `to`)."""

    customer_id: CustomerId | None = None
    status: ShipmentStatus | None = None


class ShippingUnavailableError(ContractError):
    """The shop does not deliver to the address's country."""

    code = "shipping.unavailable"
    status = 409
    title = "Shipping unavailable"


class ShipmentCancelledError(ConflictError):
    """The order's shipment was cancelled already; it cannot be scheduled again."""

    code = "shipping.cancelled"
    title = "Shipment cancelled"


class ShipmentNotFoundError(NotFoundError):
    """No shipment with that id."""

    code = "shipping.not_found"
    title = "Shipment not found"


class ShippingService(Protocol):
    """The shipping module's port."""

    async def schedule(self, command: ScheduleShipment) -> Shipment:
        """Schedule the order's shipment; idempotent per order (a repeat returns the first one).

        Raises:
            ShippingUnavailableError: If the shop does not deliver to the country.
            ShipmentCancelledError: If the order's shipment was cancelled already.
        """
        ...

    async def cancel(self, command: CancelShipment) -> Shipment:
        """Cancel the order's shipment; idempotent, and recorded even if none was scheduled."""
        ...

    async def get_shipment(self, shipping_id: str) -> Shipment:
        """One shipment.

        Raises:
            ShipmentNotFoundError: If there is no such shipment.
        """
        ...

    async def list_shipments(self, query: ShipmentFilter) -> Page[Shipment]:
        """Shipments by customer, status and creation time, newest first."""
        ...


# The read port the consistency audit uses (`operations/audit.py`): the module's records as
# stored, read whole, for rules that span modules. `books.py` implements it on the collection.


class ShipmentEntry(FrozenModel):
    """One order's shipment, as stored.

    Attributes:
        order_id: The order it is for; there is one shipment per order.
        shipping_id: The shipment's id.
        status: The stored status, unparsed (None if missing), so that a value no
            `ShipmentStatus` names is reported rather than refused.
    """

    order_id: str
    shipping_id: str | None
    status: str | None


class ShippingBooks(Protocol):
    """The shipping module's read port: its records as stored, for the consistency audit.

    Read-only and unpaged: each call reads the collection whole, in one pass.
    """

    async def shipments(self) -> list[ShipmentEntry]:
        """Every shipment, whatever its status."""
        ...
