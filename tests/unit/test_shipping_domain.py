"""Shipping rules: business days, the carrier table, tracking numbers and address validation."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from ecommerce_saga.modules.shipping.contract import Address, ShippingMethod
from ecommerce_saga.modules.shipping.domain import (
    TRACKING_DIGITS,
    TRACKING_PREFIXES,
    add_business_days,
    carrier_for,
    estimated_delivery,
    new_tracking_number,
)

MONDAY = date(2030, 1, 7)
WEDNESDAY = date(2030, 1, 9)
THURSDAY = date(2030, 1, 10)
FRIDAY = date(2030, 1, 4)
SATURDAY = date(2030, 1, 5)
SUNDAY = date(2030, 1, 6)


def _address(**changes: str) -> Address:
    fields = {
        "name": "Ada Lovelace",
        "street": "12 St James's Square",
        "city": "London",
        "postal_code": "SW1Y 4JH",
        "country": "GB",
    }
    return Address.model_validate({**fields, **changes})


@pytest.mark.parametrize(
    ("start", "days", "expected"),
    [
        (MONDAY, 1, date(2030, 1, 8)),
        (FRIDAY, 1, MONDAY),
        (SATURDAY, 1, MONDAY),
        (SUNDAY, 1, MONDAY),
        (MONDAY, 5, date(2030, 1, 14)),
        (WEDNESDAY, 5, date(2030, 1, 16)),
        (THURSDAY, 2, date(2030, 1, 14)),
        (FRIDAY, 0, FRIDAY),
    ],
)
def test_skips_weekends_when_adding_business_days(start: date, days: int, expected: date) -> None:
    assert add_business_days(start, days) == expected


@pytest.mark.parametrize(
    ("method", "shipped_on", "expected"),
    [
        (ShippingMethod.STANDARD, MONDAY, date(2030, 1, 14)),
        (ShippingMethod.STANDARD, FRIDAY, date(2030, 1, 11)),
        (ShippingMethod.EXPRESS, THURSDAY, date(2030, 1, 14)),
        (ShippingMethod.EXPRESS, MONDAY, WEDNESDAY),
        (ShippingMethod.OVERNIGHT, FRIDAY, MONDAY),
        (ShippingMethod.OVERNIGHT, SATURDAY, MONDAY),
        (ShippingMethod.OVERNIGHT, MONDAY, date(2030, 1, 8)),
    ],
)
def test_estimates_delivery_in_business_days_when_shipped_by_method(
    method: ShippingMethod, shipped_on: date, expected: date
) -> None:
    delivery = estimated_delivery(method, shipped_on)

    assert delivery == expected
    assert delivery.weekday() < 5


@pytest.mark.parametrize(
    ("method", "country", "carrier"),
    [
        (ShippingMethod.STANDARD, "US", "USPS"),
        (ShippingMethod.EXPRESS, "US", "UPS"),
        (ShippingMethod.OVERNIGHT, "US", "DHL Express"),
        (ShippingMethod.STANDARD, "GB", "DHL eCommerce"),
        (ShippingMethod.EXPRESS, "JP", "FedEx International"),
        (ShippingMethod.OVERNIGHT, "DE", "DHL Express"),
    ],
)
def test_chooses_carrier_by_method_and_destination_when_shipping(
    method: ShippingMethod, country: str, carrier: str
) -> None:
    assert carrier_for(method, country) == carrier


@pytest.mark.parametrize("carrier", sorted(TRACKING_PREFIXES))
def test_tracking_number_has_carrier_prefix_and_digits_when_drawn(carrier: str) -> None:
    number = new_tracking_number(carrier)

    prefix = TRACKING_PREFIXES[carrier]
    assert number.startswith(prefix)
    assert len(number) == len(prefix) + TRACKING_DIGITS
    assert number[len(prefix) :].isdigit()


def test_tracking_numbers_differ_when_drawn_repeatedly() -> None:
    numbers = {new_tracking_number("UPS") for _ in range(1000)}

    assert len(numbers) == 1000


@pytest.mark.parametrize("given", ["gb", "Gb", " gb "])
def test_normalises_country_to_upper_case_when_given_lower_case(given: str) -> None:
    assert _address(country=given).country == "GB"


@pytest.mark.parametrize("given", ["GBR", "G", "", "1A", "G_", "$n", "ÄB"])
def test_rejects_address_when_country_is_not_an_alpha_2_code(given: str) -> None:
    with pytest.raises(ValidationError) as caught:
        _address(country=given)

    assert [error["loc"] for error in caught.value.errors()] == [("country",)]


@pytest.mark.parametrize("field", ["name", "street", "city", "postal_code"])
def test_rejects_address_when_a_required_line_is_blank(field: str) -> None:
    with pytest.raises(ValidationError):
        _address(**{field: "   "})


def test_rejects_address_when_postal_code_is_too_long() -> None:
    with pytest.raises(ValidationError):
        _address(postal_code="9" * 21)


def test_rejects_address_when_it_has_unknown_fields() -> None:
    with pytest.raises(ValidationError):
        Address.model_validate({**_address().model_dump(), "$where": "1"})
