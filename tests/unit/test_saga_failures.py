"""Failures on the in-memory store: compensation, retries, timeouts, deadlines, and parking."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ecommerce_saga.saga import (
    AttemptStatus,
    Phase,
    RetryPolicy,
    Saga,
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
    assert_invariants,
    scripted_saga,
)
from tests.unit.conftest import MakeEngine, attempts_of, run_saga

STEPS = ["reserve", "charge", "ship", "notify"]
FAST_RETRY = RetryPolicy(initial_interval=0.001, maximum_interval=0.005, maximum_attempts=4)


async def test_undoes_completed_steps_in_reverse_when_a_step_fails_for_business_reasons(
    make_engine: MakeEngine,
) -> None:
    ledger = InMemoryLedger()
    saga = scripted_saga("order", STEPS, ledger, FaultPlan().fail_permanently("ship"))
    store = InMemorySagaStore()

    final = await run_saga(make_engine(saga, store=store))

    effects = await ledger.effects("s-1")
    assert final.status is SagaStatus.COMPENSATED
    assert store.writes == 6  # create, 2 successes, the failure, 2 compensations: 2k + 2
    assert [(e.step, e.kind) for e in effects] == [
        ("reserve", DO),
        ("charge", DO),
        ("charge", UNDO),
        ("reserve", UNDO),
    ]
    assert final.compensation_plan == ["charge", "reserve"]  # ship said no: nothing to undo
    assert final.failure is not None
    assert (final.failure.code, final.failure.retryable) == ("test.rejected", False)
    assert attempts_of(final, "ship", Phase.ACTION) == [(1, AttemptStatus.FAILED, "test.rejected")]
    assert_invariants(final, saga, effects)


async def test_ends_compensated_with_nothing_undone_when_the_first_step_fails(
    make_engine: MakeEngine,
) -> None:
    ledger = InMemoryLedger()
    saga = scripted_saga("order", STEPS, ledger, FaultPlan().fail_permanently("reserve"))
    store = InMemorySagaStore()

    final = await run_saga(make_engine(saga, store=store))

    assert final.status is SagaStatus.COMPENSATED
    assert final.compensation_plan == []
    assert await ledger.effects("s-1") == []
    assert store.writes == 2
    assert_invariants(final, saga, [])


async def test_completes_when_transient_errors_clear_before_retries_run_out(
    make_engine: MakeEngine,
) -> None:
    ledger = InMemoryLedger()
    saga = scripted_saga("order", STEPS, ledger, FaultPlan().fail_transiently("charge", times=3))

    final = await run_saga(make_engine(saga))

    assert final.status is SagaStatus.COMPLETED
    assert attempts_of(final, "charge", Phase.ACTION) == [
        (1, AttemptStatus.FAILED, "test.unavailable"),
        (2, AttemptStatus.FAILED, "test.unavailable"),
        (3, AttemptStatus.FAILED, "test.unavailable"),
        (4, AttemptStatus.SUCCEEDED, None),
    ]
    assert_invariants(final, saga, await ledger.effects("s-1"))


async def test_compensates_the_failing_step_too_when_its_retries_run_out(
    make_engine: MakeEngine,
) -> None:
    ledger = InMemoryLedger()
    undone: dict[str, Any] = {}
    saga = scripted_saga("order", STEPS, ledger, FaultPlan().fail_transiently("ship", times=99))
    ship = saga.steps[2]
    assert ship.compensation is not None
    original = ship.compensation

    async def undo_ship(ctx: StepContext) -> Any:
        undone.update(output=ctx.output, key=ctx.idempotency_key)
        return await original(ctx)

    saga = replace(saga, steps=[*saga.steps[:2], replace(ship, compensation=undo_ship), saga.steps[3]])

    final = await run_saga(make_engine(saga))

    assert final.status is SagaStatus.COMPENSATED
    assert len(attempts_of(final, "ship", Phase.ACTION)) == 4  # maximum_attempts of the kit's steps
    assert final.compensation_plan == ["ship", "charge", "reserve"]  # ship's outcome is unknown
    assert attempts_of(final, "ship", Phase.COMPENSATION) == [(1, AttemptStatus.SUCCEEDED, None)]
    assert undone["output"] is None  # it never succeeded, so it has no output
    assert undone["key"] == "s-1:ship:compensate"
    assert_invariants(final, saga, await ledger.effects("s-1"))


async def test_retries_when_an_attempt_times_out(make_engine: MakeEngine) -> None:
    ledger = InMemoryLedger()
    saga = scripted_saga("order", STEPS, ledger, FaultPlan().time_out("charge"), timeout=0.05)

    final = await run_saga(make_engine(saga))

    assert final.status is SagaStatus.COMPLETED
    first = next(e for e in final.history if e.step == "charge")
    assert first.error is not None
    assert (first.error.type, first.error.code, first.error.retryable) == (
        "TimeoutError",
        "saga.timeout",
        True,
    )
    assert first.error.message == "timed out after 0.05s"
    assert_invariants(final, saga, await ledger.effects("s-1"))


async def test_retries_an_unknown_exception_when_it_does_not_opt_out(make_engine: MakeEngine) -> None:
    calls: list[int] = []

    async def flaky(ctx: StepContext) -> None:
        calls.append(ctx.attempt)
        if ctx.attempt == 1:
            raise KeyError("transient")

    final = await run_saga(make_engine(Saga("order", [SagaStep("a", flaky, retry=FAST_RETRY)])))

    assert final.status is SagaStatus.COMPLETED
    assert calls == [1, 2]


async def test_compensates_at_once_when_an_exception_says_it_is_not_retryable(
    make_engine: MakeEngine,
) -> None:
    class OutOfStockError(Exception):
        retryable = False
        code = "inventory.insufficient_stock"

    calls: list[int] = []

    async def reserve(ctx: StepContext) -> None:
        calls.append(ctx.attempt)
        raise OutOfStockError("only 1 left")

    final = await run_saga(make_engine(Saga("order", [SagaStep("reserve", reserve, retry=FAST_RETRY)])))

    assert final.status is SagaStatus.COMPENSATED
    assert calls == [1]
    assert final.failure is not None
    assert final.failure.model_dump() == {
        "type": "OutOfStockError",
        "message": "only 1 left",
        "code": "inventory.insufficient_stock",
        "retryable": False,
    }


async def test_retries_a_compensation_until_it_succeeds_when_it_fails_transiently(
    make_engine: MakeEngine,
) -> None:
    ledger = InMemoryLedger()
    faults = FaultPlan().fail_permanently("ship").fail_compensation("reserve", times=3)
    saga = scripted_saga("order", STEPS, ledger, faults)

    final = await run_saga(make_engine(saga))

    assert final.status is SagaStatus.COMPENSATED
    assert [a[:2] for a in attempts_of(final, "reserve", Phase.COMPENSATION)] == [
        (1, AttemptStatus.FAILED),
        (2, AttemptStatus.FAILED),
        (3, AttemptStatus.FAILED),
        (4, AttemptStatus.SUCCEEDED),
    ]
    assert_invariants(final, saga, await ledger.effects("s-1"))
