"""The real order module (repository, sagas, service) wired to fake participants, for unit tests.

Built by the composition root (`build_container` with `Overrides`), so the wiring under test is
the app's: orders live in the in-memory order repository, sagas run on the in-memory store, and
every participant is a fake sharing one journal. No database is opened.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecommerce_saga.bootstrap import Overrides, build_container
from ecommerce_saga.modules.inventory.contract import ItemQuantity
from ecommerce_saga.modules.order.contract import PlaceOrder
from ecommerce_saga.modules.order.repository import InMemoryOrderRepository, OrderRecord
from ecommerce_saga.modules.order.service import LocalOrderService
from ecommerce_saga.modules.order.tracker import OrderTracker
from ecommerce_saga.modules.payment.contract import PaymentDetails
from ecommerce_saga.modules.shipping.contract import Address
from ecommerce_saga.saga import RetryPolicy, Saga, SagaEngine
from ecommerce_saga.saga.stores.memory import InMemorySagaStore
from ecommerce_saga.settings import Settings
from tests.fakes import FakeParticipants

FAST_RETRY = RetryPolicy(initial_interval=0.001, maximum_interval=0.01, maximum_attempts=4)
"""For the participant steps: retries take milliseconds, not seconds."""

CATALOG = {"sku-desk": 25_000, "sku-lamp": 4_500}
"""Prices in cents; five of each in stock."""
CARD_NUMBER, CVV = "4242424242424242", "123"
LONDON = Address(
    name="Ada Lovelace", street="12 St James's Square", city="London", postal_code="SW1Y 4JH", country="GB"
)


def card(number: str = CARD_NUMBER, cvv: str = CVV) -> PaymentDetails:
    """Card payment details."""
    return PaymentDetails.model_validate(
        {"method": "CREDIT_CARD", "card_number": number, "expiry_month": 12, "expiry_year": 2031, "cvv": cvv}
    )


def place_order(
    *items: tuple[str, int], country: str = "GB", payment: PaymentDetails | None = None, **changes: Any
) -> PlaceOrder:
    """A customer's order for `items` (product id, quantity), shipped to London or `country`."""
    return PlaceOrder(
        customer_id="cus_ada",
        items=[ItemQuantity(product_id=p, quantity=q) for p, q in items or [("sku-desk", 1)]],
        payment=payment or card(),
        shipping_address=LONDON.model_copy(update={"country": country}),
        **changes,
    )


@dataclass
class Shop:
    """The order module under test and the fakes it calls."""

    fakes: FakeParticipants
    orders: OrderTracker
    repository: InMemoryOrderRepository
    """Where the orders are kept: another `OrderTracker` on it acts as another process."""
    engine: SagaEngine
    service: LocalOrderService

    async def order(self, order_id: str) -> OrderRecord:
        """The stored order."""
        doc = await self.orders.get(order_id)
        assert doc is not None, order_id
        return doc


def _same(saga: Saga[Any]) -> Saga[Any]:
    return saga


@asynccontextmanager
async def open_shop(adjust: Callable[[Saga[Any]], Saga[Any]] = _same) -> AsyncIterator[Shop]:
    """The order module in memory, wired by the composition root with fresh fakes around it.

    `adjust` may change a saga definition (shorter retry budgets, say); orders and sagas are kept
    in memory; everything else is what `build_container` makes of the settings.
    """
    fakes = FakeParticipants.create()
    for product_id, price in CATALOG.items():
        fakes.inventory.add_product(product_id, price_cents=price, quantity=5)
    repository = InMemoryOrderRepository()
    settings = Settings(
        service_token="unit-service", admin_token="unit-admin",
        data_dir=Path(tempfile.gettempdir()) / "ecommerce-saga-unit", demo_catalog=False, metrics_port=0,
    )  # fmt: skip
    overrides = Overrides(
        inventory=fakes.inventory, payment=fakes.payment, shipping=fakes.shipping,
        notifications=fakes.notifications, order_repository=repository, saga_store=InMemorySagaStore(),
        adjust_saga=adjust, step_retry=FAST_RETRY, observers=[],
    )  # fmt: skip
    container = build_container(settings, overrides)
    assert container.engine is not None and container.order_tracker is not None
    assert isinstance(container.orders, LocalOrderService)
    assert not container.uses_database
    await container.start()
    try:
        yield Shop(fakes, container.order_tracker, repository, container.engine, container.orders)
    finally:
        await container.close()
