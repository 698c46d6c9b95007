"""Writes into several MongoDB collections, in order, as one command where the server allows it.

`write_in_order` runs its writes one after the other and stops at the first that fails, as the
same `insert_one` and `update_one` calls awaited in turn would. Where the server has MongoDB 8.0's
client-level ``bulkWrite`` (the embedded nx-27017 has it too), they travel as one ordered command:
one round trip instead of one per write. Against an older server they are sent one by one, with
the same outcome. Nothing is atomic either way: a write that ran stays written when a later one
fails, and an outage in the middle leaves the first writes done, as with separate calls.

`MongoSagaStore.create` uses it to store a saga right after the record it acts for, and
`MongoSagaStore.save_and_write` to make a step's writes right after the save that opens the
step; the shop's repositories, for pairs of writes of their own.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from pymongo import InsertOne, ReplaceOne, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import ClientBulkWriteException, DuplicateKeyError, InvalidOperation, OperationFailure

_DUPLICATE_KEY = 11000
_NO_CLIENT_BULK_WRITE = "requires MongoDB server version 8.0"


@dataclass(frozen=True, slots=True)
class Insert:
    """Insert `document` into `collection`."""

    collection: AsyncCollection[dict[str, Any]]
    document: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Update:
    """Update the first document of `collection` matching `criteria`, if any."""

    collection: AsyncCollection[dict[str, Any]]
    criteria: dict[str, Any]
    update: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Replace:
    """Replace the first document of `collection` matching `criteria` with `document`, if any.

    With `upsert`, a replace that matches nothing inserts `document` instead; given the ``_id``
    of `criteria`, that insert hits the existing document's ``_id`` when only the rest of
    `criteria` failed to match (a stale version, say), which makes a mismatch an error that
    stops the writes after it (`DuplicateKeyAtError`).
    """

    collection: AsyncCollection[dict[str, Any]]
    criteria: dict[str, Any]
    document: dict[str, Any]
    upsert: bool = False


Write = Insert | Update | Replace


class DuplicateKeyAtError(DuplicateKeyError):
    """The write at `position` hit a unique index; the writes before it ran, the later ones did not.

    `matched`: how many documents each write before it matched, as `write_in_order` returns them.
    """

    def __init__(self, error: DuplicateKeyError, position: int, matched: Sequence[int] = ()) -> None:
        super().__init__(str(error), error.code, error.details)
        self.position = position
        self.matched = list(matched)


_without_client_bulk_write: weakref.WeakSet[Any] = weakref.WeakSet()
"""The clients whose server refused the client-level bulkWrite: their writes go one by one since."""


async def write_in_order(writes: Sequence[Write]) -> list[int]:
    """Run `writes` in order; how many documents each matched (1 for an insert, and for an
    upsert that inserted).

    All of them must be on one client (one deployment).

    Raises:
        DuplicateKeyAtError: A write hit a unique index; the writes after it did not run.
        PyMongoError: What the driver raised (an outage: the writes before it may have run).
    """
    if not writes:
        return []
    client = writes[0].collection.database.client
    if len(writes) == 1 or client in _without_client_bulk_write:
        return await _one_by_one(writes)
    try:
        result = await client.bulk_write(
            [_model(write) for write in writes], ordered=True, verbose_results=True
        )
    except InvalidOperation as exc:
        if _NO_CLIENT_BULK_WRITE not in str(exc):
            raise
        _without_client_bulk_write.add(client)  # nothing was sent
        return await _one_by_one(writes)
    except ClientBulkWriteException as exc:
        error = _first_error(exc)
        if error is exc:
            raise
        if isinstance(error, DuplicateKeyAtError) and exc.partial_result is not None:
            error.matched = _matched(exc.partial_result.update_results, error.position)
        raise error from exc
    return _matched(result.update_results, len(writes))


def _matched(updates: Mapping[int, Any], count: int) -> list[int]:
    """How many documents each of the first `count` writes matched (1 for an insert, and for an
    upsert that inserted), from a verbose client-level bulkWrite's update results."""
    return [
        updates[i].matched_count + (updates[i].upserted_id is not None) if i in updates else 1
        for i in range(count)
    ]


async def _one_by_one(writes: Sequence[Write]) -> list[int]:
    matched = []
    for position, write in enumerate(writes):
        try:
            if isinstance(write, Insert):
                await write.collection.insert_one(write.document)
                matched.append(1)
            elif isinstance(write, Replace):
                replaced = await write.collection.replace_one(
                    write.criteria, write.document, upsert=write.upsert
                )
                matched.append(replaced.matched_count + (replaced.upserted_id is not None))
            else:
                matched.append(
                    (await write.collection.update_one(write.criteria, write.update)).matched_count
                )
        except DuplicateKeyError as exc:
            raise DuplicateKeyAtError(exc, position, matched) from exc
    return matched


def _model(write: Write) -> InsertOne[dict[str, Any]] | ReplaceOne[dict[str, Any]] | UpdateOne:
    namespace = write.collection.full_name
    if isinstance(write, Insert):
        return InsertOne(write.document, namespace=namespace)
    if isinstance(write, Replace):
        return ReplaceOne(write.criteria, write.document, upsert=write.upsert, namespace=namespace)
    return UpdateOne(write.criteria, write.update, namespace=namespace)


def _first_error(exc: ClientBulkWriteException) -> Exception:
    """What the separate call that failed would have raised."""
    if exc.write_errors:
        error = cast(dict[str, Any], exc.write_errors[0])  # the server's write error document
        message, code = str(error.get("errmsg", "")), error.get("code")
        if code == _DUPLICATE_KEY:
            return DuplicateKeyAtError(DuplicateKeyError(message, code, error), int(error.get("idx", 0)))
        return OperationFailure(message, code, error)
    if isinstance(exc.error, Exception):  # the command failed as a whole (an outage)
        return exc.error
    return exc  # a write concern error: as the driver reported it
