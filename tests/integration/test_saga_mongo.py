"""The engine on `MongoSagaStore` against the embedded server (or SHOP_MONGODB_URL)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from ecommerce_saga.db.embedded import free_port
from ecommerce_saga.saga import (
    AttemptStatus,
    Phase,
    Saga,
    SagaEngine,
    SagaQuery,
    SagaState,
    SagaStatus,
    StepContext,
)
from ecommerce_saga.saga.errors import StoreUnavailableError
from ecommerce_saga.saga.stores.mongo import MongoSagaStore
from ecommerce_saga.saga.testing import (
    FaultPlan,
    InMemoryLedger,
    assert_invariants,
    scripted_saga,
)
from tests.unit import test_saga_versions as versions
from tests.waiting import eventually

STEPS = ["reserve", "charge", "ship", "notify"]
MakeEngine = Callable[..., SagaEngine]


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def naive_store(mongo_url: str, db_name: str) -> AsyncIterator[MongoSagaStore]:
    """A store on a client with PyMongo's default options (datetimes would come back naive)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    try:
        yield MongoSagaStore(client[db_name]["sagas"])
    finally:
        await client.drop_database(db_name)
        await client.close()


@pytest.fixture
async def make_engine() -> AsyncIterator[MakeEngine]:
    engines: list[SagaEngine] = []

    def make(store: MongoSagaStore, *definitions: Saga, **options: Any) -> SagaEngine:
        options.setdefault("observers", [])
        engine = SagaEngine(store, definitions, **options)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        await engine.stop()


async def test_completes_and_compensates_when_sagas_run_on_mongo(
    store: MongoSagaStore, make_engine: MakeEngine
) -> None:
    ledger = InMemoryLedger()
    good = scripted_saga("order", STEPS, ledger)
    bad = scripted_saga("returns", STEPS, ledger, FaultPlan().fail_permanently("ship"))
    engine = make_engine(store, good, bad)

    await engine.start("order", {"n": 1}, saga_id="s-good", correlation_id="c-1")
    await engine.start("returns", {"n": 2}, saga_id="s-bad", correlation_id="c-1")
    completed = await engine.wait("s-good", timeout=10)
    compensated = await engine.wait("s-bad", timeout=10)

    assert completed.status is SagaStatus.COMPLETED
    assert completed.version == 4  # N + 1 writes: the create, then one save per step
    assert compensated.status is SagaStatus.COMPENSATED
    assert_invariants(completed, good, await ledger.effects("s-good"))
    assert_invariants(compensated, bad, await ledger.effects("s-bad"))
    found, total = await engine.find(SagaQuery(correlation_id="c-1"))
    assert total == 2
    assert {s.saga_id for s in found} == {"s-good", "s-bad"}


async def test_stores_plain_mongodb_types_when_a_saga_is_saved(
    store: MongoSagaStore, make_engine: MakeEngine, mongo_db: AsyncDatabase[dict[str, Any]]
) -> None:
    saga = scripted_saga("order", ["reserve"], InMemoryLedger(), FaultPlan().fail_permanently("reserve"))
    engine = make_engine(store, saga)
    await engine.start("order", {"gift": True, "lines": [{"sku": "A", "qty": 1}]}, saga_id="s-1")
    await engine.wait("s-1", timeout=10)

    doc = await mongo_db["sagas"].find_one({"_id": "s-1"})

    assert doc is not None
    assert "saga_id" not in doc
    assert doc["status"] == "COMPENSATED"
    assert type(doc["lease_expires_at_ms"]) is int  # compared in claims: never a datetime
    assert doc["input"]["gift"] is True  # whole-document writes keep booleans...
    assert doc["failure"]["retryable"] is False
    assert doc["input"]["lines"] == [{"sku": "A", "qty": 1}]  # ...and lists of sub-documents
    assert isinstance(doc["history"][0]["started_at"], datetime)  # ...and datetimes


async def test_reads_aware_datetimes_when_the_client_uses_default_options(
    naive_store: MongoSagaStore,
) -> None:
    saga = scripted_saga("order", ["reserve"], InMemoryLedger())
    engine = SagaEngine(naive_store, [saga], observers=[])
    await engine.start("order", {}, saga_id="s-1")
    final = await engine.wait("s-1", timeout=10)

    assert final.created_at.tzinfo is not None
    assert all(e.started_at.tzinfo is not None for e in final.history)
    await engine.stop()


async def test_recovers_a_crashed_saga_when_the_client_uses_default_options(
    naive_store: MongoSagaStore, make_engine: MakeEngine
) -> None:
    ledger = InMemoryLedger()
    saga = scripted_saga("order", STEPS, ledger, FaultPlan().crash_after("charge"))
    crashed = make_engine(naive_store, saga, worker_id="worker-a")
    clock = FakeClock()
    recovering = make_engine(naive_store, saga, worker_id="worker-b", clock=clock)
    await crashed.start("order", {}, saga_id="s-1")
    await eventually(lambda: not crashed.is_running_here("s-1"))

    clock.now += 60
    claimed = await recovering.recover_once()
    final = await recovering.wait("s-1", timeout=10)

    assert claimed == 1
    assert final.status is SagaStatus.COMPLETED
    charge = [(e.attempt, e.status) for e in final.history if e.step == "charge"]
    assert charge == [(1, AttemptStatus.FAILED), (2, AttemptStatus.SUCCEEDED)]
    assert_invariants(final, saga, await ledger.effects("s-1"))


async def test_cancels_a_saga_running_elsewhere_when_read_back_from_mongo(
    naive_store: MongoSagaStore, make_engine: MakeEngine
) -> None:
    ledger, entered = InMemoryLedger(), asyncio.Event()
    saga = scripted_saga("order", STEPS, ledger)
    charge = saga.steps[1]

    async def stuck_charge(ctx: StepContext) -> Any:
        entered.set()
        await asyncio.Event().wait()

    saga = replace(
        saga, steps=[saga.steps[0], replace(charge, action=stuck_charge, timeout=30), *saga.steps[2:]]
    )
    running = make_engine(naive_store, saga, worker_id="worker-a")
    operator = make_engine(naive_store, saga, worker_id="worker-ops")
    await running.start("order", {}, saga_id="s-1")
    await asyncio.wait_for(entered.wait(), 10)

    await operator.cancel("s-1", actor="alice", reason="customer asked")
    final = await operator.wait("s-1", timeout=10)

    assert final.status is SagaStatus.COMPENSATED
    assert [e.actor for e in final.history if e.phase is Phase.OPERATOR] == ["alice"]
    assert_invariants(final, saga, await ledger.effects("s-1"))


async def test_creates_indexes_when_asked_twice(
    store: MongoSagaStore, mongo_db: AsyncDatabase[dict[str, Any]]
) -> None:
    await store.create_indexes()

    indexes = await mongo_db["sagas"].index_information()
    keys = {tuple(field for field, _ in spec["key"]) for spec in indexes.values()}
    assert {("status",), ("correlation_id",), ("created_at",)} <= keys


async def test_reports_an_unreachable_database_as_a_store_outage() -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        f"mongodb://127.0.0.1:{free_port()}/?directConnection=true", serverSelectionTimeoutMS=200
    )
    store = MongoSagaStore(client["nowhere"]["sagas"])
    try:
        with pytest.raises(StoreUnavailableError, match="cannot be reached"):
            await store.get("s-1")
        with pytest.raises(StoreUnavailableError):
            await store.renew("s-1", "worker", 1, 0)
    finally:
        await client.close()


async def test_sends_nothing_for_a_save_whose_caller_was_cancelled_while_it_waited(
    store: MongoSagaStore,
) -> None:
    for saga_id in ("s-1", "s-2"):
        await store.create(SagaState(saga_id=saga_id, saga_type="order"))
    kept = asyncio.create_task(store.save(SagaState(saga_id="s-1", saga_type="order", current_step=1)))
    dropped = asyncio.create_task(store.save(SagaState(saga_id="s-2", saga_type="order", current_step=1)))
    await asyncio.sleep(0)  # both saves are queued; the group has not gone out yet

    dropped.cancel()

    saved = await kept
    with pytest.raises(asyncio.CancelledError):
        await dropped
    untouched = await store.get("s-2")
    assert (saved.version, saved.current_step) == (1, 1)
    assert untouched is not None
    assert (untouched.version, untouched.current_step) == (0, 0)


async def test_reports_the_outage_to_every_save_when_sagas_are_saved_at_once() -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        f"mongodb://127.0.0.1:{free_port()}/?directConnection=true", serverSelectionTimeoutMS=200
    )
    store = MongoSagaStore(client["nowhere"]["sagas"])
    try:
        outcomes = await asyncio.gather(
            *(store.save(SagaState(saga_id=f"s-{n}", saga_type="order")) for n in range(5)),
            return_exceptions=True,
        )
        assert all(isinstance(outcome, StoreUnavailableError) for outcome in outcomes), outcomes
    finally:
        await client.close()


# ---------------------------------------------------------------------- definition versions


async def test_finishes_v1_sagas_on_v1_steps_and_starts_new_ones_on_v2(store: MongoSagaStore) -> None:
    await versions.finishes_v1_sagas_on_v1_steps_and_starts_new_ones_on_v2(store)


async def test_leaves_v1_sagas_alone_then_parks_them_on_a_v2_only_worker(store: MongoSagaStore) -> None:
    await versions.leaves_v1_sagas_alone_then_parks_them_on_a_v2_only_worker(store)


async def test_refuses_a_changed_definition_under_an_unchanged_version(store: MongoSagaStore) -> None:
    await versions.refuses_a_changed_definition_under_an_unchanged_version(store)
