"""A MongoDB `SagaStore` on PyMongo's async API.

One document per saga, `_id` = saga id. Writes are whole-document inserts and replaces filtered
on `version` and `fencing_token` (optimistic concurrency); the replaces of sagas written at the
same moment go out together, as do the inserts (`write_group`), with the writes a save carries
(`save_and_write`). Leases are claimed with one
`find_one_and_update` by the saga's id. Instants that are compared in queries (lease expiry) are integers
(epoch milliseconds), which behave the same on MongoDB and on MongoDB-compatible servers.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
from collections.abc import AsyncGenerator, Callable, Collection, Coroutine, Sequence
from datetime import UTC
from typing import Any, ParamSpec, TypeVar

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import ConnectionFailure, PyMongoError

from ecommerce_saga.saga.errors import ConcurrencyError, PrecedingWriteRefusedError, StoreUnavailableError
from ecommerce_saga.saga.state import DefinitionRef, SagaState, SagaStatus, runs_on
from ecommerce_saga.saga.store import SagaExpectation, SagaQuery
from ecommerce_saga.saga.stores.counting import count_matching
from ecommerce_saga.saga.stores.ordered import (
    DuplicateKeyAtError,
    Insert,
    Replace,
    Update,
    Write,
    write_in_order,
)
from ecommerce_saga.saga.stores.write_group import WRITE_ID, WriteGroup

_ACTIVE = (SagaStatus.RUNNING.value, SagaStatus.COMPENSATING.value)
_UNFINISHED = (*_ACTIVE, SagaStatus.REQUIRES_ATTENTION.value)

CANDIDATES = 32
"""Expired sagas read per status at a time when claiming or looking for unrunnable ones."""

_CANDIDATE_FIELDS = {
    "status": 1, "version": 1, "lease_expires_at_ms": 1,
    "saga_type": 1, "definition_version": 1, "definition_fingerprint": 1,
}  # fmt: skip

DEFAULT_COLLECTION = "sagas"
"""The collection a store keeps its sagas in unless its user names another."""


def _expiry_order(doc: dict[str, Any]) -> tuple[int, str]:
    """Where a stored saga comes when sagas are taken in the order their leases expired."""
    return int(doc["lease_expires_at_ms"]), str(doc["_id"])


def _runs_on(doc: dict[str, Any], definitions: Collection[DefinitionRef]) -> bool:
    """`SagaState.runs_on` for a stored saga read with `_CANDIDATE_FIELDS`."""
    return runs_on(
        doc.get("saga_type", ""),
        doc.get("definition_version"),
        doc.get("definition_fingerprint"),
        definitions,
    )


P = ParamSpec("P")
R = TypeVar("R")


def _outages_as_store_errors(
    method: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    """Raise `StoreUnavailableError` when the database cannot be reached or does not answer in time.

    The engine knows no PyMongo. A timeout is an outage too: with a client-side operation timeout
    (`timeoutMS`), a database that stops answering fails the operation with a `NetworkTimeout`
    (a `ConnectionFailure`), or with an `ExecutionTimeout` when too little time is left to send it.
    """

    @functools.wraps(method)
    async def translated(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except PyMongoError as exc:
            if not (isinstance(exc, ConnectionFailure) or exc.timeout):
                raise
            raise StoreUnavailableError(f"the saga store cannot be reached ({type(exc).__name__})") from exc

    return translated


class MongoSagaStore:
    """Saga state in one MongoDB collection (`DEFAULT_COLLECTION`, ``sagas``, unless named otherwise)."""

    def __init__(self, collection: AsyncCollection[dict[str, Any]]) -> None:
        # Read datetimes back timezone-aware whatever the client's options: the engine compares
        # them with aware ones, and PyMongo's default (tz_aware=False) would break recovery.
        codec_options = collection.codec_options.with_options(tz_aware=True, tzinfo=UTC)
        self._collection = collection.with_options(codec_options=codec_options)
        self._writes = WriteGroup(self._collection)

    async def create_indexes(self) -> None:
        """Create the indexes recovery, listing and look-ups rely on (idempotent)."""
        await self._collection.create_indexes(
            [
                IndexModel([("status", ASCENDING)]),
                IndexModel([("correlation_id", ASCENDING)]),
                IndexModel([("created_at", DESCENDING)]),
            ]
        )

    @staticmethod
    def _to_doc(state: SagaState) -> dict[str, Any]:
        doc = state.model_dump(mode="python", exclude={"saga_id"}, exclude_none=True)
        doc["_id"] = state.saga_id
        return doc

    @staticmethod
    def _from_doc(doc: dict[str, Any]) -> SagaState:
        doc = dict(doc)
        doc["saga_id"] = doc.pop("_id")
        doc.pop(WRITE_ID, None)
        return SagaState.model_validate(doc)

    @_outages_as_store_errors
    async def create(self, state: SagaState, preceded_by: Sequence[object] = ()) -> bool:
        """See `SagaStore.create`. `preceded_by` are `stores.ordered` writes (`Insert`, `Update`,
        `Replace`) on this store's client: they and the saga's insert go as one ordered command
        (`write_in_order`); without them the insert joins the store's group commit."""
        if not preceded_by:
            return await self._writes.insert(self._to_doc(state))
        created, _ = await self._create_in_order(state, preceded_by, [])
        return created

    @_outages_as_store_errors
    async def create_and_write(
        self, state: SagaState, writes: Sequence[object], preceded_by: Sequence[object] = ()
    ) -> tuple[bool, bool]:
        """See `SagaStore.create_and_write`. `writes` and `preceded_by` as for `save_and_write` and
        `create`: without `preceded_by` the insert and its writes join the group commit; with it,
        they all go as one ordered command."""
        riders = self._riders(writes)
        if not riders:
            return await self.create(state, preceded_by), False
        if not preceded_by:
            return await self._writes.insert_then(self._to_doc(state), riders)
        return await self._create_in_order(state, preceded_by, riders)

    async def _create_in_order(
        self, state: SagaState, preceded_by: Sequence[object], riders: list[Write]
    ) -> tuple[bool, bool]:
        """`preceded_by`, the saga's insert, then `riders`, as one ordered command: whether the
        saga was inserted, and whether every rider was made and matched a document."""
        before = _ordered_writes(preceded_by)
        saga = Insert(self._collection, {**self._to_doc(state), WRITE_ID: ObjectId()})
        try:
            matched = await write_in_order([*before, saga, *riders])
        except DuplicateKeyAtError as exc:
            if exc.position < len(before):
                raise PrecedingWriteRefusedError(
                    f"a write before saga {state.saga_id} was refused: {exc}"
                ) from exc
            return exc.position > len(before), False  # the saga exists, or a write of its was refused
        return True, bool(riders) and all(matched[len(before) + 1 :])

    @_outages_as_store_errors
    async def get(self, saga_id: str) -> SagaState | None:
        """See `SagaStore.get`."""
        doc = await self._collection.find_one({"_id": saga_id})
        return self._from_doc(doc) if doc else None

    @_outages_as_store_errors
    async def save(self, state: SagaState) -> SagaState:
        """See `SagaStore.save`."""
        new = state.model_copy(update={"version": state.version + 1})
        doc = self._to_doc(new)
        if not await self._writes.replace(doc, state.version, state.fencing_token):
            raise ConcurrencyError(f"saga {state.saga_id} changed since it was read")
        return new

    @_outages_as_store_errors
    async def save_and_write(self, state: SagaState, writes: Sequence[object]) -> tuple[SagaState, bool]:
        """See `SagaStore.save_and_write`. `writes` are `stores.ordered` writes (`Insert`, `Update`,
        `Replace`) on this store's client. The save and they join the group commit: a group with
        such writes goes as one ordered command, each saga's replace followed by its writes
        (`write_group`), so they cost no command of their own, alone or among other sagas'."""
        riders = self._riders(writes)
        if not riders:
            return await self.save(state), False
        new = state.model_copy(update={"version": state.version + 1})
        stored, made = await self._writes.replace_then(
            self._to_doc(new), state.version, state.fencing_token, riders
        )
        if not stored:
            raise ConcurrencyError(f"saga {state.saga_id} changed since it was read")
        return new, made

    def _riders(self, writes: Sequence[object]) -> list[Write]:
        """`writes` to make after a saga's statement: `stores.ordered` writes on this store's client."""
        riders = _ordered_writes(writes)
        client = self._collection.database.client
        if any(rider.collection.database.client is not client for rider in riders):
            raise ValueError("MongoSagaStore makes writes on its own client only")
        return riders

    @_outages_as_store_errors
    async def claim_expired(
        self, owner: str, now_ms: int, lease_ms: int, *, definitions: Collection[DefinitionRef]
    ) -> SagaState | None:
        """See `SagaStore.claim_expired`: the expired sagas are read first, by status, in the
        order their leases expired (`_expired`); the first that runs on `definitions` is claimed
        by its id and version, so that a saga changed since it was read is left alone (another
        worker claimed it, or its holder saved it)."""
        if not definitions:
            return None
        async with contextlib.aclosing(self._expired(now_ms)) as expired:
            async for doc in expired:
                if not _runs_on(doc, definitions):
                    continue
                query = {
                    "_id": doc["_id"],
                    "version": doc["version"],
                    "status": doc["status"],
                    "lease_expires_at_ms": {"$lt": now_ms},  # a renewal changes no version
                }
                claimed = await self._take(query, owner, now_ms, lease_ms)
                if claimed is not None:
                    return claimed
        return None

    async def _expired(self, now_ms: int) -> AsyncGenerator[dict[str, Any], None]:
        """Active sagas whose lease expired (`_CANDIDATE_FIELDS` only), the earliest expiry first
        (`_expired_of` for each active status, merged)."""
        statuses = [self._expired_of(status, now_ms) for status in _ACTIVE]
        try:
            heads: list[tuple[tuple[int, str], int, dict[str, Any]]] = []
            for index, docs in enumerate(statuses):
                first = await anext(docs, None)
                if first is not None:
                    heapq.heappush(heads, (_expiry_order(first), index, first))
            while heads:
                _, index, doc = heapq.heappop(heads)
                yield doc
                following = await anext(statuses[index], None)
                if following is not None:
                    heapq.heappush(heads, (_expiry_order(following), index, following))
        finally:
            for docs in statuses:
                await docs.aclose()

    async def _expired_of(self, status: str, now_ms: int) -> AsyncGenerator[dict[str, Any], None]:
        """The sagas in `status` whose lease expired, the earliest expiry first, `CANDIDATES` read
        at a time.

        Filtered by equality on the status and a range on the expiry, and nothing else: MongoDB
        serves that from the ``status`` index, and so does the embedded server, which reads the
        whole collection for a filter with ``$in``, ``$or`` or ``$nor`` (docs/performance.md,
        item 32). So the next page starts at the last expiry read (``$gte``, not an ``$or`` on
        the expiry and the id), and the sagas read with that expiry are skipped.
        """
        since: int | None = None
        seen: set[str] = set()
        while True:
            lease = {"$lt": now_ms} if since is None else {"$gte": since, "$lt": now_ms}
            wanted = CANDIDATES + len(seen)
            page = (
                await self._collection.find(
                    {"status": status, "lease_expires_at_ms": lease}, _CANDIDATE_FIELDS
                )
                .sort([("lease_expires_at_ms", ASCENDING), ("_id", ASCENDING)])
                .limit(wanted)
                .to_list()
            )
            for doc in page:
                if doc["_id"] not in seen:
                    yield doc
            if len(page) < wanted:
                return
            since = page[-1]["lease_expires_at_ms"]
            seen = {doc["_id"] for doc in page if doc["lease_expires_at_ms"] == since}

    @_outages_as_store_errors
    async def take_over(
        self, saga_id: str, owner: str, now_ms: int, lease_ms: int, *, expect: SagaExpectation
    ) -> SagaState | None:
        """See `SagaStore.take_over`."""
        query: dict[str, Any] = {"_id": saga_id, "status": expect.status.value}
        if expect.current_step is not None:
            query["current_step"] = expect.current_step
        if expect.lease_expired_by is not None:
            query["lease_expires_at_ms"] = {"$lt": expect.lease_expired_by}
        return await self._take(query, owner, now_ms, lease_ms)

    async def _take(self, query: dict[str, Any], owner: str, now_ms: int, lease_ms: int) -> SagaState | None:
        """Take the lease of the saga `query` names by its id."""
        doc = await self._collection.find_one_and_update(
            query,
            {
                "$set": {"lease_owner": owner, "lease_expires_at_ms": now_ms + lease_ms},
                "$inc": {"version": 1, "fencing_token": 1},
            },
            return_document=ReturnDocument.AFTER,
        )
        return self._from_doc(doc) if doc else None

    @_outages_as_store_errors
    async def find_unrunnable(
        self, now_ms: int, *, definitions: Collection[DefinitionRef], limit: int
    ) -> list[SagaState]:
        """See `SagaStore.find_unrunnable`: the expired sagas (`_expired`) that run on none of
        `definitions`, then those read whole, in one query by their ids (which the embedded
        server serves from the `_id`, `$in` or not)."""
        unrunnable: list[str] = []
        async with contextlib.aclosing(self._expired(now_ms)) as expired:
            async for doc in expired:
                if len(unrunnable) == limit:
                    break
                if not _runs_on(doc, definitions):
                    unrunnable.append(doc["_id"])
        if not unrunnable:
            return []
        found = {doc["_id"]: doc async for doc in self._collection.find({"_id": {"$in": unrunnable}})}
        return [self._from_doc(found[saga_id]) for saga_id in unrunnable if saga_id in found]

    @_outages_as_store_errors
    async def fingerprints(self, saga_type: str, version: int) -> set[str]:
        """See `SagaStore.fingerprints`: a query per unfinished status (see `_expired` for why)."""
        found: set[str] = set()
        for status in _UNFINISHED:
            query = {"status": status, "saga_type": saga_type, "definition_version": version}
            async for doc in self._collection.find(query, projection={"definition_fingerprint": 1}):
                if doc.get("definition_fingerprint"):
                    found.add(doc["definition_fingerprint"])
        return found

    @_outages_as_store_errors
    async def renew(self, saga_id: str, owner: str, fencing_token: int, expires_at_ms: int) -> bool:
        """See `SagaStore.renew`."""
        result = await self._collection.update_one(
            {"_id": saga_id, "lease_owner": owner, "fencing_token": fencing_token},
            {"$set": {"lease_expires_at_ms": expires_at_ms}},
        )
        return result.matched_count == 1

    @_outages_as_store_errors
    async def release(self, saga_id: str, owner: str, fencing_token: int) -> None:
        """See `SagaStore.release`."""
        await self._collection.update_one(
            {"_id": saga_id, "lease_owner": owner, "fencing_token": fencing_token},
            {"$set": {"lease_expires_at_ms": 0}},
        )

    @_outages_as_store_errors
    async def find(self, query: SagaQuery) -> tuple[list[SagaState], int]:
        """See `SagaStore.find`."""
        criteria: dict[str, Any] = {}
        if (
            query.statuses is not None
        ):  # one status (the console's, the metrics'): by equality, see `_expired_of`
            statuses = [str(s) for s in query.statuses]
            criteria["status"] = statuses[0] if len(statuses) == 1 else {"$in": statuses}
        if query.saga_type is not None:
            criteria["saga_type"] = query.saga_type
        if query.correlation_id is not None:
            criteria["correlation_id"] = query.correlation_id
        if query.since is not None:
            criteria["created_at"] = {"$gte": query.since}
        total = await count_matching(self._collection, criteria)
        cursor = (
            self._collection.find(criteria)
            .sort([("created_at", DESCENDING), ("_id", DESCENDING)])
            .skip(query.skip)
            .limit(query.limit)
        )
        return [self._from_doc(doc) async for doc in cursor], total

    @_outages_as_store_errors
    async def statuses(self) -> dict[str, str | None]:
        """See `SagaStore.statuses`."""
        cursor = self._collection.find({}, projection={"status": 1})
        return {doc["_id"]: _stored_status(doc) async for doc in cursor}


def _ordered_writes(writes: Sequence[object]) -> list[Write]:
    """`writes`, checked to be `stores.ordered` writes."""
    for write in writes:
        if not isinstance(write, Insert | Update | Replace):
            raise ValueError(f"MongoSagaStore takes ordered Insert, Update and Replace writes, not {write!r}")
    return list(writes)  # type: ignore[arg-type] # checked above


def _stored_status(doc: dict[str, Any]) -> str | None:
    status = doc.get("status")
    return None if status is None else str(status)
