"""The real order module (repository, sagas, service) wired to fake participants, for unit tests.

Orders live in the test database (the repository is Beanie's); sagas run on the in-memory store;
every participant is a fake sharing one journal.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from beanie import init_beanie
from pymongo.asynchronous.database import AsyncDatabase

from ecommerce_saga.modules.inventory.contract import ItemQuantity
from ecommerce_saga.modules.order.contract import PlaceOrder
from ecommerce_saga.modules.order.documents import DOCUMENT_MODELS, OrderDocument
from ecommerce_saga.modules.order.repository import OrderRepository
from ecommerce_saga.modules.order.saga import OrderSagas
from ecommerce_saga.modules.order.service import LocalOrderService
from ecommerce_saga.modules.payment.contract import PaymentDetails
from ecommerce_saga.modules.shipping.contract import Address
from ecommerce_saga.saga import RetryPolicy, Saga, SagaEngine
from ecommerce_saga.saga.stores.memory import InMemorySagaStore
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
    orders: OrderRepository
    engine: SagaEngine
    service: LocalOrderService

    async def order(self, order_id: str) -> OrderDocument:
        """The stored order."""
        doc = await self.orders.get(order_id)
        assert doc is not None, order_id
        return doc


@asynccontextmanager
async def open_shop(
    database: AsyncDatabase[dict[str, Any]], adjust: Callable[[Saga], Saga] = lambda saga: saga
) -> AsyncIterator[Shop]:
    """The order module on `database` with fresh fakes; `adjust` may change a saga definition."""
    await init_beanie(database=database, document_models=DOCUMENT_MODELS)
    fakes = FakeParticipants.create()
    for product_id, price in CATALOG.items():
        fakes.inventory.add_product(product_id, price_cents=price, quantity=5)
    orders = OrderRepository()
    sagas = OrderSagas(
        orders, fakes.inventory, fakes.payment, fakes.shipping, fakes.notifications, step_retry=FAST_RETRY
    )
    engine = SagaEngine(InMemorySagaStore(), [adjust(s) for s in sagas.definitions()], observers=[])
    service = LocalOrderService(orders, engine, fakes.inventory, fakes.payment, wait_seconds=5.0)
    try:
        yield Shop(fakes, orders, engine, service)
    finally:
        await engine.stop()
