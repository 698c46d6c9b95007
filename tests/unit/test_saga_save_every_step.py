"""`Saga(save_every_step=False)`: past the point of no return, successes wait for the next save.

A pivot's or a retriable step's success is saved with the next save when a retriable step
follows, and a compensation's when another compensation follows. After a crash those steps run
again from the first one not saved, under the same idempotency keys; nothing is undone that
should stand. A shutdown still hands over everything done.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest

from ecommerce_saga.saga import (
    AttemptStatus,
    Phase,
    Saga,
    SagaStatus,
    SagaStep,
    StepContext,
    StepKind,
)
from ecommerce_saga.saga.testing import (
    DO,
    UNDO,
    FaultPlan,
    InMemoryLedger,
    SimulatedCrash,
    assert_invariants,
    scripted_step,
)
from tests.unit.conftest import CountingStore, MakeEngine, attempts_of, crash_then_recover

FORWARD = [("reserve", StepKind.COMPENSATABLE), ("confirm", StepKind.PIVOT), ("pack", StepKind.RETRIABLE),
           ("notify", StepKind.RETRIABLE)]  # fmt: skip


def _saga(ledger: InMemoryLedger, faults: FaultPlan | None = None, *, every_step: bool = False) -> Saga[Any]:
    steps = [scripted_step(name, ledger, faults, kind=kind) for name, kind in FORWARD]
    return Saga("order", steps, save_every_step=every_step)


def _undoable(ledger: InMemoryLedger, faults: FaultPlan, *, every_step: bool = False) -> Saga[Any]:
    steps = [scripted_step(name, ledger, faults) for name in ("reserve", "charge", "ship")]
    return Saga("order", steps, save_every_step=every_step)


@pytest.mark.parametrize(("every_step", "saves"), [(True, 4), (False, 2)])
async def test_saves_a_committed_success_with_the_next_save(
    make_engine: MakeEngine, every_step: bool, saves: int
) -> None:
    store, ledger = CountingStore(), InMemoryLedger()
    engine = make_engine(_saga(ledger, every_step=every_step), store=store)

    await engine.start("order", {}, saga_id="s-1")
    final = await engine.wait("s-1", timeout=5)

    assert final.status is SagaStatus.COMPLETED
    # reserve's success (and confirm STARTED) on its own; then confirm, pack and notify together
    assert store.saves == saves
    assert [(e.step, e.status) for e in final.history] == [
        (name, AttemptStatus.SUCCEEDED) for name, _ in FORWARD
    ]


async def test_runs_the_unsaved_steps_again_after_a_crash(make_engine: MakeEngine) -> None:
    ledger = InMemoryLedger()
    saga = _saga(ledger, FaultPlan().crash_after("notify"))

    recovered = await crash_then_recover(make_engine, saga)
    stuck, final = recovered.stuck, recovered.final

    assert recovered.claimed == 1

    # The store had confirm STARTED: confirm, pack and notify ran again, each under its own key.
    assert [(e.step, e.status) for e in stuck.history][-1] == ("confirm", AttemptStatus.STARTED)
    assert final.status is SagaStatus.COMPLETED
    for step in ("confirm", "pack", "notify"):
        assert [a[:2] for a in attempts_of(final, step, Phase.ACTION)] == [
            *([(1, AttemptStatus.FAILED)] if step == "confirm" else []),
            (2 if step == "confirm" else 1, AttemptStatus.SUCCEEDED),
        ]
    assert attempts_of(final, "reserve", Phase.ACTION) == [(1, AttemptStatus.SUCCEEDED, None)]
    effects = await ledger.effects("s-1")
    assert sorted(e.step for e in effects if e.kind == DO) == ["confirm", "notify", "pack", "reserve"]
    assert ledger.duplicates == 3  # each re-run found its effect already applied
    assert_invariants(final, saga, effects)


@pytest.mark.parametrize(("every_step", "saves"), [(True, 5), (False, 4)])
async def test_saves_a_compensations_success_with_the_next_save(
    make_engine: MakeEngine, every_step: bool, saves: int
) -> None:
    store, ledger = CountingStore(), InMemoryLedger()
    saga = _undoable(ledger, FaultPlan().fail_permanently("ship"), every_step=every_step)
    engine = make_engine(saga, store=store)

    await engine.start("order", {}, saga_id="s-1")
    final = await engine.wait("s-1", timeout=5)

    assert final.status is SagaStatus.COMPENSATED
    # reserve, charge, ship's failure (charge's undo STARTED), [charge's undo], reserve's undo
    assert store.saves == saves
    assert_invariants(final, saga, await ledger.effects("s-1"))


async def test_runs_the_unsaved_compensations_again_after_a_crash(make_engine: MakeEngine) -> None:
    ledger = InMemoryLedger()
    saga = _undoable(ledger, FaultPlan().fail_permanently("ship"))
    reserve = saga.steps[0]
    assert reserve.compensation is not None
    undo_reserve, crashes = reserve.compensation, [1]

    async def undo_then_crash(ctx: StepContext[Any]) -> Any:
        await undo_reserve(ctx)
        if crashes:
            crashes.pop()
            raise SimulatedCrash("crash after undoing reserve")

    saga = replace(saga, steps=[replace(reserve, compensation=undo_then_crash), *saga.steps[1:]])

    recovered = await crash_then_recover(make_engine, saga)
    final = recovered.final

    assert recovered.claimed == 1

    # The store had charge's undo STARTED: both undos ran again; each took effect once.
    assert final.status is SagaStatus.COMPENSATED
    assert [a[:2] for a in attempts_of(final, "charge", Phase.COMPENSATION)] == [
        (1, AttemptStatus.FAILED),
        (2, AttemptStatus.SUCCEEDED),
    ]
    assert [a[:2] for a in attempts_of(final, "reserve", Phase.COMPENSATION)] == [
        (1, AttemptStatus.SUCCEEDED)
    ]
    effects = await ledger.effects("s-1")
    assert sorted(e.step for e in effects if e.kind == UNDO) == ["charge", "reserve"]
    assert_invariants(final, saga, effects)


async def test_hands_over_the_unsaved_successes_when_its_engine_stops(make_engine: MakeEngine) -> None:
    ledger, release, entered = InMemoryLedger(), asyncio.Event(), asyncio.Event()
    saga = _saga(ledger)
    index = saga.step_index("pack")
    pack = saga.steps[index]

    async def held_pack(ctx: StepContext[Any]) -> Any:
        if ctx.attempt == 1:
            entered.set()
            await release.wait()
        return await pack.action(ctx)

    steps: list[SagaStep[Any, Any]] = list(saga.steps)
    steps[index] = replace(pack, action=held_pack, timeout=10)
    saga = replace(saga, steps=steps)
    leaving = make_engine(saga, worker_id="worker-a")
    staying = make_engine(saga, worker_id="worker-b")
    await leaving.start("order", {}, saga_id="s-1")
    await asyncio.wait_for(entered.wait(), 5)

    stopping = asyncio.create_task(leaving.stop(grace=5))
    await asyncio.sleep(0)  # the engine is draining while pack's attempt runs on
    release.set()
    await stopping
    handed = await staying.get("s-1")
    assert await staying.recover_once() == 1
    final = await staying.wait("s-1", timeout=5)

    # confirm's and pack's successes were saved at the handover: only notify was left to run.
    assert [(e.step, e.status) for e in handed.history][-1] == ("notify", AttemptStatus.STARTED)
    assert final.status is SagaStatus.COMPLETED
    assert [a[:2] for a in attempts_of(final, "pack", Phase.ACTION)] == [(1, AttemptStatus.SUCCEEDED)]
    assert ledger.duplicates == 0
