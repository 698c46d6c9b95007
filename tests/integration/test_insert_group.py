"""`InsertGroup`: concurrent inserts share commands, and each caller learns its own insert's outcome."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

from ecommerce_saga.db.inserts import InsertGroup
from tests.commands import counting


async def test_concurrent_inserts_share_commands_and_all_are_stored(
    mongo_db: AsyncDatabase[dict[str, Any]],
) -> None:
    group = InsertGroup()
    things = mongo_db["things"]

    with counting(mongo_db.name) as seen:
        await asyncio.gather(*(group.insert_one(things, {"_id": f"t{n}", "n": n}) for n in range(40)))

    assert sorted([doc["n"] async for doc in things.find({})]) == list(range(40))
    assert 2 <= seen["insert things"] < 40  # the first alone, the rest in groups


async def test_an_insert_alone_is_one_command(mongo_db: AsyncDatabase[dict[str, Any]]) -> None:
    group = InsertGroup()

    with counting(mongo_db.name) as seen:
        for n in range(3):
            await group.insert_one(mongo_db["things"], {"_id": f"t{n}"})

    assert seen["insert things"] == 3


async def test_a_duplicate_key_refuses_only_its_own_insert(mongo_db: AsyncDatabase[dict[str, Any]]) -> None:
    group = InsertGroup()
    things = mongo_db["things"]
    await things.insert_many([{"_id": "t3"}, {"_id": "t7"}])

    outcomes = await asyncio.gather(
        *(group.insert_one(things, {"_id": f"t{n}", "new": True}) for n in range(10)), return_exceptions=True
    )

    refused = {n for n, outcome in enumerate(outcomes) if outcome is not None}
    assert refused == {3, 7}
    assert all(isinstance(outcomes[n], DuplicateKeyError) for n in refused)
    assert all(outcomes[n].code == 11000 for n in refused)  # type: ignore[union-attr]
    assert await things.count_documents({"new": True}) == 8


async def test_inserts_into_two_collections_do_not_mix(mongo_db: AsyncDatabase[dict[str, Any]]) -> None:
    group = InsertGroup()

    await asyncio.gather(
        *(group.insert_one(mongo_db["left" if n % 2 else "right"], {"_id": n}) for n in range(20))
    )

    assert sorted([doc["_id"] async for doc in mongo_db["left"].find({})]) == list(range(1, 20, 2))
    assert sorted([doc["_id"] async for doc in mongo_db["right"].find({})]) == list(range(0, 20, 2))


async def test_a_failing_client_fails_every_caller_and_the_group_recovers(
    mongo_url: str, mongo_db: AsyncDatabase[dict[str, Any]]
) -> None:
    group = InsertGroup()
    closed: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    await closed.close()

    outcomes = await asyncio.gather(
        *(group.insert_one(closed[mongo_db.name]["things"], {"_id": n}) for n in range(5)),
        return_exceptions=True,
    )
    await group.insert_one(mongo_db["things"], {"_id": "after"})

    assert all(isinstance(outcome, PyMongoError | RuntimeError) for outcome in outcomes), outcomes
    assert [doc["_id"] async for doc in mongo_db["things"].find({})] == ["after"]


async def test_a_cancelled_caller_does_not_stop_the_others(mongo_db: AsyncDatabase[dict[str, Any]]) -> None:
    group = InsertGroup()
    things = mongo_db["things"]
    tasks = [asyncio.create_task(group.insert_one(things, {"_id": n})) for n in range(10)]
    await asyncio.sleep(0)  # every task has started: the first insert is in flight, the rest queued
    tasks[5].cancel()

    outcomes = await asyncio.gather(*tasks, return_exceptions=True)

    assert isinstance(outcomes[5], asyncio.CancelledError)
    assert [n for n, outcome in enumerate(outcomes) if outcome is not None] == [5]
    stored = {doc["_id"] async for doc in things.find({})}
    assert stored >= set(range(10)) - {5}


@pytest.mark.parametrize("size", [1, 150])
async def test_every_insert_of_a_large_burst_is_stored(
    mongo_db: AsyncDatabase[dict[str, Any]], size: int
) -> None:
    group = InsertGroup()

    await asyncio.gather(*(group.insert_one(mongo_db["things"], {"_id": n}) for n in range(size)))

    assert await mongo_db["things"].count_documents({}) == size


CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("caller", default="none")


class _SeenFrom(monitoring.CommandListener):
    """The caller each insert command was sent for, as the task sending it sees `CALLER`."""

    def __init__(self) -> None:
        self.callers: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "insert":
            self.callers.append(CALLER.get())

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_a_lone_insert_is_sent_from_its_caller_and_a_group_from_no_caller(
    mongo_url: str, mongo_db: AsyncDatabase[dict[str, Any]]
) -> None:
    seen = _SeenFrom()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, event_listeners=[seen])
    things = client[mongo_db.name]["things"]
    group = InsertGroup()

    async def insert_as(caller: str, n: int) -> None:
        CALLER.set(caller)  # in this task's own context
        await group.insert_one(things, {"_id": n})

    try:
        await insert_as("alone", 0)
        await asyncio.gather(*(insert_as(f"caller-{n}", n) for n in range(1, 6)))
    finally:
        await client.close()

    # the first of the burst goes out alone, from its caller; the rest as a group, from none of them
    assert seen.callers[:2] == ["alone", "caller-1"]
    assert seen.callers[2:] and set(seen.callers[2:]) == {"none"}
