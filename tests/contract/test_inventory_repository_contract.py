"""One `InventoryRepository` spec, run against every repository: in memory and MongoDB (Beanie)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from beanie import init_beanie
from beanie.odm.utils.dump import get_dict
from pymongo.asynchronous.database import AsyncDatabase

from ecommerce_saga.modules.inventory.contract import PricedItem, ProductFilter, ReservationStatus
from ecommerce_saga.modules.inventory.documents import DOCUMENT_MODELS, ProductDocument, ReservationDocument
from ecommerce_saga.modules.inventory.repository import (
    BeanieInventoryRepository,
    CatalogPrice,
    Held,
    HoldRefused,
    InMemoryInventoryRepository,
    InventoryRepository,
    ProductRecord,
    ReservationRecord,
)
from tests.commands import counting

AT = datetime(2030, 3, 1, 12, 30, 15, 123000, tzinfo=UTC)  # millisecond precision, as MongoDB keeps


def _id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def a_product(
    repository: InventoryRepository, available: int = 10, category: str = "misc", price: int = 250
) -> ProductRecord:
    product = ProductRecord(
        product_id=_id("p"), name="Thing", category=category, price_cents=price, currency="EUR",
        available=available, created_at=AT,
    )  # fmt: skip
    assert await repository.add_product(product)
    return product


async def stock(repository: InventoryRepository, product_id: str) -> tuple[int, int]:
    product = await repository.product(product_id)
    assert product is not None
    return product.available, product.reserved


def a_reservation(order_id: str | None = None, *items: tuple[str, int], **fields: Any) -> ReservationRecord:
    priced = [
        PricedItem(product_id=p, name="Thing", quantity=q, price_cents=250, line_total_cents=250 * q)
        for p, q in items
    ]
    values: dict[str, Any] = {
        "order_id": order_id or _id("o"), "reservation_id": "res", "status": ReservationStatus.PENDING,
        "items": priced, "total_cents": sum(i.line_total_cents for i in priced), "currency": "EUR",
        "created_at": AT, "updated_at": AT,
    }  # fmt: skip
    return ReservationRecord(**{**values, **fields})


class InventoryRepositorySpec:
    """What every `InventoryRepository` must do; subclasses provide the `repository` fixture."""

    async def test_reads_back_a_product_and_refuses_its_id_again(
        self, repository: InventoryRepository
    ) -> None:
        product = await a_product(repository)

        assert await repository.product(product.product_id) == product
        assert not await repository.add_product(product.model_copy(update={"name": "Other"}))
        assert await repository.product(product.product_id) == product
        assert await repository.product("p-missing") is None

    async def test_finds_products_by_category_and_stock_in_id_order(
        self, repository: InventoryRepository
    ) -> None:
        category = _id("cat")
        products = [await a_product(repository, available, category) for available in (0, 1, 2, 3)]
        in_stock = sorted(p.product_id for p in products[1:])

        page, total = await repository.find_products(
            ProductFilter(category=category, in_stock=True, limit=2, skip=1)
        )
        out, out_total = await repository.find_products(ProductFilter(category=category, in_stock=False))

        assert (total, [p.product_id for p in page]) == (3, in_stock[1:3])
        assert (out_total, out) == (1, [products[0]])

    async def test_prices_only_known_products(self, repository: InventoryRepository) -> None:
        product = await a_product(repository, price=799)

        prices = await repository.prices([product.product_id, "p-missing"])

        assert prices == {product.product_id: CatalogPrice(name="Thing", price_cents=799, currency="EUR")}

    async def test_restocks_known_products_only(self, repository: InventoryRepository) -> None:
        product = await a_product(repository, available=2)

        assert await repository.restock(product.product_id, 5)
        assert not await repository.restock("p-missing", 5)
        assert await stock(repository, product.product_id) == (7, 0)

    async def test_holds_once_per_order(self, repository: InventoryRepository) -> None:
        product = await a_product(repository, available=5)

        first = await repository.hold("o1", product.product_id, 2)
        again = await repository.hold("o1", product.product_id, 2)

        assert first == Held(name="Thing", price_cents=250, currency="EUR", moved=True)
        assert again == Held(name="Thing", price_cents=250, currency="EUR", moved=False)
        assert await stock(repository, product.product_id) == (3, 2)

    async def test_tells_which_products_an_order_holds(self, repository: InventoryRepository) -> None:
        a, b, c = [await a_product(repository, available=5) for _ in range(3)]
        await repository.hold("o1", a.product_id, 2)
        await repository.hold("o1", b.product_id, 1)
        await repository.hold("o2", c.product_id, 3)
        await repository.undo_hold("o1", b.product_id, 1)

        assert await repository.held_by("o1") == {a.product_id: 2}
        assert await repository.held_by("o2") == {c.product_id: 3}
        assert await repository.held_by("o3") == {}

    async def test_refuses_a_hold_when_short_or_unknown(self, repository: InventoryRepository) -> None:
        product = await a_product(repository, available=1)

        assert await repository.hold("o1", product.product_id, 2) is HoldRefused.SHORT_OF_STOCK
        assert await repository.hold("o1", "p-missing", 1) is HoldRefused.UNKNOWN_PRODUCT
        assert await stock(repository, product.product_id) == (1, 0)

    async def test_never_oversells_when_holds_race(self, repository: InventoryRepository) -> None:
        product = await a_product(repository, available=10)

        held = await asyncio.gather(*(repository.hold(f"o{n}", product.product_id, 1) for n in range(30)))

        assert sum(isinstance(h, CatalogPrice) for h in held) == 10
        assert await stock(repository, product.product_id) == (0, 10)

    async def test_undoes_a_hold_once(self, repository: InventoryRepository) -> None:
        product = await a_product(repository, available=5)
        await repository.hold("o1", product.product_id, 2)

        await repository.undo_hold("o1", product.product_id, 2)
        await repository.undo_hold("o1", product.product_id, 2)
        await repository.undo_hold("o2", product.product_id, 2)  # never held: nothing to undo

        assert await stock(repository, product.product_id) == (5, 0)
        assert isinstance(await repository.hold("o1", product.product_id, 2), CatalogPrice)  # forgotten
        assert await stock(repository, product.product_id) == (3, 2)

    async def test_gives_back_once_until_forgotten(self, repository: InventoryRepository) -> None:
        product = await a_product(repository, available=5)
        await repository.hold("o1", product.product_id, 2)
        await repository.forget("holds", "o1", [product.product_id])

        await repository.give_back("o1", product.product_id, 2)
        await repository.give_back("o1", product.product_id, 2)

        assert await stock(repository, product.product_id) == (5, 0)

    async def test_forgets_the_marks_of_every_product_named(self, repository: InventoryRepository) -> None:
        a, b, c = [await a_product(repository, available=5) for _ in range(3)]
        for product in (a, b, c):
            await repository.hold("o1", product.product_id, 1)

        await repository.forget("holds", "o1", [a.product_id, b.product_id])

        assert isinstance(await repository.hold("o1", a.product_id, 1), CatalogPrice)  # held again
        assert isinstance(await repository.hold("o1", b.product_id, 1), CatalogPrice)
        await repository.hold("o1", c.product_id, 1)  # still marked: not held twice
        assert [await stock(repository, p.product_id) for p in (a, b, c)] == [(3, 2), (3, 2), (4, 1)]

    async def test_holds_again_once_a_hold_is_forgotten(self, repository: InventoryRepository) -> None:
        product = await a_product(repository, available=5)
        await repository.hold("o1", product.product_id, 2)

        await repository.forget("holds", "o1", [product.product_id])
        await repository.forget("releases", "o1", [product.product_id])  # none: a no-op

        await repository.hold("o1", product.product_id, 2)
        assert await stock(repository, product.product_id) == (1, 4)

    async def test_keeps_the_first_reservation_of_an_order(self, repository: InventoryRepository) -> None:
        first = a_reservation(None, ("p-a", 2), ("p-b", 1))

        assert await repository.add_reservation(first) == first
        assert await repository.add_reservation(a_reservation(first.order_id, ("p-c", 9))) == first
        assert await repository.reservation(first.order_id) == first
        assert await repository.reservation("o-missing") is None

    async def test_replaces_a_reservation_only_when_its_version_is_unchanged(
        self, repository: InventoryRepository
    ) -> None:
        stored = await repository.add_reservation(a_reservation(None, ("p-a", 1)))
        reserved = stored.model_copy(update={"status": ReservationStatus.RESERVED, "version": 1})
        released = stored.model_copy(update={"status": ReservationStatus.RELEASED, "version": 1})

        assert await repository.replace_reservation(reserved, expected_version=0)
        assert not await repository.replace_reservation(released, expected_version=0)
        assert await repository.reservation(stored.order_id) == reserved

    async def test_claims_a_release_only_from_reserved(self, repository: InventoryRepository) -> None:
        stored = await repository.add_reservation(a_reservation(None, ("p-a", 1)))
        reserved = stored.model_copy(update={"status": ReservationStatus.RESERVED, "version": 1})
        assert await repository.claim_release(stored.order_id) is None  # PENDING: not claimed
        assert await repository.replace_reservation(reserved, expected_version=0)

        claimed = await repository.claim_release(stored.order_id)

        assert claimed == reserved.model_copy(update={"status": ReservationStatus.RELEASING, "version": 2})
        assert await repository.reservation(stored.order_id) == claimed
        assert await repository.claim_release(stored.order_id) is None  # RELEASING: claimed already
        assert await repository.claim_release("o-missing") is None

    async def test_lists_the_newest_active_reservations_of_a_product(
        self, repository: InventoryRepository
    ) -> None:
        product_id = _id("p")
        statuses = ["PENDING", "RESERVED", "RELEASING", "RELEASED", "REJECTED", "RESERVED"]
        stored = [
            await repository.add_reservation(
                a_reservation(
                    None,
                    ("p-other", 1),
                    (product_id, 2),
                    status=ReservationStatus(status),
                    created_at=AT + timedelta(seconds=n),
                )
            )
            for n, status in enumerate(statuses)
        ]
        await repository.add_reservation(a_reservation(None, ("p-other", 1)))

        active = await repository.active_reservations(product_id, limit=3)

        assert active == [stored[5], stored[2], stored[1]]


class TestInMemoryInventoryRepository(InventoryRepositorySpec):
    @pytest.fixture
    def repository(self) -> InventoryRepository:
        return InMemoryInventoryRepository()


class TestBeanieInventoryRepository(InventoryRepositorySpec):
    @pytest.fixture
    async def repository(self, mongo_db: AsyncDatabase[dict[str, Any]]) -> InventoryRepository:
        await init_beanie(database=mongo_db, document_models=DOCUMENT_MODELS)
        return BeanieInventoryRepository()

    async def test_stores_a_reservation_as_its_beanie_document_would(
        self, repository: InventoryRepository, mongo_db: AsyncDatabase[dict[str, Any]]
    ) -> None:
        reservation = a_reservation(None, ("p-a", 2), status=ReservationStatus.RESERVED, version=3)

        await repository.add_reservation(reservation)

        stored = await mongo_db[ReservationDocument.Settings.name].find_one({"_id": reservation.order_id})
        fields = reservation.model_dump(exclude={"order_id"})
        assert stored == get_dict(ReservationDocument(id=reservation.order_id, **fields), to_db=True)

    async def test_a_forget_rides_on_the_products_next_move(
        self, repository: InventoryRepository, mongo_db: AsyncDatabase[dict[str, Any]]
    ) -> None:
        product = await a_product(repository, available=5)
        await repository.hold("o1", product.product_id, 1)
        await repository.give_back("o0", product.product_id, 1)  # o0's release, marked
        products = mongo_db[ProductDocument.Settings.name]

        with counting(mongo_db.name) as sent:
            await repository.forget("holds", "o1", [product.product_id])
            await repository.forget("releases", "o0", [product.product_id])
        assert sent == Counter()  # no command of its own
        stored = await products.find_one({"_id": product.product_id})
        assert stored is not None and stored["holds"] == {"o1": 1} and stored["releases"] == {"o0": 1}

        with counting(mongo_db.name) as sent:
            await repository.hold("o2", product.product_id, 1)
        assert sent == Counter({"findAndModify products": 1})  # o2's hold, and o1's and o0's marks unset
        stored = await products.find_one({"_id": product.product_id})
        assert stored is not None and stored["holds"] == {"o2": 1} and stored["releases"] == {}
        assert await stock(repository, product.product_id) == (4, 1)

    async def test_a_refused_move_leaves_the_forgotten_marks_for_the_next(
        self, repository: InventoryRepository, mongo_db: AsyncDatabase[dict[str, Any]]
    ) -> None:
        product = await a_product(repository, available=1)
        await repository.hold("o1", product.product_id, 1)
        await repository.forget("holds", "o1", [product.product_id])

        assert await repository.hold("o2", product.product_id, 1) is HoldRefused.SHORT_OF_STOCK
        await repository.restock(product.product_id, 3)

        stored = await mongo_db[ProductDocument.Settings.name].find_one({"_id": product.product_id})
        assert stored is not None and stored["holds"] == {}
        assert await stock(repository, product.product_id) == (3, 1)

    async def test_sends_a_forget_with_one_of_two_concurrent_moves(
        self, repository: InventoryRepository, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # A second unset landing after the first could drop the mark that another process's move
        # of the same order set meanwhile, which that move needs to be given back.
        product = await a_product(repository, available=5)
        await repository.hold("o1", product.product_id, 1)
        await repository.forget("holds", "o1", [product.product_id])
        collection = ProductDocument.get_pymongo_collection()
        unsets: list[dict[str, Any]] = []

        class Recording:
            def __getattr__(self, name: str) -> Any:
                return getattr(collection, name)

            async def update_one(self, criteria: Any, update: dict[str, Any], **options: Any) -> Any:
                unsets.append(update.get("$unset", {}))
                return await collection.update_one(criteria, update, **options)

        monkeypatch.setattr(ProductDocument, "get_pymongo_collection", classmethod(lambda _: Recording()))
        await asyncio.gather(*(repository.restock(product.product_id, 1) for _ in range(2)))

        assert sorted(unsets, key=len) == [{}, {"holds.o1": ""}]
        assert await stock(repository, product.product_id) == (6, 1)

    async def test_unsets_forgotten_marks_at_once_when_a_batch_waits(
        self, mongo_db: AsyncDatabase[dict[str, Any]]
    ) -> None:
        await init_beanie(database=mongo_db, document_models=DOCUMENT_MODELS)
        repository = BeanieInventoryRepository(forget_batch=3)
        product = await a_product(repository, available=5)
        for order in ("o1", "o2", "o3"):
            await repository.hold(order, product.product_id, 1)

        with counting(mongo_db.name) as sent:
            for order in ("o1", "o2", "o3"):
                await repository.forget("holds", order, [product.product_id])

        assert sent == Counter({"update products": 1})
        stored = await mongo_db[ProductDocument.Settings.name].find_one({"_id": product.product_id})
        assert stored is not None and stored["holds"] == {}

    async def test_flush_unsets_every_forgotten_mark(
        self, repository: InventoryRepository, mongo_db: AsyncDatabase[dict[str, Any]]
    ) -> None:
        a, b = await a_product(repository), await a_product(repository)
        for product in (a, b):
            await repository.hold("o1", product.product_id, 1)
        await repository.forget("holds", "o1", [a.product_id, b.product_id])

        await repository.flush()

        stored = mongo_db[ProductDocument.Settings.name].find({"_id": {"$in": [a.product_id, b.product_id]}})
        assert [doc["holds"] async for doc in stored] == [{}, {}]

    async def test_remembers_catalog_prices(
        self, repository: InventoryRepository, mongo_db: AsyncDatabase[dict[str, Any]]
    ) -> None:
        product = await a_product(repository, price=990)
        first = await repository.prices([product.product_id, "p-unknown"])

        with counting(mongo_db.name) as sent:
            again = await repository.prices([product.product_id])

        assert sent == Counter()  # a product's price never changes: read once
        assert (
            first
            == again
            == {product.product_id: CatalogPrice(name="Thing", price_cents=990, currency="EUR")}
        )


async def test_forgotten_marks_ride_safely_on_concurrent_moves(
    mongo_db: AsyncDatabase[dict[str, Any]],
) -> None:
    # Many orders hold, settle, give back and settle at once on one product, so that each move
    # carries other orders' forgotten marks while new ones are being forgotten.
    await init_beanie(database=mongo_db, document_models=DOCUMENT_MODELS)
    repository = BeanieInventoryRepository(forget_batch=8)
    product = await a_product(repository, available=100)

    async def order(n: int) -> None:
        order_id = f"race-{n}"
        assert isinstance(await repository.hold(order_id, product.product_id, 2), CatalogPrice)
        await repository.forget("holds", order_id, [product.product_id])
        await repository.give_back(order_id, product.product_id, 2)
        await repository.forget("releases", order_id, [product.product_id])

    await asyncio.gather(*(order(n) for n in range(40)))
    await repository.flush()

    stored = await mongo_db[ProductDocument.Settings.name].find_one({"_id": product.product_id})
    assert stored is not None
    assert (stored["available"], stored["reserved"]) == (100, 0)
    assert stored.get("holds", {}) == {} and stored.get("releases", {}) == {}
