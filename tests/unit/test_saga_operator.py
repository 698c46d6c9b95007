"""Operator actions on the in-memory store: cancelling a running saga and resuming a parked one."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from ecommerce_saga.saga import (
    AttemptStatus,
    NonRetryableError,
    Phase,
    Saga,
    SagaConflictError,
    SagaEngine,
    SagaNotFoundError,
    SagaState,
    SagaStatus,
    SagaStep,
    StepContext,
    StepKind,
    UnknownSagaTypeError,
)
from ecommerce_saga.saga.stores.memory import InMemorySagaStore
from ecommerce_saga.saga.testing import (
    DO,
    UNDO,
    FaultPlan,
    InMemoryLedger,
    assert_invariants,
    scripted_saga,
    scripted_step,
)
from tests.unit.conftest import MakeEngine, attempts_of

STEPS = ["reserve", "charge", "ship", "notify"]


@dataclass
class Gate:
    """Holds a step's action until released, and tells when the action has begun."""

    entered: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def wrap(self, step: SagaStep) -> SagaStep:
        async def action(ctx: StepContext) -> Any:
            self.entered.set()
            await self.release.wait()
            return await step.action(ctx)

        return replace(step, action=action, timeout=10)


async def _run(engine: SagaEngine) -> SagaState:
    await engine.start(next(iter(engine.definitions)), {}, saga_id="s-1")
    return await engine.wait("s-1", timeout=5)


def _gated_order(ledger: InMemoryLedger, gate: Gate, *, pivot_at: int | None = None) -> Saga:
    kinds = [StepKind.COMPENSATABLE] * 4
    if pivot_at is not None:
        kinds[pivot_at] = StepKind.PIVOT
        kinds[pivot_at + 1 :] = [StepKind.RETRIABLE] * (3 - pivot_at)
    steps = [
        scripted_step(n, ledger, kind=k)
        for n, k in zip(["reserve", "charge", "ship", "notify"], kinds, strict=True)
    ]
    steps[1] = gate.wrap(steps[1])
    return Saga("order", steps)


async def test_compensates_in_reverse_and_records_the_operator_when_a_running_saga_is_cancelled(
    make_engine: MakeEngine,
) -> None:
    ledger, gate = InMemoryLedger(), Gate()
    saga = _gated_order(ledger, gate)
    engine = make_engine(saga)
    await engine.start("order", {}, saga_id="s-1")
    await asyncio.wait_for(gate.entered.wait(), 5)

    cancelled = await engine.cancel("s-1", actor="alice", reason="customer asked")
    final = await engine.wait("s-1", timeout=5)

    assert cancelled.status is SagaStatus.COMPENSATING
    assert final.status is SagaStatus.COMPENSATED
    assert final.compensation_plan == ["charge", "reserve"]  # charge was in flight: outcome unknown
    assert final.failure is not None
    assert (final.failure.code, final.failure.message) == ("saga.cancelled", "customer asked")
    charge = [e for e in final.history if e.step == "charge" and e.phase is Phase.ACTION]
    assert [(e.status, e.error.code if e.error else None) for e in charge] == [
        (AttemptStatus.FAILED, "saga.cancelled")
    ]
    operator = [e for e in final.history if e.phase is Phase.OPERATOR]
    assert [(e.step, e.actor, e.reason) for e in operator] == [("cancel", "alice", "customer asked")]
    effects = await ledger.effects("s-1")
    assert [(e.step, e.kind) for e in effects] == [("reserve", DO), ("reserve", UNDO)]
    assert_invariants(final, saga, effects)


async def test_conflicts_when_cancelling_a_finished_saga(make_engine: MakeEngine) -> None:
    engine = make_engine(scripted_saga("order", ["reserve"], InMemoryLedger()))
    await engine.start("order", {}, saga_id="s-1")
    await engine.wait("s-1", timeout=5)

    with pytest.raises(SagaConflictError, match="is COMPLETED; only running sagas can be cancelled"):
        await engine.cancel("s-1", actor="alice", reason="too late")

    assert (await engine.get("s-1")).status is SagaStatus.COMPLETED


@pytest.mark.parametrize("pivot_at", [0, 1])
async def test_conflicts_when_cancelling_a_saga_past_its_point_of_no_return(
    make_engine: MakeEngine, pivot_at: int
) -> None:
    ledger, gate = InMemoryLedger(), Gate()
    saga = _gated_order(ledger, gate, pivot_at=pivot_at)  # the gated step is the pivot or after it
    engine = make_engine(saga)
    await engine.start("order", {}, saga_id="s-1")
    await asyncio.wait_for(gate.entered.wait(), 5)

    with pytest.raises(SagaConflictError, match=r"has passed its point of no return \(charge\)"):
        await engine.cancel("s-1", actor="alice", reason="changed my mind")
    gate.release.set()
    final = await engine.wait("s-1", timeout=5)

    assert final.status is SagaStatus.COMPLETED
    assert not [e for e in final.history if e.phase is Phase.OPERATOR]
    assert_invariants(final, saga, await ledger.effects("s-1"))


async def test_conflicts_when_cancelling_a_parked_saga(make_engine: MakeEngine) -> None:
    faults = FaultPlan().fail_permanently("charge").fail_compensation("reserve", times=None)
    engine = make_engine(scripted_saga("order", ["reserve", "charge"], InMemoryLedger(), faults))
    await engine.start("order", {}, saga_id="s-1")
    assert (await engine.wait("s-1", timeout=5)).status is SagaStatus.REQUIRES_ATTENTION

    with pytest.raises(SagaConflictError, match="is REQUIRES_ATTENTION"):
        await engine.cancel("s-1", actor="alice", reason="give up")


async def test_leaves_a_parked_saga_alone_when_a_worker_without_its_definition_resumes_it(
    make_engine: MakeEngine, store: InMemorySagaStore
) -> None:
    faults = FaultPlan().fail_permanently("charge").fail_compensation("reserve", times=None)
    engine = make_engine(scripted_saga("order", ["reserve", "charge"], InMemoryLedger(), faults))
    await engine.start("order", {}, saga_id="s-1")
    parked = await engine.wait("s-1", timeout=5)
    stranger = make_engine(scripted_saga("refund", ["pay_back"], InMemoryLedger()), worker_id="stranger")

    with pytest.raises(UnknownSagaTypeError):
        await stranger.resume("s-1", actor="alice", reason="retry")

    untouched = await store.get("s-1")
    assert untouched is not None
    assert (untouched.status, untouched.version, untouched.lease_owner) == (
        SagaStatus.REQUIRES_ATTENTION,
        parked.version,
        parked.lease_owner,
    )


@pytest.mark.parametrize("operation", ["cancel", "resume"])
async def test_raises_not_found_when_the_operator_names_an_unknown_saga(
    make_engine: MakeEngine, operation: str
) -> None:
    engine = make_engine(scripted_saga("order", ["reserve"], InMemoryLedger()))

    with pytest.raises(SagaNotFoundError):
        await getattr(engine, operation)("missing", actor="alice", reason="why not")


async def test_conflicts_when_resuming_a_saga_that_is_not_parked(make_engine: MakeEngine) -> None:
    engine = make_engine(scripted_saga("order", ["reserve"], InMemoryLedger()))
    await engine.start("order", {}, saga_id="s-1")
    before = await engine.wait("s-1", timeout=5)

    with pytest.raises(SagaConflictError, match="is not parked; only parked sagas resume"):
        await engine.resume("s-1", actor="alice", reason="just in case")

    assert (await engine.get("s-1")).version == before.version  # nothing was written


async def test_parks_again_with_a_fresh_budget_when_a_resumed_compensation_still_fails(
    make_engine: MakeEngine,
) -> None:
    faults = FaultPlan().fail_permanently("charge").fail_compensation("reserve", times=None)
    engine = make_engine(
        scripted_saga("order", ["reserve", "charge"], InMemoryLedger(), faults, compensation_attempts=2)
    )
    await engine.start("order", {}, saga_id="s-1")
    await engine.wait("s-1", timeout=5)

    await engine.resume("s-1", actor="bob", reason="try again")
    final = await engine.wait("s-1", timeout=5)

    undo = [e.attempt for e in final.history if e.phase is Phase.COMPENSATION]
    assert final.status is SagaStatus.REQUIRES_ATTENTION
    assert final.parked_from is SagaStatus.COMPENSATING
    assert undo == [1, 2, 1, 2]


async def test_parks_and_then_finishes_on_resume_when_a_compensation_runs_out_of_retries(
    make_engine: MakeEngine,
) -> None:
    ledger = InMemoryLedger()
    faults = FaultPlan().fail_permanently("ship").fail_compensation("charge", times=None)
    saga = scripted_saga("order", STEPS, ledger, faults, compensation_attempts=3)
    engine = make_engine(saga)

    parked = await _run(engine)

    assert parked.status is SagaStatus.REQUIRES_ATTENTION
    assert parked.parked_from is SagaStatus.COMPENSATING
    assert parked.failure is not None
    assert parked.failure.code == "test.rejected"  # the failure that stopped the saga is kept
    assert len(attempts_of(parked, "charge", Phase.COMPENSATION)) == 3
    assert parked.lease_expires_at_ms == 0
    assert not engine.is_running_here("s-1")

    faults.compensation_permanent.clear()  # the operator fixed the payment provider
    resumed = await engine.resume("s-1", actor="ops@shop", reason="refund API is back")
    final = await engine.wait("s-1", timeout=5)

    assert resumed.status is SagaStatus.COMPENSATING
    assert final.status is SagaStatus.COMPENSATED
    assert final.parked_from is None
    operator = [e for e in final.history if e.phase is Phase.OPERATOR]
    assert [(e.step, e.actor, e.reason) for e in operator] == [("resume", "ops@shop", "refund API is back")]
    assert attempts_of(final, "charge", Phase.COMPENSATION)[-1] == (1, AttemptStatus.SUCCEEDED, None)
    assert_invariants(final, saga, await ledger.effects("s-1"))


async def test_parks_without_compensating_when_a_step_after_the_pivot_fails_for_good(
    make_engine: MakeEngine,
) -> None:
    ledger = InMemoryLedger()
    faults = FaultPlan().fail_transiently("ship", times=99)
    saga = Saga(
        "order",
        [
            scripted_step("reserve", ledger, faults),
            scripted_step("charge", ledger, faults, kind=StepKind.PIVOT),
            scripted_step("ship", ledger, faults, kind=StepKind.RETRIABLE),
            scripted_step("notify", ledger, faults, kind=StepKind.RETRIABLE, compensate=False),
        ],
    )
    engine = make_engine(saga)

    parked = await _run(engine)

    assert parked.status is SagaStatus.REQUIRES_ATTENTION
    assert parked.parked_from is SagaStatus.RUNNING
    assert parked.compensation_plan == []
    assert [(e.step, e.kind) for e in await ledger.effects("s-1")] == [("reserve", DO), ("charge", DO)]

    faults.transient.clear()
    await engine.resume("s-1", actor="ops", reason="carrier is back")
    final = await engine.wait("s-1", timeout=5)

    assert final.status is SagaStatus.COMPLETED
    assert attempts_of(final, "ship", Phase.ACTION)[-1] == (1, AttemptStatus.SUCCEEDED, None)
    assert_invariants(final, saga, await ledger.effects("s-1"))


async def test_parks_when_a_business_error_hits_a_retriable_step(make_engine: MakeEngine) -> None:
    async def reject(ctx: StepContext) -> None:
        raise NonRetryableError("address invalid", code="shipping.bad_address")

    ledger = InMemoryLedger()
    saga = Saga(
        "order",
        [
            scripted_step("charge", ledger, kind=StepKind.PIVOT),
            SagaStep("ship", reject, kind=StepKind.RETRIABLE),
        ],
    )

    final = await _run(make_engine(saga))

    assert final.status is SagaStatus.REQUIRES_ATTENTION
    assert final.failure is not None
    assert final.failure.code == "shipping.bad_address"


@pytest.mark.xfail(
    strict=True,
    reason="known limit: cancel compensates a step whose action is still in flight on another worker; "
    "the late action's effect is then never undone (see docs/saga-engine.md, design notes)",
)
async def test_undoes_every_effect_when_cancelled_while_another_worker_runs_the_step(
    make_engine: MakeEngine,
) -> None:
    ledger, gate = InMemoryLedger(), Gate()
    saga = _gated_order(ledger, gate)
    running = make_engine(saga, worker_id="worker-a")
    operator = make_engine(saga, worker_id="worker-ops")
    await running.start("order", {}, saga_id="s-1")
    await asyncio.wait_for(gate.entered.wait(), 5)

    await operator.cancel("s-1", actor="alice", reason="customer asked")
    final = await operator.wait("s-1", timeout=5)
    gate.release.set()  # the first worker's charge lands after its compensation ran
    for _ in range(200):
        if not running.is_running_here("s-1"):
            break
        await asyncio.sleep(0.005)  # poll until the late attempt has stopped

    assert final.status is SagaStatus.COMPENSATED
    assert_invariants(final, saga, await ledger.effects("s-1"))
