"""An in-memory `SagaStore`: same semantics as the durable one, for tests and single processes."""

from __future__ import annotations

import asyncio
from collections.abc import Collection

from ecommerce_saga.saga.errors import ConcurrencyError
from ecommerce_saga.saga.state import SagaState
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

    async def create(self, state: SagaState) -> bool:
        """See `SagaStore.create`."""
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
        async with self._lock:
            for stored in sorted(self._sagas.values(), key=lambda s: s.lease_expires_at_ms):
                if saga_id is not None and stored.saga_id != saga_id:
                    continue
                claimable = (
                    stored.status.is_active
                    and stored.lease_expires_at_ms < now_ms
                    and stored.saga_type in saga_types
                )
                if not (force or claimable) or (expect is not None and not expect.matches(stored)):
                    continue
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
            return None

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
