"""`LocalPaymentService` internals the spec cannot reach: crash recovery and lost races.

On the in-memory repository and ledger: no database.
"""

from __future__ import annotations

import pytest

from ecommerce_saga.modules.payment.contract import (
    ChargePayment,
    PaymentDetails,
    PaymentStatus,
    RefundPayment,
)
from ecommerce_saga.modules.payment.gateway import GatewayCharge, GatewayResult, SandboxGateway
from ecommerce_saga.modules.payment.repository import (
    InMemoryPaymentRepository,
    InMemorySandboxLedger,
    PaymentRecord,
)
from ecommerce_saga.modules.payment.service import LocalPaymentService
from ecommerce_saga.shared.clock import utcnow

CARD_NUMBER = "5555555555554444"
CVV = "4321"


@pytest.fixture
def ledger() -> InMemorySandboxLedger:
    return InMemorySandboxLedger()


@pytest.fixture
def payments() -> InMemoryPaymentRepository:
    return InMemoryPaymentRepository()


@pytest.fixture
def gateway(ledger: InMemorySandboxLedger) -> SandboxGateway:
    return SandboxGateway(ledger)


@pytest.fixture
def service(payments: InMemoryPaymentRepository, gateway: SandboxGateway) -> LocalPaymentService:
    return LocalPaymentService(payments, gateway)


def card(number: str = CARD_NUMBER) -> PaymentDetails:
    return PaymentDetails.model_validate(
        {"method": "DEBIT_CARD", "card_number": number, "expiry_month": 1, "expiry_year": 2099, "cvv": CVV}
    )


async def pending_payment(
    gateway: SandboxGateway, payments: InMemoryPaymentRepository, order_id: str
) -> PaymentRecord:
    """The record a charge leaves behind when its process dies before writing the outcome."""
    method = await gateway.tokenize(card())
    now = utcnow()
    record = PaymentRecord(
        order_id=order_id, payment_id=f"pay_{order_id}", customer_id="cus_1", amount_cents=700,
        currency="USD", method=method.method, brand=method.brand, last4=method.last4,
        payment_token=method.token, charge_key=f"key_{order_id}", status=PaymentStatus.PENDING,
        created_at=now, updated_at=now,
    )  # fmt: skip
    return await payments.add(record)


def charge_of(doc: PaymentRecord, key: str = "retry") -> ChargePayment:
    assert doc.payment_token is not None
    return ChargePayment(
        order_id=doc.order_id, customer_id="cus_1", amount_cents=doc.amount_cents,
        payment_token=doc.payment_token, idempotency_key=key,
    )  # fmt: skip


async def test_charges_once_when_attempt_died_before_calling_gateway(
    gateway: SandboxGateway, payments: InMemoryPaymentRepository, ledger: InMemorySandboxLedger,
    service: LocalPaymentService,
) -> None:  # fmt: skip
    doc = await pending_payment(gateway, payments, "ord_died_early")

    payment = await service.charge(charge_of(doc))

    assert (payment.payment_id, payment.status) == (doc.payment_id, PaymentStatus.COMPLETED)
    assert await ledger.count("charge") == 1


async def test_keeps_gateway_result_when_attempt_died_after_calling_gateway(
    gateway: SandboxGateway, payments: InMemoryPaymentRepository, ledger: InMemorySandboxLedger,
    service: LocalPaymentService,
) -> None:  # fmt: skip
    doc = await pending_payment(gateway, payments, "ord_died_late")
    assert doc.payment_token is not None and doc.charge_key is not None
    charged = await gateway.charge(
        GatewayCharge(token=doc.payment_token, amount_cents=700, currency="USD",
                      idempotency_key=doc.charge_key, description="the attempt that died")
    )  # fmt: skip

    payment = await service.charge(charge_of(doc, key="another-key"))

    assert payment.status is PaymentStatus.COMPLETED
    assert payment.gateway_reference == charged.reference
    assert await ledger.count("charge") == 1


async def test_finishes_then_refunds_charge_when_refund_finds_it_pending(
    gateway: SandboxGateway, payments: InMemoryPaymentRepository, ledger: InMemorySandboxLedger,
    service: LocalPaymentService,
) -> None:  # fmt: skip
    doc = await pending_payment(gateway, payments, "ord_pending_refund")

    refunded = await service.refund(RefundPayment(order_id=doc.order_id, idempotency_key="r"))

    assert refunded.status is PaymentStatus.REFUNDED
    assert (await ledger.count("charge"), await ledger.count("refund")) == (1, 1)


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
    payments: InMemoryPaymentRepository, ledger: InMemorySandboxLedger
) -> None:
    gateway = RefundDuringChargeGateway(ledger)
    service = gateway.service = LocalPaymentService(payments, gateway)
    method = await gateway.tokenize(card())
    command = ChargePayment(
        order_id="ord_interleaved", customer_id="cus_1", amount_cents=900,
        payment_token=method.token, idempotency_key="k",
    )  # fmt: skip

    payment = await service.charge(command)  # its stale COMPLETED must not overwrite REFUNDED

    assert payment.status is PaymentStatus.REFUNDED
    stored = await payments.get("ord_interleaved")
    assert stored is not None
    assert (stored.status, stored.version) == (PaymentStatus.REFUNDED, 2)
    assert (await ledger.count("charge"), await ledger.count("refund")) == (1, 1)
