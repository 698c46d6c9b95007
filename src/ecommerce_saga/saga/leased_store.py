"""The saga store as one worker uses it: under lease, with its identity, clock and definitions.

A worker touches a saga only while it holds the saga's lease (owner, expiry, fencing token).
Every write goes through `LeasedStore.save`, conditional on the version and fencing token the
worker read; when another worker has claimed the saga in between, the write fails with
`LeaseLostError`. A worker claims only sagas whose definition version it has registered.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ecommerce_saga.saga.definition import Registry, Saga
from ecommerce_saga.saga.errors import ConcurrencyError, LeaseLostError, SagaNotFoundError
from ecommerce_saga.saga.state import SagaState, utcnow
from ecommerce_saga.saga.store import SagaExpectation, SagaStore


class LeasedStore:
    """One worker's access to the saga store, under lease.

    Args:
        store: Where saga state lives.
        registry: The saga definitions this worker can run.
        worker_id: This worker's identity, recorded as lease owner.
        lease_ms: How long a claim or a write holds the lease, in milliseconds.
        clock: Seconds since the epoch.
    """

    def __init__(
        self,
        store: SagaStore,
        registry: Registry,
        *,
        worker_id: str,
        lease_ms: int,
        clock: Callable[[], float],
    ) -> None:
        self.store = store
        self.registry = registry
        self.worker_id = worker_id
        self.lease_ms = lease_ms
        self._clock = clock
        self.driven: dict[str, SagaState] = {}
        """The sagas this worker drives (the engine adds and removes them), each as last written."""

    def now_ms(self) -> int:
        """The clock, in epoch milliseconds."""
        return int(self._clock() * 1000)

    def definition_of(self, state: SagaState) -> Saga[Any]:
        """The definition `state` runs on.

        Raises:
            UnknownDefinitionError: If it is not registered here.
        """
        return self.registry.of(state)

    async def get(self, saga_id: str) -> SagaState:
        """The saga with its full history.

        Raises:
            SagaNotFoundError: If there is no such saga.
        """
        state = await self.store.get(saga_id)
        if state is None:
            raise SagaNotFoundError(saga_id)
        return state

    async def save(self, state: SagaState) -> SagaState:
        """Write `state`, extending the lease while the saga is active and giving it up once it is not.

        Raises:
            LeaseLostError: If another worker claimed the saga since this one read it.
        """
        self._stamp(state)
        try:
            saved = await self.store.save(state)
        except ConcurrencyError as exc:
            raise LeaseLostError(f"saga {state.saga_id}: lease lost to another worker") from exc
        return self._stored(saved)

    async def save_and_write(self, state: SagaState, writes: Sequence[object]) -> tuple[SagaState, bool]:
        """`save`, then `writes` in the same command where the store can (`SagaStore.save_and_write`).

        Returns:
            The state as stored, and whether every write was made.

        Raises:
            LeaseLostError: If another worker claimed the saga since this one read it (no write made).
        """
        self._stamp(state)
        try:
            saved, written = await self.store.save_and_write(state, writes)
        except ConcurrencyError as exc:
            raise LeaseLostError(f"saga {state.saga_id}: lease lost to another worker") from exc
        return self._stored(saved), written

    def _stamp(self, state: SagaState) -> None:
        state.updated_at = utcnow()
        state.lease_expires_at_ms = self.now_ms() + self.lease_ms if state.status.is_active else 0

    def _stored(self, saved: SagaState) -> SagaState:
        if saved.saga_id in self.driven:
            self.driven[saved.saga_id] = saved
        return saved

    async def claim_expired(self) -> SagaState | None:
        """Claim one active saga this worker can run whose lease has expired, if there is one."""
        return await self.store.claim_expired(
            self.worker_id, self.now_ms(), self.lease_ms, definitions=self.registry.refs
        )

    async def take_over(self, saga_id: str, expect: SagaExpectation) -> SagaState | None:
        """Take the saga's lease from whoever holds it, if it is still as expected."""
        return await self.store.take_over(
            saga_id, self.worker_id, self.now_ms(), self.lease_ms, expect=expect
        )

    async def renew(self, saga_id: str, fencing_token: int) -> bool:
        """Extend the lease this worker holds on the saga; False if it no longer holds it."""
        return await self.store.renew(saga_id, self.worker_id, fencing_token, self.now_ms() + self.lease_ms)

    async def release(self, state: SagaState) -> None:
        """Give the lease on the saga up, so that another worker may claim it at once."""
        await self.store.release(state.saga_id, self.worker_id, state.fencing_token)
