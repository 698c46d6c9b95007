"""Beanie documents of the payment module: payments, and the sandbox gateway's vault and ledger.

None of them holds a full card number or a CVV: only brand, last four digits and expiry.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from beanie import Document
from pydantic import Field
from pymongo import ASCENDING, DESCENDING, IndexModel

from ecommerce_saga.modules.payment.contract import CardBrand, PaymentMethodKind, PaymentStatus
from ecommerce_saga.shared.clock import utcnow


class PaymentDocument(Document):
    """One order's payment; the order id is the document id, so there is one per order.

    Written whole (insert, then `replace` filtered on `version`), never with `$set`.
    `payment_token` and `charge_key` are None only on a VOIDED tombstone. Queries and sorting
    by time use `created_ms` (epoch milliseconds, equal to `created_at`): nx-27017 0.8.1 compares
    datetimes in queries to the whole second only.
    """

    id: str  # type: ignore[assignment]  # the order id
    payment_id: str
    customer_id: str | None
    amount_cents: int
    currency: str
    method: PaymentMethodKind | None
    brand: CardBrand | None = None
    last4: str | None = None
    payment_token: str | None = None
    charge_key: str | None = None  # the idempotency key every gateway call for this charge uses
    status: PaymentStatus
    decline_code: str | None = None
    gateway_reference: str | None = None
    version: int = 0
    created_at: datetime
    created_ms: int
    updated_at: datetime

    class Settings:
        name = "payments"
        indexes = [
            IndexModel([("payment_id", ASCENDING)], unique=True),
            # Not (created_ms, _id): nx-27017 0.8.1 fails every insert when an index includes _id.
            IndexModel([("created_ms", DESCENDING)]),
            IndexModel([("customer_id", ASCENDING)]),
            IndexModel([("status", ASCENDING)]),
        ]


class PaymentMethodDocument(Document):
    """The sandbox gateway's vault: one tokenized payment method, the token as document id."""

    id: str  # type: ignore[assignment]  # the token
    method: PaymentMethodKind
    brand: CardBrand | None = None
    last4: str | None = None
    expiry_month: int | None = None
    expiry_year: int | None = None
    paypal_email: str | None = None
    sandbox_decline_code: str | None = None  # decided from the test number when tokenized
    created_at: datetime = Field(default_factory=utcnow)

    class Settings:
        name = "payment_methods"


class GatewayTransactionDocument(Document):
    """The sandbox gateway's ledger: one charge or refund, keyed by `<kind>:<idempotency key>`; a
    void takes a charge's place (`charge:<key>`), so the key can no longer charge."""

    id: str  # type: ignore[assignment]  # "<kind>:<idempotency key>", so a key is used once
    kind: Literal["charge", "refund", "void"]
    reference: str
    token: str | None = None
    charge_reference: str | None = None
    amount_cents: int
    currency: str
    approved: bool
    decline_code: str | None = None
    created_at: datetime = Field(default_factory=utcnow)

    class Settings:
        name = "payment_gateway_transactions"
        indexes = [IndexModel([("reference", ASCENDING)], unique=True)]


DOCUMENT_MODELS: list[type[Document]] = [
    PaymentDocument,
    PaymentMethodDocument,
    GatewayTransactionDocument,
]
"""The module's Beanie documents, registered by the composition root."""
