"""`SagaStep.riding`: a step's writes made right after the save that opens it, in the same command
(`MongoSagaStore.save_and_write`, `stores.ordered`), and never after a refused save. When they
are not all made, the action runs as usual."""

from __future__ import annotations

import asyncio
import weakref
from pathlib import Path
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from ecommerce_saga.modules.order.tracker import OrderTracker
from ecommerce_saga.saga import (
    ConcurrencyError,
    PrecedingWriteRefusedError,
    Saga,
    SagaEngine,
    SagaState,
    SagaStatus,
    SagaStep,
    StepContext,
    StepKind,
    StepWrites,
)
from ecommerce_saga.saga.stores import ordered
from ecommerce_saga.saga.stores.mongo import MongoSagaStore
from ecommerce_saga.saga.stores.ordered import Insert, Update
from tests.commands import counting
from tests.integration.inprocess import add_product, one_item_order, shop_in_process


class Parcels:
    """A saga that packs a parcel, then ships it: shipping's write rides on the save that opens it."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.parcels = db["parcels"]
        self.actions: list[str] = []
        self.made: list[str] = []

    def saga(self) -> Saga[Any]:
        async def pack(ctx: StepContext[Any]) -> dict[str, Any]:
            return {"packed": True}

        return Saga(
            "parcel",
            [
                SagaStep("pack", pack),
                SagaStep("ship", self._ship, kind=StepKind.PIVOT).riding(self._ship_writes),
            ],
        )

    def _shipped(self, saga_id: str) -> Update:
        return Update(self.parcels, {"_id": saga_id, "status": "packed"}, {"$set": {"status": "shipped"}})

    async def _ship(self, ctx: StepContext[Any]) -> dict[str, Any]:
        self.actions.append(ctx.saga_id)
        write = self._shipped(ctx.saga_id)
        await self.parcels.update_one(write.criteria, write.update)
        return {"by": "action"}

    def _ship_writes(self, ctx: StepContext[Any]) -> StepWrites[dict[str, Any]]:
        made = lambda: self.made.append(ctx.saga_id)  # noqa: E731
        return StepWrites([self._shipped(ctx.saga_id)], {"by": "writes"}, made=made)


async def _has_client_bulk_write(db: AsyncDatabase[dict[str, Any]]) -> bool:
    return int((await db.client.admin.command("hello"))["maxWireVersion"]) >= 25


@pytest.fixture
async def parcels(mongo_db: AsyncDatabase[dict[str, Any]]) -> Parcels:
    return Parcels(mongo_db)


@pytest.fixture(params=["one command", "one by one"])
def path(
    request: pytest.FixtureRequest, mongo_db: AsyncDatabase[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> str:
    """How the ordered writes travel: as one command, or one by one (a server before MongoDB 8.0)."""
    if request.param == "one by one":
        monkeypatch.setattr(ordered, "_without_client_bulk_write", weakref.WeakSet([mongo_db.client]))
    return str(request.param)


async def _run(store: MongoSagaStore, parcels: Parcels, saga_id: str = "p1") -> SagaState:
    engine = SagaEngine(store, [parcels.saga()], observers=[])
    try:
        await engine.start("parcel", {}, saga_id=saga_id)
        return await engine.wait(saga_id, timeout=30)
    finally:
        await engine.stop()


async def test_the_writes_go_with_the_save_that_opens_the_step_and_the_action_does_not_run(
    store: MongoSagaStore, parcels: Parcels, mongo_db: AsyncDatabase[dict[str, Any]], path: str
) -> None:
    await parcels.parcels.insert_one({"_id": "p1", "status": "packed"})

    with counting(mongo_db.name) as seen:
        state = await _run(store, parcels)

    assert state.status is SagaStatus.COMPLETED
    assert state.outputs["ship"] == {"by": "writes"}
    assert (parcels.actions, parcels.made) == ([], ["p1"])
    assert await parcels.parcels.find_one({"_id": "p1"}) == {"_id": "p1", "status": "shipped"}
    ship = [entry for entry in state.history if entry.step == "ship"]
    assert [(entry.attempt, entry.status.value) for entry in ship] == [(1, "SUCCEEDED")]
    if path == "one command" and await _has_client_bulk_write(mongo_db):
        # the insert; the save that records pack and opens ship, with ship's write; the last save
        assert dict(seen) == {"insert sagas": 1, "bulkWrite sagas+parcels": 1, "update sagas": 1}
    else:
        assert dict(seen) == {"insert sagas": 1, "update sagas": 2, "update parcels": 1}


async def test_writes_that_match_nothing_leave_the_step_to_its_action(
    store: MongoSagaStore, parcels: Parcels
) -> None:
    await parcels.parcels.insert_one({"_id": "p1", "status": "held"})  # the update matches nothing

    state = await _run(store, parcels)

    assert state.status is SagaStatus.COMPLETED
    assert state.outputs["ship"] == {"by": "action"}
    assert (parcels.actions, parcels.made) == (["p1"], [])


async def test_a_step_whose_builder_fails_runs_its_action(store: MongoSagaStore, parcels: Parcels) -> None:
    await parcels.parcels.insert_one({"_id": "p1", "status": "packed"})

    def broken(ctx: StepContext[Any]) -> StepWrites[dict[str, Any]]:
        raise RuntimeError("no writes today")

    parcels._ship_writes = broken  # type: ignore[method-assign]
    state = await _run(store, parcels)

    assert state.outputs["ship"] == {"by": "action"}
    assert await parcels.parcels.find_one({"_id": "p1"}) == {"_id": "p1", "status": "shipped"}


async def test_a_stale_save_makes_none_of_the_writes(
    store: MongoSagaStore, parcels: Parcels, mongo_db: AsyncDatabase[dict[str, Any]], path: str
) -> None:
    await parcels.parcels.insert_one({"_id": "p1", "status": "packed"})
    state = SagaState(saga_id="p1", saga_type="parcel")
    assert await store.create(state)
    moved_on = await store.save(state.model_copy(deep=True))  # another worker's write

    with pytest.raises(ConcurrencyError):
        await store.save_and_write(state, [parcels._shipped("p1")])

    assert await parcels.parcels.find_one({"_id": "p1"}) == {"_id": "p1", "status": "packed"}
    assert await mongo_db["sagas"].count_documents({}) == 1  # the upsert inserted nothing
    stored = await store.get("p1")
    assert stored is not None and stored.version == moved_on.version


async def _sagas(store: MongoSagaStore, *saga_ids: str) -> list[SagaState]:
    states = [SagaState(saga_id=saga_id, saga_type="parcel") for saga_id in saga_ids]
    for state in states:
        assert await store.create(state)
    return states


async def test_saves_with_writes_join_the_group_commit_and_their_writes_go_in_its_command(
    store: MongoSagaStore, parcels: Parcels, mongo_db: AsyncDatabase[dict[str, Any]], path: str
) -> None:
    await parcels.parcels.insert_many([{"_id": p, "status": "packed"} for p in ("p1", "p3")])
    first, second, third = await _sagas(store, "p1", "p2", "p3")

    with counting(mongo_db.name) as seen:
        in_flight = asyncio.create_task(store.save(second))
        await asyncio.sleep(0)  # its command is on its way: the next writes queue up behind it
        (saved, made), (_, also_made), _ = await asyncio.gather(
            store.save_and_write(first, [parcels._shipped("p1")]),
            store.save_and_write(third, [parcels._shipped("p3"), parcels._shipped("p9")]),
            in_flight,
        )

    assert (saved.version, made) == (first.version + 1, True)
    assert also_made is False  # its second write matched nothing (no parcel p9); its first was made
    assert await parcels.parcels.count_documents({"status": "shipped"}) == 2
    for saga_id in ("p1", "p2", "p3"):
        stored = await store.get(saga_id)
        assert stored is not None and stored.version == 1, saga_id
    if path == "one command" and await _has_client_bulk_write(mongo_db):
        assert dict(seen) == {"update sagas": 1, "bulkWrite sagas+parcels": 1}


async def test_a_stale_save_in_a_group_makes_none_of_its_writes_and_the_others_go_on(
    store: MongoSagaStore, parcels: Parcels, path: str
) -> None:
    await parcels.parcels.insert_many([{"_id": p, "status": "packed"} for p in ("p1", "p2", "p3")])
    first, second, third = await _sagas(store, "p1", "p2", "p3")
    await store.save(first.model_copy(deep=True))  # another worker's write: `first` is stale

    in_flight = asyncio.create_task(store.save(second.model_copy(deep=True)))
    await asyncio.sleep(0)
    stale, fresh = await asyncio.gather(
        store.save_and_write(first, [parcels._shipped("p1")]),
        store.save_and_write(third, [parcels._shipped("p3")]),
        return_exceptions=True,
    )
    await in_flight

    assert isinstance(stale, ConcurrencyError)
    assert isinstance(fresh, tuple) and fresh[1] is True
    shipped = {doc["_id"] async for doc in parcels.parcels.find({"status": "shipped"})}
    assert shipped == {"p3"}
    assert await store.statuses() == {"p1": "RUNNING", "p2": "RUNNING", "p3": "RUNNING"}  # nothing inserted


async def test_a_first_step_s_writes_go_with_the_saga_s_insert(
    store: MongoSagaStore, parcels: Parcels, mongo_db: AsyncDatabase[dict[str, Any]]
) -> None:
    await parcels.parcels.insert_one({"_id": "p1", "status": "packed"})
    saga = Saga("parcel", [SagaStep("ship", parcels._ship).riding(parcels._ship_writes)])
    engine = SagaEngine(store, [saga], observers=[])
    try:
        with counting(mongo_db.name) as seen:
            await engine.start("parcel", {}, saga_id="p1")
            state = await engine.wait("p1", timeout=30)
    finally:
        await engine.stop()

    assert state.outputs["ship"] == {"by": "writes"}
    assert (parcels.actions, parcels.made) == ([], ["p1"])
    if await _has_client_bulk_write(mongo_db):
        assert dict(seen) == {"bulkWrite sagas+parcels": 1, "update sagas": 1}


async def test_an_insert_with_writes_preceded_by_a_record_goes_in_order(
    store: MongoSagaStore, parcels: Parcels, mongo_db: AsyncDatabase[dict[str, Any]]
) -> None:
    await parcels.parcels.insert_one({"_id": "p1", "status": "packed"})
    record = Insert(mongo_db["labels"], {"_id": "p1"})

    with counting(mongo_db.name) as seen:
        made = await store.create_and_write(
            SagaState(saga_id="p1", saga_type="parcel"), [parcels._shipped("p1")], [record]
        )
    again = await store.create_and_write(  # the saga exists: its writes are not made again
        SagaState(saga_id="p1", saga_type="parcel"), [Insert(mongo_db["labels"], {"_id": "p2"})]
    )
    with pytest.raises(PrecedingWriteRefusedError):  # the record exists: no saga, no writes
        await store.create_and_write(
            SagaState(saga_id="p3", saga_type="parcel"), [Insert(mongo_db["labels"], {"_id": "p4"})], [record]
        )

    assert (made, again) == ((True, True), (False, False))
    assert await parcels.parcels.find_one({"_id": "p1"}) == {"_id": "p1", "status": "shipped"}
    assert [doc["_id"] async for doc in mongo_db["labels"].find({})] == ["p1"]
    assert await store.get("p3") is None
    if await _has_client_bulk_write(mongo_db):
        assert dict(seen) == {"bulkWrite labels+sagas+parcels": 1}


async def test_stores_refuse_writes_they_cannot_make(store: MongoSagaStore) -> None:
    state = SagaState(saga_id="p1", saga_type="parcel")
    assert await store.create(state)

    with pytest.raises(ValueError, match="MongoSagaStore takes"):
        await store.save_and_write(state, [{"_id": "p1"}])


async def test_an_order_confirms_with_its_saga_s_save_or_by_the_step_when_that_write_matches_nothing(
    mongo_url: str, mongo_db: AsyncDatabase[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with shop_in_process(mongo_url, mongo_db.name, tmp_path, "riding") as (client, app):
        await add_product(client, "sku-ride", quantity=5)
        engine: SagaEngine = app.state.container.engine

        with counting(mongo_db.name) as seen:
            rode = await client.post("/api/orders", json=one_item_order("sku-ride", "c1"))
            assert rode.status_code == 201, rode.text
            await engine.wait(rode.json()["saga_id"], timeout=30)
        if await _has_client_bulk_write(mongo_db):
            assert (seen["bulkWrite sagas+orders"], seen["update orders"]) == (1, 0)

        changed = OrderTracker.changed

        def stale(self: OrderTracker, *args: Any, **kwargs: Any) -> Any:  # as if another process wrote
            found = changed(self, *args, **kwargs)
            return None if found is None else (found[0], found[1] - 1)

        monkeypatch.setattr(OrderTracker, "changed", stale)
        with counting(mongo_db.name) as seen:
            fell_back = await client.post("/api/orders", json=one_item_order("sku-ride", "c2"))
            assert fell_back.status_code == 201, fell_back.text
            state = await engine.wait(fell_back.json()["saga_id"], timeout=30)
        assert state.status is SagaStatus.COMPLETED
        assert seen["update orders"] == 1  # confirm_order's own replace, after the write matched nothing

    for answer in (rode, fell_back):
        stored = await mongo_db["orders"].find_one({"_id": answer.json()["order_id"]})
        assert stored is not None
        assert (stored["status"], stored["version"]) == ("COMPLETED", 1)
        assert stored["payment_id"] and stored["shipping_id"]
