"""The `SagaStore` port: where the engine keeps saga state, with optimistic concurrency and leases."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from ecommerce_saga.saga.state import DefinitionRef, SagaState, SagaStatus


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
    """What a saga must still be for `SagaStore.take_over` to take it.

    Attributes:
        status: The saga's status.
        current_step: The saga's current step, or None for any.
        lease_expired_by: Epoch milliseconds by which the saga's lease must have expired, or
            None whatever its lease.
    """

    status: SagaStatus
    current_step: int | None = None
    lease_expired_by: int | None = None

    def matches(self, state: SagaState) -> bool:
        """True if `state` is as expected."""
        return (
            state.status is self.status
            and self.current_step in (None, state.current_step)
            and (self.lease_expired_by is None or state.lease_expires_at_ms < self.lease_expired_by)
        )


class SagaStore(Protocol):
    """Persistence of saga state.

    Every write is conditional: `create` fails if the id exists; `save` replaces the stored saga
    only if its version and fencing token are still the ones the caller read, and stores it with
    the version incremented; `claim_expired` and `take_over` take a saga's lease, incrementing
    both the version and the fencing token so that the previous holder's writes fail.

    A saga stored before definitions had versions (`SagaState.definition_version` None) runs on
    version 1 of its type, whatever that version's fingerprint (see `SagaState.runs_on`).
    """

    async def create(self, state: SagaState, preceded_by: Sequence[object] = ()) -> bool:
        """Insert a new saga; False (and no change) if one with the same id exists.

        `preceded_by`: writes of the caller's to make first, in order, in the same command where
        the store can (what they may be is the store's to say; a store that takes none raises
        `ValueError` for any). If one is refused by a unique index, the later ones and the saga's
        insert are not made, and `PrecedingWriteRefusedError` is raised; the earlier ones stay.
        """
        ...

    async def create_and_write(
        self, state: SagaState, writes: Sequence[object], preceded_by: Sequence[object] = ()
    ) -> tuple[bool, bool]:
        """`create`, then the caller's `writes`, in order, right after the saga's insert, in the
        same command where the store can, and only if the saga was inserted (see `save_and_write`).

        Returns:
            Whether the saga was inserted, and whether every write was made and matched a
            document (False also when the store made none).

        Raises:
            PrecedingWriteRefusedError: As `create`; none of `writes` was made.
        """
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

    async def save_and_write(self, state: SagaState, writes: Sequence[object]) -> tuple[SagaState, bool]:
        """`save`, then the caller's `writes`, in order, in the same command where the store can.

        The writes are made only once the save is stored, so they come after it, as an effect
        comes after the write-ahead record that announces it (what they may be is the store's
        to say). A store may make none of them (it cannot, or not at that moment).

        Returns:
            The state as stored, and True if every write was made and matched a document; False
            if the store made none, or one was refused or matched nothing (the writes after it
            not made). The caller then makes its writes its own way: they must be safe to repeat.

        Raises:
            ConcurrencyError: As `save`; none of the writes was made.
        """
        ...

    async def claim_expired(
        self, owner: str, now_ms: int, lease_ms: int, *, definitions: Collection[DefinitionRef]
    ) -> SagaState | None:
        """Take the lease of the active saga whose lease expired first, among those that run on
        one of `definitions`; None when there is none."""
        ...

    async def take_over(
        self, saga_id: str, owner: str, now_ms: int, lease_ms: int, *, expect: SagaExpectation
    ) -> SagaState | None:
        """Take the lease of `saga_id` whoever holds it (operator actions), but only if the saga
        still matches `expect`, so that a refused action never steals it; None if it does not."""
        ...

    async def find_unrunnable(
        self, now_ms: int, *, definitions: Collection[DefinitionRef], limit: int
    ) -> list[SagaState]:
        """Up to `limit` active sagas whose lease expired and which run on none of `definitions`."""
        ...

    async def fingerprints(self, saga_type: str, version: int) -> set[str]:
        """The step fingerprints recorded by unfinished (active or parked) sagas of that version."""
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

    async def statuses(self) -> dict[str, str | None]:
        """Every saga's id and status as stored, in one read (an audit's census of the store).

        The status is the stored string, not parsed: a saga whose status this engine does not
        know (a corrupted or foreign record) is reported, not refused; None if it has none.
        """
        ...
