"""The sandbox gateway: deterministic outcomes from test numbers, idempotency per key, its vault."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from ecommerce_saga.modules.payment.contract import (
    CardBrand,
    PaymentDetails,
    PaymentMethodKind,
    PaymentMethodNotFoundError,
)
from ecommerce_saga.modules.payment.gateway import GatewayCharge, GatewayRefund, SandboxGateway
from ecommerce_saga.modules.payment.repository import InMemorySandboxLedger

NOW = datetime(2030, 6, 15, 12, 0, tzinfo=UTC)


@pytest.fixture
def ledger() -> InMemorySandboxLedger:
    return InMemorySandboxLedger()


@pytest.fixture
def gateway(ledger: InMemorySandboxLedger) -> SandboxGateway:
    return SandboxGateway(ledger, clock=lambda: NOW)


def card(number: str, month: int = 12, year: int = 2031) -> PaymentDetails:
    return PaymentDetails(
        method=PaymentMethodKind.CREDIT_CARD, card_number=number, expiry_month=month,
        expiry_year=year, cvv="123",
    )  # fmt: skip


def paypal(email: str) -> PaymentDetails:
    return PaymentDetails(method=PaymentMethodKind.PAYPAL, paypal_email=email)


async def charge(gateway: SandboxGateway, details: PaymentDetails, key: str = "k1") -> Any:
    method = await gateway.tokenize(details)
    request = GatewayCharge(
        token=method.token, amount_cents=1999, currency="USD", idempotency_key=key, description="t"
    )
    return await gateway.charge(request)


@pytest.mark.parametrize(
    "details",
    [card("4242424242424242"), card("5555555555554444"), card("4242424242424242", 6, 2030)],
    ids=["visa", "mastercard", "expires-this-month"],
)
async def test_approves_charge_when_card_is_ordinary(
    gateway: SandboxGateway, details: PaymentDetails
) -> None:
    result = await charge(gateway, details)

    assert result.approved
    assert result.decline_code is None
    assert result.reference.startswith("sbx_ch_")


@pytest.mark.parametrize(
    ("details", "decline_code"),
    [
        (card("4000000000000002"), "card_declined"),
        (card("4000000000009995"), "insufficient_funds"),
        (card("4242424242424242", 5, 2030), "expired_card"),
        (card("4000000000000002", 12, 2029), "expired_card"),
        (paypal("ada@decline.test"), "paypal_declined"),
        (paypal("ADA@DECLINE.TEST"), "paypal_declined"),
    ],
)
async def test_declines_charge_when_details_are_a_declining_test_case(
    gateway: SandboxGateway, details: PaymentDetails, decline_code: str
) -> None:
    result = await charge(gateway, details)

    assert not result.approved
    assert result.decline_code == decline_code


async def test_approves_paypal_when_address_is_ordinary(gateway: SandboxGateway) -> None:
    assert (await charge(gateway, paypal("ada@example.com"))).approved


async def test_vaults_only_brand_last4_and_expiry_when_card_is_tokenized(gateway: SandboxGateway) -> None:
    method = await gateway.tokenize(card("378282246310005", 4, 2032))

    assert method.method is PaymentMethodKind.CREDIT_CARD
    assert (method.brand, method.last4) == (CardBrand.AMEX, "0005")
    assert (method.expiry_month, method.expiry_year) == (4, 2032)
    assert await gateway.payment_method(method.token) == method
    assert "378282246310005" not in method.model_dump_json()


async def test_returns_first_result_when_idempotency_key_is_reused(
    gateway: SandboxGateway, ledger: InMemorySandboxLedger
) -> None:
    first = await charge(gateway, card("4242424242424242"), key="same")
    again = await charge(gateway, card("4000000000000002"), key="same")

    assert again == first
    assert await ledger.count("charge") == 1


async def test_raises_method_not_found_when_token_is_unknown(gateway: SandboxGateway) -> None:
    request = GatewayCharge(
        token="pm_unknown", amount_cents=1, currency="USD", idempotency_key="k", description="t"
    )
    with pytest.raises(PaymentMethodNotFoundError):
        await gateway.charge(request)


async def test_refunds_once_when_refund_is_repeated_with_same_key(
    gateway: SandboxGateway, ledger: InMemorySandboxLedger
) -> None:
    charged = await charge(gateway, card("4242424242424242"))
    request = GatewayRefund(
        charge_reference=charged.reference, amount_cents=1999, currency="USD", idempotency_key="r"
    )

    first = await gateway.refund(request)
    again = await gateway.refund(request)

    assert first.approved
    assert first.reference.startswith("sbx_re_")
    assert again == first
    assert await ledger.count("refund") == 1


class CountingLedger(InMemorySandboxLedger):
    """Counts the charges looked up by reference."""

    def __init__(self) -> None:
        super().__init__()
        self.charge_reads = 0

    async def charge(self, reference: str) -> Any:
        self.charge_reads += 1
        return await super().charge(reference)


async def test_refunds_a_charge_it_made_without_reading_it_back() -> None:
    ledger = CountingLedger()
    gateway = SandboxGateway(ledger, clock=lambda: NOW)
    charged = await charge(gateway, card("4242424242424242"))
    request = GatewayRefund(
        charge_reference=charged.reference, amount_cents=1999, currency="USD", idempotency_key="r"
    )

    refunded = await gateway.refund(request)

    assert refunded.approved
    assert ledger.charge_reads == 0


async def test_refunds_a_charge_another_gateway_made_on_the_same_ledger() -> None:
    ledger = CountingLedger()
    charged = await charge(SandboxGateway(ledger, clock=lambda: NOW), card("4242424242424242"))
    other = SandboxGateway(ledger, clock=lambda: NOW, cache_size=1)  # another process: nothing remembered
    request = GatewayRefund(
        charge_reference=charged.reference, amount_cents=1999, currency="USD", idempotency_key="r"
    )

    refunded = await other.refund(request)
    again = await other.refund(request)

    assert refunded.approved
    assert again == refunded
    assert ledger.charge_reads == 1  # read once, then remembered
    assert await ledger.count("refund") == 1


async def test_refuses_refund_when_charge_was_declined(gateway: SandboxGateway) -> None:
    declined = await charge(gateway, card("4000000000000002"))
    request = GatewayRefund(
        charge_reference=declined.reference, amount_cents=1999, currency="USD", idempotency_key="r"
    )
    with pytest.raises(LookupError):
        await gateway.refund(request)
