"""`LocalPaymentService` internals the spec cannot reach: crash recovery, lost races, stored data."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from beanie import init_beanie
from pymongo.asynchronous.database import AsyncDatabase

from ecommerce_saga.modules.payment.contract import (
    ChargePayment,
    PaymentDeclinedError,
    PaymentDetails,
    PaymentMethodKind,
    PaymentStatus,
    RefundPayment,
)
from ecommerce_saga.modules.payment.documents import (
    DOCUMENT_MODELS,
    GatewayTransactionDocument,
    PaymentDocument,
)
from ecommerce_saga.modules.payment.domain import epoch_ms
from ecommerce_saga.modules.payment.gateway import GatewayCharge, GatewayResult, SandboxGateway
from ecommerce_saga.modules.payment.service import LocalPaymentService
from ecommerce_saga.shared.clock import utcnow

CARD_NUMBER = "5555555555554444"
CVV = "4321"


@pytest.fixture
async def payment_db(mongo_db: AsyncDatabase[dict[str, Any]]) -> AsyncDatabase[dict[str, Any]]:
    await init_beanie(database=mongo_db, document_models=DOCUMENT_MODELS)
    return mongo_db


@pytest.fixture
def gateway(payment_db: AsyncDatabase[dict[str, Any]]) -> SandboxGateway:
    return SandboxGateway()


def card(number: str = CARD_NUMBER) -> PaymentDetails:
    return PaymentDetails.model_validate(
        {"method": "DEBIT_CARD", "card_number": number, "expiry_month": 1, "expiry_year": 2099, "cvv": CVV}
    )


async def pending_payment(gateway: SandboxGateway, order_id: str) -> PaymentDocument:
    """The record a charge leaves behind when its process dies before writing the outcome."""
    method = await gateway.tokenize(card())
    now = utcnow()
    doc = PaymentDocument(
        id=order_id, payment_id=f"pay_{order_id}", customer_id="cus_1", amount_cents=700,
        currency="USD", method=method.method, brand=method.brand, last4=method.last4,
        payment_token=method.token, charge_key=f"key_{order_id}", status=PaymentStatus.PENDING,
        created_at=now, created_ms=epoch_ms(now), updated_at=now,
    )  # fmt: skip
    await doc.insert()
    return doc


def charge_of(doc: PaymentDocument, key: str = "retry") -> ChargePayment:
    assert doc.payment_token is not None
    return ChargePayment(
        order_id=doc.id, customer_id="cus_1", amount_cents=doc.amount_cents,
        payment_token=doc.payment_token, idempotency_key=key,
    )  # fmt: skip


async def gateway_calls(kind: str) -> int:
    return await GatewayTransactionDocument.find({"kind": kind}).count()


async def test_charges_once_when_attempt_died_before_calling_gateway(gateway: SandboxGateway) -> None:
    doc = await pending_payment(gateway, "ord_died_early")

    payment = await LocalPaymentService(gateway).charge(charge_of(doc))

    assert (payment.payment_id, payment.status) == (doc.payment_id, PaymentStatus.COMPLETED)
    assert await gateway_calls("charge") == 1


async def test_keeps_gateway_result_when_attempt_died_after_calling_gateway(
    gateway: SandboxGateway,
) -> None:
    doc = await pending_payment(gateway, "ord_died_late")
    assert doc.payment_token is not None and doc.charge_key is not None
    charged = await gateway.charge(
        GatewayCharge(token=doc.payment_token, amount_cents=700, currency="USD",
                      idempotency_key=doc.charge_key, description="the attempt that died")
    )  # fmt: skip

    payment = await LocalPaymentService(gateway).charge(charge_of(doc, key="another-key"))

    assert payment.status is PaymentStatus.COMPLETED
    assert payment.gateway_reference == charged.reference
    assert await gateway_calls("charge") == 1


async def test_finishes_then_refunds_charge_when_refund_finds_it_pending(gateway: SandboxGateway) -> None:
    doc = await pending_payment(gateway, "ord_pending_refund")

    refunded = await LocalPaymentService(gateway).refund(RefundPayment(order_id=doc.id, idempotency_key="r"))

    assert refunded.status is PaymentStatus.REFUNDED
    assert (await gateway_calls("charge"), await gateway_calls("refund")) == (1, 1)


class RefundDuringChargeGateway(SandboxGateway):
    """A sandbox gateway that, in the middle of the first charge, lets the order be refunded."""

    service: LocalPaymentService
    interrupted = False

    async def charge(self, request: GatewayCharge) -> GatewayResult:
        if not self.interrupted:
            self.interrupted = True
            order_id = request.description.removeprefix("order ")
            await self.service.refund(RefundPayment(order_id=order_id, idempotency_key="r"))
        return await super().charge(request)


async def test_keeps_refund_when_charge_saves_its_outcome_after_refund(
    payment_db: AsyncDatabase[dict[str, Any]],
) -> None:
    gateway = RefundDuringChargeGateway()
    service = gateway.service = LocalPaymentService(gateway)
    method = await gateway.tokenize(card())
    command = ChargePayment(
        order_id="ord_interleaved", customer_id="cus_1", amount_cents=900,
        payment_token=method.token, idempotency_key="k",
    )  # fmt: skip

    payment = await service.charge(command)  # its stale COMPLETED must not overwrite REFUNDED

    assert payment.status is PaymentStatus.REFUNDED
    stored = await PaymentDocument.get("ord_interleaved")
    assert stored is not None
    assert (stored.status, stored.version) == (PaymentStatus.REFUNDED, 2)
    assert (await gateway_calls("charge"), await gateway_calls("refund")) == (1, 1)


async def test_stores_no_card_number_or_cvv_when_cards_are_tokenized_charged_and_refunded(
    payment_db: AsyncDatabase[dict[str, Any]], gateway: SandboxGateway
) -> None:
    service = LocalPaymentService(gateway)
    numbers = [CARD_NUMBER, "4000000000000002"]
    for n, number in enumerate(numbers):
        method = await service.tokenize(card(number))
        command = ChargePayment(
            order_id=f"ord_{n}", customer_id="cus_1", amount_cents=100, payment_token=method.token,
            idempotency_key="k",
        )  # fmt: skip
        with contextlib.suppress(PaymentDeclinedError):
            await service.charge(command)
        await service.refund(RefundPayment(order_id=f"ord_{n}", idempotency_key="r"))
    await service.tokenize(PaymentDetails(method=PaymentMethodKind.PAYPAL, paypal_email="a@example.com"))

    stored = [
        doc for name in await payment_db.list_collection_names() async for doc in payment_db[name].find()
    ]
    assert len(stored) == 8  # 2 payments, 3 vaulted methods, 2 charges and 1 refund
    for doc in stored:
        text = str(doc)
        assert all(number not in text and number[-8:] not in text for number in numbers)
        assert CVV not in doc.values()
        assert not {"card_number", "cvv"} & doc.keys()
    for model in DOCUMENT_MODELS:
        for found in await model.find_all().to_list():
            assert all(number not in found.model_dump_json() for number in numbers)
