"""Queries every module's Beanie repository shares: how many records match, and a page of records
created in a time window."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from beanie import Document

from ecommerce_saga.saga.stores.counting import count_matching
from ecommerce_saga.shared.clock import epoch_ms
from ecommerce_saga.shared.contracts import CreatedWithin

D = TypeVar("D", bound=Document)


async def count(document: type[Document], criteria: Mapping[str, Any]) -> int:
    """How many `document`s match `criteria` (plain field names and values, as stored), counted
    from the indexes on MongoDB and on the embedded server alike (`count_matching`)."""
    return await count_matching(document.get_pymongo_collection(), criteria)


async def created_within(
    document: type[D], criteria: dict[str, Any], query: CreatedWithin
) -> tuple[list[D], int]:
    """The page of `document`s matching `criteria` and created in `query`'s window, and how many match.

    Newest first (by the integer `created_ms`, then `_id`): the embedded database compares
    datetimes to the whole second, so the window is filtered on epoch milliseconds.
    """
    window: dict[str, int] = {}
    if query.from_ is not None:
        window["$gte"] = epoch_ms(query.from_)
    if query.to is not None:
        window["$lt"] = epoch_ms(query.to)
    matching = {**criteria, "created_ms": window} if window else criteria
    total = await count(document, matching)
    docs = (
        await document.find(matching)
        .sort("-created_ms", "-_id")
        .skip(query.skip)
        .limit(query.limit)
        .to_list()
    )
    return docs, total
