"""Saga deadlines on the in-memory store, with an injected clock."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ecommerce_saga.saga import (
    Phase,
    RetryPolicy,
    Saga,
    SagaStatus,
    SagaStep,
    StepContext,
    StepKind,
)
from ecommerce_saga.saga.testing import (
    DO,
    UNDO,
    InMemoryLedger,
    assert_invariants,
    scripted_saga,
    scripted_step,
)
from tests.unit.conftest import MakeEngine, attempts_of, run_saga

STEPS = ["reserve", "charge", "ship", "notify"]


async def test_compensates_when_the_deadline_passes_between_steps(make_engine: MakeEngine) -> None:
    now = [1_000.0]
    ledger = InMemoryLedger()
    saga = scripted_saga("order", STEPS, ledger)
    charge = saga.steps[1]

    async def slow_charge(ctx: StepContext) -> Any:
        now[0] += 31  # the clock passes the deadline while the step runs
        return await charge.action(ctx)

    saga = replace(
        saga, steps=[saga.steps[0], replace(charge, action=slow_charge), *saga.steps[2:]], deadline=30
    )

    final = await run_saga(make_engine(saga, clock=lambda: now[0]))

    assert final.status is SagaStatus.COMPENSATED
    assert final.failure is not None
    assert final.failure.code == "saga.deadline_exceeded"
    assert final.deadline_at_ms == 1_030_000
    assert [(e.step, e.kind) for e in await ledger.effects("s-1")] == [
        ("reserve", DO),
        ("charge", DO),
        ("charge", UNDO),
        ("reserve", UNDO),
    ]
    assert_invariants(final, saga, await ledger.effects("s-1"))


async def test_stops_retrying_when_the_deadline_has_passed(make_engine: MakeEngine) -> None:
    now = [1_000.0]

    async def down(ctx: StepContext) -> None:
        now[0] += 10
        raise ConnectionError("down")

    retry = RetryPolicy(initial_interval=0.001, maximum_interval=0.001, maximum_attempts=None)
    saga = Saga("order", [SagaStep("a", down, retry=retry)], deadline=25)

    final = await run_saga(make_engine(saga, clock=lambda: now[0]))

    assert final.status is SagaStatus.COMPENSATED
    assert len(attempts_of(final, "a", Phase.ACTION)) == 3


async def test_finishes_forward_when_the_deadline_passes_after_the_pivot(make_engine: MakeEngine) -> None:
    now = [1_000.0]
    ledger = InMemoryLedger()
    pivot = scripted_step("charge", ledger, kind=StepKind.PIVOT)

    async def slow_charge(ctx: StepContext) -> Any:
        now[0] += 31
        return await pivot.action(ctx)

    saga = Saga(
        "order",
        [
            scripted_step("reserve", ledger),
            replace(pivot, action=slow_charge),
            scripted_step("ship", ledger, kind=StepKind.RETRIABLE),
        ],
        deadline=30,
    )

    final = await run_saga(make_engine(saga, clock=lambda: now[0]))

    assert final.status is SagaStatus.COMPLETED  # committed at the pivot: never undone
    assert_invariants(final, saga, await ledger.effects("s-1"))
