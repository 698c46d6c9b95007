"""Counting matching documents (`count_matching`): what a query finds, counted from the indexes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from ecommerce_saga.saga.stores.counting import count_matching
from tests.commands import Started

AT = datetime(2030, 1, 1, tzinfo=UTC)
CRITERIA: list[dict[str, Any]] = [
    {},
    {"kind": "a"},
    {"kind": "none such"},
    {"n": {"$gte": 5}},
    {"flag": True},
    {"kind": "b", "flag": False},
    {"at": {"$gte": AT + timedelta(minutes=7)}},
]


async def _things(db: AsyncDatabase[dict[str, Any]]) -> None:
    await db["things"].create_index("kind")
    await db["things"].insert_many(
        [
            {
                "_id": f"t{n}",
                "kind": "b" if n % 3 == 0 else "a",
                "n": n,
                "flag": n % 2 == 0,
                "at": AT + timedelta(minutes=n),
            }
            for n in range(12)
        ]
    )


@pytest.mark.parametrize("criteria", CRITERIA, ids=str)
async def test_counts_what_a_query_finds(
    mongo_db: AsyncDatabase[dict[str, Any]], criteria: dict[str, Any]
) -> None:
    await _things(mongo_db)

    counted = await count_matching(mongo_db["things"], criteria)

    assert counted == len(await mongo_db["things"].find(criteria).to_list())


async def test_counts_with_a_count_stage_unless_a_datetime_is_compared(mongo_url: str, db_name: str) -> None:
    """The embedded server serves a ``$count`` from its indexes and reads the whole collection for
    `count_documents`' ``$group`` (docs/performance.md, item 35); but its aggregation does not
    compare datetimes, so a count that compares one stays a `count_documents`."""
    started = Started()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongo_url, tz_aware=True, event_listeners=[started]
    )
    try:
        db = client[db_name]
        await _things(db)
        await count_matching(db["things"], {"kind": "a"})
        await count_matching(db["things"], {"at": {"$gte": AT}})
    finally:
        await client.drop_database(db_name)
        await client.close()

    by_kind, by_time = [command["pipeline"] for command in started.named("aggregate")]
    assert by_kind == [{"$match": {"kind": "a"}}, {"$count": "n"}]
    assert any("$group" in stage for stage in by_time)
