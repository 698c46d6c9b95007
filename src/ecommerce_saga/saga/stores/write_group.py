"""Group commit for the MongoDB saga store: concurrent conditional replaces sent as one command.

Each saga write is a replace filtered on the saga's id, version and fencing token. On their own,
N sagas writing at the same moment cost N commands; most of a command's cost, in the driver and
in the database, is the command, not the document. While one command is in flight the writes
that arrive queue up, and go out together, as the statements of the next ``update`` command
(`bulk_write`, unordered). No write ever waits for a timer: a lone write goes out at once, as
its own ``replace_one``, so at concurrency 1 nothing changes.

Which statements of a group matched: the server reports only how many did. When all did (the
rule), each write succeeded. Otherwise the group's sagas are read back: every write carries a
fresh `WRITE_ID`, so a write succeeded if and only if its saga now carries that id (a lease
claim sets only the lease fields and keeps it; a later replace needs the version this write
stored, so it comes after it, from the worker that claimed the saga meanwhile). A write that
succeeded and was replaced by another worker's before the read-back is reported as failed,
which is what its writer would learn at its next write anyway: the saga is no longer its own.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from bson import ObjectId
from pymongo import ReplaceOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, WriteError

MAX_GROUP = 100
"""Writes sent in one command at most."""

WRITE_ID = "write_id"
"""The field of a saga document that identifies the write that stored it."""


@dataclass(slots=True)
class _Write:
    saga_id: str
    version: int
    """The version the stored saga must have; the document carries ``version + 1``."""
    fencing_token: int
    doc: dict[str, Any]
    done: asyncio.Future[bool]
    write_id: ObjectId

    @property
    def filter(self) -> dict[str, Any]:
        return {"_id": self.saga_id, "version": self.version, "fencing_token": self.fencing_token}


class WriteGroup:
    """Sends the conditional replaces of concurrent callers together (see the module docstring).

    Args:
        collection: The saga collection.
    """

    def __init__(self, collection: AsyncCollection[dict[str, Any]]) -> None:
        self._collection = collection
        self._queue: list[_Write] = []
        self._sender: asyncio.Task[None] | None = None

    async def replace(self, saga_id: str, version: int, fencing_token: int, doc: dict[str, Any]) -> bool:
        """Replace the saga if it still has `version` and `fencing_token`; False if it has not.

        `doc` gets a `WRITE_ID` field.

        Raises:
            PyMongoError: What the driver raised for this write (an outage fails the whole group).
        """
        loop = asyncio.get_running_loop()
        write_id = ObjectId()
        doc[WRITE_ID] = write_id
        write = _Write(saga_id, version, fencing_token, doc, loop.create_future(), write_id)
        self._queue.append(write)
        if self._sender is None:
            self._sender = loop.create_task(self._send_queued(), name="saga-store-writes")
        return await write.done

    async def _send_queued(self) -> None:
        try:
            while self._queue:
                group = self._next_group()
                if group:
                    await self._send(group)
        finally:
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
            if len(group) == 1:
                result = await self._collection.replace_one(group[0].filter, group[0].doc)
                _settle(group[0], result.matched_count == 1)
                return
            try:
                matched = (
                    await self._collection.bulk_write(
                        [ReplaceOne(write.filter, write.doc) for write in group], ordered=False
                    )
                ).matched_count
            except BulkWriteError as exc:
                group = _fail_rejected(group, exc)
                matched = -1
            if matched == len(group):
                for write in group:
                    _settle(write, True)
            else:
                await self._read_back(group)
        except Exception as exc:  # noqa: BLE001 - handed to every caller of the group
            for write in group:
                if not write.done.done():
                    write.done.set_exception(exc)
        except BaseException:
            for write in group:
                write.done.cancel()
            raise

    async def _read_back(self, group: list[_Write]) -> None:
        """Settle each write of a group that did not all match by the version its saga now has."""
        cursor = self._collection.find(
            {"_id": {"$in": [write.saga_id for write in group]}},
            projection={WRITE_ID: 1},
        )
        stored = {doc["_id"]: doc.get(WRITE_ID) async for doc in cursor}
        for write in group:
            _settle(write, stored.get(write.saga_id) == write.write_id)


def _settle(write: _Write, applied: bool) -> None:
    if not write.done.done():
        write.done.set_result(applied)


def _fail_rejected(group: list[_Write], exc: BulkWriteError) -> list[_Write]:
    """Fail the writes the server rejected with an error of their own; the others, still to settle."""
    errors = {error["index"]: error for error in exc.details.get("writeErrors", [])}
    for index, error in errors.items():
        write = group[index]
        if not write.done.done():
            write.done.set_exception(WriteError(error.get("errmsg", ""), error.get("code"), error))
    return [write for index, write in enumerate(group) if index not in errors]
