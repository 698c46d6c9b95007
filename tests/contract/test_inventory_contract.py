"""The inventory contract, run against the local service on the test database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from beanie import init_beanie
from pymongo.asynchronous.database import AsyncDatabase

from ecommerce_saga.modules.inventory.contract import (
    InventoryService,
    InventoryUnavailableError,
    ItemQuantity,
    NewProduct,
    ProductExistsError,
    ProductFilter,
    ProductNotFoundError,
    ReleaseItems,
    ReservationReleasedError,
    ReservationStatus,
    ReserveItems,
    Restock,
)
from ecommerce_saga.modules.inventory.documents import DOCUMENT_MODELS, ProductDocument, ReservationDocument
from ecommerce_saga.modules.inventory.service import LocalInventoryService


@pytest.fixture
async def service(mongo_db: AsyncDatabase[dict[str, Any]]) -> AsyncIterator[InventoryService]:
    await init_beanie(database=mongo_db, document_models=DOCUMENT_MODELS)
    yield LocalInventoryService()


def _id(prefix: str = "p") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def _product(
    service: InventoryService, quantity: int, price: int = 1000, category: str = "misc"
) -> str:
    product_id = _id()
    await service.create_product(
        NewProduct(
            product_id=product_id, name="Thing", category=category, price_cents=price, quantity=quantity
        )
    )
    return product_id


def _reserve(order_id: str, *items: tuple[str, int]) -> ReserveItems:
    return ReserveItems(
        order_id=order_id,
        items=[ItemQuantity(product_id=p, quantity=q) for p, q in items],
        idempotency_key=f"{order_id}:reserve_inventory",
    )


def _release(order_id: str) -> ReleaseItems:
    return ReleaseItems(order_id=order_id, idempotency_key=f"{order_id}:reserve_inventory:compensate")


class TestInventoryContract:
    async def test_prices_come_from_the_catalog_when_quoting(self, service: InventoryService) -> None:
        a, b = await _product(service, 5, 250), await _product(service, 5, 1000)
        quote = await service.quote(
            [ItemQuantity(product_id=a, quantity=2), ItemQuantity(product_id=b, quantity=1)]
        )
        assert quote.total_cents == 1500
        assert [i.line_total_cents for i in quote.items] == [500, 1000]
        assert quote.unknown_products == []

    async def test_lists_unknown_products_when_quoting(self, service: InventoryService) -> None:
        quote = await service.quote([ItemQuantity(product_id="no-such-thing", quantity=1)])
        assert quote.unknown_products == ["no-such-thing"]
        assert quote.total_cents == 0

    async def test_moves_stock_to_reserved_when_reserving(self, service: InventoryService) -> None:
        a, b = await _product(service, 5), await _product(service, 3)
        reservation = await service.reserve(_reserve("o1", (a, 2), (b, 3)))
        assert reservation.status is ReservationStatus.RESERVED
        first, second = await service.get_product(a), await service.get_product(b)
        assert (first.available, first.reserved) == (3, 2)
        assert (second.available, second.reserved, second.in_stock) == (0, 3, False)
        assert [(h.order_id, h.quantity) for h in first.reservations] == [("o1", 2)]

    async def test_reserves_nothing_when_one_item_is_short(self, service: InventoryService) -> None:
        a, b = await _product(service, 5), await _product(service, 1)
        with pytest.raises(InventoryUnavailableError):
            await service.reserve(_reserve("o2", (a, 2), (b, 2)))
        assert (await service.get_product(a)).available == 5
        assert (await service.get_product(b)).reserved == 0

    async def test_refuses_when_a_product_is_unknown(self, service: InventoryService) -> None:
        with pytest.raises(InventoryUnavailableError, match="unknown"):
            await service.reserve(_reserve("o3", ("missing-product", 1)))

    async def test_reserves_once_when_called_twice(self, service: InventoryService) -> None:
        a = await _product(service, 5)
        first = await service.reserve(_reserve("o4", (a, 2)))
        second = await service.reserve(_reserve("o4", (a, 2)))
        assert first == second
        assert (await service.get_product(a)).available == 3

    async def test_finishes_a_half_done_reservation_when_run_again(self, service: InventoryService) -> None:
        a, b = await _product(service, 5), await _product(service, 5)
        await service.reserve(_reserve("o5", (a, 1), (b, 1)))
        # Simulate a worker that died after holding one item: undo the second hold and the status.
        products = ProductDocument.get_pymongo_collection()
        await products.update_one(
            {"_id": b}, {"$inc": {"available": 1, "reserved": -1}, "$unset": {"holds.o5": ""}}
        )
        doc = await ReservationDocument.get("o5")
        assert doc is not None
        doc.status = ReservationStatus.PENDING
        await doc.replace()
        await service.reserve(_reserve("o5", (a, 1), (b, 1)))
        assert [(await service.get_product(p)).available for p in (a, b)] == [4, 4]

    async def test_never_oversells_when_orders_race(self, service: InventoryService) -> None:
        a = await _product(service, 10)

        async def attempt(n: int) -> bool:
            try:
                await service.reserve(_reserve(f"race-{a}-{n}", (a, 1)))
            except InventoryUnavailableError:
                return False
            return True

        outcomes = await asyncio.gather(*(attempt(n) for n in range(30)))
        product = await service.get_product(a)
        assert sum(outcomes) == 10
        assert (product.available, product.reserved) == (0, 10)

    async def test_gives_stock_back_once_when_released_twice(self, service: InventoryService) -> None:
        a = await _product(service, 5)
        await service.reserve(_reserve("o6", (a, 2)))
        first = await service.release(_release("o6"))
        second = await service.release(_release("o6"))
        assert first.status is second.status is ReservationStatus.RELEASED
        product = await service.get_product(a)
        assert (product.available, product.reserved, product.reservations) == (5, 0, [])

    async def test_refuses_a_late_reservation_when_released_first(self, service: InventoryService) -> None:
        a = await _product(service, 5)
        released = await service.release(_release("o7"))
        assert released.status is ReservationStatus.RELEASED
        with pytest.raises(ReservationReleasedError):
            await service.reserve(_reserve("o7", (a, 1)))
        assert (await service.get_product(a)).available == 5

    async def test_adds_stock_when_restocking(self, service: InventoryService) -> None:
        a = await _product(service, 0)
        product = await service.restock(a, Restock(quantity=7))
        assert (product.available, product.in_stock) == (7, True)
        with pytest.raises(ProductNotFoundError):
            await service.restock("nope", Restock(quantity=1))

    async def test_refuses_a_duplicate_when_creating(self, service: InventoryService) -> None:
        a = await _product(service, 1)
        with pytest.raises(ProductExistsError):
            await service.create_product(
                NewProduct(product_id=a, name="x", category="misc", price_cents=1, quantity=1)
            )

    async def test_filters_and_pages_when_listing(self, service: InventoryService) -> None:
        category = f"cat-{uuid.uuid4().hex[:6]}"
        ids = [await _product(service, q, category=category) for q in (0, 1, 2, 3)]
        page = await service.list_products(ProductFilter(category=category, in_stock=True, limit=2, skip=1))
        assert page.total == 3
        assert [p.product_id for p in page.items] == sorted(ids[1:])[1:3]
        out = await service.list_products(ProductFilter(category=category, in_stock=False))
        assert [p.product_id for p in out.items] == [ids[0]]
