"""Group commit for the MongoDB saga store: concurrent saga writes sent as one command.

A saga write is an insert (a new saga) or a replace filtered on the saga's id, version and
fencing token. On their own, N sagas writing at the same moment cost N commands; most of a
command's cost, in the driver and in the database, is the command, not the document. While one
command is in flight the writes that arrive queue up, and go out together as the statements of
the next ``insert`` and ``update`` commands (`bulk_write`, unordered). No write ever waits for a
timer: a lone write goes out at once, as its own ``insert_one`` or ``replace_one``, so at
concurrency 1 nothing changes. A group holds at most one write per saga.

Which statements of a group took effect: an insert did unless the server reports a duplicate
key at its index. For replaces the server reports only how many matched. When all did (the
rule), each succeeded. Otherwise the group's sagas are read back: every write carries a fresh
`WRITE_ID`, so a replace succeeded if and only if its saga now carries that id (a lease claim
sets only the lease fields and keeps it; a later replace needs the version this write stored,
so it comes after it, from a worker that claimed the saga meanwhile). A write that succeeded
and was replaced by another worker's before the read-back is reported as failed, which is what
its writer would learn at its next write anyway: the saga is no longer its own.

An insert or a replace may carry writes of the caller's to make right after it, and only if it
is stored (riders: `MongoSagaStore.save_and_write` and `create_and_write`). A group with riders
goes as one ordered client-level ``bulkWrite`` instead (`stores.ordered.write_in_order`): each
saga's statement, then its riders. There each replace is an upsert with the saga's ``_id``, so a
stale one is an error at its index (its insert hits the ``_id``), which stops the command: the
writes before it stand, its riders are not made, and the rest of the group goes again in the
next command. Every statement's outcome is then known from the reply; no read-back is needed.
Against a server without the client-level ``bulkWrite`` the statements go one by one, with the
same outcomes.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bson import ObjectId
from pymongo import InsertOne, ReplaceOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DuplicateKeyError, WriteError

from ecommerce_saga.saga.stores.ordered import DuplicateKeyAtError, Insert, Replace, Write, write_in_order

MAX_GROUP = 100
"""Writes sent in one group at most."""

WRITE_ID = "write_id"
"""The field of a saga document that identifies the write that stored it."""

_DUPLICATE_KEY = 11000


@dataclass(slots=True)
class _Write:
    doc: dict[str, Any]
    """The document, with its ``_id`` and `WRITE_ID`."""
    expect: tuple[int, int] | None
    """An insert: None. A replace: the version and fencing token the stored saga must have."""
    done: asyncio.Future[bool] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    riders: Sequence[Write] = ()
    """Writes to make right after this one, if it is stored."""
    made: bool = False
    """Whether every rider was made and matched a document (once `done`)."""

    @property
    def saga_id(self) -> str:
        return str(self.doc["_id"])

    def request(self) -> InsertOne[dict[str, Any]] | ReplaceOne[dict[str, Any]]:
        if self.expect is None:
            return InsertOne(self.doc)
        return ReplaceOne(self.filter(), self.doc)

    def ordered(self, collection: AsyncCollection[dict[str, Any]]) -> list[Write]:
        """This write and its riders, for an ordered command (a replace: an upsert, see above)."""
        first: Write = (
            Insert(collection, self.doc)
            if self.expect is None
            else Replace(collection, self.filter(), self.doc, upsert=True)
        )
        return [first, *self.riders]

    def filter(self) -> dict[str, Any]:
        version, fencing_token = self.expect or (0, 0)
        return {"_id": self.doc["_id"], "version": version, "fencing_token": fencing_token}

    def settle(self, stored: bool) -> None:
        if not self.done.done():
            self.done.set_result(stored)

    def fail(self, exc: BaseException) -> None:
        if not self.done.done():
            self.done.set_exception(exc)


class WriteGroup:
    """Sends the saga writes of concurrent callers together (see the module docstring).

    Args:
        collection: The saga collection.
    """

    def __init__(self, collection: AsyncCollection[dict[str, Any]]) -> None:
        self._collection = collection
        self._queue: list[_Write] = []
        self._sender: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def insert(self, doc: dict[str, Any]) -> bool:
        """Insert the saga in `doc` (which gets a `WRITE_ID` field); False if its id exists.

        Raises:
            PyMongoError: What the driver raised for this write (an outage fails the whole group).
        """
        return await self._queued(_Write(doc, None))

    async def replace(self, doc: dict[str, Any], version: int, fencing_token: int) -> bool:
        """Replace the saga with `doc` (which gets a `WRITE_ID` field) if it still has `version`
        and `fencing_token`; False if it has not.

        Raises:
            PyMongoError: What the driver raised for this write (an outage fails the whole group).
        """
        return await self._queued(_Write(doc, (version, fencing_token)))

    async def replace_then(
        self, doc: dict[str, Any], version: int, fencing_token: int, riders: Sequence[Write]
    ) -> tuple[bool, bool]:
        """`replace`, then `riders` (`stores.ordered` writes on the collection's client) if the
        replace is stored. Returns whether it was stored, and whether every rider was made and
        matched a document (the riders after one that was refused are not made).

        Raises:
            PyMongoError: What the driver raised for this write (an outage fails the whole group).
        """
        return await self._queued_with(doc, (version, fencing_token), riders)

    async def insert_then(self, doc: dict[str, Any], riders: Sequence[Write]) -> tuple[bool, bool]:
        """`insert`, then `riders` if the saga is inserted; as `replace_then`."""
        return await self._queued_with(doc, None, riders)

    async def _queued_with(
        self, doc: dict[str, Any], expect: tuple[int, int] | None, riders: Sequence[Write]
    ) -> tuple[bool, bool]:
        write = _Write(doc, expect, riders=riders)
        return await self._queued(write), write.made

    async def _queued(self, write: _Write) -> bool:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a store used by a new event loop: the old one's queue is gone
            self._loop, self._queue, self._sender = loop, [], None
        write.doc[WRITE_ID] = ObjectId()
        self._queue.append(write)
        if self._sender is None:
            # in a context of its own: the group's commands belong to none of its callers (a
            # caller's pymongo.timeout() deadline or tracing span must not bound or claim them)
            sender = self._send_queued()
            self._sender = loop.create_task(sender, name="saga-store-writes", context=contextvars.Context())
        return await write.done

    async def _send_queued(self) -> None:
        try:
            while self._queue:
                group = self._next_group()
                if group:
                    await self._send(group)
        finally:
            if self._sender is asyncio.current_task():  # not replaced by a new event loop's sender
                self._sender = None
                for write in self._queue:  # only left behind if this task was cancelled
                    write.done.cancel()
                self._queue = []

    def _next_group(self) -> list[_Write]:
        """Up to `MAX_GROUP` queued writes, one per saga; a cancelled caller's write is dropped."""
        group: list[_Write] = []
        later: list[_Write] = []
        ids: set[str] = set()
        for write in self._queue:
            if write.done.done():
                continue
            if write.saga_id in ids or len(group) == MAX_GROUP:
                later.append(write)
            else:
                ids.add(write.saga_id)
                group.append(write)
        self._queue = later
        return group

    async def _send(self, group: list[_Write]) -> None:
        try:
            if any(write.riders for write in group):
                await self._send_in_order(group)
            elif len(group) == 1:
                await self._send_one(group[0])
            else:
                await self._send_many(group)
        except Exception as exc:  # noqa: BLE001 - handed to every caller of the group
            for write in group:
                write.fail(exc)
        except BaseException:
            for write in group:
                write.done.cancel()
            raise

    async def _send_one(self, write: _Write) -> None:
        if write.expect is not None:
            result = await self._collection.replace_one(write.filter(), write.doc)
            write.settle(result.matched_count == 1)
            return
        try:
            await self._collection.insert_one(write.doc)
        except DuplicateKeyError:
            write.settle(False)
        else:
            write.settle(True)

    async def _send_many(self, group: list[_Write]) -> None:
        try:
            result = await self._collection.bulk_write([write.request() for write in group], ordered=False)
            matched, rest = result.matched_count, group
        except BulkWriteError as exc:
            matched, rest = exc.details.get("nMatched", -1), _settle_rejected(group, exc)
        replaces = [write for write in rest if write.expect is not None]
        for write in rest:
            if write.expect is None:
                write.settle(True)
        if matched == len(replaces):
            for write in replaces:
                write.settle(True)
        elif replaces:
            await self._read_back(replaces)

    async def _send_in_order(self, group: list[_Write]) -> None:
        """The group as one ordered command, each write followed by its riders (see above)."""
        while group:
            writes = [write.ordered(self._collection) for write in group]
            try:
                matched = await write_in_order([each for statements in writes for each in statements])
                stopped, at = len(group), -1
            except DuplicateKeyAtError as exc:
                stopped, at = _locate(writes, exc.position)
                # a count the reply did not give counts as nothing matched: the rider is not made
                matched = exc.matched + [0] * (exc.position - len(exc.matched))
            start = 0
            for write, statements in zip(group[:stopped], writes, strict=False):
                riders = matched[start + 1 : start + len(statements)]
                start += len(statements)
                write.made = bool(riders) and len(riders) == len(write.riders) and all(riders)
                write.settle(True)  # not refused: stored (a stale replace is refused, see above)
            if stopped < len(group):
                group[stopped].settle(at > 0)  # refused: the saga's statement, or one of its riders
            group = group[stopped + 1 :]

    async def _read_back(self, replaces: list[_Write]) -> None:
        """Settle each replace of a group whose replaces did not all match by the saga's write id."""
        cursor = self._collection.find(
            {"_id": {"$in": [write.saga_id for write in replaces]}}, projection={WRITE_ID: 1}
        )
        stored = {doc["_id"]: doc.get(WRITE_ID) async for doc in cursor}
        for write in replaces:
            write.settle(stored.get(write.doc["_id"]) == write.doc[WRITE_ID])


def _locate(writes: list[list[Write]], position: int) -> tuple[int, int]:
    """The write of a group whose statements hold `position`, and that position among them."""
    for index, statements in enumerate(writes):
        if position < len(statements):
            return index, position
        position -= len(statements)
    raise IndexError(position)


def _settle_rejected(group: list[_Write], exc: BulkWriteError) -> list[_Write]:
    """Settle the writes the server rejected (an existing id: False; any other error: raised);
    return the others."""
    errors = {error["index"]: error for error in exc.details.get("writeErrors", [])}
    for index, error in errors.items():
        write = group[index]
        if write.expect is None and error.get("code") == _DUPLICATE_KEY:
            write.settle(False)
        else:
            write.fail(WriteError(error.get("errmsg", ""), error.get("code"), error))
    return [write for index, write in enumerate(group) if index not in errors]
