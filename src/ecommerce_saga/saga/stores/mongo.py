"""A MongoDB `SagaStore` on PyMongo's async API.

One document per saga, `_id` = saga id. Writes are whole-document inserts and replaces filtered
on `version` and `fencing_token` (optimistic concurrency); leases are claimed with one
`find_one_and_update`. Instants that are compared in queries (lease expiry) are integers
(epoch milliseconds), which behave the same on MongoDB and on MongoDB-compatible servers.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Coroutine
from datetime import UTC
from typing import Any, ParamSpec, TypeVar

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import ConnectionFailure, DuplicateKeyError, PyMongoError

from ecommerce_saga.saga.errors import ConcurrencyError, StoreUnavailableError
from ecommerce_saga.saga.state import SagaState
from ecommerce_saga.saga.store import SagaExpectation, SagaQuery

_ACTIVE = ["RUNNING", "COMPENSATING"]

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
    """Saga state in one MongoDB collection (default ``sagas``)."""

    def __init__(self, collection: AsyncCollection[dict[str, Any]]) -> None:
        # Read datetimes back timezone-aware whatever the client's options: the engine compares
        # them with aware ones, and PyMongo's default (tz_aware=False) would break recovery.
        codec_options = collection.codec_options.with_options(tz_aware=True, tzinfo=UTC)
        self._collection = collection.with_options(codec_options=codec_options)

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
        return SagaState.model_validate(doc)

    @_outages_as_store_errors
    async def create(self, state: SagaState) -> bool:
        """See `SagaStore.create`."""
        try:
            await self._collection.insert_one(self._to_doc(state))
        except DuplicateKeyError:
            return False
        return True

    @_outages_as_store_errors
    async def get(self, saga_id: str) -> SagaState | None:
        """See `SagaStore.get`."""
        doc = await self._collection.find_one({"_id": saga_id})
        return self._from_doc(doc) if doc else None

    @_outages_as_store_errors
    async def save(self, state: SagaState) -> SagaState:
        """See `SagaStore.save`."""
        new = state.model_copy(update={"version": state.version + 1})
        result = await self._collection.replace_one(
            {"_id": state.saga_id, "version": state.version, "fencing_token": state.fencing_token},
            self._to_doc(new),
        )
        if result.matched_count != 1:
            raise ConcurrencyError(f"saga {state.saga_id} changed since it was read")
        return new

    @_outages_as_store_errors
    async def claim(
        self,
        owner: str,
        now_ms: int,
        lease_ms: int,
        *,
        saga_types: Collection[str],
        saga_id: str | None = None,
        force: bool = False,
        expect: SagaExpectation | None = None,
    ) -> SagaState | None:
        """See `SagaStore.claim`."""
        query: dict[str, Any] = {}
        if not force:
            query = {
                "status": {"$in": _ACTIVE},
                "lease_expires_at_ms": {"$lt": now_ms},
                "saga_type": {"$in": list(saga_types)},
            }
        if saga_id is not None:
            query["_id"] = saga_id
        if expect is not None:
            query.update(expect.as_filter())
        doc = await self._collection.find_one_and_update(
            query,
            {
                "$set": {"lease_owner": owner, "lease_expires_at_ms": now_ms + lease_ms},
                "$inc": {"version": 1, "fencing_token": 1},
            },
            sort=[("lease_expires_at_ms", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )
        return self._from_doc(doc) if doc else None

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
        if query.statuses is not None:
            criteria["status"] = {"$in": [str(s) for s in query.statuses]}
        if query.saga_type is not None:
            criteria["saga_type"] = query.saga_type
        if query.correlation_id is not None:
            criteria["correlation_id"] = query.correlation_id
        if query.since is not None:
            criteria["created_at"] = {"$gte": query.since}
        total = await self._collection.count_documents(criteria)
        cursor = (
            self._collection.find(criteria)
            .sort([("created_at", DESCENDING), ("_id", DESCENDING)])
            .skip(query.skip)
            .limit(query.limit)
        )
        return [self._from_doc(doc) async for doc in cursor], total
