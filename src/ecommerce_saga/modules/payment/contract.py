"""The payment module's contract: its port, DTOs and errors. Other modules import only this."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Protocol, Self

from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from ecommerce_saga.shared.contracts import (
    SAFE_ID_PATTERN,
    ConflictError,
    ContractError,
    CreatedWithin,
    FrozenModel,
    NotFoundError,
    Page,
    ServiceUnavailableError,
)

OrderId = Annotated[str, Field(pattern=SAFE_ID_PATTERN, examples=["ord_3f2a9c"])]
CustomerId = Annotated[str, Field(pattern=SAFE_ID_PATTERN, examples=["cus_42"])]
PaymentToken = Annotated[str, Field(pattern=SAFE_ID_PATTERN, examples=["pm_8c1d2e"])]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", examples=["USD"])]
IdempotencyKey = Annotated[str, Field(min_length=1, max_length=200)]

EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
"""A deliberately loose e-mail shape; the payment provider is the real judge of an address."""

_ASCII_DIGITS = re.compile(r"[0-9]+")
_CARD_SEPARATORS = re.compile(r"[ -]")


def luhn_valid(digits: str) -> bool:
    """Whether a card number passes the Luhn (mod 10) check.

    Args:
        digits: The card number, ASCII digits only.

    Returns:
        True if the number is non-empty, all digits, and its check digit is right.
    """
    if not _ASCII_DIGITS.fullmatch(digits):
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


class PaymentMethodKind(StrEnum):
    """How a customer pays."""

    CREDIT_CARD = "CREDIT_CARD"
    DEBIT_CARD = "DEBIT_CARD"
    PAYPAL = "PAYPAL"


class CardBrand(StrEnum):
    """A card network, known from the card number's issuer prefix."""

    VISA = "visa"
    MASTERCARD = "mastercard"
    AMEX = "amex"
    DISCOVER = "discover"
    OTHER = "other"


class PaymentStatus(StrEnum):
    """Where a payment is.

    A payment is recorded with its outcome, once the provider has answered. `PENDING` is only
    found on payments an earlier release recorded before charging (the next `charge` or
    `refund` for the order finishes it). `VOIDED` is a tombstone: the order was refunded before
    it was ever charged, and it can no longer be charged.
    """

    PENDING = "PENDING"
    COMPLETED = "COMPLETED"
    DECLINED = "DECLINED"
    REFUNDED = "REFUNDED"
    VOIDED = "VOIDED"


class PaymentDetails(FrozenModel):
    """How the customer wants to pay, as entered at checkout.

    Card methods need `card_number`, `expiry_month`, `expiry_year` and `cvv`; `PAYPAL` needs
    `paypal_email`; fields of the other kind of method are refused. The card number and CVV are
    `SecretStr`, so `repr`, `str`, logs and JSON dumps show them masked, and validation errors
    never echo the input. Tokenize these details (`PaymentService.tokenize`) before a saga starts
    and pass only the token on: the details must never be persisted.
    """

    model_config = ConfigDict(
        hide_input_in_errors=True,
        json_schema_extra={
            "examples": [
                {
                    "method": "CREDIT_CARD",
                    "card_number": "4242424242424242",
                    "expiry_month": 12,
                    "expiry_year": 2030,
                    "cvv": "123",
                    "cardholder_name": "Ada Lovelace",
                }
            ]
        },
    )

    method: PaymentMethodKind
    card_number: SecretStr | None = Field(
        default=None,
        description="12-19 digits (spaces and dashes are ignored) passing the Luhn check.",
        examples=["4242 4242 4242 4242"],
    )
    expiry_month: int | None = Field(default=None, ge=1, le=12, strict=True)
    expiry_year: int | None = Field(default=None, ge=2000, le=2099, strict=True, description="Four digits.")
    cvv: SecretStr | None = Field(default=None, description="3 or 4 digits.")
    cardholder_name: str | None = Field(default=None, min_length=1, max_length=100)
    paypal_email: str | None = Field(default=None, max_length=254, pattern=EMAIL_PATTERN)

    @field_validator("card_number", mode="before")
    @classmethod
    def normalize_card_number(cls, value: object) -> object:
        """Strip spaces and dashes, then require 12-19 digits passing the Luhn check."""
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if raw is None:
            return None
        if not isinstance(raw, str):
            raise ValueError("must be a string")
        digits = _CARD_SEPARATORS.sub("", raw)
        if not _ASCII_DIGITS.fullmatch(digits):
            raise ValueError("must contain only digits, spaces and dashes")
        if not 12 <= len(digits) <= 19:
            raise ValueError("must have 12 to 19 digits")
        if not luhn_valid(digits):
            raise ValueError("is not a valid card number (Luhn check failed)")
        return digits

    @field_validator("cvv", mode="before")
    @classmethod
    def check_cvv(cls, value: object) -> object:
        """Require 3 or 4 digits."""
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if raw is not None and not (isinstance(raw, str) and re.fullmatch(r"[0-9]{3,4}", raw)):
            raise ValueError("must be 3 or 4 digits")
        return raw

    @model_validator(mode="after")
    def check_fields_for_method(self) -> Self:
        """Require the fields the method needs and refuse those of the other kind of method."""
        card: dict[str, object] = {
            "card_number": self.card_number,
            "expiry_month": self.expiry_month,
            "expiry_year": self.expiry_year,
            "cvv": self.cvv,
        }
        paypal: dict[str, object] = {"paypal_email": self.paypal_email}
        if self.method is PaymentMethodKind.PAYPAL:
            required, refused = paypal, {**card, "cardholder_name": self.cardholder_name}
        else:
            required, refused = card, paypal
        missing = [name for name, value in required.items() if value is None]
        if missing:
            raise ValueError(f"{', '.join(missing)} required when method is {self.method.value}")
        present = [name for name, value in refused.items() if value is not None]
        if present:
            raise ValueError(f"{', '.join(present)} not allowed when method is {self.method.value}")
        return self

    def wire_payload(self) -> dict[str, object]:
        """The JSON body for `POST /api/payments/methods`, with the card number and CVV revealed.

        Only for sending these details to a remote payment service; never log or store it.
        """
        payload: dict[str, object] = self.model_dump(mode="json", exclude_none=True)
        for name, secret in (("card_number", self.card_number), ("cvv", self.cvv)):
            if secret is not None:
                payload[name] = secret.get_secret_value()
        return payload


class PaymentMethod(FrozenModel):
    """A tokenized payment method: only what is safe to store, plus the token to charge."""

    token: str
    method: PaymentMethodKind
    brand: CardBrand | None = None
    last4: str | None = None
    expiry_month: int | None = None
    expiry_year: int | None = None
    paypal_email: str | None = None


class ChargePayment(FrozenModel):
    """Charge an order's amount to a tokenized payment method; one payment per order."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "order_id": "ord_3f2a9c",
                    "customer_id": "cust-ada",
                    "amount_cents": 8999,
                    "currency": "USD",
                    "payment_token": "pm_5c1e0b",
                    "idempotency_key": "ord_3f2a9c:process_payment",
                }
            ]
        }
    )

    order_id: OrderId
    customer_id: CustomerId
    amount_cents: int = Field(gt=0, le=100_000_000, strict=True, description="Integer minor units.")
    currency: Currency = "USD"
    payment_token: PaymentToken
    idempotency_key: IdempotencyKey


class RefundPayment(FrozenModel):
    """Refund an order's payment (voiding the order for payment if it was never charged)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"order_id": "ord_3f2a9c", "idempotency_key": "ord_3f2a9c:process_payment:compensate"}
            ]
        }
    )

    order_id: OrderId
    idempotency_key: IdempotencyKey


class Payment(FrozenModel):
    """One order's payment. `customer_id` and `method` are None only on a `VOIDED` tombstone."""

    payment_id: str
    order_id: str
    customer_id: str | None
    amount_cents: int
    currency: str
    method: PaymentMethodKind | None
    brand: CardBrand | None = None
    last4: str | None = None
    status: PaymentStatus
    decline_code: str | None = None
    gateway_reference: str | None = None
    created_at: datetime
    updated_at: datetime


class PaymentFilter(CreatedWithin):
    """Which payments to list: by customer, status and creation time (`from_` ≤ t < `to`)."""

    customer_id: CustomerId | None = None
    status: PaymentStatus | None = None


class PaymentDeclinedError(ContractError):
    """The payment provider declined the charge; `extra["decline_code"]` says why.

    The status is 402 Payment Required: the request was valid, but this payment method did not
    pay. Charging the same order again raises this error again; the order needs a new payment.
    """

    code = "payment.declined"
    status = 402
    title = "Payment declined"

    @property
    def decline_code(self) -> str | None:
        """The provider's reason, e.g. `card_declined` or `insufficient_funds`."""
        value = self.extra.get("decline_code")
        return value if isinstance(value, str) else None


class PaymentMethodNotFoundError(NotFoundError):
    """No payment method has that token."""

    code = "payment.method_not_found"
    title = "Payment method not found"


class PaymentNotFoundError(NotFoundError):
    """No payment with that id."""

    code = "payment.not_found"
    title = "Payment not found"


class PaymentVoidedError(ConflictError):
    """The order was refunded before it was charged; it can no longer be charged."""

    code = "payment.voided"
    title = "Payment voided"


class PaymentGatewayUnavailableError(ServiceUnavailableError):
    """The payment provider did not answer; retrying with the same idempotency key is safe."""

    code = "payment.gateway_unavailable"
    title = "Payment gateway unavailable"


class PaymentService(Protocol):
    """The payment module's port."""

    async def tokenize(self, details: PaymentDetails) -> PaymentMethod:
        """Exchange card or PayPal details for a token that is safe to store and pass around.

        Raises:
            PaymentGatewayUnavailableError: If the payment provider did not answer.
        """
        ...

    async def charge(self, command: ChargePayment) -> Payment:
        """Charge the order once; idempotent per order, also under concurrent calls.

        Raises:
            PaymentDeclinedError: If the provider declined it (now or on an earlier call).
            PaymentMethodNotFoundError: If the token is unknown.
            PaymentVoidedError: If the order was refunded before it was charged.
            PaymentGatewayUnavailableError: If the provider did not answer (retryable).
        """
        ...

    async def refund(self, command: RefundPayment) -> Payment:
        """Refund the order's completed payment; idempotent.

        With no payment for the order, records a `VOIDED` one, so that a late charge is refused.
        A declined, refunded or voided payment is returned unchanged.

        Raises:
            PaymentGatewayUnavailableError: If the provider did not answer (retryable).
        """
        ...

    async def get_payment(self, payment_id: str) -> Payment:
        """One payment.

        Raises:
            PaymentNotFoundError: If there is no such payment.
        """
        ...

    async def list_payments(self, query: PaymentFilter) -> Page[Payment]:
        """Payments by customer, status and creation time, newest first."""
        ...


# The read port the consistency audit uses (`operations/audit.py`): the module's records as
# stored, read whole, for rules that span modules. `books.py` implements it on the collections.


class PaymentEntry(FrozenModel):
    """One order's payment record, as stored.

    Attributes:
        order_id: The order it is for; there is one payment record per order.
        payment_id: The payment's id.
        status: The stored status, unparsed (None if missing), so that a value no
            `PaymentStatus` names is reported rather than refused.
        charge_key: The idempotency key every gateway call for its charge uses; None on a
            VOIDED record, which never reached the gateway.
    """

    order_id: str
    payment_id: str | None
    status: str | None
    charge_key: str | None


class GatewayEntry(FrozenModel):
    """One entry of the payment gateway's own ledger: a charge or a refund, approved or not.

    Attributes:
        transaction_id: The ledger's id for it, ``<kind>:<idempotency key>``: one per key.
        kind: ``charge`` or ``refund``, unparsed.
        idempotency_key: The key of the gateway call; a charge's is its payment record's
            `charge_key`, so a charge no record names is money taken outside the books.
        reference: The gateway's reference for it.
        charge_reference: For a refund, the reference of the charge it gives money back on.
        amount_cents: The amount, in minor units.
        approved: Whether the gateway approved it (only approved entries moved money).
    """

    transaction_id: str
    kind: str | None
    idempotency_key: str
    reference: str | None
    charge_reference: str | None
    amount_cents: int
    approved: bool


class PaymentBooks(Protocol):
    """The payment module's read port: its records as stored, for the consistency audit.

    Read-only and unpaged: each call reads one collection whole, in one pass.
    """

    async def payments(self) -> list[PaymentEntry]:
        """Every payment record, whatever its status."""
        ...

    async def gateway_ledger(self) -> list[GatewayEntry]:
        """Every charge and refund the gateway recorded."""
        ...
