"""Card rules: the Luhn check, brand detection, last four digits and expiry."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ecommerce_saga.modules.payment.contract import CardBrand, luhn_valid
from ecommerce_saga.modules.payment.domain import card_brand, card_expired, last_four


@pytest.mark.parametrize(
    "number",
    [
        "4242424242424242",
        "4000000000000002",
        "4000000000009995",
        "5555555555554444",
        "2223003122003222",
        "378282246310005",
        "6011111111111117",
        "3530111333300000",
        "79927398713",
    ],
)
def test_accepts_number_when_check_digit_is_right(number: str) -> None:
    assert luhn_valid(number)


@pytest.mark.parametrize(
    "number",
    [
        "4242424242424241",
        "79927398710",
        "1234567812345678",
        "",
        "4242 4242 4242 4242",
        "\uff14\uff12\uff14\uff12",
    ],
)
def test_rejects_number_when_check_digit_is_wrong_or_not_ascii_digits(number: str) -> None:
    assert not luhn_valid(number)


@pytest.mark.parametrize(
    ("number", "brand"),
    [
        ("4242424242424242", CardBrand.VISA),
        ("5555555555554444", CardBrand.MASTERCARD),
        ("5105105105105100", CardBrand.MASTERCARD),
        ("2223003122003222", CardBrand.MASTERCARD),
        ("2720990000000007", CardBrand.MASTERCARD),
        ("378282246310005", CardBrand.AMEX),
        ("341111111111111", CardBrand.AMEX),
        ("6011111111111117", CardBrand.DISCOVER),
        ("6445644564456445", CardBrand.DISCOVER),
        ("6500000000000002", CardBrand.DISCOVER),
        ("3530111333300000", CardBrand.OTHER),
        ("30569309025904", CardBrand.OTHER),
        ("2721000000000004", CardBrand.OTHER),
        ("5610591081018250", CardBrand.OTHER),
    ],
)
def test_detects_brand_when_issuer_prefix_is_known(number: str, brand: CardBrand) -> None:
    assert card_brand(number) is brand


def test_keeps_last_four_digits_when_number_is_masked() -> None:
    assert last_four("4242424242421234") == "1234"


@pytest.mark.parametrize(
    ("month", "year", "expired"),
    [(5, 2030, True), (12, 2029, True), (6, 2030, False), (7, 2030, False), (1, 2031, False)],
)
def test_treats_card_as_valid_through_its_expiry_month_when_checking_expiry(
    month: int, year: int, expired: bool
) -> None:
    now = datetime(2030, 6, 30, 23, 59, tzinfo=UTC)
    assert card_expired(month, year, now) is expired
