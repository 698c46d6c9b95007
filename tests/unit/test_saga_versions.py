"""Definition versions: a rolling upgrade that changes a saga's steps, with sagas in flight.

The scenarios take a store, so the Mongo integration tests run them too
(tests/integration/test_saga_mongo.py).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from ecommerce_saga.saga import (
    AttemptStatus,
    ErrorCode,
    EventKind,
    HistoryEntry,
    Phase,
    Saga,
    SagaDefinitionError,
    SagaEngine,
    SagaEvent,
    SagaQuery,
    SagaState,
    SagaStatus,
    SagaStep,
    SagaStore,
    StepContext,
    UnknownDefinitionError,
)
from ecommerce_saga.saga.stores.memory import InMemorySagaStore
from ecommerce_saga.saga.testing import SimulatedCrash
from tests.waiting import eventually

Action = Callable[[StepContext], Awaitable[dict[str, str]]]


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class Events:
    def __init__(self) -> None:
        self.seen: list[SagaEvent] = []

    def notify(self, event: SagaEvent) -> None:
        self.seen.append(event)

    def of(self, kind: EventKind) -> list[str]:
        return [e.saga_id for e in self.seen if e.kind is kind]


class Trip:
    """The trip sagas of two releases; every effect lands in `done` as (saga, step)."""

    def __init__(self, *, crash_at: str | None = None) -> None:
        self.done: list[tuple[str, str]] = []
        self.crash_at = crash_at

    def _step(self, name: str) -> SagaStep:
        async def action(ctx: StepContext) -> dict[str, str]:
            if name == self.crash_at:  # the process dies while this step runs
                raise SimulatedCrash(name)
            self.done.append((ctx.saga_id, name))
            return {"booked": name}

        async def undo(ctx: StepContext) -> None:
            self.done.append((ctx.saga_id, f"undo {name}"))

        return SagaStep(name, action, undo)

    def v1(self) -> Saga:
        return Saga("trip", [self._step(n) for n in ("book_flight", "book_hotel", "book_car")], version=1)

    def v2(self) -> Saga:
        """The next release: no flight any more, and an insurance at the end."""
        return Saga("trip", [self._step(n) for n in ("book_hotel", "book_car", "buy_insurance")], version=2)


def engine(store: SagaStore, clock: Clock, *definitions: Saga, **options: Any) -> SagaEngine:
    options.setdefault("observers", [])
    return SagaEngine(store, definitions, clock=clock, lease_seconds=15, **options)


async def crash_v1_sagas(store: SagaStore, clock: Clock, saga_ids: list[str]) -> None:
    """A v1 process books the flights, then dies while booking the hotels."""
    old = engine(store, clock, Trip(crash_at="book_hotel").v1())
    for saga_id in saga_ids:
        await old.start("trip", {}, saga_id=saga_id)
    await eventually(lambda: not any(old.is_running_here(saga_id) for saga_id in saga_ids))
    for saga_id in saga_ids:
        state = await old.get(saga_id)
        entry = state.open_entry()
        assert entry is not None
        assert (state.status, entry.step, state.definition_version) == (SagaStatus.RUNNING, "book_hotel", 1)
    await old.stop()
    clock.now += 20  # its leases expire


async def finishes_v1_sagas_on_v1_steps_and_starts_new_ones_on_v2(store: SagaStore) -> None:
    clock = Clock()
    await crash_v1_sagas(store, clock, ["old-1", "old-2"])
    trip = Trip()
    both = engine(store, clock, trip.v1(), trip.v2())

    assert await both.recover_once() == 2
    old = [await both.wait(saga_id, timeout=5) for saga_id in ("old-1", "old-2")]
    await both.start("trip", {}, saga_id="new-1")
    new = await both.wait("new-1", timeout=5)
    await both.stop()

    for state in old:
        assert state.status is SagaStatus.COMPLETED
        assert list(state.outputs) == ["book_flight", "book_hotel", "book_car"]
        assert state.definition_version == 1
    assert [step for saga, step in trip.done if saga == "old-1"] == ["book_hotel", "book_car"]
    assert new.status is SagaStatus.COMPLETED
    assert (new.definition_version, new.definition_fingerprint) == (2, trip.v2().fingerprint)
    assert list(new.outputs) == ["book_hotel", "book_car", "buy_insurance"]


async def leaves_v1_sagas_alone_then_parks_them_on_a_v2_only_worker(store: SagaStore) -> None:
    clock = Clock()
    await crash_v1_sagas(store, clock, ["old-1", "old-2"])
    trip, events = Trip(), Events()
    new_only = engine(store, clock, trip.v2(), observers=[events], unknown_definition_park_after=60)

    assert await new_only.recover_once() == 0
    assert await new_only.recover_once() == 0  # reported once per saga, not once per pass
    untouched = [await store.get(saga_id) for saga_id in ("old-1", "old-2")]
    clock.now += 61
    assert await new_only.recover_once() == 0
    parked = [await new_only.get(saga_id) for saga_id in ("old-1", "old-2")]
    await new_only.stop()

    assert trip.done == []  # nothing ran: not book_car at index 1, not any compensation
    assert sorted(events.of(EventKind.DEFINITION_MISSING)) == ["old-1", "old-2"]
    for state in untouched:
        assert state is not None
        assert state.status is SagaStatus.RUNNING
        assert state.lease_owner != new_only.worker_id
    for state in parked:
        assert state.status is SagaStatus.REQUIRES_ATTENTION
        assert state.parked_from is SagaStatus.RUNNING
        assert state.failure is not None
        assert state.failure.code == ErrorCode.UNKNOWN_DEFINITION
        hotel = [e for e in state.history if e.step == "book_hotel"]
        assert (hotel[-1].status, hotel[-1].error.code if hotel[-1].error else None) == (
            AttemptStatus.FAILED,
            ErrorCode.UNKNOWN_DEFINITION,
        )
    assert sorted(events.of(EventKind.SAGA_PARKED)) == ["old-1", "old-2"]
    assert new_only.awaiting_definition == 0

    # an operator deploys a worker with v1 again and resumes them: they finish on v1's steps
    both = engine(store, clock, trip.v1(), trip.v2())
    resumed = await both.resume("old-1", actor="ops", reason="v1 is back")
    done = await both.wait(resumed.saga_id, timeout=5)
    await both.stop()
    assert done.status is SagaStatus.COMPLETED
    assert list(done.outputs) == ["book_flight", "book_hotel", "book_car"]


async def refuses_a_changed_definition_under_an_unchanged_version(store: SagaStore) -> None:
    clock = Clock()
    await crash_v1_sagas(store, clock, ["old-1"])
    changed = Saga("trip", Trip().v2().steps, version=1)  # v2's steps, still called version 1

    with pytest.raises(SagaDefinitionError, match=r"'trip' version 1 .* bump its version \(to 2\)"):
        await engine(store, clock, changed).start_background()
    state = await store.get("old-1")
    assert state is not None
    assert state.status is SagaStatus.RUNNING  # nothing ran


async def test_finishes_v1_sagas_on_v1_steps_and_starts_new_ones_on_v2() -> None:
    await finishes_v1_sagas_on_v1_steps_and_starts_new_ones_on_v2(InMemorySagaStore())


async def test_leaves_v1_sagas_alone_then_parks_them_on_a_v2_only_worker() -> None:
    await leaves_v1_sagas_alone_then_parks_them_on_a_v2_only_worker(InMemorySagaStore())


async def test_refuses_a_changed_definition_under_an_unchanged_version() -> None:
    await refuses_a_changed_definition_under_an_unchanged_version(InMemorySagaStore())


async def test_resumes_a_saga_stored_before_versions_on_version_1() -> None:
    store, clock, trip = InMemorySagaStore(), Clock(), Trip()
    legacy = SagaState(
        saga_id="legacy", saga_type="trip", outputs={"book_flight": {"booked": "f"}}, current_step=1
    )
    legacy.history.append(HistoryEntry(step="book_hotel", phase=Phase.ACTION))  # in flight when it stopped
    await store.create(legacy)
    both = engine(store, clock, trip.v1(), trip.v2())

    await both.check_definitions()
    assert await both.recover_once() == 1
    done = await both.wait("legacy", timeout=5)
    await both.stop()

    assert done.status is SagaStatus.COMPLETED
    assert list(done.outputs) == ["book_flight", "book_hotel", "book_car"]
    assert done.definition_version is None  # stored as it was: it runs on version 1
    definition = both.definition_for(done)
    assert definition is not None
    assert definition.ref == trip.v1().ref


async def test_refuses_to_resume_or_cancel_a_saga_whose_version_is_not_registered() -> None:
    store, clock = InMemorySagaStore(), Clock()
    await crash_v1_sagas(store, clock, ["old-1"])
    new_only = engine(store, clock, Trip().v2())

    with pytest.raises(UnknownDefinitionError, match="version 1"):
        await new_only.cancel("old-1", actor="ops", reason="test")
    found, _ = await new_only.find(SagaQuery(statuses=[SagaStatus.RUNNING]))
    assert [s.saga_id for s in found] == ["old-1"]


def test_rejects_the_same_version_registered_twice() -> None:
    with pytest.raises(SagaDefinitionError, match="version 2 is defined twice"):
        SagaEngine(InMemorySagaStore(), [Trip().v2(), Trip().v2()])


def test_fingerprint_changes_with_step_names_kinds_and_order_only() -> None:
    trip = Trip()
    v1 = trip.v1()
    steps = list(v1.steps)

    assert Saga("trip", steps, version=5).fingerprint == v1.fingerprint
    assert Saga("trip", steps[::-1]).fingerprint != v1.fingerprint
    assert Saga("trip", steps[:2]).fingerprint != v1.fingerprint
    assert Saga("trip", [*steps[:2], SagaStep("book_car", steps[2].action)]).fingerprint == v1.fingerprint
