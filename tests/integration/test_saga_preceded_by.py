"""`SagaEngine.start(preceded_by=...)`: the record a saga acts for is stored before it, in the same
command (`MongoSagaStore`, `stores.ordered`); a refused record stores and starts no saga. And the
shop's use of it: an order and its saga stored together, once per idempotency key."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from ecommerce_saga.modules.order.saga import PLACE_ORDER
from ecommerce_saga.saga import (
    PrecedingWriteRefusedError,
    Saga,
    SagaEngine,
    SagaQuery,
    SagaStatus,
    SagaStep,
    StepContext,
)
from ecommerce_saga.saga.stores.memory import InMemorySagaStore
from ecommerce_saga.saga.stores.mongo import MongoSagaStore
from ecommerce_saga.saga.stores.ordered import Insert
from tests.commands import counting
from tests.integration.inprocess import add_product, one_item_order, shop_in_process


async def _ship(ctx: StepContext[Any]) -> dict[str, Any]:
    return {"shipped": True}


@pytest.fixture
async def engine(mongo_db: AsyncDatabase[dict[str, Any]]) -> Any:
    store = MongoSagaStore(mongo_db["sagas"])
    await store.create_indexes()
    engine = SagaEngine(store, [Saga("parcel", [SagaStep("ship", _ship)])], observers=[])
    yield engine
    await engine.stop()


async def test_stores_the_record_then_the_saga_in_one_command_and_runs_it(
    engine: SagaEngine, mongo_db: AsyncDatabase[dict[str, Any]]
) -> None:
    record = Insert(mongo_db["parcels"], {"_id": "p1", "weight": 3})

    with counting(mongo_db.name) as seen:
        await engine.start("parcel", {}, saga_id="p1", preceded_by=[record])
    state = await engine.wait("p1", timeout=30)

    assert state.status is SagaStatus.COMPLETED
    assert await mongo_db["parcels"].find_one({"_id": "p1"}) == {"_id": "p1", "weight": 3}
    if int((await mongo_db.client.admin.command("hello"))["maxWireVersion"]) >= 25:
        assert dict(seen) == {"bulkWrite parcels+sagas": 1}
    else:  # before MongoDB 8.0: one after the other
        assert dict(seen) == {"insert parcels": 1, "insert sagas": 1}


async def test_a_refused_record_stores_and_starts_no_saga(
    engine: SagaEngine, mongo_db: AsyncDatabase[dict[str, Any]]
) -> None:
    await mongo_db["parcels"].insert_one({"_id": "p1", "weight": 1})

    with pytest.raises(PrecedingWriteRefusedError):
        await engine.start(
            "parcel", {}, saga_id="p1", preceded_by=[Insert(mongo_db["parcels"], {"_id": "p1"})]
        )

    assert await engine.store.get("p1") is None
    assert not engine.is_running_here("p1")
    assert await mongo_db["parcels"].find_one({"_id": "p1"}) == {"_id": "p1", "weight": 1}


async def test_a_saga_that_exists_is_returned_and_the_record_before_it_stays(
    engine: SagaEngine, mongo_db: AsyncDatabase[dict[str, Any]]
) -> None:
    first = await engine.start("parcel", {}, saga_id="p1")
    await engine.wait("p1", timeout=30)

    again = await engine.start(
        "parcel", {}, saga_id="p1", preceded_by=[Insert(mongo_db["parcels"], {"_id": "p9"})]
    )

    assert (again.saga_id, again.created_at) == (first.saga_id, first.created_at)
    assert await mongo_db["parcels"].count_documents({}) == 1  # written in order, before the saga's insert


async def test_stores_refuse_writes_they_cannot_make(mongo_db: AsyncDatabase[dict[str, Any]]) -> None:
    memory = SagaEngine(InMemorySagaStore(), [Saga("parcel", [SagaStep("ship", _ship)])], observers=[])
    mongo = SagaEngine(
        MongoSagaStore(mongo_db["sagas"]), [Saga("parcel", [SagaStep("ship", _ship)])], observers=[]
    )
    try:
        with pytest.raises(ValueError, match="InMemorySagaStore"):
            await memory.start("parcel", {}, saga_id="p1", preceded_by=[object()])
        with pytest.raises(ValueError, match="MongoSagaStore takes"):
            await mongo.start("parcel", {}, saga_id="p1", preceded_by=[{"_id": "p1"}])
        assert await memory.store.get("p1") is None
        assert await mongo.store.get("p1") is None
    finally:
        await memory.stop()
        await mongo.stop()


async def test_orders_racing_with_one_idempotency_key_store_one_order_and_one_saga(
    mongo_url: str, mongo_db: AsyncDatabase[dict[str, Any]], tmp_path: Path
) -> None:
    async with shop_in_process(mongo_url, mongo_db.name, tmp_path, "start") as (client, app):
        await add_product(client, "sku-start", quantity=20, price_cents=300)
        order = one_item_order("sku-start", "cust-start")
        answers = await asyncio.gather(
            *(
                client.post("/api/orders", json=order, headers={"Idempotency-Key": "start-once"})
                for _ in range(4)
            )
        )
        assert all(answer.status_code in (200, 201, 202) for answer in answers), [a.text for a in answers]
        order_ids = {answer.json()["order_id"] for answer in answers}
        assert len(order_ids) == 1
        engine: SagaEngine = app.state.container.engine
        assert (await engine.wait(order_ids.pop(), timeout=30)).status is SagaStatus.COMPLETED
        assert (await engine.find(SagaQuery(saga_type=PLACE_ORDER)))[1] == 1

    assert await mongo_db["orders"].count_documents({}) == 1
    stored = await mongo_db["products"].find_one({"_id": "sku-start"})
    assert stored is not None and (stored["available"], stored["reserved"]) == (19, 1)


async def test_an_order_placed_while_another_is_stored_with_its_saga_joins_the_grouped_inserts(
    mongo_url: str, mongo_db: AsyncDatabase[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with shop_in_process(mongo_url, mongo_db.name, tmp_path, "together") as (client, app):
        await add_product(client, "sku-together", quantity=20)
        store = app.state.container.engine.store
        create, paused, go_on = store.create, asyncio.Event(), asyncio.Event()

        async def held_back(state: Any, preceded_by: Any = ()) -> bool:  # the combined insert, in flight
            if preceded_by:
                paused.set()
                await go_on.wait()
                return bool(await create(state, preceded_by))
            return bool(await create(state))

        monkeypatch.setattr(store, "create", held_back)
        later = {"Prefer": "respond-async"}
        with counting(mongo_db.name) as seen:
            first = asyncio.create_task(client.post("/api/orders", json=one_item_order("sku-together", "c1")))
            await paused.wait()
            placing = client.post("/api/orders", json=one_item_order("sku-together", "c2"), headers=later)
            second = await asyncio.wait_for(placing, 30)  # not held back behind the first
            assert second.status_code == 202, second.text
            assert (seen["insert orders"], seen["bulkWrite orders+sagas"]) == (1, 0)  # stored the grouped way
            go_on.set()
            assert (await first).status_code in (200, 201)
        assert seen["bulkWrite orders+sagas"] == 1

        engine: SagaEngine = app.state.container.engine
        assert (await engine.wait(second.json()["saga_id"], timeout=30)).status is SagaStatus.COMPLETED
    assert await mongo_db["orders"].count_documents({"status": "COMPLETED"}) == 2
