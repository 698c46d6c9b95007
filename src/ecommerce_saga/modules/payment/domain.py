"""Rules that need no I/O: card brand from the issuer prefix, last four digits, expiry."""

from __future__ import annotations

from datetime import datetime

from ecommerce_saga.modules.payment.contract import CardBrand

# (brand, lowest prefix, highest prefix): issuer identification number ranges, longest first.
_IIN_RANGES: tuple[tuple[CardBrand, int, int], ...] = (
    (CardBrand.MASTERCARD, 2221, 2720),
    (CardBrand.DISCOVER, 6011, 6011),
    (CardBrand.DISCOVER, 644, 649),
    (CardBrand.MASTERCARD, 51, 55),
    (CardBrand.AMEX, 34, 34),
    (CardBrand.AMEX, 37, 37),
    (CardBrand.DISCOVER, 65, 65),
    (CardBrand.VISA, 4, 4),
)


def card_brand(digits: str) -> CardBrand:
    """The card network of a card number (digits only), or `OTHER`."""
    for brand, low, high in _IIN_RANGES:
        prefix = digits[: len(str(low))]
        if prefix.isdigit() and low <= int(prefix) <= high:
            return brand
    return CardBrand.OTHER


def last_four(digits: str) -> str:
    """The last four digits: all of a card number that may be stored or shown."""
    return digits[-4:]


def card_expired(expiry_month: int, expiry_year: int, now: datetime) -> bool:
    """Whether a card is expired at `now`: it is valid through the end of its expiry month."""
    return (expiry_year, expiry_month) < (now.year, now.month)
