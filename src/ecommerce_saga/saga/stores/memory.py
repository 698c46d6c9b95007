"""An in-memory `SagaStore`: same semantics as the durable one, for tests and single processes."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence

from ecommerce_saga.saga.errors import ConcurrencyError
from ecommerce_saga.saga.state import DefinitionRef, SagaState
from ecommerce_saga.saga.store import SagaExpectation, SagaQuery


class InMemorySagaStore:
    """Keeps deep copies, so callers never share state with the store.

    Attributes:
        writes: How many writes (create, save, claim, renew, release) the store has taken.
    """

    def __init__(self) -> None:
        self._sagas: dict[str, SagaState] = {}
        self._lock = asyncio.Lock()
        self.writes = 0

    async def create(self, state: SagaState, preceded_by: Sequence[object] = ()) -> bool:
        """See `SagaStore.create`; this store makes no writes but its own (`preceded_by` must be empty)."""
        if preceded_by:
            raise ValueError("InMemorySagaStore makes no writes of others before a saga's insert")
        async with self._lock:
            if state.saga_id in self._sagas:
                return False
            self.writes += 1
            self._sagas[state.saga_id] = state.model_copy(deep=True)
            return True

    async def get(self, saga_id: str) -> SagaState | None:
        """See `SagaStore.get`."""
        stored = self._sagas.get(saga_id)
        return stored.model_copy(deep=True) if stored else None

    async def save(self, state: SagaState) -> SagaState:
        """See `SagaStore.save`."""
        async with self._lock:
            stored = self._sagas.get(state.saga_id)
            if (
                stored is None
                or stored.version != state.version
                or stored.fencing_token != state.fencing_token
            ):
                raise ConcurrencyError(f"saga {state.saga_id} changed since it was read")
            new = state.model_copy(deep=True, update={"version": state.version + 1})
            self.writes += 1
            self._sagas[state.saga_id] = new
            return new.model_copy(deep=True)

    async def create_and_write(
        self, state: SagaState, writes: Sequence[object], preceded_by: Sequence[object] = ()
    ) -> tuple[bool, bool]:
        """See `SagaStore.create_and_write`; this store makes no writes but its own (always False)."""
        return await self.create(state, preceded_by), False

    async def save_and_write(self, state: SagaState, writes: Sequence[object]) -> tuple[SagaState, bool]:
        """See `SagaStore.save_and_write`; this store makes no writes but its own (always False)."""
        return await self.save(state), False

    async def claim_expired(
        self, owner: str, now_ms: int, lease_ms: int, *, definitions: Collection[DefinitionRef]
    ) -> SagaState | None:
        """See `SagaStore.claim_expired`."""
        async with self._lock:
            for stored in sorted(self._sagas.values(), key=lambda s: s.lease_expires_at_ms):
                if self._expired(stored, now_ms) and stored.runs_on(definitions):
                    return self._take(stored, owner, now_ms, lease_ms)
            return None

    async def take_over(
        self, saga_id: str, owner: str, now_ms: int, lease_ms: int, *, expect: SagaExpectation
    ) -> SagaState | None:
        """See `SagaStore.take_over`."""
        async with self._lock:
            stored = self._sagas.get(saga_id)
            if stored is None or not expect.matches(stored):
                return None
            return self._take(stored, owner, now_ms, lease_ms)

    async def find_unrunnable(
        self, now_ms: int, *, definitions: Collection[DefinitionRef], limit: int
    ) -> list[SagaState]:
        """See `SagaStore.find_unrunnable`."""
        found = sorted(
            (s for s in self._sagas.values() if self._expired(s, now_ms) and not s.runs_on(definitions)),
            key=lambda s: s.lease_expires_at_ms,
        )
        return [s.model_copy(deep=True) for s in found[:limit]]

    async def fingerprints(self, saga_type: str, version: int) -> set[str]:
        """See `SagaStore.fingerprints`."""
        return {
            s.definition_fingerprint
            for s in self._sagas.values()
            if s.saga_type == saga_type
            and s.definition_version == version
            and s.definition_fingerprint is not None
            and not s.status.is_final
        }

    @staticmethod
    def _expired(state: SagaState, now_ms: int) -> bool:
        return state.status.is_active and state.lease_expires_at_ms < now_ms

    def _take(self, stored: SagaState, owner: str, now_ms: int, lease_ms: int) -> SagaState:
        update = {
            "lease_owner": owner,
            "lease_expires_at_ms": now_ms + lease_ms,
            "version": stored.version + 1,
            "fencing_token": stored.fencing_token + 1,
        }
        claimed = stored.model_copy(deep=True, update=update)
        self.writes += 1
        self._sagas[stored.saga_id] = claimed
        return claimed.model_copy(deep=True)

    async def renew(self, saga_id: str, owner: str, fencing_token: int, expires_at_ms: int) -> bool:
        """See `SagaStore.renew`."""
        async with self._lock:
            stored = self._sagas.get(saga_id)
            if stored is None or stored.lease_owner != owner or stored.fencing_token != fencing_token:
                return False
            self.writes += 1
            stored.lease_expires_at_ms = expires_at_ms
            return True

    async def release(self, saga_id: str, owner: str, fencing_token: int) -> None:
        """See `SagaStore.release`."""
        async with self._lock:
            stored = self._sagas.get(saga_id)
            if stored is not None and (stored.lease_owner, stored.fencing_token) == (owner, fencing_token):
                self.writes += 1
                stored.lease_expires_at_ms = 0

    async def find(self, query: SagaQuery) -> tuple[list[SagaState], int]:
        """See `SagaStore.find`."""
        matches = [
            s
            for s in self._sagas.values()
            if (query.statuses is None or s.status in query.statuses)
            and (query.saga_type is None or s.saga_type == query.saga_type)
            and (query.correlation_id is None or s.correlation_id == query.correlation_id)
            and (query.since is None or s.created_at >= query.since)
        ]
        matches.sort(key=lambda s: (s.created_at, s.saga_id), reverse=True)
        page = matches[query.skip : query.skip + query.limit]
        return [s.model_copy(deep=True) for s in page], len(matches)

    async def statuses(self) -> dict[str, str | None]:
        """See `SagaStore.statuses`."""
        return {saga_id: str(state.status) for saga_id, state in self._sagas.items()}
