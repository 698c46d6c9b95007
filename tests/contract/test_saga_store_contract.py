"""One `SagaStore` spec, run against every store: in memory and MongoDB."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from ecommerce_saga.saga import (
    AttemptStatus,
    ConcurrencyError,
    ErrorInfo,
    HistoryEntry,
    Phase,
    SagaQuery,
    SagaState,
    SagaStatus,
    SagaStore,
)
from ecommerce_saga.saga.stores.memory import InMemorySagaStore
from ecommerce_saga.saga.stores.mongo import MongoSagaStore

AT = datetime(2025, 3, 1, 12, 30, 15, 123000, tzinfo=UTC)  # millisecond precision, as MongoDB keeps
NOW_MS = 1_000_000
LEASE_MS = 1_000
ORDER = ["order"]


def a_saga(saga_id: str, **fields: Any) -> SagaState:
    """A saga with an expired lease, RUNNING unless told otherwise."""
    return SagaState(saga_id=saga_id, saga_type=fields.pop("saga_type", "order"), **fields)


def every_field_set() -> SagaState:
    rejected = ErrorInfo(type="OutOfStock", message="none left", code="inventory.out", retryable=False)
    return SagaState(
        saga_id="s-full",
        saga_type="order",
        status=SagaStatus.COMPENSATING,
        input={"order_id": "o-1", "lines": [{"sku": "A", "qty": 2}], "gift": True, "note": None, "w": 0.5},
        outputs={
            "reserve": {
                "reservation_id": "r-1",
                "items": [{"sku": "A", "qty": 2, "bins": [1, 2]}, {"sku": "B", "qty": 1, "bins": []}],
                "meta": {"nested": {"deep": "x", "flag": False}},
                "reserved_at": AT,
            },
            "charge": {},
        },
        current_step=2,
        compensation_plan=["charge", "reserve"],
        compensation_position=1,
        parked_from=SagaStatus.RUNNING,
        failure=rejected,
        history=[
            HistoryEntry(
                step="reserve",
                phase=Phase.ACTION,
                status=AttemptStatus.SUCCEEDED,
                started_at=AT,
                ended_at=AT + timedelta(milliseconds=15),
                worker="w-1",
            ),
            HistoryEntry(
                step="charge",
                phase=Phase.ACTION,
                attempt=2,
                status=AttemptStatus.FAILED,
                started_at=AT + timedelta(seconds=1),
                ended_at=AT + timedelta(seconds=2),
                error=rejected,
                worker="w-1",
            ),
            HistoryEntry(
                step="cancel",
                phase=Phase.OPERATOR,
                status=AttemptStatus.SUCCEEDED,
                started_at=AT + timedelta(seconds=3),
                ended_at=AT + timedelta(seconds=3),
                worker="w-2",
                actor="alice",
                reason="customer asked",
            ),
            HistoryEntry(step="charge", phase=Phase.COMPENSATION, started_at=AT + timedelta(seconds=4)),
        ],
        correlation_id="order-1",
        lease_owner="w-2",
        lease_expires_at_ms=1_740_000_000_123,
        fencing_token=3,
        deadline_at_ms=1_740_000_060_000,
        created_at=AT,
        updated_at=AT + timedelta(seconds=4),
    )


class SagaStoreSpec:
    """What every `SagaStore` must do; subclasses provide the `store` fixture."""

    async def test_returns_false_and_keeps_the_first_when_creating_a_duplicate_id(
        self, store: SagaStore
    ) -> None:
        assert await store.create(a_saga("s-1", input={"n": 1}))

        assert not await store.create(a_saga("s-1", input={"n": 2}))
        stored = await store.get("s-1")
        assert stored is not None
        assert stored.input == {"n": 1}

    async def test_returns_none_when_getting_an_unknown_id(self, store: SagaStore) -> None:
        assert await store.get("missing") is None

    async def test_round_trips_every_field_when_created_and_read(self, store: SagaStore) -> None:
        state = every_field_set()

        await store.create(state)
        got = await store.get("s-full")

        assert got == state
        assert got is not None
        assert got.created_at.utcoffset() == timedelta(0)
        assert got.history[0].started_at.utcoffset() == timedelta(0)
        assert got.outputs["reserve"]["reserved_at"] == AT

    async def test_round_trips_every_field_when_saved_and_read(self, store: SagaStore) -> None:
        await store.create(a_saga("s-full", fencing_token=3))
        state = every_field_set()

        saved = await store.save(state)
        got = await store.get("s-full")

        assert saved == got
        assert got == state.model_copy(update={"version": 1})

    async def test_increments_the_version_when_saving(self, store: SagaStore) -> None:
        await store.create(a_saga("s-1"))
        first = await store.get("s-1")
        assert first is not None

        saved = await store.save(first.model_copy(update={"current_step": 1}))
        again = await store.save(saved.model_copy(update={"current_step": 2}))

        stored = await store.get("s-1")
        assert (first.version, saved.version, again.version) == (0, 1, 2)
        assert stored is not None
        assert (stored.version, stored.current_step) == (2, 2)

    async def test_rejects_a_save_when_the_version_is_stale(self, store: SagaStore) -> None:
        await store.create(a_saga("s-1"))
        read = await store.get("s-1")
        assert read is not None
        await store.save(read.model_copy(update={"current_step": 1}))

        with pytest.raises(ConcurrencyError):
            await store.save(read.model_copy(update={"current_step": 9}))

        stored = await store.get("s-1")
        assert stored is not None
        assert (stored.version, stored.current_step) == (1, 1)

    async def test_rejects_a_save_when_the_fencing_token_is_stale(self, store: SagaStore) -> None:
        await store.create(a_saga("s-1", fencing_token=4))
        read = await store.get("s-1")
        assert read is not None

        with pytest.raises(ConcurrencyError):
            await store.save(read.model_copy(update={"fencing_token": 3, "current_step": 9}))

        stored = await store.get("s-1")
        assert stored is not None
        assert (stored.version, stored.current_step) == (0, 0)

    async def test_rejects_a_save_when_the_saga_does_not_exist(self, store: SagaStore) -> None:
        with pytest.raises(ConcurrencyError):
            await store.save(a_saga("missing"))

    async def test_claims_only_active_expired_sagas_of_registered_types(self, store: SagaStore) -> None:
        for saga in [
            a_saga("running-expired", lease_expires_at_ms=NOW_MS - 500),
            a_saga("compensating-expired", status=SagaStatus.COMPENSATING, lease_expires_at_ms=0),
            a_saga("running-live", lease_expires_at_ms=NOW_MS + 5_000),
            a_saga("expiring-now", lease_expires_at_ms=NOW_MS),
            a_saga("completed", status=SagaStatus.COMPLETED),
            a_saga("compensated", status=SagaStatus.COMPENSATED),
            a_saga("parked", status=SagaStatus.REQUIRES_ATTENTION),
            a_saga("unregistered", saga_type="returns"),
        ]:
            await store.create(saga)

        claimed = [await store.claim("w-1", NOW_MS, LEASE_MS, saga_types=ORDER) for _ in range(3)]

        ids = [state.saga_id if state else None for state in claimed]
        assert ids == ["compensating-expired", "running-expired", None]  # longest expired first

    async def test_bumps_version_and_fencing_token_when_claiming(self, store: SagaStore) -> None:
        await store.create(a_saga("s-1", version=0, fencing_token=1, lease_owner="w-0"))

        claimed = await store.claim("w-1", NOW_MS, LEASE_MS, saga_types=ORDER)

        stored = await store.get("s-1")
        assert claimed is not None
        assert (claimed.version, claimed.fencing_token) == (1, 2)
        assert (claimed.lease_owner, claimed.lease_expires_at_ms) == ("w-1", NOW_MS + LEASE_MS)
        assert stored == claimed
        assert await store.claim("w-2", NOW_MS, LEASE_MS, saga_types=ORDER) is None  # now live

    async def test_claims_only_the_named_saga_when_given_an_id(self, store: SagaStore) -> None:
        await store.create(a_saga("s-1"))
        await store.create(a_saga("s-2", lease_expires_at_ms=NOW_MS + 5_000))

        assert await store.claim("w-1", NOW_MS, LEASE_MS, saga_types=ORDER, saga_id="s-2") is None
        claimed = await store.claim("w-1", NOW_MS, LEASE_MS, saga_types=ORDER, saga_id="s-1")

        assert claimed is not None
        assert claimed.saga_id == "s-1"

    @pytest.mark.parametrize(
        "fields",
        [
            {"lease_expires_at_ms": NOW_MS + 5_000, "lease_owner": "w-0"},
            {"status": SagaStatus.COMPLETED},
            {"status": SagaStatus.REQUIRES_ATTENTION},
            {"saga_type": "returns"},
        ],
    )
    async def test_takes_the_lease_whatever_the_state_when_forced(
        self, store: SagaStore, fields: dict[str, Any]
    ) -> None:
        await store.create(a_saga("s-1", fencing_token=5, **fields))

        claimed = await store.claim("ops", NOW_MS, LEASE_MS, saga_types=ORDER, saga_id="s-1", force=True)

        assert claimed is not None
        assert (claimed.lease_owner, claimed.fencing_token, claimed.version) == ("ops", 6, 1)

    async def test_returns_none_when_forcing_a_claim_on_an_unknown_id(self, store: SagaStore) -> None:
        assert await store.claim("ops", NOW_MS, LEASE_MS, saga_types=ORDER, saga_id="x", force=True) is None

    async def test_extends_the_lease_without_a_new_version_when_the_holder_renews(
        self, store: SagaStore
    ) -> None:
        await store.create(a_saga("s-1"))
        claimed = await store.claim("w-1", NOW_MS, LEASE_MS, saga_types=ORDER)
        assert claimed is not None

        renewed = await store.renew("s-1", "w-1", claimed.fencing_token, NOW_MS + 9_000)

        stored = await store.get("s-1")
        assert renewed
        assert stored is not None
        assert stored.lease_expires_at_ms == NOW_MS + 9_000
        assert stored.version == claimed.version  # so the holder's next save still matches
        assert await store.save(claimed) is not None

    async def test_refuses_to_renew_when_not_the_holder_or_the_token_is_stale(self, store: SagaStore) -> None:
        await store.create(a_saga("s-1"))
        first = await store.claim("w-1", NOW_MS, LEASE_MS, saga_types=ORDER)
        assert first is not None
        later = NOW_MS + 2 * LEASE_MS
        second = await store.claim("w-2", later, LEASE_MS, saga_types=ORDER)
        assert second is not None

        by_stranger = await store.renew("s-1", "w-3", second.fencing_token, later + 60_000)
        by_old_holder = await store.renew("s-1", "w-1", first.fencing_token, later + 60_000)
        with_old_token = await store.renew("s-1", "w-2", first.fencing_token, later + 60_000)

        stored = await store.get("s-1")
        assert (by_stranger, by_old_holder, with_old_token) == (False, False, False)
        assert stored is not None
        assert stored.lease_expires_at_ms == later + LEASE_MS
        assert not await store.renew("missing", "w-2", 1, later)

    async def test_lets_anyone_claim_at_once_when_the_holder_releases(self, store: SagaStore) -> None:
        await store.create(a_saga("s-1"))
        claimed = await store.claim("w-1", NOW_MS, LEASE_MS, saga_types=ORDER)
        assert claimed is not None

        await store.release("s-1", "w-1", claimed.fencing_token)
        reclaimed = await store.claim("w-2", NOW_MS + 1, LEASE_MS, saga_types=ORDER)

        assert reclaimed is not None
        assert (reclaimed.lease_owner, reclaimed.fencing_token) == ("w-2", claimed.fencing_token + 1)

    async def test_ignores_a_release_when_not_the_holder_or_the_token_is_stale(
        self, store: SagaStore
    ) -> None:
        await store.create(a_saga("s-1"))
        claimed = await store.claim("w-1", NOW_MS, LEASE_MS, saga_types=ORDER)
        assert claimed is not None

        await store.release("s-1", "w-2", claimed.fencing_token)
        await store.release("s-1", "w-1", claimed.fencing_token - 1)
        await store.release("missing", "w-1", 1)

        stored = await store.get("s-1")
        assert stored is not None
        assert stored.lease_expires_at_ms == NOW_MS + LEASE_MS
        assert await store.claim("w-2", NOW_MS + 1, LEASE_MS, saga_types=ORDER) is None

    async def test_finds_sagas_newest_first_when_filtered(self, store: SagaStore) -> None:
        specs = [
            ("s-0", "order", SagaStatus.COMPLETED, "c-1"),
            ("s-1", "order", SagaStatus.RUNNING, "c-2"),
            ("s-2", "returns", SagaStatus.COMPENSATED, "c-1"),
            ("s-3", "order", SagaStatus.REQUIRES_ATTENTION, None),
            ("s-4", "order", SagaStatus.COMPLETED, "c-3"),
        ]
        for n, (saga_id, saga_type, status, correlation) in enumerate(specs):
            created = AT + timedelta(minutes=n)
            await store.create(
                a_saga(
                    saga_id,
                    saga_type=saga_type,
                    status=status,
                    correlation_id=correlation,
                    created_at=created,
                )
            )

        everything, total = await store.find(SagaQuery())
        done, done_total = await store.find(
            SagaQuery(statuses=[SagaStatus.COMPLETED, SagaStatus.COMPENSATED])
        )
        returns, _ = await store.find(SagaQuery(saga_type="returns"))
        related, _ = await store.find(SagaQuery(correlation_id="c-1"))
        recent, recent_total = await store.find(SagaQuery(since=AT + timedelta(minutes=3)))
        page, page_total = await store.find(SagaQuery(statuses=[SagaStatus.COMPLETED], limit=1, skip=1))
        none, none_total = await store.find(
            SagaQuery(saga_type="order", correlation_id="c-2", statuses=[SagaStatus.COMPLETED])
        )

        def ids(states: list[SagaState]) -> list[str]:
            return [s.saga_id for s in states]

        assert (ids(everything), total) == (["s-4", "s-3", "s-2", "s-1", "s-0"], 5)
        assert (ids(done), done_total) == (["s-4", "s-2", "s-0"], 3)
        assert ids(returns) == ["s-2"]
        assert ids(related) == ["s-2", "s-0"]
        assert (ids(recent), recent_total) == (["s-4", "s-3"], 2)
        assert (ids(page), page_total) == (["s-0"], 2)
        assert (none, none_total) == ([], 0)

    async def test_breaks_ties_by_id_when_sagas_were_created_at_the_same_instant(
        self, store: SagaStore
    ) -> None:
        for saga_id in ("b", "c", "a"):
            await store.create(a_saga(saga_id, created_at=AT))

        found, _ = await store.find(SagaQuery(limit=2))

        assert [s.saga_id for s in found] == ["c", "b"]

    async def test_has_exactly_one_winner_when_twenty_workers_claim_the_same_saga(
        self, store: SagaStore
    ) -> None:
        await store.create(a_saga("s-1", fencing_token=1))

        results = await asyncio.gather(
            *(store.claim(f"w-{n}", NOW_MS, LEASE_MS, saga_types=ORDER) for n in range(20))
        )

        winners = [state for state in results if state is not None]
        stored = await store.get("s-1")
        assert len(winners) == 1
        assert stored is not None
        assert (stored.lease_owner, stored.fencing_token, stored.version) == (winners[0].lease_owner, 2, 1)


class TestInMemorySagaStore(SagaStoreSpec):
    @pytest.fixture
    def store(self) -> SagaStore:
        return InMemorySagaStore()


class TestMongoSagaStore(SagaStoreSpec):
    @pytest.fixture
    async def store(self, mongo_db: AsyncDatabase[dict[str, Any]]) -> SagaStore:
        store = MongoSagaStore(mongo_db["sagas"])
        await store.create_indexes()
        return store
