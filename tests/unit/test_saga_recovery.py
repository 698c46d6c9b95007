"""Leases, fencing and recovery on the in-memory store: two engines sharing one store."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

from ecommerce_saga.saga import (
    AttemptStatus,
    EventKind,
    Phase,
    Saga,
    SagaEngine,
    SagaQuery,
    SagaState,
    SagaStatus,
    SagaStep,
    StepContext,
)
from ecommerce_saga.saga.stores.memory import InMemorySagaStore
from ecommerce_saga.saga.testing import (
    DO,
    UNDO,
    FaultPlan,
    InMemoryLedger,
    SimulatedCrash,
    assert_invariants,
    scripted_saga,
)
from tests.unit.conftest import FakeClock, MakeEngine, Recorder, crash_then_recover
from tests.waiting import eventually

STEPS = ["reserve", "charge", "ship", "notify"]


def _hold_first_attempt(saga: Saga, step_name: str, release: asyncio.Event, entered: asyncio.Event) -> Saga:
    """The step's first attempt waits for `release`; later attempts (another worker's) do not."""
    index = saga.step_index(step_name)
    step = saga.steps[index]

    async def action(ctx: StepContext) -> Any:
        if ctx.attempt == 1:
            entered.set()
            await release.wait()
        return await step.action(ctx)

    steps: list[SagaStep] = list(saga.steps)
    steps[index] = replace(step, action=action, timeout=10)
    return replace(saga, steps=steps)


def _attempts(
    state: SagaState, step: str, phase: Phase
) -> list[tuple[int, AttemptStatus, str | None, str | None]]:
    return [
        (e.attempt, e.status, e.error.code if e.error else None, e.worker)
        for e in state.history
        if e.step == step and e.phase is phase
    ]


async def test_claims_only_after_the_lease_expires_when_another_engine_holds_it(
    make_engine: MakeEngine,
) -> None:
    ledger, release, entered = InMemoryLedger(), asyncio.Event(), asyncio.Event()
    saga = _hold_first_attempt(scripted_saga("order", STEPS, ledger), "charge", release, entered)
    clock = FakeClock()
    first = make_engine(saga, worker_id="worker-a", lease_seconds=15)
    second = make_engine(saga, worker_id="worker-b", lease_seconds=15, clock=clock)
    await first.start("order", {}, saga_id="s-1")
    await asyncio.wait_for(entered.wait(), 5)

    claimed_while_live = await second.recover_once()
    clock.advance(16)
    claimed_after_expiry = await second.recover_once()
    final = await second.wait("s-1", timeout=5)

    assert claimed_while_live == 0
    assert claimed_after_expiry == 1
    assert final.status is SagaStatus.COMPLETED
    assert final.lease_owner == "worker-b"
    assert final.fencing_token == 2
    assert _attempts(final, "charge", Phase.ACTION) == [
        (1, AttemptStatus.FAILED, "saga.interrupted", "worker-a"),
        (2, AttemptStatus.SUCCEEDED, None, "worker-b"),
    ]
    release.set()


async def test_stops_without_touching_the_saga_when_its_lease_was_taken(make_engine: MakeEngine) -> None:
    ledger, release, entered = InMemoryLedger(), asyncio.Event(), asyncio.Event()
    saga = _hold_first_attempt(scripted_saga("order", STEPS, ledger), "charge", release, entered)
    clock, loser = FakeClock(), Recorder()
    first = make_engine(saga, worker_id="worker-a", observers=[loser])
    second = make_engine(saga, worker_id="worker-b", clock=clock)
    await first.start("order", {}, saga_id="s-1")
    await asyncio.wait_for(entered.wait(), 5)
    clock.advance(60)
    assert await second.recover_once() == 1
    taken_over = await second.wait("s-1", timeout=5)

    release.set()  # the first worker's attempt finishes late and tries to record its result
    await eventually(lambda: EventKind.LEASE_LOST in loser.kinds())
    await eventually(lambda: not first.is_running_here("s-1"))

    final = await second.get("s-1")
    assert taken_over.status is SagaStatus.COMPLETED
    assert final.version == taken_over.version
    assert final.history == taken_over.history
    assert loser.kinds()[-1] is EventKind.LEASE_LOST
    assert ledger.duplicates == 1  # the late attempt reused the key, so its effect was not doubled
    assert_invariants(final, saga, await ledger.effects("s-1"))


async def test_reruns_the_in_flight_step_under_the_same_key_when_recovering_after_a_crash(
    make_engine: MakeEngine,
) -> None:
    ledger = InMemoryLedger()
    saga = scripted_saga("order", STEPS, ledger, FaultPlan().crash_after("charge"))
    keys: list[tuple[int, str]] = []
    charge = saga.steps[1]

    async def keyed_charge(ctx: StepContext) -> Any:
        keys.append((ctx.attempt, ctx.idempotency_key))
        return await charge.action(ctx)

    saga = replace(saga, steps=[saga.steps[0], replace(charge, action=keyed_charge), *saga.steps[2:]])

    recovered = await crash_then_recover(make_engine, saga)
    stuck, claimed, final = recovered.stuck, recovered.claimed, recovered.final

    assert stuck.status is SagaStatus.RUNNING
    assert stuck.history[-1].status is AttemptStatus.STARTED
    assert claimed == 1
    assert final.status is SagaStatus.COMPLETED
    assert _attempts(final, "charge", Phase.ACTION) == [
        (1, AttemptStatus.FAILED, "saga.interrupted", "worker-a"),
        (2, AttemptStatus.SUCCEEDED, None, "worker-b"),
    ]
    assert keys == [(1, "s-1:charge"), (2, "s-1:charge")]
    assert final.outputs["charge"] == {"step": "charge", "applied": False}  # already applied
    assert ledger.duplicates == 1
    assert_invariants(final, saga, await ledger.effects("s-1"))


async def test_finishes_compensating_when_the_worker_crashed_while_undoing(make_engine: MakeEngine) -> None:
    ledger = InMemoryLedger()
    saga = scripted_saga("order", STEPS, ledger, FaultPlan().fail_permanently("ship"))
    charge = saga.steps[1]
    assert charge.compensation is not None
    undo, crashes = charge.compensation, [1]

    async def crashing_undo(ctx: StepContext) -> Any:
        await undo(ctx)
        if crashes:
            crashes.pop()
            raise SimulatedCrash("crash after undoing charge")

    saga = replace(saga, steps=[saga.steps[0], replace(charge, compensation=crashing_undo), *saga.steps[2:]])

    recovered = await crash_then_recover(make_engine, saga)
    final = recovered.final

    assert recovered.claimed == 1

    assert final.status is SagaStatus.COMPENSATED
    assert [a[:3] for a in _attempts(final, "charge", Phase.COMPENSATION)] == [
        (1, AttemptStatus.FAILED, "saga.interrupted"),
        (2, AttemptStatus.SUCCEEDED, None),
    ]
    effects = await ledger.effects("s-1")
    assert [(e.step, e.kind) for e in effects][-2:] == [("charge", UNDO), ("reserve", UNDO)]
    assert [e.key for e in effects if e.kind == UNDO] == ["s-1:charge:compensate", "s-1:reserve:compensate"]
    assert_invariants(final, saga, effects)


async def test_leaves_sagas_alone_when_their_type_is_not_registered(make_engine: MakeEngine) -> None:
    ledger = InMemoryLedger()
    saga = scripted_saga("order", STEPS, ledger, FaultPlan().crash_after("reserve"))
    clock = FakeClock()
    crashed = make_engine(saga, worker_id="worker-a")
    other = make_engine(scripted_saga("returns", ["refund"], ledger), worker_id="worker-b", clock=clock)
    await crashed.start("order", {}, saga_id="s-1")
    await eventually(lambda: not crashed.is_running_here("s-1"))

    clock.advance(60)

    assert await other.recover_once() == 0
    assert (await other.get("s-1")).lease_owner == "worker-a"


async def test_hands_the_saga_over_at_once_when_its_engine_stops(make_engine: MakeEngine) -> None:
    ledger, release, entered = InMemoryLedger(), asyncio.Event(), asyncio.Event()
    saga = _hold_first_attempt(scripted_saga("order", STEPS, ledger), "charge", release, entered)
    leaving = make_engine(saga, worker_id="worker-a")
    staying = make_engine(saga, worker_id="worker-b")  # real clock: the lease has not expired
    await leaving.start("order", {}, saga_id="s-1")
    await asyncio.wait_for(entered.wait(), 5)

    await leaving.stop()
    claimed = await staying.recover_once()
    final = await staying.wait("s-1", timeout=5)

    assert claimed == 1
    assert final.status is SagaStatus.COMPLETED
    assert_invariants(final, saga, await ledger.effects("s-1"))


async def test_keeps_the_lease_when_a_step_outlasts_it(make_engine: MakeEngine) -> None:
    ledger, release, entered = InMemoryLedger(), asyncio.Event(), asyncio.Event()
    saga = _hold_first_attempt(scripted_saga("order", STEPS, ledger), "charge", release, entered)
    holder = make_engine(saga, worker_id="worker-a", lease_seconds=0.6)
    rival = make_engine(saga, worker_id="worker-b", lease_seconds=0.6)
    await holder.start("order", {}, saga_id="s-1")
    await asyncio.wait_for(entered.wait(), 5)

    claims = 0
    until = time.monotonic() + 1.5  # two and a half leases: only the heartbeat keeps it
    while time.monotonic() < until:
        claims += await rival.recover_once()
        await asyncio.sleep(0.02)
    release.set()
    final = await holder.wait("s-1", timeout=5)

    assert claims == 0
    assert final.status is SagaStatus.COMPLETED
    assert {e.worker for e in final.history} == {"worker-a"}
    assert [(e.step, e.kind) for e in await ledger.effects("s-1")] == [(s, DO) for s in STEPS]


async def test_stops_the_step_when_the_heartbeat_finds_the_lease_taken(make_engine: MakeEngine) -> None:
    ledger, release, entered = InMemoryLedger(), asyncio.Event(), asyncio.Event()
    saga = _hold_first_attempt(scripted_saga("order", STEPS, ledger), "charge", release, entered)
    clock, loser = FakeClock(), Recorder()
    holder = make_engine(saga, worker_id="worker-a", lease_seconds=0.3, observers=[loser])
    rival = make_engine(saga, worker_id="worker-b", lease_seconds=0.3, clock=clock)
    await holder.start("order", {}, saga_id="s-1")
    await asyncio.wait_for(entered.wait(), 5)

    clock.advance(60)
    assert await rival.recover_once() == 1
    await eventually(lambda: not holder.is_running_here("s-1"))  # the next renewal fails
    final = await rival.wait("s-1", timeout=5)
    release.set()

    assert final.status is SagaStatus.COMPLETED
    assert ledger.duplicates == 0  # the first worker's attempt was stopped before its effect
    assert EventKind.LEASE_LOST in loser.kinds()
    assert_invariants(final, saga, await ledger.effects("s-1"))


async def test_recovers_a_backlog_larger_than_one_pass_without_waiting_an_interval_per_batch(
    make_engine: MakeEngine, store: InMemorySagaStore
) -> None:
    ledger = InMemoryLedger()
    saga = scripted_saga("order", STEPS, ledger)
    backlog = 2 * SagaEngine.RECOVERY_BATCH + 10
    for number in range(backlog):  # sagas a dead worker left RUNNING with an expired lease
        await store.create(
            SagaState(saga_id=f"s-{number}", saga_type="order", lease_owner="dead", lease_expires_at_ms=1)
        )
    recovering = make_engine(saga, worker_id="worker-b", recovery_interval=3600)

    async def all_completed() -> bool:
        _, total = await store.find(SagaQuery(statuses=[SagaStatus.COMPLETED], limit=1))
        return total == backlog

    await recovering.start_background()
    await eventually(all_completed, timeout=20)
