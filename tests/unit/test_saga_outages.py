"""Outages met by steps: the saga pauses and resumes, never using up retries nor compensating."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ecommerce_saga.saga import (
    AttemptStatus,
    Phase,
    Saga,
    SagaEngine,
    SagaState,
    SagaStatus,
    StepContext,
    StoreUnavailableError,
)
from ecommerce_saga.saga.testing import InMemoryLedger, assert_invariants, scripted_saga
from tests.unit.conftest import MakeEngine, attempts_of

STEPS = ["reserve", "charge", "ship"]
KIT_ATTEMPTS = 4
"""The retry budget of the test kit's steps: every outage below outlasts it."""


class DriverTimeoutError(Exception):
    """A database driver's timeout, which the engine knows only through `is_outage`."""


def _failing(saga: Saga, step_name: str, error: type[Exception], times: int, phase: Phase) -> Saga:
    """The saga with `step_name`'s action (or compensation) raising `error` its first `times` calls."""
    index = saga.step_index(step_name)
    step = saga.steps[index]
    original = step.action if phase is Phase.ACTION else step.compensation
    assert original is not None
    calls = {"n": 0}

    async def flaky(ctx: StepContext) -> Any:
        calls["n"] += 1
        if calls["n"] <= times:
            raise error("the database did not answer in time")
        return await original(ctx)

    changed = replace(step, action=flaky) if phase is Phase.ACTION else replace(step, compensation=flaky)
    return replace(saga, steps=[*saga.steps[:index], changed, *saga.steps[index + 1 :]])


async def _run_with_recovery(engine: SagaEngine) -> SagaState:
    """Start `s-1` with recovery running (a paused saga resumes once its lease expires); await its end."""
    await engine.start_background()
    await engine.start(next(iter(engine.definitions)), {}, saga_id="s-1")
    return await engine.wait("s-1", timeout=10)


async def test_pauses_and_completes_when_a_step_meets_an_outage_longer_than_its_retries(
    make_engine: MakeEngine,
) -> None:
    ledger = InMemoryLedger()
    saga = _failing(
        scripted_saga("order", STEPS, ledger), "charge", DriverTimeoutError, KIT_ATTEMPTS + 3, Phase.ACTION
    )
    engine = make_engine(
        saga,
        lease_seconds=0.05,
        recovery_interval=0.01,
        is_outage=lambda exc: isinstance(exc, DriverTimeoutError),
    )

    final = await _run_with_recovery(engine)

    assert final.status is SagaStatus.COMPLETED
    charge = attempts_of(final, "charge", Phase.ACTION)
    assert [status for _, status, _ in charge] == [AttemptStatus.FAILED] * (KIT_ATTEMPTS + 3) + [
        AttemptStatus.SUCCEEDED
    ]
    assert {code for _, _, code in charge[:-1]} == {"saga.interrupted"}  # paused, not failed
    assert attempts_of(final, "reserve", Phase.COMPENSATION) == []
    assert_invariants(final, saga, await ledger.effects("s-1"))


async def test_counts_an_unclassified_exception_as_a_step_failure(make_engine: MakeEngine) -> None:
    ledger = InMemoryLedger()
    saga = _failing(
        scripted_saga("order", STEPS, ledger), "charge", DriverTimeoutError, KIT_ATTEMPTS, Phase.ACTION
    )
    engine = make_engine(saga, lease_seconds=0.05, recovery_interval=0.01)  # no is_outage

    final = await _run_with_recovery(engine)

    assert final.status is SagaStatus.COMPENSATED  # the retries ran out: the control case


async def test_pauses_a_compensation_that_meets_a_store_outage_instead_of_parking_the_saga(
    make_engine: MakeEngine,
) -> None:
    ledger = InMemoryLedger()
    saga = scripted_saga("order", STEPS, ledger, compensation_attempts=2)
    saga = _failing(saga, "ship", ValueError, 99, Phase.ACTION)  # ship fails for good: compensate
    saga = _failing(saga, "charge", StoreUnavailableError, 5, Phase.COMPENSATION)
    engine = make_engine(saga, lease_seconds=0.05, recovery_interval=0.01)

    final = await _run_with_recovery(engine)

    assert final.status is SagaStatus.COMPENSATED  # not parked, though the outage outlasted 2 attempts
    refund = attempts_of(final, "charge", Phase.COMPENSATION)
    assert [code for _, _, code in refund] == ["saga.interrupted"] * 5 + [None]
    assert_invariants(final, saga, await ledger.effects("s-1"))
