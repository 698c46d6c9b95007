"""`Saga(save_compensatable_steps=False)`: the steps before the pivot are saved with the pivot's opening.

A compensatable step's success waits for the next save, at the latest the one that opens the
pivot, so the point of no return is still recorded before it is passed. After a crash the steps
run again from the last one saved. A saga taken over from a stopped worker, or cancelled by an
operator, may have done more than its stored state shows: if it compensates, every compensatable
step up to the pivot is compensated, whether it ran or not.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest

from ecommerce_saga.saga import (
    AttemptStatus,
    ErrorInfo,
    HistoryEntry,
    Phase,
    Saga,
    SagaState,
    SagaStatus,
    SagaStep,
    StepContext,
    StepKind,
    transitions,
)
from ecommerce_saga.saga.errors import ErrorCode
from ecommerce_saga.saga.steps import ON_COMPENSATED
from ecommerce_saga.saga.testing import (
    DO,
    UNDO,
    FaultPlan,
    InMemoryLedger,
    assert_invariants,
    scripted_step,
)
from tests.unit.conftest import CountingStore, MakeEngine, attempts_of, crash_then_recover

STEPS = [
    ("reserve", StepKind.COMPENSATABLE),
    ("charge", StepKind.COMPENSATABLE),
    ("ship", StepKind.COMPENSATABLE),
    ("confirm", StepKind.PIVOT),
    ("notify", StepKind.RETRIABLE),
]


def _saga(
    ledger: InMemoryLedger,
    faults: FaultPlan | None = None,
    *,
    save_compensatable: bool = False,
    deadline: float | None = None,
) -> Saga[Any]:
    steps = [scripted_step(name, ledger, faults, kind=kind) for name, kind in STEPS]
    return Saga(
        "order",
        steps,
        save_every_step=False,
        save_compensatable_steps=save_compensatable,
        deadline=deadline,
        on_compensated=_nothing,
    )


async def _nothing(ctx: StepContext[Any]) -> None:
    return None


def _undone(state: SagaState) -> list[str]:
    undos = [e for e in state.history if e.phase is Phase.COMPENSATION]
    return [e.step for e in undos if e.status is AttemptStatus.SUCCEEDED]


def test_reach_is_the_run_of_compensatable_steps_and_the_option_changes_the_fingerprint() -> None:
    ledger = InMemoryLedger()
    saving, deferring = _saga(ledger, save_compensatable=True), _saga(ledger)

    assert (saving.unsaved_reach, deferring.unsaved_reach) == (0, 3)
    # a stored saga records how far it may lag behind: a worker must not resume it the other way
    assert saving.fingerprint != deferring.fingerprint
    assert Saga("order", saving.steps, save_every_step=False, on_compensated=_nothing).fingerprint == (
        saving.fingerprint
    )


@pytest.mark.parametrize(("save_compensatable", "saves"), [(True, 4), (False, 2)])
async def test_saves_the_steps_before_the_pivot_with_the_pivots_opening(
    make_engine: MakeEngine, save_compensatable: bool, saves: int
) -> None:
    store, ledger = CountingStore(), InMemoryLedger()
    engine = make_engine(_saga(ledger, save_compensatable=save_compensatable), store=store)

    await engine.start("order", {}, saga_id="s-1")
    final = await engine.wait("s-1", timeout=5)

    assert final.status is SagaStatus.COMPLETED
    assert store.saves == saves
    if not save_compensatable:  # the pivot opened, then the end
        assert store.heads == [("confirm", AttemptStatus.STARTED), ("notify", AttemptStatus.SUCCEEDED)]
    assert_invariants(final, _saga(ledger), await ledger.effects("s-1"))


async def test_compensates_only_the_steps_that_ran_when_no_worker_stopped(make_engine: MakeEngine) -> None:
    store, ledger = CountingStore(), InMemoryLedger()
    saga = _saga(ledger, FaultPlan().fail_permanently("ship"))
    engine = make_engine(saga, store=store)

    await engine.start("order", {}, saga_id="s-1")
    final = await engine.wait("s-1", timeout=5)

    assert final.status is SagaStatus.COMPENSATED
    assert final.compensation_plan == ["charge", "reserve", ON_COMPENSATED]
    # ship's failure (with reserve's and charge's successes, charge's undo STARTED), then the end
    assert store.saves == 2
    assert_invariants(final, saga, await ledger.effects("s-1"))


async def test_runs_the_unsaved_steps_again_after_a_crash(make_engine: MakeEngine) -> None:
    ledger = InMemoryLedger()
    saga = _saga(ledger, FaultPlan().crash_after("ship"))

    recovered = await crash_then_recover(make_engine, saga)
    stuck, final = recovered.stuck, recovered.final

    # The store still had reserve STARTED: reserve, charge and ship ran again under their keys.
    assert [(e.step, e.status) for e in stuck.history] == [("reserve", AttemptStatus.STARTED)]
    assert final.status is SagaStatus.COMPLETED
    assert [a[:2] for a in attempts_of(final, "reserve", Phase.ACTION)] == [
        (1, AttemptStatus.FAILED),
        (2, AttemptStatus.SUCCEEDED),
    ]
    assert ledger.duplicates == 3  # each re-run found its effect already applied
    assert_invariants(final, saga, await ledger.effects("s-1"))


@pytest.mark.parametrize("crashed_after", ["reserve", "charge", "ship", "confirm", "notify"])
@pytest.mark.parametrize("deadline_passed", [False, True])
async def test_undoes_every_effect_or_completes_whichever_step_the_worker_crashed_after(
    make_engine: MakeEngine, crashed_after: str, deadline_passed: bool
) -> None:
    # The recovering worker's clock is a minute ahead: with a 30 s deadline, a saga recovered
    # before its pivot compensates as soon as the step it re-ran succeeds.
    ledger = InMemoryLedger()
    saga = _saga(ledger, FaultPlan().crash_after(crashed_after), deadline=30 if deadline_passed else None)

    recovered = await crash_then_recover(make_engine, saga)
    final = recovered.final

    assert recovered.claimed == 1
    before_pivot = crashed_after in ("reserve", "charge", "ship")
    if deadline_passed and before_pivot:
        assert final.status is SagaStatus.COMPENSATED
        # charge (say) ran before the crash but the store never showed it: it is undone all the same
        assert _undone(final) == ["ship", "charge", "reserve", ON_COMPENSATED]
        assert final.failure is not None
        assert final.failure.code == ErrorCode.DEADLINE_EXCEEDED
    else:
        assert final.status is SagaStatus.COMPLETED
    assert_invariants(final, saga, await ledger.effects("s-1"))


async def test_compensates_every_step_before_the_pivot_when_an_operator_cancels(
    make_engine: MakeEngine,
) -> None:
    ledger, entered = InMemoryLedger(), asyncio.Event()
    saga = _saga(ledger)
    index = saga.step_index("ship")
    ship = saga.steps[index]

    async def held_ship(ctx: StepContext[Any]) -> Any:
        entered.set()
        await asyncio.Event().wait()  # until cancelled
        return await ship.action(ctx)  # pragma: no cover - never reached

    steps: list[SagaStep[Any, Any]] = list(saga.steps)
    steps[index] = replace(ship, action=held_ship, timeout=30)
    saga = replace(saga, steps=steps)
    engine = make_engine(saga)
    await engine.start("order", {}, saga_id="s-1")
    await asyncio.wait_for(entered.wait(), 5)
    stored = await engine.store.get("s-1")
    assert stored is not None

    await engine.cancel("s-1", actor="operator", reason="customer called")
    final = await engine.wait("s-1", timeout=5)

    # The store showed reserve STARTED while reserve and charge had taken effect.
    assert [(e.step, e.status) for e in stored.history] == [("reserve", AttemptStatus.STARTED)]
    assert final.status is SagaStatus.COMPENSATED
    assert final.compensation_plan == ["ship", "charge", "reserve", ON_COMPENSATED]
    effects = await ledger.effects("s-1")
    assert [(e.step, e.kind) for e in effects] == [
        ("reserve", DO), ("charge", DO), ("charge", UNDO), ("reserve", UNDO)
    ]  # fmt: skip
    assert_invariants(final, saga, effects)


@pytest.mark.parametrize(
    ("save_compensatable", "code", "plan"),
    [
        (False, ErrorCode.INTERRUPTED, ["ship", "charge", "reserve", ON_COMPENSATED]),
        (False, ErrorCode.CANCELLED, ["ship", "charge", "reserve", ON_COMPENSATED]),
        (False, ErrorCode.UNKNOWN_DEFINITION, ["ship", "charge", "reserve", ON_COMPENSATED]),
        (False, "test.unavailable", ["reserve", ON_COMPENSATED]),  # a retry: this worker went on
        (True, ErrorCode.UNKNOWN_DEFINITION, ["reserve", ON_COMPENSATED]),  # every step saved
    ],
)
def test_plans_every_step_before_the_pivot_once_an_attempt_of_one_was_left_behind(
    save_compensatable: bool, code: str, plan: list[str]
) -> None:
    # reserve's first attempt ended with `code`, its second succeeded; then the deadline passed
    saga = _saga(InMemoryLedger(), save_compensatable=save_compensatable)
    left = ErrorInfo(type="Stopped", message="left behind", code=code)
    state = SagaState(saga_id="s-1", saga_type="order", current_step=1)
    state.history = [
        HistoryEntry(step="reserve", phase=Phase.ACTION, status=AttemptStatus.FAILED, error=left),
        HistoryEntry(step="reserve", phase=Phase.ACTION, attempt=2, status=AttemptStatus.SUCCEEDED),
    ]

    transitions.begin_compensation(
        saga, state, transitions.deadline_exceeded(), include_current=False, worker="w"
    )

    assert state.compensation_plan == plan
