"""`LocalPaymentService` internals the spec cannot reach: crash recovery, lost races, older records.

On the in-memory repository and ledger: no database.
"""

from __future__ import annotations

import pytest

from ecommerce_saga.modules.payment.contract import (
    ChargePayment,
    PaymentDetails,
    PaymentStatus,
    PaymentVoidedError,
    RefundPayment,
)
from ecommerce_saga.modules.payment.gateway import VOIDED, GatewayCharge, GatewayResult, SandboxGateway
from ecommerce_saga.modules.payment.repository import (
    InMemoryPaymentRepository,
    InMemorySandboxLedger,
    PaymentRecord,
)
from ecommerce_saga.modules.payment.service import LocalPaymentService, charge_key
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


async def test_records_first_charge_when_attempt_died_between_gateway_and_record(
    gateway: SandboxGateway, payments: InMemoryPaymentRepository, ledger: InMemorySandboxLedger,
    service: LocalPaymentService,
) -> None:  # fmt: skip
    method = await gateway.tokenize(card())
    charged = await gateway.charge(
        GatewayCharge(token=method.token, amount_cents=700, currency="USD",
                      idempotency_key=charge_key("ord_died_late"), description="the attempt that died")
    )  # fmt: skip
    command = ChargePayment(
        order_id="ord_died_late", customer_id="cus_1", amount_cents=700,
        payment_token=method.token, idempotency_key="retry",
    )  # fmt: skip

    payment = await service.charge(command)

    assert (payment.status, payment.gateway_reference) == (PaymentStatus.COMPLETED, charged.reference)
    assert await ledger.count("charge") == 1


async def test_records_and_refunds_charge_when_refund_finds_only_the_gateway_charge(
    gateway: SandboxGateway, payments: InMemoryPaymentRepository, ledger: InMemorySandboxLedger,
    service: LocalPaymentService,
) -> None:  # fmt: skip
    method = await gateway.tokenize(card())
    charged = await gateway.charge(
        GatewayCharge(token=method.token, amount_cents=700, currency="USD",
                      idempotency_key=charge_key("ord_unrecorded"), description="the attempt that died")
    )  # fmt: skip

    refunded = await service.refund(RefundPayment(order_id="ord_unrecorded", idempotency_key="r"))

    assert (refunded.status, refunded.gateway_reference) == (PaymentStatus.REFUNDED, charged.reference)
    assert (refunded.amount_cents, refunded.last4) == (700, "4444")
    assert (await ledger.count("charge"), await ledger.count("refund")) == (1, 1)


async def test_moves_no_money_when_charge_arrives_after_refund_voided_the_order(
    gateway: SandboxGateway, ledger: InMemorySandboxLedger, service: LocalPaymentService
) -> None:
    method = await gateway.tokenize(card())
    voided = await service.refund(RefundPayment(order_id="ord_voided", idempotency_key="r"))
    command = ChargePayment(
        order_id="ord_voided", customer_id="cus_1", amount_cents=700,
        payment_token=method.token, idempotency_key="late",
    )  # fmt: skip

    with pytest.raises(PaymentVoidedError):
        await service.charge(command)

    assert voided.status is PaymentStatus.VOIDED
    charges = [await ledger.transaction(f"charge:{charge_key('ord_voided')}")]
    assert [(c.approved, c.decline_code) for c in charges if c] == [(False, VOIDED)]


async def test_refuses_charge_when_voided_key_is_charged_before_the_tombstone_is_written(
    gateway: SandboxGateway, payments: InMemoryPaymentRepository, ledger: InMemorySandboxLedger,
    service: LocalPaymentService,
) -> None:  # fmt: skip
    method = await gateway.tokenize(card())
    assert await gateway.void(charge_key("ord_half_voided")) is None  # the refund died after the void
    command = ChargePayment(
        order_id="ord_half_voided", customer_id="cus_1", amount_cents=700,
        payment_token=method.token, idempotency_key="late",
    )  # fmt: skip

    with pytest.raises(PaymentVoidedError):
        await service.charge(command)
    refunded = await service.refund(RefundPayment(order_id="ord_half_voided", idempotency_key="r"))

    assert refunded.status is PaymentStatus.VOIDED
    assert await payments.get("ord_half_voided") is not None
    assert await ledger.count("refund") == 0


async def test_finishes_pending_payment_with_its_own_key_and_gives_back_this_calls_charge(
    gateway: SandboxGateway, payments: InMemoryPaymentRepository, ledger: InMemorySandboxLedger,
    service: LocalPaymentService,
) -> None:  # fmt: skip
    doc = await pending_payment(gateway, payments, "ord_pending")  # as an earlier release left it

    payment = await service.charge(charge_of(doc))

    assert (payment.payment_id, payment.status) == (doc.payment_id, PaymentStatus.COMPLETED)
    assert (await ledger.count("charge"), await ledger.count("refund")) == (2, 1)
    extra = await ledger.transaction(f"charge:{charge_key('ord_pending')}")
    assert extra is not None
    assert (await ledger.transaction(f"refund:{charge_key('ord_pending')}:superseded")) is not None


async def test_finishes_then_refunds_charge_when_refund_finds_it_pending(
    gateway: SandboxGateway, payments: InMemoryPaymentRepository, ledger: InMemorySandboxLedger,
    service: LocalPaymentService,
) -> None:  # fmt: skip
    doc = await pending_payment(gateway, payments, "ord_pending_refund")

    refunded = await service.refund(RefundPayment(order_id=doc.order_id, idempotency_key="r"))

    assert refunded.status is PaymentStatus.REFUNDED
    assert (await ledger.count("charge"), await ledger.count("refund")) == (1, 1)


class RefundDuringChargeGateway(SandboxGateway):
    """A sandbox gateway that, right after the first charge, lets the order be refunded."""

    service: LocalPaymentService
    interrupted = False

    async def charge(self, request: GatewayCharge) -> GatewayResult:
        result = await super().charge(request)
        if not self.interrupted:
            self.interrupted = True
            order_id = request.description.removeprefix("order ")
            await self.service.refund(RefundPayment(order_id=order_id, idempotency_key="r"))
        return result


async def test_keeps_refund_when_refund_runs_between_charge_and_its_record(
    payments: InMemoryPaymentRepository, ledger: InMemorySandboxLedger
) -> None:
    gateway = RefundDuringChargeGateway(ledger)
    service = gateway.service = LocalPaymentService(payments, gateway)
    method = await gateway.tokenize(card())
    command = ChargePayment(
        order_id="ord_interleaved", customer_id="cus_1", amount_cents=900,
        payment_token=method.token, idempotency_key="k",
    )  # fmt: skip

    payment = await service.charge(command)  # its COMPLETED record must not replace REFUNDED

    assert payment.status is PaymentStatus.REFUNDED
    stored = await payments.get("ord_interleaved")
    assert stored is not None
    assert (stored.status, stored.amount_cents) == (PaymentStatus.REFUNDED, 900)
    assert (await ledger.count("charge"), await ledger.count("refund")) == (1, 1)


async def charge_new_card(service: LocalPaymentService, gateway: SandboxGateway, order_id: str) -> None:
    """Charge the order 700 cents on a card tokenized for it."""
    token = (await gateway.tokenize(card())).token
    key = f"{order_id}:charge"
    await service.charge(
        ChargePayment(
            order_id=order_id, customer_id="cus_1", amount_cents=700, payment_token=token, idempotency_key=key
        )
    )


class _CountingPayments(InMemoryPaymentRepository):
    """The in-memory repository, counting its reads of one order's payment."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def get(self, order_id: str) -> PaymentRecord | None:
        self.reads += 1
        return await super().get(order_id)


async def test_refunds_its_own_charge_without_reading_it(gateway: SandboxGateway) -> None:
    payments = _CountingPayments()
    service = LocalPaymentService(payments, gateway)
    await charge_new_card(service, gateway, "o-own")

    refunded = await service.refund(RefundPayment(order_id="o-own", idempotency_key="o-own:refund"))

    assert refunded.status is PaymentStatus.REFUNDED
    assert payments.reads == 0
    stored = await payments.get("o-own")
    assert stored is not None and stored.status is PaymentStatus.REFUNDED


async def test_refunds_once_when_another_process_refunded_the_payment_it_remembers(
    payments: InMemoryPaymentRepository, gateway: SandboxGateway, ledger: InMemorySandboxLedger
) -> None:
    charging, other = LocalPaymentService(payments, gateway), LocalPaymentService(payments, gateway)
    await charge_new_card(charging, gateway, "o-two")
    first = await other.refund(RefundPayment(order_id="o-two", idempotency_key="o-two:refund"))

    # `charging` remembers the payment COMPLETED: its conditional write finds it changed
    again = await charging.refund(RefundPayment(order_id="o-two", idempotency_key="o-two:refund"))

    assert first.status is again.status is PaymentStatus.REFUNDED
    assert again.payment_id == first.payment_id
    assert await ledger.count("refund") == 1
