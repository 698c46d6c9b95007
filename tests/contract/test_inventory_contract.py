"""The `InventoryService` spec, run against every implementation.

`InventoryServiceSpec` holds the behaviour; `TestLocalInventoryService` runs it against the local
service on the test database, `TestLocalInventoryServiceInMemory` on the in-memory repository,
`TestHttpInventoryService` against `HttpInventoryService` talking
to that service's router in-process (see `tests/contract/http_adapter.py`), and
`TestFakeInventoryService` against the in-memory fake the order module's unit tests use.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from beanie import init_beanie
from pymongo.asynchronous.database import AsyncDatabase

from ecommerce_saga.modules.inventory.client import HttpInventoryService
from ecommerce_saga.modules.inventory.contract import (
    InventoryService,
    InventoryUnavailableError,
    ItemQuantity,
    NewProduct,
    PricedItem,
    ProductExistsError,
    ProductFilter,
    ProductNotFoundError,
    Quote,
    ReleaseItems,
    Reservation,
    ReservationReleasedError,
    ReservationStatus,
    ReserveItems,
    Restock,
)
from ecommerce_saga.modules.inventory.documents import DOCUMENT_MODELS, ProductDocument
from ecommerce_saga.modules.inventory.repository import (
    BeanieInventoryRepository,
    InMemoryInventoryRepository,
    InventoryRepository,
    ReservationRecord,
)
from ecommerce_saga.modules.inventory.repository.port import add_then_hold
from ecommerce_saga.modules.inventory.router import build_router
from ecommerce_saga.modules.inventory.service import LocalInventoryService
from ecommerce_saga.shared.clock import utcnow
from tests.contract.http_adapter import TOKENS, served_over_http
from tests.fakes import FakeInventoryService


@pytest.fixture
async def inventory_db(mongo_db: AsyncDatabase[dict[str, Any]]) -> AsyncDatabase[dict[str, Any]]:
    await init_beanie(database=mongo_db, document_models=DOCUMENT_MODELS)
    return mongo_db


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


def _pending(order_id: str, *items: tuple[str, int]) -> ReservationRecord:
    """A reservation as a reserve adds it before holding."""
    unpriced = [
        PricedItem(product_id=p, name="", quantity=q, price_cents=0, line_total_cents=0) for p, q in items
    ]
    return ReservationRecord(
        order_id=order_id, reservation_id=f"res_{order_id}", status=ReservationStatus.PENDING, total_cents=0,
        currency="USD", items=unpriced, created_at=utcnow(), updated_at=utcnow(),
    )  # fmt: skip


def _release(order_id: str) -> ReleaseItems:
    return ReleaseItems(order_id=order_id, idempotency_key=f"{order_id}:reserve_inventory:compensate")


class InventoryServiceSpec:
    """Behaviour every `InventoryService` implementation must have. Subclasses provide `service`."""

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

    async def test_answers_a_repeated_quote_as_the_first(self, service: InventoryService) -> None:
        a, b = await _product(service, 5, 250), await _product(service, 5, 0)
        items = [
            ItemQuantity(product_id=b, quantity=3),
            ItemQuantity(product_id=a, quantity=2),
            ItemQuantity(product_id=b, quantity=1),
        ]
        first = await service.quote(items)
        again = await service.quote(items)  # HTTP: priced from the prices the first answer carried
        assert again == first
        assert [(i.product_id, i.quantity, i.line_total_cents) for i in again.items] == [
            (b, 3, 0),
            (a, 2, 500),
            (b, 1, 0),
        ]

    async def test_refuses_to_quote_items_priced_in_different_currencies(
        self, service: InventoryService
    ) -> None:
        usd, eur = _id(), _id()
        for product_id, currency in ((usd, "USD"), (eur, "EUR")):
            await service.create_product(
                NewProduct(
                    product_id=product_id, name="Thing", category="misc", price_cents=100,
                    currency=currency, quantity=5,
                )
            )  # fmt: skip
            assert (
                await service.quote([ItemQuantity(product_id=product_id, quantity=1)])
            ).currency == currency
        both = [ItemQuantity(product_id=usd, quantity=1), ItemQuantity(product_id=eur, quantity=1)]
        with pytest.raises(InventoryUnavailableError):
            await service.quote(both)

    async def test_moves_stock_to_reserved_when_reserving(self, service: InventoryService) -> None:
        a, b = await _product(service, 5), await _product(service, 3)
        reservation = await service.reserve(_reserve("o1", (a, 2), (b, 3)))
        assert reservation.status is ReservationStatus.RESERVED
        first, second = await service.get_product(a), await service.get_product(b)
        assert (first.available, first.reserved) == (3, 2)
        assert (second.available, second.reserved, second.in_stock) == (0, 3, False)
        assert [(h.order_id, h.quantity) for h in first.reservations] == [("o1", 2)]

    async def test_leaves_the_reservations_out_when_asked_to(self, service: InventoryService) -> None:
        a = await _product(service, 5)
        await service.reserve(_reserve("o1", (a, 2)))

        public = await service.get_product(a, with_reservations=False)

        assert (public.available, public.reserved, public.reservations) == (3, 2, [])

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

    async def test_reserves_once_when_the_same_order_races_itself(self, service: InventoryService) -> None:
        a, b = await _product(service, 10), await _product(service, 9)
        reserved = 0
        for n in range(5):  # five orders, each reserved by four calls at once
            calls = [service.reserve(_reserve(f"self-{n}", (a, 2), (b, 1))) for _ in range(4)]
            answers = await asyncio.gather(*calls, return_exceptions=True)
            first = answers[0]
            if isinstance(first, BaseException):  # a refusal, if any, is every call's
                assert all(isinstance(answer, InventoryUnavailableError) for answer in answers), answers
            else:
                assert all(answer == first for answer in answers), answers
                assert first.status is ReservationStatus.RESERVED
                reserved += 1
        products = [await service.get_product(p) for p in (a, b)]
        assert reserved >= 1
        assert [(p.available, p.reserved) for p in products] == [
            (10 - 2 * reserved, 2 * reserved),
            (9 - reserved, reserved),
        ]

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


class LocalInventoryServiceSpec(InventoryServiceSpec):
    """The spec, plus what only the local service shows: a worker that died mid-way, staged through
    its repository. Subclasses provide `repository`."""

    @pytest.fixture
    def service(self, repository: InventoryRepository) -> LocalInventoryService:
        return LocalInventoryService(repository)

    async def test_finishes_a_half_done_reservation_when_run_again(
        self, service: InventoryService, repository: InventoryRepository
    ) -> None:
        a, b = await _product(service, 5), await _product(service, 5)
        await repository.hold("o9", a, 1)  # a worker died after holding the first of two items

        reservation = await service.reserve(_reserve("o9", (a, 1), (b, 1)))

        assert reservation.status is ReservationStatus.RESERVED
        assert [(await service.get_product(p)).available for p in (a, b)] == [4, 4]
        assert [(await service.get_product(p)).reserved for p in (a, b)] == [1, 1]

    async def test_reserves_once_when_run_again_after_its_marks_are_forgotten(
        self, service: InventoryService, repository: InventoryRepository
    ) -> None:
        a = await _product(service, 5)
        first = await service.reserve(_reserve("o10", (a, 2)))
        await repository.flush()  # the holds' marks are gone: the repeat moves stock, then gives it back

        again = await service.reserve(_reserve("o10", (a, 2)))

        assert again == first
        product = await service.get_product(a)
        assert (product.available, product.reserved) == (3, 2)

    async def test_a_repeat_moves_no_stock_once_the_outcome_is_recorded(
        self, service: InventoryService, repository: InventoryRepository
    ) -> None:
        a = await _product(service, 5)
        first = await service.reserve(_reserve("o13", (a, 2)))
        await repository.flush()  # the holds' marks are gone: only the record tells it is held
        # A repeat (a lost answer's retry, a late request) whose process would die at its first
        # stock move: had it held again, the units would stay held for nobody.
        repeat = LocalInventoryService(cast(InventoryRepository, _DiesAtItsFirstStockMove(repository)))

        again = await repeat.reserve(_reserve("o13", (a, 2)))

        assert again == first
        product = await service.get_product(a)
        assert (product.available, product.reserved) == (3, 2)
        await service.release(_release("o13"))
        product = await service.get_product(a)
        assert (product.available, product.reserved) == (5, 0)

    async def test_gives_back_a_hold_never_recorded_when_released(
        self, service: InventoryService, repository: InventoryRepository
    ) -> None:
        a, b = await _product(service, 5), await _product(service, 5)
        await repository.hold("o11", a, 2)  # a worker died after holding, before recording the outcome

        released = await service.release(_release("o11"))
        await service.release(_release("o11"))

        assert released.status is ReservationStatus.RELEASED
        with pytest.raises(ReservationReleasedError):
            await service.reserve(_reserve("o11", (a, 2), (b, 1)))
        assert [(await service.get_product(p)).available for p in (a, b)] == [5, 5]
        assert [(await service.get_product(p)).reserved for p in (a, b)] == [0, 0]

    async def test_gives_back_the_holds_of_a_rejection_recorded_before_they_were(
        self, service: InventoryService, repository: InventoryRepository
    ) -> None:
        a, b = await _product(service, 5), await _product(service, 1)
        with pytest.raises(InventoryUnavailableError):
            await service.reserve(_reserve("o12", (a, 2), (b, 3)))
        await repository.hold("o12", a, 2)  # as if the rejecting call died before it gave `a` back

        with pytest.raises(InventoryUnavailableError):
            await service.reserve(_reserve("o12", (a, 2), (b, 1)))  # b is in stock now; the outcome stays
        assert (await service.get_product(a)).available == 5
        await repository.hold("o12", a, 2)
        assert (await service.release(_release("o12"))).status is ReservationStatus.REJECTED
        assert [(await service.get_product(p)).available for p in (a, b)] == [5, 1]
        assert [(await service.get_product(p)).reserved for p in (a, b)] == [0, 0]

    async def test_finishes_a_pending_reservation_a_dead_reserve_left(
        self, service: InventoryService, repository: InventoryRepository
    ) -> None:
        a, b = await _product(service, 5), await _product(service, 5)
        # The state a reserve leaves when it dies after holding the first of two items.
        unpriced = [
            PricedItem(product_id=p, name="", quantity=1, price_cents=0, line_total_cents=0) for p in (a, b)
        ]
        await repository.add_reservation(
            ReservationRecord(
                order_id="o5", reservation_id="res_o5", status=ReservationStatus.PENDING, total_cents=0,
                currency="USD", items=unpriced, created_at=utcnow(), updated_at=utcnow(),
            )
        )  # fmt: skip
        await repository.hold("o5", a, 1)

        reservation = await service.reserve(_reserve("o5", (a, 1), (b, 1)))

        assert reservation.status is ReservationStatus.RESERVED
        assert [p.price_cents for p in reservation.items] == [1000, 1000]
        assert [(await service.get_product(p)).available for p in (a, b)] == [4, 4]
        assert [(await service.get_product(p)).reserved for p in (a, b)] == [1, 1]

    async def test_a_sweep_gives_back_holds_no_reservation_records(
        self, service: LocalInventoryService, repository: InventoryRepository
    ) -> None:
        a, b = await _product(service, 9), await _product(service, 9)
        # o20: released while PENDING; a reserve still holding then died before giving back.
        await repository.add_reservation(_pending("o20", (a, 2)))
        assert (await service.release(_release("o20"))).status is ReservationStatus.RELEASED
        await repository.hold("o20", a, 2)
        # o21: rejected (b is short); the rejecting reserve died before giving `a` back.
        with pytest.raises(InventoryUnavailableError):
            await service.reserve(_reserve("o21", (a, 1), (b, 50)))
        await repository.hold("o21", a, 1)
        # o22 holds its units; o23's were given back by its release. Neither is touched.
        await service.reserve(_reserve("o22", (b, 3)))
        await service.reserve(_reserve("o23", (b, 1)))
        await service.release(_release("o23"))
        await repository.hold("o24", b, 1)  # a reserve holding now, its reservation still PENDING
        await repository.add_reservation(_pending("o24", (b, 1)))

        assert sorted(await service.give_back_unrecorded_holds()) == ["o20", "o21"]
        assert await service.give_back_unrecorded_holds() == []

        products = [await service.get_product(p) for p in (a, b)]
        assert [(p.available, p.reserved) for p in products] == [(9, 0), (5, 4)]

    async def test_gives_back_once_when_a_release_is_interrupted_and_run_again(
        self, service: InventoryService, repository: InventoryRepository
    ) -> None:
        a, b = await _product(service, 5), await _product(service, 5)
        await service.reserve(_reserve("o8", (a, 2), (b, 1)))
        # The state a worker leaves when it dies after giving back the first item.
        stored = await repository.reservation("o8")
        assert stored is not None
        releasing = stored.model_copy(
            update={"status": ReservationStatus.RELEASING, "version": stored.version + 1}
        )
        assert await repository.replace_reservation(releasing, stored.version)
        await repository.give_back("o8", a, 2)

        released = await service.release(_release("o8"))

        assert released.status is ReservationStatus.RELEASED
        assert [(await service.get_product(p)).available for p in (a, b)] == [5, 5]
        assert [(await service.get_product(p)).reserved for p in (a, b)] == [0, 0]


class TestLocalInventoryService(LocalInventoryServiceSpec):
    """The spec against `LocalInventoryService` on the embedded database."""

    @pytest.fixture
    def repository(self, inventory_db: AsyncDatabase[dict[str, Any]]) -> InventoryRepository:
        return BeanieInventoryRepository()

    async def test_a_sweep_leaves_the_marks_of_a_reservation_released_after_it_was_recorded(
        self, service: LocalInventoryService
    ) -> None:
        a = await _product(service, 9)
        await service.reserve(_reserve("o25", (a, 2)))  # its hold mark, forgotten, is still stored
        restarted = LocalInventoryService(BeanieInventoryRepository())  # the forget was lost with the process
        await restarted.release(_release("o25"))
        stored = await ProductDocument.get_pymongo_collection().find_one({"_id": a})
        assert stored is not None
        assert stored["holds"] == {"o25": 2}  # a mark whose units the release gave back

        assert await restarted.give_back_unrecorded_holds() == []
        product = await service.get_product(a)
        assert (product.available, product.reserved) == (9, 0)

    # Reads the stored documents: the Beanie repository's storage detail.
    async def test_keeps_product_documents_small_when_many_orders_reserve(
        self, service: InventoryService, repository: InventoryRepository
    ) -> None:
        a = await _product(service, 50)
        for n in range(10):
            await service.reserve(_reserve(f"small-{a}-{n}", (a, 1)))
        await service.release(_release(f"small-{a}-0"))
        stored = await ProductDocument.get_pymongo_collection().find_one({"_id": a})
        assert stored is not None
        # Each mark is unset by the product's next move: only the release's is still stored.
        assert stored["holds"] == {} and stored.get("releases", {}) == {f"small-{a}-0": 1}
        await repository.flush()
        stored = await ProductDocument.get_pymongo_collection().find_one({"_id": a})
        assert stored is not None
        assert stored["holds"] == {} and stored.get("releases", {}) == {}
        product = await service.get_product(a)
        assert (product.available, product.reserved, len(product.reservations)) == (41, 9, 9)

    async def test_keeps_the_hold_another_process_recorded_as_the_orders(
        self, service: InventoryService
    ) -> None:
        first, second = sorted([await _product(service, 10), await _product(service, 10)])
        command = _reserve("o20", (first, 2), (second, 1))
        late, resume = await _stalled_reserve(command, hold_number=2)  # after `first`, before `second`
        # Another process finds `first` held, holds `second` and records RESERVED over both.
        recorded = await LocalInventoryService(BeanieInventoryRepository()).reserve(command)
        resume.set()

        assert await late == recorded  # the late call's `first` is the recorded hold: kept
        assert await _stock(service, first, second) == [(8, 2), (9, 1)]

    async def test_gives_back_a_hold_made_after_another_process_recorded_the_outcome(
        self, service: InventoryService
    ) -> None:
        first, second = sorted([await _product(service, 10), await _product(service, 10)])
        command = _reserve("o21", (first, 2), (second, 1))
        late, resume = await _stalled_reserve(command, hold_number=1)  # found it PENDING, holds nothing yet
        recording = BeanieInventoryRepository()
        recorded = await LocalInventoryService(recording).reserve(command)
        await recording.flush()  # the marks are forgotten: the late call moves both products again
        resume.set()

        assert await late == recorded
        assert await _stock(service, first, second) == [(8, 2), (9, 1)]

    async def test_reserves_once_when_two_processes_race_the_same_order(
        self, service: InventoryService
    ) -> None:
        # Two services, two repositories: what two processes share is the database only. Each
        # gets two of an order's four calls at once (a lost answer's retry reaching another
        # replica while the first call still runs).
        other = LocalInventoryService(BeanieInventoryRepository())
        for _ in range(10):
            a, b = await _product(service, 10), await _product(service, 9)
            for n in range(5):
                command = _reserve(f"two-{a}-{n}", (a, 2), (b, 1))
                answers = await asyncio.gather(*(s.reserve(command) for s in (service, other) * 2))
                assert all(answer == answers[0] for answer in answers), answers
            products = [await service.get_product(p) for p in (a, b)]
            assert [(p.available, p.reserved) for p in products] == [(0, 10), (4, 5)]


class TestLocalInventoryServiceInMemory(LocalInventoryServiceSpec):
    """The spec against `LocalInventoryService` on the in-memory repository (no database)."""

    @pytest.fixture
    def repository(self) -> InMemoryInventoryRepository:
        return InMemoryInventoryRepository()

    async def test_forgets_every_mark_when_reservations_settle(
        self, service: InventoryService, repository: InMemoryInventoryRepository
    ) -> None:
        a = await _product(service, 50)
        for n in range(10):
            await service.reserve(_reserve(f"small-{a}-{n}", (a, 1)))
        await service.release(_release(f"small-{a}-0"))

        assert repository.marks("holds", a) == {} and repository.marks("releases", a) == {}


class TestHttpInventoryService(InventoryServiceSpec):
    """The spec against `HttpInventoryService` and the inventory router, in-process."""

    @pytest.fixture
    async def service(self, inventory_db: AsyncDatabase[dict[str, Any]]) -> AsyncIterator[InventoryService]:
        local = LocalInventoryService(BeanieInventoryRepository())
        async with served_over_http("inventory", build_router(local, TOKENS)) as client:
            yield HttpInventoryService(client)


class _DiesAtItsFirstStockMove:
    """A repository whose process dies (raises) at the first call that would move stock."""

    def __init__(self, repository: InventoryRepository) -> None:
        self._repository = repository

    def __getattr__(self, name: str) -> Any:
        if name in ("hold", "undo_hold", "give_back"):
            raise RuntimeError(f"the process died at {name}")
        return getattr(self._repository, name)


class _PausesBeforeHold:
    """A repository whose `hold_number`-th hold waits for `resume` (set `paused` first): a
    process that stalls in the middle of a reserve."""

    def __init__(self, repository: InventoryRepository, hold_number: int) -> None:
        self._repository = repository
        self._holds_left = hold_number
        self.paused, self.resume = asyncio.Event(), asyncio.Event()

    async def hold(self, order_id: str, product_id: str, quantity: int) -> Any:
        self._holds_left -= 1
        if self._holds_left == 0:
            self.paused.set()
            await self.resume.wait()
        return await self._repository.hold(order_id, product_id, quantity)

    async def add_reservation_holding(self, reservation: Any, product_id: str, quantity: int) -> Any:
        """The insert, then the hold through `hold` (a price not known yet: two commands), so that
        the stall can come between them."""
        return await add_then_hold(cast(InventoryRepository, self), reservation, product_id, quantity)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._repository, name)


async def _stalled_reserve(
    command: ReserveItems, hold_number: int
) -> tuple[asyncio.Task[Reservation], asyncio.Event]:
    """A reserve in a process of its own (its own repository), stalled before its
    `hold_number`-th hold: its task, and the event that lets it go on."""
    slow = _PausesBeforeHold(BeanieInventoryRepository(), hold_number)
    late = asyncio.create_task(LocalInventoryService(cast(InventoryRepository, slow)).reserve(command))
    await slow.paused.wait()
    return late, slow.resume


async def _stock(service: InventoryService, *product_ids: str) -> list[tuple[int, int]]:
    """Each product's (available, reserved)."""
    return [((p := await service.get_product(pid)).available, p.reserved) for pid in product_ids]


class _CountingQuotes(LocalInventoryService):
    """The local service, counting the quotes it is asked for."""

    quotes = 0

    async def quote(self, items: list[ItemQuantity]) -> Quote:
        self.quotes += 1
        return await super().quote(items)


async def test_the_http_client_asks_for_a_quote_only_of_products_it_has_not_priced(
    inventory_db: AsyncDatabase[dict[str, Any]],
) -> None:
    local = _CountingQuotes(BeanieInventoryRepository())
    async with served_over_http("inventory", build_router(local, TOKENS)) as client:
        service = HttpInventoryService(client)
        a, b = await _product(service, 5, 250), await _product(service, 5, 1000)
        await service.quote([ItemQuantity(product_id=a, quantity=1)])
        await service.quote([ItemQuantity(product_id=a, quantity=2)])  # a's price is known: no call
        assert local.quotes == 1

        both = await service.quote(
            [ItemQuantity(product_id=a, quantity=1), ItemQuantity(product_id=b, quantity=1)]
        )
        assert (local.quotes, both.total_cents) == (2, 1250)  # b was not known: asked

        unknown = _id("later")
        for _ in range(2):  # an unknown product is not remembered: it may be added to the catalog
            assert (await service.quote([ItemQuantity(product_id=unknown, quantity=1)])).unknown_products == [
                unknown
            ]
        await service.create_product(
            NewProduct(product_id=unknown, name="Late", category="misc", price_cents=10, quantity=1)
        )
        late = await service.quote([ItemQuantity(product_id=unknown, quantity=3)])
        assert (local.quotes, late.total_cents, late.unknown_products) == (5, 30, [])


class TestFakeInventoryService(InventoryServiceSpec):
    """The spec against the unit tests' in-memory fake, so that it stays faithful to the contract."""

    @pytest.fixture
    def service(self) -> InventoryService:
        return FakeInventoryService()
