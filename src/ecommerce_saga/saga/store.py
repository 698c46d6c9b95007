"""The `SagaStore` port: where the engine keeps saga state, with optimistic concurrency and leases."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from ecommerce_saga.saga.state import SagaState, SagaStatus


@dataclass(frozen=True, slots=True)
class SagaQuery:
    """Filters for listing sagas; None means any."""

    statuses: Collection[SagaStatus] | None = None
    saga_type: str | None = None
    correlation_id: str | None = None
    since: datetime | None = None
    limit: int = 50
    skip: int = 0


@dataclass(frozen=True, slots=True)
class SagaExpectation:
    """What a saga must still be for a forced claim to take it."""

    status: SagaStatus
    current_step: int | None = None

    def matches(self, state: SagaState) -> bool:
        """True if `state` is as expected."""
        return state.status is self.status and self.current_step in (None, state.current_step)

    def as_filter(self) -> dict[str, object]:
        """The expectation as a MongoDB filter."""
        found: dict[str, object] = {"status": self.status.value}
        if self.current_step is not None:
            found["current_step"] = self.current_step
        return found


class SagaStore(Protocol):
    """Persistence of saga state.

    Every write is conditional: `create` fails if the id exists; `save` replaces the stored saga
    only if its version and fencing token are still the ones the caller read, and stores it with
    the version incremented; `claim` takes the lease of a saga whose lease expired, incrementing
    both the version and the fencing token so that the previous holder's writes fail.
    """

    async def create(self, state: SagaState) -> bool:
        """Insert a new saga; False (and no change) if one with the same id exists."""
        ...

    async def get(self, saga_id: str) -> SagaState | None:
        """The saga with `saga_id`, or None."""
        ...

    async def save(self, state: SagaState) -> SagaState:
        """Replace the stored saga if its version and fencing token match `state`'s.

        Returns:
            The state as stored, its version incremented.

        Raises:
            ConcurrencyError: If the stored saga changed since `state` was read.
        """
        ...

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
        """Take the lease of one active saga whose lease has expired (or of `saga_id`).

        With `force`, the lease of `saga_id` is taken whatever its lease (operator actions), but
        only if the saga still matches `expect`, so a refused operator action never steals it.
        Returns the claimed saga, or None when there is nothing to claim.
        """
        ...

    async def renew(self, saga_id: str, owner: str, fencing_token: int, expires_at_ms: int) -> bool:
        """Extend a lease this owner still holds; False if it was lost."""
        ...

    async def release(self, saga_id: str, owner: str, fencing_token: int) -> None:
        """Give the lease up at once (so another worker may claim the saga without waiting)."""
        ...

    async def find(self, query: SagaQuery) -> tuple[list[SagaState], int]:
        """Sagas matching `query`, newest first, and how many match in all."""
        ...
