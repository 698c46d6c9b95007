"""Payment records and the sandbox gateway's vault and ledger, on MongoDB (Beanie) and in memory.

`PaymentRepository` keeps one payment per order (keyed by the order id), written whole and
replaced only if its `version` is unchanged. `SandboxLedger` is the sandbox gateway's storage:
tokenized methods, and each charge or refund once per idempotency key. Both implementations of
each pass `tests/contract/test_payment_repository_contract.py`.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any, Literal, Protocol, TypeVar

from pydantic import BaseModel
from pymongo.errors import DuplicateKeyError

from ecommerce_saga.db.inserts import InsertGroup
from ecommerce_saga.db.queries import count, created_within
from ecommerce_saga.modules.payment.contract import (
    CardBrand,
    PaymentFilter,
    PaymentMethodKind,
    PaymentStatus,
)
from ecommerce_saga.modules.payment.documents import (
    GatewayTransactionDocument,
    PaymentDocument,
    PaymentMethodDocument,
)
from ecommerce_saga.shared.clock import epoch_ms


class PaymentRecord(BaseModel):
    """One order's payment as stored; `payment_token` and `charge_key` are None only on a VOIDED
    tombstone. `version` counts the writes (optimistic concurrency)."""

    order_id: str
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
    updated_at: datetime


class VaultEntry(BaseModel):
    """A tokenized payment method in the sandbox vault: never the card number or CVV."""

    token: str
    method: PaymentMethodKind
    brand: CardBrand | None = None
    last4: str | None = None
    expiry_month: int | None = None
    expiry_year: int | None = None
    paypal_email: str | None = None
    sandbox_decline_code: str | None = None  # decided from the test number when tokenized
    created_at: datetime


class GatewayTransaction(BaseModel):
    """One sandbox charge or refund, keyed by `<kind>:<idempotency key>`; a void is keyed as the
    charge it stands in for (`charge:<key>`), so that key can no longer charge."""

    key: str
    kind: Literal["charge", "refund", "void"]
    reference: str
    token: str | None = None
    charge_reference: str | None = None
    amount_cents: int
    currency: str
    approved: bool
    decline_code: str | None = None
    created_at: datetime


class PaymentRepository(Protocol):
    """Where the payment module keeps its payments."""

    async def add(self, payment: PaymentRecord) -> PaymentRecord:
        """Store a new payment, or return the order's payment stored first (nothing written)."""
        ...

    async def get(self, order_id: str) -> PaymentRecord | None:
        """The order's payment, or None."""
        ...

    async def by_payment_id(self, payment_id: str) -> PaymentRecord | None:
        """The payment with that id, or None."""
        ...

    async def replace(self, payment: PaymentRecord, expected_version: int) -> bool:
        """Write `payment` whole if the stored one still has `expected_version`; False if not."""
        ...

    async def find(self, query: PaymentFilter) -> tuple[list[PaymentRecord], int]:
        """A page of payments matching `query`, newest first (then by order id, descending), and
        how many match in all."""
        ...


class SandboxLedger(Protocol):
    """Where the sandbox gateway keeps its vault and its transactions."""

    async def add_method(self, entry: VaultEntry) -> None:
        """Vault a tokenized method (tokens are new ids: never taken)."""
        ...

    async def method(self, token: str) -> VaultEntry | None:
        """The vaulted method, or None."""
        ...

    async def record(self, transaction: GatewayTransaction) -> GatewayTransaction:
        """Store a transaction once per key: returns the one stored first under its key."""
        ...

    async def transaction(self, key: str) -> GatewayTransaction | None:
        """The transaction stored under `key`, or None."""
        ...

    async def charge(self, reference: str) -> GatewayTransaction | None:
        """The charge with that reference, or None."""
        ...

    async def count(self, kind: Literal["charge", "refund"]) -> int:
        """How many charges or refunds were recorded: how often money moved."""
        ...


class BeaniePaymentRepository:
    """`PaymentRepository` on MongoDB (collection `payments`): written whole, never with `$set`;
    times filtered and sorted on `created_ms` (the embedded database compares datetimes to the
    whole second only). The order path's reads and writes go through PyMongo, with the documents
    built as `PaymentDocument` stores them, without Beanie's encoder; the listing uses Beanie."""

    def __init__(self) -> None:
        self._inserts = InsertGroup()  # concurrent inserts share a command

    async def add(self, payment: PaymentRecord) -> PaymentRecord:
        """See `PaymentRepository.add`."""
        try:
            await self._inserts.insert_one(PaymentDocument.get_pymongo_collection(), _payment_fields(payment))
        except DuplicateKeyError:
            first = await self.get(payment.order_id)
            if first is None:  # the payment id was taken, not the order: a new id is another call's job
                raise
            return first
        return payment

    async def get(self, order_id: str) -> PaymentRecord | None:
        """See `PaymentRepository.get`."""
        return _stored(
            PaymentRecord, await PaymentDocument.get_pymongo_collection().find_one({"_id": order_id})
        )

    async def by_payment_id(self, payment_id: str) -> PaymentRecord | None:
        """See `PaymentRepository.by_payment_id`."""
        doc = await PaymentDocument.find_one({"payment_id": payment_id})
        return None if doc is None else _payment_record(doc)

    async def replace(self, payment: PaymentRecord, expected_version: int) -> bool:
        """See `PaymentRepository.replace`."""
        result = await PaymentDocument.get_pymongo_collection().replace_one(
            {"_id": payment.order_id, "version": expected_version}, _payment_fields(payment)
        )
        return result.matched_count == 1

    async def find(self, query: PaymentFilter) -> tuple[list[PaymentRecord], int]:
        """See `PaymentRepository.find`."""
        criteria: dict[str, Any] = {}
        if query.customer_id is not None:
            criteria["customer_id"] = query.customer_id
        if query.status is not None:
            criteria["status"] = query.status.value
        docs, total = await created_within(PaymentDocument, criteria, query)
        return [_payment_record(doc) for doc in docs], total


def _plain(fields: dict[str, Any]) -> dict[str, Any]:
    """`fields` with enum members as their values: what Beanie's encoder stores."""
    return {name: value.value if isinstance(value, Enum) else value for name, value in fields.items()}


def _payment_fields(payment: PaymentRecord) -> dict[str, Any]:
    """The payment as a `PaymentDocument` stores it (`created_ms` beside `created_at`)."""
    fields = _plain(payment.model_dump(exclude={"order_id"}))
    return {"_id": payment.order_id, **fields, "created_ms": epoch_ms(payment.created_at)}


R = TypeVar("R", PaymentRecord, VaultEntry, GatewayTransaction)


def _stored(record: type[R], raw: dict[str, Any] | None) -> R | None:
    """A stored document as a record; its `_id` is the record's key field (unknown fields ignored)."""
    if raw is None:
        return None
    key = {PaymentRecord: "order_id", VaultEntry: "token", GatewayTransaction: "key"}[record]
    return record.model_validate({**raw, key: raw["_id"]})


def _payment_record(doc: PaymentDocument) -> PaymentRecord:
    return PaymentRecord(order_id=doc.id, **doc.model_dump(include=set(PaymentRecord.model_fields)))


class BeanieSandboxLedger:
    """`SandboxLedger` on MongoDB (collections `payment_methods`, `payment_gateway_transactions`),
    through PyMongo, with the documents built as their Beanie classes store them."""

    def __init__(self) -> None:
        self._inserts = InsertGroup()  # concurrent inserts share a command

    async def add_method(self, entry: VaultEntry) -> None:
        """See `SandboxLedger.add_method`."""
        fields = _plain(entry.model_dump(exclude={"token"}))
        await self._inserts.insert_one(
            PaymentMethodDocument.get_pymongo_collection(), {"_id": entry.token, **fields}
        )

    async def method(self, token: str) -> VaultEntry | None:
        """See `SandboxLedger.method`."""
        return _stored(
            VaultEntry, await PaymentMethodDocument.get_pymongo_collection().find_one({"_id": token})
        )

    async def record(self, transaction: GatewayTransaction) -> GatewayTransaction:
        """See `SandboxLedger.record`."""
        fields = transaction.model_dump(exclude={"key"})
        try:
            await self._inserts.insert_one(
                GatewayTransactionDocument.get_pymongo_collection(), {"_id": transaction.key, **fields}
            )
        except DuplicateKeyError:
            first = await self.transaction(transaction.key)
            assert first is not None  # noqa: S101 - the duplicate exists
            return first
        return transaction

    async def transaction(self, key: str) -> GatewayTransaction | None:
        """See `SandboxLedger.transaction`."""
        found = await GatewayTransactionDocument.get_pymongo_collection().find_one({"_id": key})
        return _stored(GatewayTransaction, found)

    async def charge(self, reference: str) -> GatewayTransaction | None:
        """See `SandboxLedger.charge`."""
        found = await GatewayTransactionDocument.get_pymongo_collection().find_one(
            {"kind": "charge", "reference": reference}
        )
        return _stored(GatewayTransaction, found)

    async def count(self, kind: Literal["charge", "refund"]) -> int:
        """See `SandboxLedger.count`."""
        return await count(GatewayTransactionDocument, {"kind": kind})


class InMemoryPaymentRepository:
    """`PaymentRepository` in a dict: for unit tests and a database-free shop."""

    def __init__(self) -> None:
        self._payments: dict[str, PaymentRecord] = {}

    async def add(self, payment: PaymentRecord) -> PaymentRecord:
        """See `PaymentRepository.add`."""
        first = self._payments.get(payment.order_id)
        if first is not None:
            return first.model_copy(deep=True)
        if any(p.payment_id == payment.payment_id for p in self._payments.values()):
            raise ValueError(f"payment id {payment.payment_id} exists")
        self._payments[payment.order_id] = payment.model_copy(deep=True)
        return payment

    async def get(self, order_id: str) -> PaymentRecord | None:
        """See `PaymentRepository.get`."""
        found = self._payments.get(order_id)
        return None if found is None else found.model_copy(deep=True)

    async def by_payment_id(self, payment_id: str) -> PaymentRecord | None:
        """See `PaymentRepository.by_payment_id`."""
        found = next((p for p in self._payments.values() if p.payment_id == payment_id), None)
        return None if found is None else found.model_copy(deep=True)

    async def replace(self, payment: PaymentRecord, expected_version: int) -> bool:
        """See `PaymentRepository.replace`."""
        current = self._payments.get(payment.order_id)
        if current is None or current.version != expected_version:
            return False
        self._payments[payment.order_id] = payment.model_copy(deep=True)
        return True

    async def find(self, query: PaymentFilter) -> tuple[list[PaymentRecord], int]:
        """See `PaymentRepository.find`."""
        matching = sorted(
            (
                p
                for p in self._payments.values()
                if (query.customer_id is None or p.customer_id == query.customer_id)
                and (query.status is None or p.status is query.status)
                and query.covers(p.created_at)
            ),
            key=lambda p: (p.created_at, p.order_id),
            reverse=True,
        )
        page = matching[query.skip : query.skip + query.limit]
        return [p.model_copy(deep=True) for p in page], len(matching)


class InMemorySandboxLedger:
    """`SandboxLedger` in dicts: for unit tests and a database-free shop."""

    def __init__(self) -> None:
        self._vault: dict[str, VaultEntry] = {}
        self._transactions: dict[str, GatewayTransaction] = {}

    async def add_method(self, entry: VaultEntry) -> None:
        """See `SandboxLedger.add_method`."""
        if entry.token in self._vault:
            raise ValueError(f"token {entry.token} exists")
        self._vault[entry.token] = entry.model_copy()

    async def method(self, token: str) -> VaultEntry | None:
        """See `SandboxLedger.method`."""
        found = self._vault.get(token)
        return None if found is None else found.model_copy()

    async def record(self, transaction: GatewayTransaction) -> GatewayTransaction:
        """See `SandboxLedger.record`."""
        if any(t.reference == transaction.reference for t in self._transactions.values()):
            raise ValueError(f"reference {transaction.reference} exists")
        first = self._transactions.setdefault(transaction.key, transaction.model_copy())
        return first.model_copy()

    async def transaction(self, key: str) -> GatewayTransaction | None:
        """See `SandboxLedger.transaction`."""
        found = self._transactions.get(key)
        return None if found is None else found.model_copy()

    async def charge(self, reference: str) -> GatewayTransaction | None:
        """See `SandboxLedger.charge`."""
        found = next(
            (t for t in self._transactions.values() if t.kind == "charge" and t.reference == reference), None
        )
        return None if found is None else found.model_copy()

    async def count(self, kind: Literal["charge", "refund"]) -> int:
        """See `SandboxLedger.count`."""
        return sum(1 for t in self._transactions.values() if t.kind == kind)
