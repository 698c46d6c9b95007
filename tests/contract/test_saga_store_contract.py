"""One `SagaStore` spec, run against every store: in memory and MongoDB."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from ecommerce_saga.saga import (
    AttemptStatus,
    ConcurrencyError,
    DefinitionRef,
    ErrorInfo,
    HistoryEntry,
    Phase,
    SagaExpectation,
    SagaQuery,
    SagaState,
    SagaStatus,
    SagaStore,
)
from ecommerce_saga.saga.stores.memory import InMemorySagaStore
from ecommerce_saga.saga.stores.mongo import MongoSagaStore
from tests.commands import Started

AT = datetime(2025, 3, 1, 12, 30, 15, 123000, tzinfo=UTC)  # millisecond precision, as MongoDB keeps
NOW_MS = 1_000_000
LEASE_MS = 1_000
ORDER = [DefinitionRef("order", 1, "fp-order-1")]


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

    async def test_saves_as_save_does_and_reports_no_writes_made_when_saving_with_none(
        self, store: SagaStore
    ) -> None:
        assert await store.create_and_write(a_saga("s-1"), []) == (True, False)
        assert await store.create_and_write(a_saga("s-1"), []) == (False, False)  # it exists
        read = await store.get("s-1")
        assert read is not None

        saved, made = await store.save_and_write(read.model_copy(update={"current_step": 1}), [])
        with pytest.raises(ConcurrencyError):  # stale, as `save` would refuse it
            await store.save_and_write(read.model_copy(update={"current_step": 9}), [])

        stored = await store.get("s-1")
        assert (saved.version, made) == (1, False)
        assert stored is not None
        assert (stored.version, stored.current_step) == (1, 1)

    async def test_rejects_a_save_when_the_saga_does_not_exist(self, store: SagaStore) -> None:
        with pytest.raises(ConcurrencyError):
            await store.save(a_saga("missing"))

    async def test_keeps_the_existing_ones_when_many_sagas_are_created_at_once(
        self, store: SagaStore
    ) -> None:
        for n in range(0, 12, 4):
            await store.create(a_saga(f"s-{n}", input={"first": True}))

        created = await asyncio.gather(*(store.create(a_saga(f"s-{n}", input={"n": n})) for n in range(12)))

        assert [n for n, fresh in enumerate(created) if not fresh] == [0, 4, 8]
        for n in range(12):
            stored = await store.get(f"s-{n}")
            assert stored is not None
            assert stored.input == ({"first": True} if n % 4 == 0 else {"n": n})

    async def test_creates_one_when_the_same_saga_is_created_twice_at_once(self, store: SagaStore) -> None:
        created = await asyncio.gather(*(store.create(a_saga("s-1", input={"n": n})) for n in range(2)))

        stored = await store.get("s-1")
        assert sorted(created) == [False, True]
        assert stored is not None
        assert stored.input == {"n": created.index(True)}

    async def test_stores_every_one_when_many_sagas_are_saved_at_once(self, store: SagaStore) -> None:
        for n in range(30):
            await store.create(a_saga(f"s-{n}", fencing_token=1))
        read = [await store.get(f"s-{n}") for n in range(30)]

        saved = await asyncio.gather(
            *(
                store.save(state.model_copy(update={"current_step": n}))
                for n, state in enumerate(read)
                if state
            )
        )

        assert [(s.saga_id, s.version, s.current_step) for s in saved] == [
            (f"s-{n}", 1, n) for n in range(30)
        ]
        for n in range(30):
            stored = await store.get(f"s-{n}")
            assert stored is not None
            assert (stored.version, stored.current_step) == (1, n)

    async def test_rejects_only_the_stale_saves_when_many_sagas_are_saved_at_once(
        self, store: SagaStore
    ) -> None:
        for n in range(12):
            await store.create(a_saga(f"s-{n}", fencing_token=1))
        read = [state for n in range(12) if (state := await store.get(f"s-{n}")) is not None]
        for state in read[::3]:  # another writer got there first: a new version
            await store.save(state.model_copy(update={"current_step": 7}))
        for state in read[1::3]:  # another worker claimed it: a new fencing token
            await store.take_over(
                state.saga_id, "w-2", NOW_MS, LEASE_MS, expect=SagaExpectation(state.status)
            )

        outcomes = await asyncio.gather(
            *(store.save(state.model_copy(update={"current_step": 1})) for state in read),
            return_exceptions=True,
        )

        fresh = [n for n, outcome in enumerate(outcomes) if isinstance(outcome, SagaState)]
        stale = [n for n, outcome in enumerate(outcomes) if isinstance(outcome, ConcurrencyError)]
        assert (fresh, stale) == (list(range(2, 12, 3)), [n for n in range(12) if n % 3 != 2])
        for n, state in enumerate(read):
            stored = await store.get(state.saga_id)
            assert stored is not None
            expected = {0: (1, 7, 1), 1: (1, 0, 2), 2: (1, 1, 1)}[n % 3]
            assert (stored.version, stored.current_step, stored.fencing_token) == expected

    async def test_round_trips_every_field_when_many_sagas_are_saved_at_once(self, store: SagaStore) -> None:
        ids = [f"s-full-{n}" for n in range(5)]
        for saga_id in ids:
            await store.create(a_saga(saga_id, fencing_token=3))
        states = [every_field_set().model_copy(update={"saga_id": saga_id}) for saga_id in ids]

        saved = await asyncio.gather(*(store.save(state) for state in states))

        for state, one in zip(states, saved, strict=True):
            assert await store.get(state.saga_id) == one == state.model_copy(update={"version": 1})

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

        claimed = [await store.claim_expired("w-1", NOW_MS, LEASE_MS, definitions=ORDER) for _ in range(3)]

        ids = [state.saga_id if state else None for state in claimed]
        assert ids == ["compensating-expired", "running-expired", None]  # longest expired first

    async def test_bumps_version_and_fencing_token_when_claiming(self, store: SagaStore) -> None:
        await store.create(a_saga("s-1", version=0, fencing_token=1, lease_owner="w-0"))

        claimed = await store.claim_expired("w-1", NOW_MS, LEASE_MS, definitions=ORDER)

        stored = await store.get("s-1")
        assert claimed is not None
        assert (claimed.version, claimed.fencing_token) == (1, 2)
        assert (claimed.lease_owner, claimed.lease_expires_at_ms) == ("w-1", NOW_MS + LEASE_MS)
        assert stored == claimed
        assert await store.claim_expired("w-2", NOW_MS, LEASE_MS, definitions=ORDER) is None  # now live

    @pytest.mark.parametrize(
        "fields",
        [
            {"lease_expires_at_ms": NOW_MS + 5_000, "lease_owner": "w-0"},
            {"status": SagaStatus.COMPLETED},
            {"status": SagaStatus.REQUIRES_ATTENTION},
            {"saga_type": "returns"},
            {"definition_version": 7, "definition_fingerprint": "unknown"},
        ],
    )
    async def test_takes_the_lease_whatever_the_lease_and_type_when_taking_over(
        self, store: SagaStore, fields: dict[str, Any]
    ) -> None:
        await store.create(a_saga("s-1", fencing_token=5, **fields))
        status = fields.get("status", SagaStatus.RUNNING)

        taken = await store.take_over("s-1", "ops", NOW_MS, LEASE_MS, expect=SagaExpectation(status))

        assert taken is not None
        assert (taken.lease_owner, taken.fencing_token, taken.version) == ("ops", 6, 1)

    @pytest.mark.parametrize(
        "expect",
        [
            SagaExpectation(SagaStatus.COMPENSATING),
            SagaExpectation(SagaStatus.RUNNING, current_step=3),
            SagaExpectation(SagaStatus.RUNNING, lease_expired_by=NOW_MS),
        ],
    )
    async def test_leaves_the_saga_alone_when_it_is_not_as_expected(
        self, store: SagaStore, expect: SagaExpectation
    ) -> None:
        await store.create(a_saga("s-1", current_step=2, lease_expires_at_ms=NOW_MS + 5, lease_owner="w-0"))

        assert await store.take_over("s-1", "ops", NOW_MS, LEASE_MS, expect=expect) is None
        stored = await store.get("s-1")
        assert stored is not None
        assert (stored.lease_owner, stored.version) == ("w-0", 0)

    async def test_takes_over_when_the_saga_is_as_expected(self, store: SagaStore) -> None:
        await store.create(a_saga("s-1", current_step=2, lease_expires_at_ms=NOW_MS - 5))
        expect = SagaExpectation(SagaStatus.RUNNING, current_step=2, lease_expired_by=NOW_MS)

        taken = await store.take_over("s-1", "ops", NOW_MS, LEASE_MS, expect=expect)

        assert taken is not None
        assert taken.lease_owner == "ops"

    async def test_returns_none_when_taking_over_an_unknown_id(self, store: SagaStore) -> None:
        expect = SagaExpectation(SagaStatus.RUNNING)
        assert await store.take_over("x", "ops", NOW_MS, LEASE_MS, expect=expect) is None

    async def test_claims_only_sagas_of_a_registered_version_and_fingerprint(self, store: SagaStore) -> None:
        v1, v2 = DefinitionRef("trip", 1, "fp-1"), DefinitionRef("trip", 2, "fp-2")
        for saga_id, version, fingerprint, expiry in [
            ("legacy", None, None, 1),  # stored before definitions had versions: runs on v1
            ("v1", 1, "fp-1", 2),
            ("v2", 2, "fp-2", 3),
            ("v2-other-steps", 2, "fp-x", 4),
            ("v3", 3, "fp-3", 5),
        ]:
            await store.create(
                a_saga(
                    saga_id,
                    saga_type="trip",
                    definition_version=version,
                    definition_fingerprint=fingerprint,
                    lease_expires_at_ms=expiry,
                )
            )

        by_v2_only = await store.claim_expired("w-2", NOW_MS, LEASE_MS, definitions=[v2])
        nothing_else = await store.claim_expired("w-2", NOW_MS, LEASE_MS, definitions=[v2])
        by_v1 = [await store.claim_expired("w-1", NOW_MS, LEASE_MS, definitions=[v1, v2]) for _ in range(3)]

        assert by_v2_only is not None
        assert by_v2_only.saga_id == "v2"
        assert nothing_else is None
        assert [s.saga_id if s else None for s in by_v1] == ["legacy", "v1", None]

    async def test_claims_and_finds_past_more_expired_sagas_than_one_read_takes(
        self, store: SagaStore
    ) -> None:
        v1, v2 = DefinitionRef("trip", 1, "fp-1"), DefinitionRef("trip", 2, "fp-2")
        # More than a store may read at once: the earliest expiries all RUNNING, then COMPENSATING
        # ones, then many that expired at the same instant (a worker that released its leases).
        foreign = (
            [(f"v1-a{n:03}", SagaStatus.RUNNING, n) for n in range(40)]
            + [(f"v1-b{n:03}", SagaStatus.COMPENSATING, 40 + n) for n in range(30)]
            + [(f"v1-c{n:03}", SagaStatus.RUNNING, 100) for n in range(35)]
        )
        for saga_id, status, expiry in foreign:
            await store.create(
                a_saga(
                    saga_id,
                    saga_type="trip",
                    definition_version=1,
                    definition_fingerprint="fp-1",
                    status=status,
                    lease_expires_at_ms=expiry,
                )
            )
        await store.create(
            a_saga("v2-last", saga_type="trip", definition_version=2, definition_fingerprint="fp-2",
                   lease_expires_at_ms=1_000)
        )  # fmt: skip

        claimed = await store.claim_expired("w-2", NOW_MS, LEASE_MS, definitions=[v2])
        unrunnable = await store.find_unrunnable(NOW_MS, definitions=[v2], limit=200)
        by_v1 = await store.claim_expired("w-1", NOW_MS, LEASE_MS, definitions=[v1])

        assert claimed is not None
        assert claimed.saga_id == "v2-last"
        assert [s.saga_id for s in unrunnable] == [saga_id for saga_id, _, _ in foreign]  # by expiry
        assert by_v1 is not None
        assert by_v1.saga_id == "v1-a000"

    async def test_finds_expired_sagas_that_no_registered_definition_runs(self, store: SagaStore) -> None:
        v1, v2 = DefinitionRef("trip", 1, "fp-1"), DefinitionRef("trip", 2, "fp-2")
        for saga_id, version, status, expiry in [
            ("legacy", None, SagaStatus.RUNNING, 1),
            ("v1", 1, SagaStatus.COMPENSATING, 2),
            ("v2", 2, SagaStatus.RUNNING, 3),
            ("v1-live", 1, SagaStatus.RUNNING, NOW_MS + 5_000),
            ("v1-parked", 1, SagaStatus.REQUIRES_ATTENTION, 0),
        ]:
            fingerprint = None if version is None else f"fp-{version}"
            await store.create(
                a_saga(
                    saga_id,
                    saga_type="trip",
                    definition_version=version,
                    definition_fingerprint=fingerprint,
                    status=status,
                    lease_expires_at_ms=expiry,
                )
            )

        found = await store.find_unrunnable(NOW_MS, definitions=[v2], limit=10)
        first = await store.find_unrunnable(NOW_MS, definitions=[v2], limit=1)
        none = await store.find_unrunnable(NOW_MS, definitions=[v1, v2], limit=10)

        assert [s.saga_id for s in found] == ["legacy", "v1"]
        assert [s.saga_id for s in first] == ["legacy"]
        assert none == []

    async def test_lists_the_fingerprints_unfinished_sagas_recorded_for_a_version(
        self, store: SagaStore
    ) -> None:
        for n, (version, fingerprint, status) in enumerate(
            [
                (1, "fp-a", SagaStatus.RUNNING),
                (1, "fp-b", SagaStatus.REQUIRES_ATTENTION),
                (1, "fp-c", SagaStatus.COMPLETED),
                (1, "fp-d", SagaStatus.COMPENSATED),
                (2, "fp-e", SagaStatus.COMPENSATING),
            ]
        ):
            await store.create(
                a_saga(
                    f"s-{n}", definition_version=version, definition_fingerprint=fingerprint, status=status
                )
            )
        await store.create(a_saga("legacy"))

        assert await store.fingerprints("order", 1) == {"fp-a", "fp-b"}
        assert await store.fingerprints("order", 2) == {"fp-e"}
        assert await store.fingerprints("returns", 1) == set()

    async def test_extends_the_lease_without_a_new_version_when_the_holder_renews(
        self, store: SagaStore
    ) -> None:
        await store.create(a_saga("s-1"))
        claimed = await store.claim_expired("w-1", NOW_MS, LEASE_MS, definitions=ORDER)
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
        first = await store.claim_expired("w-1", NOW_MS, LEASE_MS, definitions=ORDER)
        assert first is not None
        later = NOW_MS + 2 * LEASE_MS
        second = await store.claim_expired("w-2", later, LEASE_MS, definitions=ORDER)
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
        claimed = await store.claim_expired("w-1", NOW_MS, LEASE_MS, definitions=ORDER)
        assert claimed is not None

        await store.release("s-1", "w-1", claimed.fencing_token)
        reclaimed = await store.claim_expired("w-2", NOW_MS + 1, LEASE_MS, definitions=ORDER)

        assert reclaimed is not None
        assert (reclaimed.lease_owner, reclaimed.fencing_token) == ("w-2", claimed.fencing_token + 1)

    async def test_ignores_a_release_when_not_the_holder_or_the_token_is_stale(
        self, store: SagaStore
    ) -> None:
        await store.create(a_saga("s-1"))
        claimed = await store.claim_expired("w-1", NOW_MS, LEASE_MS, definitions=ORDER)
        assert claimed is not None

        await store.release("s-1", "w-2", claimed.fencing_token)
        await store.release("s-1", "w-1", claimed.fencing_token - 1)
        await store.release("missing", "w-1", 1)

        stored = await store.get("s-1")
        assert stored is not None
        assert stored.lease_expires_at_ms == NOW_MS + LEASE_MS
        assert await store.claim_expired("w-2", NOW_MS + 1, LEASE_MS, definitions=ORDER) is None

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

    async def test_tells_every_sagas_status_when_taking_a_census(self, store: SagaStore) -> None:
        assert await store.statuses() == {}
        for n, status in enumerate((SagaStatus.RUNNING, SagaStatus.COMPLETED, SagaStatus.REQUIRES_ATTENTION)):
            await store.create(a_saga(f"s-{n}", status=status, created_at=AT + timedelta(minutes=n)))

        statuses = await store.statuses()

        assert statuses == {"s-0": "RUNNING", "s-1": "COMPLETED", "s-2": "REQUIRES_ATTENTION"}

    async def test_has_exactly_one_winner_when_twenty_workers_claim_the_same_saga(
        self, store: SagaStore
    ) -> None:
        await store.create(a_saga("s-1", fencing_token=1))

        results = await asyncio.gather(
            *(store.claim_expired(f"w-{n}", NOW_MS, LEASE_MS, definitions=ORDER) for n in range(20))
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

    async def test_reads_expired_sagas_by_equality_on_their_status_alone(
        self, mongo_url: str, db_name: str, mongo_db: AsyncDatabase[dict[str, Any]]
    ) -> None:
        """Recovery's reads are served by the ``status`` index, on MongoDB and on the embedded
        server, which reads the whole collection for ``$in``, ``$or``, ``$nor`` and ``$nin``
        (docs/performance.md, item 32): recovery would read every saga ever stored, every pass."""
        started = Started()
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            mongo_url, tz_aware=True, event_listeners=[started]
        )
        try:
            store = MongoSagaStore(client[db_name]["sagas"])
            await store.create(a_saga("s-old", definition_version=9, lease_expires_at_ms=1))
            await store.create(a_saga("s-ours", lease_expires_at_ms=2))

            claimed = await store.claim_expired("w-1", NOW_MS, LEASE_MS, definitions=ORDER)
            await store.find_unrunnable(NOW_MS, definitions=ORDER, limit=10)
            await store.fingerprints("order", 1)
        finally:
            await client.close()

        assert claimed is not None
        assert claimed.saga_id == "s-ours"
        filters = [dict(c.get("filter", c.get("query", {}))) for c in started.named("find", "findAndModify")]
        scans = [f for f in filters if "_id" not in f]
        assert scans
        for found in scans:
            assert isinstance(found["status"], str), found
            assert not {"$in", "$or", "$nor", "$nin"} & set(found), found

    async def test_reports_a_status_it_does_not_know_as_stored_when_taking_a_census(
        self, mongo_db: AsyncDatabase[dict[str, Any]]
    ) -> None:
        store = MongoSagaStore(mongo_db["sagas"])
        await store.create(a_saga("s-known", status=SagaStatus.COMPENSATED))
        await mongo_db["sagas"].insert_many([{"_id": "s-foreign", "status": "PAUSED"}, {"_id": "s-bare"}])

        statuses = await store.statuses()

        assert statuses == {"s-known": "COMPENSATED", "s-foreign": "PAUSED", "s-bare": None}
