"""This worker as the engine's parts see it: its identity, its leases, its clock and its definitions.

A worker touches a saga only while it holds the saga's lease (owner, expiry, fencing token).
Every write goes through `Worker.save`, conditional on the version and fencing token the worker
read; when another worker has claimed the saga in between, the write fails with `LeaseLostError`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ecommerce_saga.saga.definition import Saga
from ecommerce_saga.saga.errors import (
    ConcurrencyError,
    LeaseLostError,
    SagaNotFoundError,
    UnknownSagaTypeError,
)
from ecommerce_saga.saga.state import SagaState, utcnow
from ecommerce_saga.saga.store import SagaExpectation, SagaStore


class Worker:
    """One worker's access to the saga store, under lease.

    Args:
        store: Where saga state lives.
        registry: The sagas this worker can run, by name.
        worker_id: This worker's identity, recorded as lease owner.
        lease_ms: How long a claim or a write holds the lease, in milliseconds.
        clock: Seconds since the epoch.
    """

    def __init__(
        self,
        store: SagaStore,
        registry: Mapping[str, Saga],
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

    def now_ms(self) -> int:
        """The clock, in epoch milliseconds."""
        return int(self._clock() * 1000)

    def definition(self, saga_type: str) -> Saga:
        """The registered definition named `saga_type`.

        Raises:
            UnknownSagaTypeError: If there is none.
        """
        try:
            return self.registry[saga_type]
        except KeyError:
            raise UnknownSagaTypeError(f"no saga definition named {saga_type!r}") from None

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
        state.updated_at = utcnow()
        state.lease_expires_at_ms = self.now_ms() + self.lease_ms if state.status.is_active else 0
        try:
            return await self.store.save(state)
        except ConcurrencyError as exc:
            raise LeaseLostError(f"saga {state.saga_id}: lease lost to another worker") from exc

    async def claim_expired(self) -> SagaState | None:
        """Claim one active saga of a registered type whose lease has expired, if there is one."""
        return await self.store.claim(
            self.worker_id, self.now_ms(), self.lease_ms, saga_types=self.registry.keys()
        )

    async def force_claim(self, saga_id: str, expect: SagaExpectation) -> SagaState | None:
        """Take the saga's lease from whoever holds it, if it is still as expected."""
        return await self.store.claim(
            self.worker_id,
            self.now_ms(),
            self.lease_ms,
            saga_types=self.registry.keys(),
            saga_id=saga_id,
            force=True,
            expect=expect,
        )

    async def renew(self, saga_id: str, fencing_token: int) -> bool:
        """Extend the lease this worker holds on the saga; False if it no longer holds it."""
        return await self.store.renew(saga_id, self.worker_id, fencing_token, self.now_ms() + self.lease_ms)

    async def release(self, state: SagaState) -> None:
        """Give the lease on the saga up, so that another worker may claim it at once."""
        await self.store.release(state.saga_id, self.worker_id, state.fencing_token)
