"""One spec for the payment module's storage (`PaymentRepository`, `SandboxLedger`), run against
every implementation: in memory and MongoDB (Beanie)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from beanie import init_beanie
from beanie.odm.utils.dump import get_dict
from pymongo.asynchronous.database import AsyncDatabase

from ecommerce_saga.modules.payment.contract import (
    CardBrand,
    PaymentFilter,
    PaymentMethodKind,
    PaymentStatus,
)
from ecommerce_saga.modules.payment.documents import (
    DOCUMENT_MODELS,
    GatewayTransactionDocument,
    PaymentDocument,
    PaymentMethodDocument,
)
from ecommerce_saga.modules.payment.repository import (
    BeaniePaymentRepository,
    BeanieSandboxLedger,
    GatewayTransaction,
    InMemoryPaymentRepository,
    InMemorySandboxLedger,
    PaymentRecord,
    PaymentRepository,
    SandboxLedger,
    VaultEntry,
)
from ecommerce_saga.shared.clock import epoch_ms

AT = datetime(2030, 3, 1, 12, 30, 15, 123000, tzinfo=UTC)  # millisecond precision, as MongoDB keeps


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def a_payment(order_id: str | None = None, **fields: Any) -> PaymentRecord:
    values: dict[str, Any] = {
        "order_id": order_id or _id("ord"), "payment_id": _id("pay"), "customer_id": "cus_ada",
        "amount_cents": 2500, "currency": "USD", "method": PaymentMethodKind.CREDIT_CARD,
        "brand": CardBrand.VISA, "last4": "4242", "payment_token": "pm_1", "charge_key": "k",
        "status": PaymentStatus.PENDING, "created_at": AT, "updated_at": AT,
    }  # fmt: skip
    return PaymentRecord(**{**values, **fields})


def a_transaction(key: str | None = None, **fields: Any) -> GatewayTransaction:
    values: dict[str, Any] = {
        "key": key or f"charge:{uuid.uuid4().hex}", "kind": "charge", "reference": _id("sbx_ch"),
        "token": "pm_1", "amount_cents": 2500, "currency": "USD", "approved": True, "created_at": AT,
    }  # fmt: skip
    return GatewayTransaction(**{**values, **fields})


class PaymentRepositorySpec:
    """What every `PaymentRepository` must do; subclasses provide the `repository` fixture."""

    async def test_reads_back_every_field_when_added(self, repository: PaymentRepository) -> None:
        payment = a_payment(
            status=PaymentStatus.DECLINED, decline_code="card_declined", gateway_reference="r"
        )

        assert await repository.add(payment) == payment

        assert await repository.get(payment.order_id) == payment
        assert await repository.by_payment_id(payment.payment_id) == payment

    async def test_reads_back_a_tombstone_when_added(self, repository: PaymentRepository) -> None:
        voided = a_payment(
            customer_id=None, method=None, brand=None, last4=None, payment_token=None, charge_key=None,
            amount_cents=0, status=PaymentStatus.VOIDED,
        )  # fmt: skip

        await repository.add(voided)

        assert await repository.get(voided.order_id) == voided

    async def test_answers_none_when_unknown(self, repository: PaymentRepository) -> None:
        assert await repository.get("ord_missing") is None
        assert await repository.by_payment_id("pay_missing") is None

    async def test_keeps_the_first_when_an_order_is_added_twice(self, repository: PaymentRepository) -> None:
        first = await repository.add(a_payment())

        again = await repository.add(a_payment(first.order_id, charge_key="other"))

        assert again == first

    async def test_keeps_one_when_added_concurrently(self, repository: PaymentRepository) -> None:
        order_id = _id("ord")

        stored = await asyncio.gather(*(repository.add(a_payment(order_id)) for _ in range(10)))

        assert len({p.payment_id for p in stored}) == 1
        assert await repository.get(order_id) == stored[0]

    async def test_replaces_only_when_the_version_is_unchanged(self, repository: PaymentRepository) -> None:
        payment = await repository.add(a_payment())
        completed = payment.model_copy(update={"status": PaymentStatus.COMPLETED, "version": 1})
        refunded = payment.model_copy(update={"status": PaymentStatus.REFUNDED, "version": 1})

        assert await repository.replace(completed, expected_version=0)
        assert not await repository.replace(refunded, expected_version=0)  # lost the race

        assert await repository.get(payment.order_id) == completed
        assert not await repository.replace(a_payment(), expected_version=0)  # no such payment

    async def test_does_not_share_state_with_the_caller(self, repository: PaymentRepository) -> None:
        payment = a_payment()
        as_added = payment.model_copy(deep=True)
        await repository.add(payment)
        read = await repository.get(payment.order_id)
        assert read is not None

        payment.status = read.status = PaymentStatus.COMPLETED

        assert await repository.get(payment.order_id) == as_added

    async def test_finds_newest_first_by_customer_status_and_time(
        self, repository: PaymentRepository
    ) -> None:
        customer = _id("cus")
        times = [AT + timedelta(milliseconds=n) for n in (0, 1, 2, 999, 1000)]
        stored = [await repository.add(a_payment(customer_id=customer, created_at=t)) for t in times]
        await repository.add(a_payment(customer_id="cus_other", created_at=AT))
        completed = stored[1].model_copy(update={"status": PaymentStatus.COMPLETED, "version": 1})
        assert await repository.replace(completed, expected_version=0)
        stored[1] = completed

        found, total = await repository.find(PaymentFilter(customer_id=customer))
        assert (total, found) == (5, stored[::-1])

        window, total = await repository.find(
            PaymentFilter(customer_id=customer, from_=times[1], to=times[3])
        )
        assert (total, [p.order_id for p in window]) == (2, [stored[2].order_id, stored[1].order_id])

        by_status, total = await repository.find(
            PaymentFilter(customer_id=customer, status=PaymentStatus.COMPLETED)
        )
        assert (total, by_status) == (1, [completed])

    async def test_pages_when_finding(self, repository: PaymentRepository) -> None:
        customer = _id("cus")
        stored = [await repository.add(a_payment(customer_id=customer)) for _ in range(5)]
        newest_first = sorted(stored, key=lambda p: p.order_id, reverse=True)  # ties: by order id

        pages = [
            await repository.find(PaymentFilter(customer_id=customer, limit=2, skip=s)) for s in (0, 2, 4)
        ]

        assert [total for _, total in pages] == [5, 5, 5]
        assert [p for page, _ in pages for p in page] == newest_first


class SandboxLedgerSpec:
    """What every `SandboxLedger` must do; subclasses provide the `ledger` fixture."""

    async def test_reads_back_a_vaulted_method(self, ledger: SandboxLedger) -> None:
        card = VaultEntry(
            token=_id("pm"), method=PaymentMethodKind.CREDIT_CARD, brand=CardBrand.AMEX, last4="0005",
            expiry_month=4, expiry_year=2032, sandbox_decline_code="card_declined", created_at=AT,
        )  # fmt: skip
        paypal = VaultEntry(
            token=_id("pm"), method=PaymentMethodKind.PAYPAL, paypal_email="a@b.c", created_at=AT
        )

        for entry in (card, paypal):
            await ledger.add_method(entry)

        assert [await ledger.method(e.token) for e in (card, paypal)] == [card, paypal]
        assert await ledger.method("pm_missing") is None

    async def test_keeps_the_first_transaction_when_a_key_is_recorded_again(
        self, ledger: SandboxLedger
    ) -> None:
        first = a_transaction("charge:k", approved=False, decline_code="insufficient_funds")

        assert await ledger.record(first) == first
        assert await ledger.record(a_transaction("charge:k")) == first
        assert await ledger.transaction("charge:k") == first
        assert await ledger.count("charge") == 1

    async def test_keeps_one_when_a_key_is_recorded_concurrently(self, ledger: SandboxLedger) -> None:
        recorded = await asyncio.gather(*(ledger.record(a_transaction("charge:race")) for _ in range(10)))

        assert len({t.reference for t in recorded}) == 1
        assert await ledger.count("charge") == 1

    async def test_finds_a_charge_by_reference_and_counts_by_kind(self, ledger: SandboxLedger) -> None:
        charge = await ledger.record(a_transaction())
        refund = a_transaction(
            f"refund:{uuid.uuid4().hex}", kind="refund", reference=_id("sbx_re"), token=None,
            charge_reference=charge.reference,
        )  # fmt: skip
        await ledger.record(refund)

        assert await ledger.charge(charge.reference) == charge
        assert await ledger.charge(refund.reference) is None  # a refund is not a charge
        assert await ledger.transaction(refund.key) == refund
        assert await ledger.transaction("refund:missing") is None
        assert (await ledger.count("charge"), await ledger.count("refund")) == (1, 1)


@pytest.fixture
async def payment_db(mongo_db: AsyncDatabase[dict[str, Any]]) -> AsyncDatabase[dict[str, Any]]:
    await init_beanie(database=mongo_db, document_models=DOCUMENT_MODELS)
    return mongo_db


class TestInMemoryPaymentRepository(PaymentRepositorySpec):
    @pytest.fixture
    def repository(self) -> PaymentRepository:
        return InMemoryPaymentRepository()


class TestBeaniePaymentRepository(PaymentRepositorySpec):
    @pytest.fixture
    def repository(self, payment_db: AsyncDatabase[dict[str, Any]]) -> PaymentRepository:
        return BeaniePaymentRepository()

    async def test_stores_a_payment_as_its_beanie_document_would(
        self, repository: PaymentRepository, payment_db: AsyncDatabase[dict[str, Any]]
    ) -> None:
        payment = a_payment(status=PaymentStatus.COMPLETED, gateway_reference="sbx_ch_1", version=2)

        await repository.add(payment)

        stored = await payment_db[PaymentDocument.Settings.name].find_one({"_id": payment.order_id})
        fields = payment.model_dump(exclude={"order_id"})
        expected = PaymentDocument(id=payment.order_id, created_ms=epoch_ms(AT), **fields)
        assert stored == get_dict(expected, to_db=True)


class TestInMemorySandboxLedger(SandboxLedgerSpec):
    @pytest.fixture
    def ledger(self) -> SandboxLedger:
        return InMemorySandboxLedger()


class TestBeanieSandboxLedger(SandboxLedgerSpec):
    @pytest.fixture
    def ledger(self, payment_db: AsyncDatabase[dict[str, Any]]) -> SandboxLedger:
        return BeanieSandboxLedger()

    async def test_stores_methods_and_transactions_as_their_beanie_documents_would(
        self, ledger: SandboxLedger, payment_db: AsyncDatabase[dict[str, Any]]
    ) -> None:
        entry = VaultEntry(
            token=_id("pm"), method=PaymentMethodKind.CREDIT_CARD, brand=CardBrand.AMEX, last4="0005",
            expiry_month=4, expiry_year=2032, created_at=AT,
        )  # fmt: skip
        transaction = a_transaction(approved=False, decline_code="card_declined")

        await ledger.add_method(entry)
        await ledger.record(transaction)

        method_doc = PaymentMethodDocument(id=entry.token, **entry.model_dump(exclude={"token"}))
        transaction_doc = GatewayTransactionDocument(
            id=transaction.key, **transaction.model_dump(exclude={"key"})
        )
        for doc in (method_doc, transaction_doc):
            stored = await payment_db[doc.get_collection_name()].find_one({"_id": doc.id})
            assert stored == get_dict(doc, to_db=True)
