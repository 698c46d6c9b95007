"""`write_in_order`: writes into several collections run in order, stop at the first that fails,
and travel as one command where the server has the client-level bulkWrite (MongoDB 8.0+, and the
embedded server); against an older server, one by one with the same outcome."""

from __future__ import annotations

import asyncio
import weakref
from collections import Counter
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, InvalidOperation

from ecommerce_saga.saga.stores import ordered
from ecommerce_saga.saga.stores.ordered import Insert, Replace, Update, write_in_order
from tests.commands import counting


async def _has_client_bulk_write(db: AsyncDatabase[dict[str, Any]]) -> bool:
    return int((await db.client.admin.command("hello"))["maxWireVersion"]) >= 25


def _writes(db: AsyncDatabase[dict[str, Any]], order_id: str, quantity: int) -> list[ordered.Write]:
    """A reservation's insert, then a conditional hold of its units (the inventory's pair)."""
    return [
        Insert(db["reservations"], {"_id": order_id, "quantity": quantity}),
        Update(
            db["products"],
            {"_id": "p1", "available": {"$gte": quantity}},
            {"$inc": {"available": -quantity, "reserved": quantity}},
        ),
    ]


async def _product(db: AsyncDatabase[dict[str, Any]]) -> tuple[int, int]:
    found = await db["products"].find_one({"_id": "p1"})
    assert found is not None
    return found["available"], found["reserved"]


@pytest.fixture
async def db(mongo_db: AsyncDatabase[dict[str, Any]]) -> AsyncDatabase[dict[str, Any]]:
    await mongo_db["products"].insert_one({"_id": "p1", "available": 5, "reserved": 0})
    return mongo_db


async def test_writes_into_two_collections_run_in_order_as_one_command(
    db: AsyncDatabase[dict[str, Any]],
) -> None:
    with counting(db.name) as seen:
        matched = await write_in_order(_writes(db, "o1", 2))

    assert matched == [1, 1]
    assert await db["reservations"].find_one({"_id": "o1"}) == {"_id": "o1", "quantity": 2}
    assert await _product(db) == (3, 2)
    if await _has_client_bulk_write(db):
        assert dict(seen) == {"bulkWrite reservations+products": 1}
    else:
        assert dict(seen) == {"insert reservations": 1, "update products": 1}


async def test_an_update_that_matches_nothing_counts_zero_and_is_no_error(
    db: AsyncDatabase[dict[str, Any]],
) -> None:
    assert await write_in_order(_writes(db, "o1", 9)) == [1, 0]  # short of stock

    assert await db["reservations"].count_documents({}) == 1
    assert await _product(db) == (5, 0)


async def test_a_duplicate_key_stops_the_writes_after_it(db: AsyncDatabase[dict[str, Any]]) -> None:
    await write_in_order(_writes(db, "o1", 2))

    with pytest.raises(DuplicateKeyError) as refused:
        await write_in_order(_writes(db, "o1", 2))  # a repeat: its hold must not run

    assert refused.value.code == 11000
    assert await _product(db) == (3, 2)


async def test_the_writes_before_a_duplicate_key_stay_written(db: AsyncDatabase[dict[str, Any]]) -> None:
    await db["reservations"].insert_one({"_id": "o2"})
    writes: list[ordered.Write] = [_writes(db, "o1", 1)[1], Insert(db["reservations"], {"_id": "o2"})]

    with pytest.raises(DuplicateKeyError):
        await write_in_order(writes)

    assert await _product(db) == (4, 1)


@pytest.mark.parametrize("path", ["one command", "one by one"])
async def test_an_upserting_replace_of_a_stale_version_stops_the_writes_after_it(
    db: AsyncDatabase[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    if path == "one by one":
        monkeypatch.setattr(ordered, "_without_client_bulk_write", weakref.WeakSet([db.client]))
    await db["sagas"].insert_one({"_id": "s1", "version": 2})

    def replace(version: int) -> Replace:
        criteria = {"_id": "s1", "version": version}
        return Replace(db["sagas"], criteria, {"_id": "s1", "version": version + 1}, upsert=True)

    with pytest.raises(DuplicateKeyError) as refused:  # stale: the upsert's insert hits the _id
        await write_in_order([replace(1), _writes(db, "o1", 2)[1]])
    assert getattr(refused.value, "position", None) == 0
    assert await _product(db) == (5, 0)  # the write after it did not run
    assert await db["sagas"].find({}).to_list() == [{"_id": "s1", "version": 2}]

    assert await write_in_order([replace(2), _writes(db, "o1", 2)[1]]) == [1, 1]
    assert await db["sagas"].find({}).to_list() == [{"_id": "s1", "version": 3}]
    assert await _product(db) == (3, 2)


async def test_a_server_without_the_client_bulk_write_gets_the_writes_one_by_one(
    db: AsyncDatabase[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    refused: list[int] = []

    async def older_server(*args: Any, **kwargs: Any) -> Any:
        refused.append(1)
        raise InvalidOperation("MongoClient.bulk_write requires MongoDB server version 8.0+.")

    monkeypatch.setattr(db.client, "bulk_write", older_server)
    monkeypatch.setattr(ordered, "_without_client_bulk_write", weakref.WeakSet())

    with counting(db.name) as seen:
        assert await write_in_order(_writes(db, "o1", 2)) == [1, 1]
        assert await write_in_order(_writes(db, "o2", 9)) == [1, 0]
        with pytest.raises(DuplicateKeyError):
            await write_in_order(_writes(db, "o1", 1))

    assert refused == [1]  # asked once, then remembered
    assert dict(seen) == {"insert reservations": 3, "update products": 2}
    assert await _product(db) == (3, 2)


async def test_inserts_racing_the_same_keys_from_both_paths_stay_ordered(
    db: AsyncDatabase[dict[str, Any]], mongo_url: str
) -> None:
    # Two clients, as two processes: each key is inserted by two `write_in_order` calls (whose
    # hold must run only if their insert did) and two plain inserts, all at once.
    other: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
    outcomes: Counter[str] = Counter()

    async def ordered_pair(database: AsyncDatabase[dict[str, Any]], key: str) -> None:
        try:
            await write_in_order(_writes(database, key, 1))
            outcomes["pair stored"] += 1
        except DuplicateKeyError:
            outcomes["refused"] += 1

    async def plain(database: AsyncDatabase[dict[str, Any]], key: str) -> None:
        try:
            await database["reservations"].insert_one({"_id": key})
            outcomes["plain stored"] += 1
        except DuplicateKeyError:
            outcomes["refused"] += 1

    await db["products"].update_one({"_id": "p1"}, {"$set": {"available": 1000}})
    try:
        theirs = other[db.name]
        for n in range(150):
            key = f"k{n}"
            await asyncio.gather(
                ordered_pair(db, key), plain(theirs, key), ordered_pair(theirs, key), plain(db, key)
            )
    finally:
        await other.close()

    assert outcomes["pair stored"] + outcomes["plain stored"] == 150, outcomes  # one insert per key
    assert outcomes["refused"] == 450, outcomes
    assert await db["reservations"].count_documents({}) == 150
    assert await _product(db) == (1000 - outcomes["pair stored"], outcomes["pair stored"]), outcomes
