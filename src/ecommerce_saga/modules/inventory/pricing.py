"""Pricing items from catalog prices: one rule for the inventory service and for its HTTP client.

A product's name, price and currency never change once it is created (no operation of the
inventory module changes them), so whoever has seen a product's price may price it again
without asking: the MongoDB repository remembers the prices it read, and `HttpInventoryService`
the prices its quotes were answered with. An operation that changes a price must make both
forget it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict

from ecommerce_saga.modules.inventory.contract import (
    InventoryUnavailableError,
    ItemQuantity,
    PricedItem,
    Quote,
)


class CatalogPrice(BaseModel):
    """What a product costs."""

    model_config = ConfigDict(frozen=True)

    name: str
    price_cents: int
    currency: str


def priced(item: ItemQuantity | PricedItem, price: CatalogPrice | None) -> PricedItem:
    """`item` at its catalog price (0, nameless, for an unknown product)."""
    cents = price.price_cents if price else 0
    return PricedItem(
        product_id=item.product_id,
        name=price.name if price else "",
        quantity=item.quantity,
        price_cents=cents,
        line_total_cents=cents * item.quantity,
    )


def quote(items: Sequence[ItemQuantity], prices: Mapping[str, CatalogPrice]) -> Quote:
    """`items` priced from `prices` (products missing from it are unknown, priced 0).

    Raises:
        InventoryUnavailableError: the known products are priced in different currencies.
    """
    wanted = sorted({item.product_id for item in items})
    currencies = {price.currency for pid in wanted if (price := prices.get(pid)) is not None}
    if len(currencies) > 1:
        raise InventoryUnavailableError("the items are priced in different currencies")
    lines = [priced(item, prices.get(item.product_id)) for item in items]
    return Quote(
        items=lines,
        total_cents=sum(line.line_total_cents for line in lines),
        currency=currencies.pop() if currencies else "USD",
        unknown_products=[pid for pid in wanted if pid not in prices],
    )


def learned_prices(answer: Quote) -> dict[str, CatalogPrice]:
    """The catalog prices a quote was answered with, by product (unknown products left out)."""
    unknown = set(answer.unknown_products)
    return {
        line.product_id: CatalogPrice(name=line.name, price_cents=line.price_cents, currency=answer.currency)
        for line in answer.items
        if line.product_id not in unknown
    }
