"""The `PaymentService` spec, run against every implementation.

`PaymentServiceSpec` holds the behaviour; each `Test…` subclass provides a `service` fixture and
a `gateway_calls` fixture (how often money moved: the sandbox gateway's ledger, or the fake's
count): the local service on the embedded database and on the in-memory repositories,
`HttpPaymentService` talking to that service's router in-process through `httpx.ASGITransport`
(see `tests/contract/http_adapter.py`), and the fake the order module's unit tests use.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Literal

import pytest
from beanie import init_beanie
from pymongo.asynchronous.database import AsyncDatabase

from ecommerce_saga.modules.payment.client import HttpPaymentService
from ecommerce_saga.modules.payment.contract import (
    ChargePayment,
    Payment,
    PaymentDeclinedError,
    PaymentDetails,
    PaymentFilter,
    PaymentMethodKind,
    PaymentMethodNotFoundError,
    PaymentNotFoundError,
    PaymentService,
    PaymentStatus,
    PaymentVoidedError,
    RefundPayment,
)
from ecommerce_saga.modules.payment.documents import DOCUMENT_MODELS
from ecommerce_saga.modules.payment.gateway import SandboxGateway
from ecommerce_saga.modules.payment.repository import (
    BeaniePaymentRepository,
    BeanieSandboxLedger,
    InMemoryPaymentRepository,
    InMemorySandboxLedger,
    SandboxLedger,
)
from ecommerce_saga.modules.payment.router import build_router
from ecommerce_saga.modules.payment.service import LocalPaymentService
from ecommerce_saga.shared.ids import new_id
from tests.contract.http_adapter import TOKENS, served_over_http
from tests.fakes import FakePaymentService

NOW = datetime(2030, 6, 15, 12, 0, tzinfo=UTC)
APPROVED_CARD = "4242424242424242"


def card(number: str = APPROVED_CARD, month: int = 12, year: int = 2031) -> PaymentDetails:
    return PaymentDetails.model_validate(
        {"method": "CREDIT_CARD", "card_number": number, "expiry_month": month,
         "expiry_year": year, "cvv": "123"}
    )  # fmt: skip


def paypal(email: str) -> PaymentDetails:
    return PaymentDetails(method=PaymentMethodKind.PAYPAL, paypal_email=email)


GatewayCalls = Callable[[Literal["charge", "refund"]], Awaitable[int]]
"""How many charges or refunds were actually made."""


@pytest.fixture
async def ledger(mongo_db: AsyncDatabase[dict[str, Any]]) -> SandboxLedger:
    await init_beanie(database=mongo_db, document_models=DOCUMENT_MODELS)
    return BeanieSandboxLedger()


@pytest.fixture
def gateway(ledger: SandboxLedger) -> SandboxGateway:
    return SandboxGateway(ledger, clock=lambda: NOW)


@pytest.fixture
def gateway_calls(ledger: SandboxLedger) -> GatewayCalls:
    return ledger.count


class PaymentServiceSpec:
    """Behaviour every `PaymentService` implementation must have."""

    async def pay(
        self, service: PaymentService, details: PaymentDetails | None = None, *,
        order_id: str | None = None, customer_id: str = "cus_1", amount_cents: int = 2500,
        key: str | None = None,
    ) -> Payment:  # fmt: skip
        method = await service.tokenize(details or card())
        command = ChargePayment(
            order_id=order_id or new_id("ord"), customer_id=customer_id, amount_cents=amount_cents,
            payment_token=method.token, idempotency_key=key or new_id("key"),
        )  # fmt: skip
        return await service.charge(command)

    async def test_completes_payment_when_card_is_approved(
        self, service: PaymentService, gateway_calls: GatewayCalls
    ) -> None:
        payment = await self.pay(service, order_id="ord_ok", amount_cents=4999)

        assert payment.status is PaymentStatus.COMPLETED
        assert (payment.order_id, payment.customer_id) == ("ord_ok", "cus_1")
        assert (payment.amount_cents, payment.currency) == (4999, "USD")
        assert (payment.method, payment.brand, payment.last4) == ("CREDIT_CARD", "visa", "4242")
        assert payment.gateway_reference
        assert payment.decline_code is None
        assert payment.created_at.tzinfo is not None
        assert await service.get_payment(payment.payment_id) == payment
        assert await gateway_calls("charge") == 1

    async def test_completes_payment_when_paypal_is_approved(self, service: PaymentService) -> None:
        payment = await self.pay(service, paypal("ada@example.com"))

        assert (payment.status, payment.method) == (PaymentStatus.COMPLETED, "PAYPAL")
        assert payment.last4 is None

    @pytest.mark.parametrize(
        ("details", "decline_code"),
        [
            (card("4000000000000002"), "card_declined"),
            (card("4000000000009995"), "insufficient_funds"),
            (card(APPROVED_CARD, month=5, year=2030), "expired_card"),
            (paypal("ada@decline.test"), "paypal_declined"),
        ],
    )
    async def test_records_and_raises_decline_when_gateway_declines(
        self, service: PaymentService, details: PaymentDetails, decline_code: str
    ) -> None:
        with pytest.raises(PaymentDeclinedError) as caught:
            await self.pay(service, details, customer_id="cus_declined")

        assert caught.value.code == "payment.declined"
        assert caught.value.decline_code == decline_code
        stored = await service.list_payments(PaymentFilter(customer_id="cus_declined"))
        assert [(p.status, p.decline_code) for p in stored.items] == [(PaymentStatus.DECLINED, decline_code)]

    async def test_raises_same_decline_when_declined_order_is_charged_again(
        self, service: PaymentService, gateway_calls: GatewayCalls
    ) -> None:
        method = await service.tokenize(card("4000000000009995"))
        command = ChargePayment(
            order_id="ord_nsf", customer_id="cus_1", amount_cents=100, payment_token=method.token,
            idempotency_key="first",
        )  # fmt: skip
        with pytest.raises(PaymentDeclinedError):
            await service.charge(command)

        with pytest.raises(PaymentDeclinedError) as again:
            await service.charge(command.model_copy(update={"idempotency_key": "second"}))

        assert again.value.decline_code == "insufficient_funds"
        assert await gateway_calls("charge") == 1

    async def test_charges_once_when_same_order_is_charged_twice(
        self, service: PaymentService, gateway_calls: GatewayCalls
    ) -> None:
        method = await service.tokenize(card())
        command = ChargePayment(
            order_id="ord_twice", customer_id="cus_1", amount_cents=100,
            payment_token=method.token, idempotency_key="first",
        )  # fmt: skip

        first = await service.charge(command)
        again = await service.charge(command.model_copy(update={"idempotency_key": "other"}))

        assert again == first
        assert await gateway_calls("charge") == 1

    async def test_charges_once_when_ten_charges_for_one_order_race(
        self, service: PaymentService, gateway_calls: GatewayCalls
    ) -> None:
        method = await service.tokenize(card())
        first = ChargePayment(
            order_id="ord_race", customer_id="cus_1", amount_cents=100,
            payment_token=method.token, idempotency_key="attempt-0",
        )  # fmt: skip
        commands = [first.model_copy(update={"idempotency_key": f"attempt-{n}"}) for n in range(10)]

        payments = await asyncio.gather(*(service.charge(c) for c in commands))

        assert {p.payment_id for p in payments} == {payments[0].payment_id}
        assert {p.status for p in payments} == {PaymentStatus.COMPLETED}
        assert await gateway_calls("charge") == 1
        assert (await service.list_payments(PaymentFilter())).total == 1

    async def test_raises_method_not_found_when_token_is_unknown(self, service: PaymentService) -> None:
        command = ChargePayment(
            order_id="ord_x", customer_id="cus_1", amount_cents=100, payment_token="pm_unknown",
            idempotency_key="k",
        )  # fmt: skip
        with pytest.raises(PaymentMethodNotFoundError):
            await service.charge(command)

        assert (await service.list_payments(PaymentFilter())).total == 0

    async def test_refunds_payment_when_order_is_refunded(
        self, service: PaymentService, gateway_calls: GatewayCalls
    ) -> None:
        paid = await self.pay(service, order_id="ord_refund")

        refunded = await service.refund(RefundPayment(order_id="ord_refund", idempotency_key="r1"))

        assert refunded.status is PaymentStatus.REFUNDED
        assert (refunded.payment_id, refunded.amount_cents) == (paid.payment_id, paid.amount_cents)
        assert refunded.gateway_reference == paid.gateway_reference
        assert await service.get_payment(paid.payment_id) == refunded
        assert await gateway_calls("refund") == 1

    async def test_refunds_once_when_order_is_refunded_twice(
        self, service: PaymentService, gateway_calls: GatewayCalls
    ) -> None:
        await self.pay(service, order_id="ord_refund2")

        first = await service.refund(RefundPayment(order_id="ord_refund2", idempotency_key="r1"))
        again = await service.refund(RefundPayment(order_id="ord_refund2", idempotency_key="r2"))

        assert again == first
        assert again.status is PaymentStatus.REFUNDED
        assert await gateway_calls("refund") == 1

    async def test_returns_refunded_payment_when_refunded_order_is_charged_again(
        self, service: PaymentService, gateway_calls: GatewayCalls
    ) -> None:
        method = await service.tokenize(card())
        command = ChargePayment(
            order_id="ord_back", customer_id="cus_1", amount_cents=100, payment_token=method.token,
            idempotency_key="k",
        )  # fmt: skip
        await service.charge(command)
        await service.refund(RefundPayment(order_id="ord_back", idempotency_key="r"))

        again = await service.charge(command)

        assert again.status is PaymentStatus.REFUNDED
        assert await gateway_calls("charge") == 1

    async def test_refuses_late_charge_when_order_was_refunded_before_being_charged(
        self, service: PaymentService, gateway_calls: GatewayCalls
    ) -> None:
        voided = await service.refund(RefundPayment(order_id="ord_late", idempotency_key="r"))

        assert (voided.status, voided.amount_cents, voided.order_id) == (PaymentStatus.VOIDED, 0, "ord_late")
        with pytest.raises(PaymentVoidedError) as caught:
            await self.pay(service, order_id="ord_late")
        assert caught.value.code == "payment.voided"
        assert await service.refund(RefundPayment(order_id="ord_late", idempotency_key="r2")) == voided
        assert await gateway_calls("charge") == 0

    async def test_leaves_declined_payment_unchanged_when_it_is_refunded(
        self, service: PaymentService, gateway_calls: GatewayCalls
    ) -> None:
        with pytest.raises(PaymentDeclinedError):
            await self.pay(service, card("4000000000000002"), order_id="ord_dec")

        refunded = await service.refund(RefundPayment(order_id="ord_dec", idempotency_key="r"))

        assert (refunded.status, refunded.decline_code) == (PaymentStatus.DECLINED, "card_declined")
        assert await gateway_calls("refund") == 0

    async def test_raises_not_found_when_payment_id_is_unknown(self, service: PaymentService) -> None:
        with pytest.raises(PaymentNotFoundError) as caught:
            await service.get_payment("pay_missing")
        assert caught.value.code == "payment.not_found"

    async def test_lists_newest_first_when_filtering_and_paging(self, service: PaymentService) -> None:
        for _ in range(3):
            await self.pay(service, customer_id="cus_a")
        with pytest.raises(PaymentDeclinedError):
            await self.pay(service, card("4000000000000002"), customer_id="cus_b")
        refunded = await self.pay(service, customer_id="cus_b")
        await service.refund(RefundPayment(order_id=refunded.order_id, idempotency_key="r"))

        everything = await service.list_payments(PaymentFilter(limit=100))
        times = [p.created_at for p in everything.items]
        assert everything.total == 5
        assert times == sorted(times, reverse=True)

        by_customer = await service.list_payments(PaymentFilter(customer_id="cus_a"))
        assert (by_customer.total, {p.customer_id for p in by_customer.items}) == (3, {"cus_a"})
        declined = await service.list_payments(PaymentFilter(status=PaymentStatus.DECLINED))
        assert [p.customer_id for p in declined.items] == ["cus_b"]
        both = PaymentFilter(customer_id="cus_b", status=PaymentStatus.REFUNDED)
        assert [p.order_id for p in (await service.list_payments(both)).items] == [refunded.order_id]

        pages = [await service.list_payments(PaymentFilter(limit=2, skip=s)) for s in (0, 2, 4)]
        assert [len(p.items) for p in pages] == [2, 2, 1]
        assert {p.total for p in pages} == {5}
        assert [i.payment_id for p in pages for i in p.items] == [i.payment_id for i in everything.items]

        pivot = times[2]
        since = await service.list_payments(PaymentFilter(from_=pivot))
        before = await service.list_payments(PaymentFilter(to=pivot))
        assert {p.payment_id for p in since.items} == {
            p.payment_id for p in everything.items if p.created_at >= pivot
        }
        assert {p.payment_id for p in before.items} == {
            p.payment_id for p in everything.items if p.created_at < pivot
        }
        assert since.total + before.total == 5


class TestLocalPaymentService(PaymentServiceSpec):
    """The spec against `LocalPaymentService` with the sandbox gateway on the embedded database."""

    @pytest.fixture
    def service(self, gateway: SandboxGateway) -> PaymentService:
        return LocalPaymentService(BeaniePaymentRepository(), gateway)


class TestLocalPaymentServiceInMemory(PaymentServiceSpec):
    """The spec against `LocalPaymentService` and the sandbox gateway on in-memory repositories."""

    @pytest.fixture
    def ledger(self) -> SandboxLedger:  # overrides the database-backed one: no database at all
        return InMemorySandboxLedger()

    @pytest.fixture
    def service(self, gateway: SandboxGateway) -> PaymentService:
        return LocalPaymentService(InMemoryPaymentRepository(), gateway)


class TestHttpPaymentService(PaymentServiceSpec):
    """The spec against `HttpPaymentService` and the payment router (same gateway), in-process."""

    @pytest.fixture
    async def service(self, gateway: SandboxGateway) -> AsyncIterator[PaymentService]:
        local = LocalPaymentService(BeaniePaymentRepository(), gateway)
        async with served_over_http("payment", build_router(local, TOKENS)) as client:
            yield HttpPaymentService(client)


class TestFakePaymentService(PaymentServiceSpec):
    """The spec against the unit tests' in-memory fake, so that it stays faithful to the contract."""

    @pytest.fixture
    def fake(self) -> FakePaymentService:
        return FakePaymentService(clock=lambda: NOW)

    @pytest.fixture
    def service(self, fake: FakePaymentService) -> PaymentService:
        return fake

    @pytest.fixture
    def gateway_calls(self, fake: FakePaymentService) -> GatewayCalls:
        async def count(kind: Literal["charge", "refund"]) -> int:
            return fake.gateway_calls[kind]

        return count
