"""Counting matching documents in a way both MongoDB and the embedded server serve from indexes."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection


async def count_matching(collection: AsyncCollection[Any], criteria: Mapping[str, Any]) -> int:
    """How many documents of `collection` match `criteria` (plain field names and values).

    An aggregation of a ``$match`` and a ``$count``, which MongoDB serves from the indexes as it
    does `count_documents` (a ``$match`` and a ``$group``). The embedded server (nx-27017) reads
    the whole collection for `count_documents`, whatever the filter, but serves this from its
    indexes (docs/performance.md, item 35). Its aggregation does not compare datetimes, though
    (a ``$gte`` on one matched every document), so criteria holding a datetime are counted with
    `count_documents`, which compares them as its queries do.
    """
    if _holds_datetime(criteria):
        return await collection.count_documents(dict(criteria))
    found = await collection.aggregate([{"$match": dict(criteria)}, {"$count": "n"}])
    async with found:
        async for result in found:
            return int(result["n"])
    return 0


def _holds_datetime(value: object) -> bool:
    if isinstance(value, datetime):
        return True
    if isinstance(value, Mapping):
        return any(_holds_datetime(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(_holds_datetime(item) for item in value)
    return False
