"""`PaymentDetails` and the other payment DTOs: validation per method, and secrets kept masked."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from ecommerce_saga.modules.payment.contract import (
    ChargePayment,
    PaymentDetails,
    PaymentFilter,
    PaymentMethodKind,
)
from ecommerce_saga.modules.shipping.contract import ShipmentFilter
from ecommerce_saga.shared.contracts import CreatedWithin

CARD_NUMBER = "4242424242424242"
CVV = "987"


def card(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "method": "CREDIT_CARD",
        "card_number": CARD_NUMBER,
        "expiry_month": 12,
        "expiry_year": 2031,
        "cvv": CVV,
        "cardholder_name": "Ada Lovelace",
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


@pytest.mark.parametrize("method", ["CREDIT_CARD", "DEBIT_CARD"])
def test_accepts_card_when_all_card_fields_are_valid(method: str) -> None:
    details = PaymentDetails.model_validate(card(method=method))

    assert details.method is PaymentMethodKind(method)
    assert details.card_number is not None
    assert details.card_number.get_secret_value() == CARD_NUMBER


@pytest.mark.parametrize("number", ["4242 4242 4242 4242", "4242-4242-4242-4242", " 4242424242424242 "])
def test_strips_spaces_and_dashes_when_card_number_is_formatted(number: str) -> None:
    details = PaymentDetails.model_validate(card(card_number=number))

    assert details.card_number is not None
    assert details.card_number.get_secret_value() == CARD_NUMBER


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"card_number": "4242424242424241"}, "Luhn"),
        ({"card_number": "4242a24242424242"}, "only digits"),
        ({"card_number": "42424242426"}, "12 to 19 digits"),
        ({"card_number": "42424242424242424242"}, "12 to 19 digits"),
        ({"card_number": 4242424242424242}, "string"),
        ({"expiry_month": 13}, "less than or equal to 12"),
        ({"expiry_month": 0}, "greater than or equal to 1"),
        ({"expiry_year": 31}, "greater than or equal to 2000"),
        ({"cvv": "12"}, "3 or 4 digits"),
        ({"cvv": "12345"}, "3 or 4 digits"),
        ({"cvv": "12a"}, "3 or 4 digits"),
        ({"card_number": None}, "card_number required"),
        ({"expiry_month": None, "expiry_year": None}, "expiry_month, expiry_year required"),
        ({"cvv": None}, "cvv required"),
        ({"paypal_email": "ada@example.com"}, "paypal_email not allowed"),
        ({"brand": "visa"}, "Extra inputs"),
    ],
)
def test_rejects_card_when_a_field_is_missing_or_invalid(overrides: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        PaymentDetails.model_validate(card(**overrides))


def test_accepts_paypal_when_email_is_given() -> None:
    details = PaymentDetails(method=PaymentMethodKind.PAYPAL, paypal_email="ada@example.com")

    assert details.paypal_email == "ada@example.com"
    assert details.card_number is None


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"method": "PAYPAL"}, "paypal_email required"),
        ({"method": "PAYPAL", "paypal_email": "not-an-address"}, "pattern"),
        ({"method": "PAYPAL", "paypal_email": "ada@example.com", "cvv": "123"}, "cvv not allowed"),
        ({"method": "BITCOIN", "paypal_email": "ada@example.com"}, "CREDIT_CARD"),
    ],
)
def test_rejects_paypal_when_email_is_missing_or_card_fields_are_given(
    body: dict[str, Any], reason: str
) -> None:
    with pytest.raises(ValidationError, match=reason):
        PaymentDetails.model_validate(body)


def test_masks_card_number_and_cvv_when_details_are_shown_or_dumped() -> None:
    details = PaymentDetails.model_validate(card(card_number="4242 4242 4242 4242"))

    for shown in (repr(details), str(details), details.model_dump_json(), str(details.model_dump())):
        assert CARD_NUMBER not in shown
        assert "4242 4242" not in shown
        assert CVV not in shown


def test_hides_input_when_validation_error_is_shown() -> None:
    with pytest.raises(ValidationError) as caught:
        PaymentDetails.model_validate(card(card_number="4242424242424241", cvv=None))

    assert "4242424242424241" not in str(caught.value)
    assert "4242424242424241" not in repr(caught.value)


def test_reveals_secrets_only_when_wire_payload_is_built() -> None:
    details = PaymentDetails.model_validate(card())

    payload = details.wire_payload()

    assert payload["card_number"] == CARD_NUMBER
    assert payload["cvv"] == CVV
    assert PaymentDetails.model_validate(payload) == details


def test_rejects_charge_when_amount_is_not_positive() -> None:
    base = {"order_id": "ord_1", "customer_id": "cus_1", "payment_token": "pm_1", "idempotency_key": "k"}
    for amount in (0, -100):
        with pytest.raises(ValidationError, match="greater than 0"):
            ChargePayment.model_validate({**base, "amount_cents": amount})
    with pytest.raises(ValidationError):
        ChargePayment.model_validate({**base, "amount_cents": 10.5})


@pytest.mark.parametrize("order_id", ["ord.1", "$where", "a" * 65, "", "ord 1"])
def test_rejects_charge_when_order_id_is_not_a_safe_id(order_id: str) -> None:
    with pytest.raises(ValidationError):
        ChargePayment(
            order_id=order_id, customer_id="cus_1", amount_cents=100, payment_token="pm_1",
            idempotency_key="k",
        )  # fmt: skip


@pytest.mark.parametrize("time_filter", [PaymentFilter, ShipmentFilter])
def test_refuses_naive_times_when_filtering(time_filter: type[CreatedWithin]) -> None:
    with pytest.raises(ValidationError, match="timezone"):
        time_filter(from_=datetime(2030, 1, 1), to=datetime(2030, 2, 1, tzinfo=UTC))  # noqa: DTZ001


@pytest.mark.parametrize("time_filter", [PaymentFilter, ShipmentFilter])
def test_rejects_filter_when_from_is_after_to(time_filter: type[CreatedWithin]) -> None:
    with pytest.raises(ValidationError, match="from must not be after to"):
        time_filter(from_=datetime(2030, 2, 1, tzinfo=UTC), to=datetime(2030, 1, 1, tzinfo=UTC))
    instant = datetime(2030, 1, 1, tzinfo=UTC)
    assert time_filter(from_=instant, to=instant).covers(instant) is False  # [from, to): empty
