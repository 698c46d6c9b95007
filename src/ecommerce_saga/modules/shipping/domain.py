"""Shipping rules: delivery estimates in business days, the carrier table and tracking numbers.

The shop ships from one warehouse in the United States (`ORIGIN_COUNTRY`). Carriers by method
and destination:

===========  ===================  =====================
Method       Domestic (US)        International
===========  ===================  =====================
STANDARD     USPS                 DHL eCommerce
EXPRESS      UPS                  FedEx International
OVERNIGHT    DHL Express          DHL Express
===========  ===================  =====================

Transit times count business days (Monday to Friday) after the day the order is shipped:
STANDARD 5, EXPRESS 2, OVERNIGHT 1. Public holidays are not modelled.
"""

from __future__ import annotations

import secrets
from datetime import date, timedelta

from ecommerce_saga.modules.shipping.contract import ShippingMethod

ORIGIN_COUNTRY = "US"

TRANSIT_BUSINESS_DAYS: dict[ShippingMethod, int] = {
    ShippingMethod.STANDARD: 5,
    ShippingMethod.EXPRESS: 2,
    ShippingMethod.OVERNIGHT: 1,
}

_DOMESTIC_CARRIERS: dict[ShippingMethod, str] = {
    ShippingMethod.STANDARD: "USPS",
    ShippingMethod.EXPRESS: "UPS",
    ShippingMethod.OVERNIGHT: "DHL Express",
}
_INTERNATIONAL_CARRIERS: dict[ShippingMethod, str] = {
    ShippingMethod.STANDARD: "DHL eCommerce",
    ShippingMethod.EXPRESS: "FedEx International",
    ShippingMethod.OVERNIGHT: "DHL Express",
}
TRACKING_PREFIXES: dict[str, str] = {
    "USPS": "94",
    "UPS": "1Z",
    "DHL eCommerce": "GM",
    "FedEx International": "FX",
    "DHL Express": "JD",
}
TRACKING_DIGITS = 18

_SATURDAY = 5


def add_business_days(start: date, days: int) -> date:
    """The date `days` business days after `start`, skipping Saturdays and Sundays."""
    current = start
    remaining = days
    while remaining > 0:
        current += timedelta(days=1)
        if current.weekday() < _SATURDAY:
            remaining -= 1
    return current


def estimated_delivery(method: ShippingMethod, shipped_on: date) -> date:
    """When a parcel shipped on `shipped_on` with `method` arrives."""
    return add_business_days(shipped_on, TRANSIT_BUSINESS_DAYS[method])


def carrier_for(method: ShippingMethod, country: str) -> str:
    """The carrier that delivers with `method` to `country` (see the module's table)."""
    table = _DOMESTIC_CARRIERS if country == ORIGIN_COUNTRY else _INTERNATIONAL_CARRIERS
    return table[method]


def new_tracking_number(carrier: str) -> str:
    """The carrier's prefix and `TRACKING_DIGITS` random digits, e.g. ``1Z048213…``."""
    digits = secrets.randbelow(10**TRACKING_DIGITS)
    return f"{TRACKING_PREFIXES[carrier]}{digits:0{TRACKING_DIGITS}d}"
