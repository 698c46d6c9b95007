"""Group commit for inserts: concurrent `insert_one` calls into one collection sent as one command.

Most of what an insert costs, in the driver and in the database, is the command, not the document.
`InsertGroup.insert_one` behaves as the collection's own `insert_one` does for its caller: it
returns once the document is stored, and raises `DuplicateKeyError` (with the server's details)
if a unique index already holds its key, or what the driver raised. What differs is how the
documents travel: an insert that finds none in flight is sent at once, on its own, from the
caller's task (at concurrency 1 nothing changes, and the command belongs to the caller's trace and
timeout). The inserts that arrive while one is in flight queue up and go out together, as the
documents of one unordered ``insert`` command, from a task of the group's own. No insert ever waits
for a timer. Each document is stored or refused on its own: a duplicate key refuses only its
document, an outage fails every caller of the group.
"""

from __future__ import annotations

import asyncio
import contextvars
from dataclasses import dataclass, field
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DuplicateKeyError, WriteError

MAX_GROUP = 100
"""Documents sent in one command at most."""

_DUPLICATE_KEY = 11000


@dataclass(slots=True)
class _Insert:
    doc: dict[str, Any]
    done: asyncio.Future[None]

    def settle(self, error: BaseException | None = None) -> None:
        if self.done.done():
            return
        if error is None:
            self.done.set_result(None)
        else:
            self.done.set_exception(error)


@dataclass(slots=True)
class _Lane:
    """One collection's inserts: whether one is in flight, and those waiting for the next command."""

    collection: AsyncCollection[dict[str, Any]]
    busy: bool = False
    queue: list[_Insert] = field(default_factory=list)
    sender: asyncio.Task[None] | None = None
    """The task sending what queued, while there is one (held: the loop keeps only a weak reference)."""


class InsertGroup:
    """Sends the inserts of concurrent callers together (see the module docstring), each
    collection's on their own: an insert never waits for another collection's."""

    def __init__(self) -> None:
        self._lanes: dict[int, _Lane] = {}  # by the collection object's id (the lane holds it)
        self._loop: asyncio.AbstractEventLoop | None = None

    async def insert_one(self, collection: AsyncCollection[dict[str, Any]], doc: dict[str, Any]) -> None:
        """Store `doc` in `collection`.

        Raises:
            DuplicateKeyError: A unique index holds the document's key already.
            PyMongoError: What the driver raised for this insert (an outage fails the whole group).
        """
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop: the old one's queues and senders are gone
            self._loop, self._lanes = loop, {}
        lane = self._lanes.get(id(collection))
        if lane is None:
            lane = self._lanes[id(collection)] = _Lane(collection)
        if lane.busy:
            queued = _Insert(doc, loop.create_future())
            lane.queue.append(queued)
            await queued.done
            return
        lane.busy = True
        try:
            await collection.insert_one(doc)
        finally:
            self._hand_on(lane, loop)

    def _hand_on(self, lane: _Lane, loop: asyncio.AbstractEventLoop) -> None:
        """After the insert in flight: send what queued meanwhile, or be idle."""
        if not lane.queue:
            lane.busy = False
            return
        # in a context of its own: the group's commands belong to none of its callers (a caller's
        # pymongo.timeout() deadline or tracing span must not bound or claim them)
        lane.sender = loop.create_task(
            self._send_queued(lane), name="grouped-inserts", context=contextvars.Context()
        )

    async def _send_queued(self, lane: _Lane) -> None:
        try:
            while lane.queue:
                group = [queued for queued in lane.queue[:MAX_GROUP] if not queued.done.done()]
                del lane.queue[:MAX_GROUP]
                if group:
                    await _send(lane.collection, group)
        finally:
            lane.busy, lane.sender = False, None
            for left in lane.queue:  # only left behind if this task was cancelled
                left.done.cancel()
            lane.queue.clear()


async def _send(collection: AsyncCollection[dict[str, Any]], group: list[_Insert]) -> None:
    try:
        if len(group) == 1:
            await collection.insert_one(group[0].doc)
        else:
            await collection.insert_many([queued.doc for queued in group], ordered=False)
    except BulkWriteError as exc:
        _settle_rejected(group, exc)
    except Exception as exc:  # noqa: BLE001 - handed to every caller of the group
        for queued in group:
            queued.settle(exc)
    except BaseException:
        for queued in group:
            queued.done.cancel()
        raise
    else:
        for queued in group:
            queued.settle()


def _settle_rejected(group: list[_Insert], exc: BulkWriteError) -> None:
    """Settle each insert of a group the server answered with write errors: the ones it refused
    with their error (a duplicate key as `DuplicateKeyError`), the others as stored."""
    errors = {error["index"]: error for error in exc.details.get("writeErrors", [])}
    for index, queued in enumerate(group):
        error = errors.get(index)
        if error is None:
            queued.settle()
        elif error.get("code") == _DUPLICATE_KEY:
            queued.settle(DuplicateKeyError(error.get("errmsg", "duplicate key"), _DUPLICATE_KEY, error))
        else:
            queued.settle(WriteError(error.get("errmsg", ""), error.get("code"), error))
