"""The saga-level on_compensated hook: runs once everything is undone, durably, like a compensation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import BaseModel

from ecommerce_saga.saga import (
    ON_COMPENSATED,
    AttemptStatus,
    ErrorCode,
    NonRetryableError,
    Phase,
    RetryPolicy,
    Saga,
    SagaDefinitionError,
    SagaStatus,
    SagaStep,
    Step,
    StepContext,
)
from ecommerce_saga.saga.stores.memory import InMemorySagaStore
from tests.unit.conftest import MakeEngine, attempts_of, run_saga

FAST = RetryPolicy(initial_interval=0.001, maximum_interval=0.001, maximum_attempts=3)


class Booked(BaseModel):
    booking: str


class Trip(BaseModel):
    traveller: str


FLIGHT = Step("book_flight", Booked)
HOTEL = Step("book_hotel", Booked)


class Journal:
    """What the steps, compensations and the hook did, in order; the hook can be made to fail."""

    def __init__(self, *, hotel_fails: bool = True, hook_failures: int = 0) -> None:
        self.done: list[str] = []
        self.seen: list[StepContext[Trip]] = []
        self.hotel_fails = hotel_fails
        self.hook_failures = hook_failures

    def saga(self, **options: Any) -> Saga[Trip]:
        async def book_flight(ctx: StepContext[Trip]) -> Booked:
            self.done.append("book_flight")
            return Booked(booking=f"F-{ctx.input.traveller}")

        async def cancel_flight(ctx: StepContext[Trip], flight: Booked | None) -> None:
            self.done.append(f"cancel {flight.booking if flight else None}")

        async def book_hotel(ctx: StepContext[Trip]) -> Booked:
            if self.hotel_fails:
                raise NonRetryableError("no rooms", code="hotel.full")
            self.done.append("book_hotel")
            return Booked(booking="H-1")

        async def failed(ctx: StepContext[Trip]) -> None:
            self.seen.append(ctx)
            if self.hook_failures:
                self.hook_failures -= 1
                raise ConnectionError("mail server down")
            self.done.append("tell the traveller")

        options.setdefault("compensation_retry", FAST)
        return Saga(
            "trip",
            [FLIGHT.does(book_flight).undoes(cancel_flight), HOTEL.does(book_hotel)],
            input=Trip,
            on_compensated=failed,
            **options,
        )


async def test_runs_the_hook_once_after_every_compensation_when_the_saga_fails(
    make_engine: MakeEngine,
) -> None:
    journal = Journal()
    state = await run_saga(make_engine(journal.saga()), {"traveller": "ann"})

    assert state.status is SagaStatus.COMPENSATED
    assert journal.done == ["book_flight", "cancel F-ann", "tell the traveller"]
    assert state.compensation_plan == ["book_flight", ON_COMPENSATED]
    assert attempts_of(state, ON_COMPENSATED, Phase.COMPENSATION) == [(1, AttemptStatus.SUCCEEDED, None)]
    [ctx] = journal.seen
    assert ctx.failure is not None and ctx.failure.code == "hotel.full"
    assert ctx.output_of(FLIGHT) == Booked(booking="F-ann")  # every stored output, typed
    assert ctx.input == Trip(traveller="ann")
    assert (ctx.step, ctx.compensating, ctx.idempotency_key) == (ON_COMPENSATED, True, "s-1:on_compensated")


async def test_runs_the_hook_when_the_first_step_fails_and_there_is_nothing_to_undo(
    make_engine: MakeEngine,
) -> None:
    async def refuse(ctx: StepContext[Trip]) -> Booked:
        raise NonRetryableError("sold out", code="flight.full")

    journal = Journal()
    saga = journal.saga()
    saga = Saga(
        "trip", [FLIGHT.does(refuse), *saga.steps[1:]], input=Trip, on_compensated=saga.on_compensated
    )
    state = await run_saga(make_engine(saga), {"traveller": "bob"})

    assert state.status is SagaStatus.COMPENSATED
    assert state.compensation_plan == [ON_COMPENSATED]
    assert journal.done == ["tell the traveller"]


async def test_never_runs_the_hook_when_the_saga_completes(make_engine: MakeEngine) -> None:
    journal = Journal(hotel_fails=False)
    state = await run_saga(make_engine(journal.saga()), {"traveller": "ann"})

    assert state.status is SagaStatus.COMPLETED
    assert journal.done == ["book_flight", "book_hotel"]
    assert journal.seen == []


async def test_retries_the_hook_then_parks_and_reruns_it_on_resume_when_it_keeps_failing(
    make_engine: MakeEngine,
) -> None:
    journal = Journal(hook_failures=3)
    engine = make_engine(journal.saga())
    parked = await run_saga(engine, {"traveller": "ann"})

    assert (parked.status, parked.parked_from) == (SagaStatus.REQUIRES_ATTENTION, SagaStatus.COMPENSATING)
    assert [a for a, _, _ in attempts_of(parked, ON_COMPENSATED, Phase.COMPENSATION)] == [1, 2, 3]
    assert journal.done == ["book_flight", "cancel F-ann"]

    await engine.resume("s-1", actor="ops", reason="mail server is back")
    done = await engine.wait("s-1", timeout=5)

    assert done.status is SagaStatus.COMPENSATED
    assert journal.done == ["book_flight", "cancel F-ann", "tell the traveller"]


async def test_reruns_the_hook_on_another_worker_when_its_worker_stopped_while_it_ran(
    make_engine: MakeEngine, store: InMemorySagaStore
) -> None:
    entered, release = asyncio.Event(), asyncio.Event()
    journal = Journal()
    saga = journal.saga()
    hook = saga.on_compensated
    assert hook is not None

    async def slow_hook(ctx: StepContext[Trip]) -> None:
        if ctx.attempt == 1:
            entered.set()
            await release.wait()  # the worker stops meanwhile
        await hook(ctx)

    stuck = Saga("trip", saga.steps, input=Trip, on_compensated=slow_hook, compensation_retry=FAST)
    leaving, staying = make_engine(stuck, lease_seconds=60), make_engine(stuck, lease_seconds=60)
    await leaving.start("trip", {"traveller": "ann"}, saga_id="s-1")
    await entered.wait()
    await leaving.stop()  # no grace: the hook's attempt is interrupted, its lease freed

    assert await staying.recover_once() == 1
    done = await staying.wait("s-1", timeout=5)

    assert done.status is SagaStatus.COMPENSATED
    assert attempts_of(done, ON_COMPENSATED, Phase.COMPENSATION) == [
        (1, AttemptStatus.FAILED, ErrorCode.INTERRUPTED),
        (2, AttemptStatus.SUCCEEDED, None),
    ]
    assert journal.done == ["book_flight", "cancel F-ann", "tell the traveller"]


async def test_runs_the_hook_after_an_operator_cancels_the_saga(make_engine: MakeEngine) -> None:
    entered = asyncio.Event()
    journal = Journal(hotel_fails=False)
    saga = journal.saga()

    async def waits(ctx: StepContext[Trip]) -> Booked:
        entered.set()
        await asyncio.sleep(60)
        return Booked(booking="never")

    slow = Saga("trip", [saga.steps[0], HOTEL.does(waits)], input=Trip, on_compensated=saga.on_compensated)
    engine = make_engine(slow)
    await engine.start("trip", {"traveller": "ann"}, saga_id="s-1")
    await entered.wait()
    await engine.cancel("s-1", actor="ops", reason="customer called")
    done = await engine.wait("s-1", timeout=5)

    assert done.status is SagaStatus.COMPENSATED
    assert done.compensation_plan == ["book_flight", ON_COMPENSATED]
    assert journal.seen[0].failure is not None
    assert journal.seen[0].failure.code == ErrorCode.CANCELLED


def test_the_hook_is_part_of_the_fingerprint() -> None:
    with_hook = Journal().saga()
    without = Saga("trip", with_hook.steps, input=Trip)

    assert with_hook.fingerprint != without.fingerprint


def test_refuses_a_step_named_like_the_hook() -> None:
    async def act(ctx: StepContext[Any]) -> dict[str, str]:
        return {}

    with pytest.raises(SagaDefinitionError, match="reserved"):
        Saga("trip", [SagaStep(ON_COMPENSATED, act)])


def test_refuses_a_non_positive_hook_timeout() -> None:
    with pytest.raises(SagaDefinitionError, match="timeout"):
        Journal().saga(on_compensated_timeout=0)


async def test_a_hook_attempt_that_outlives_its_timeout_is_retried(make_engine: MakeEngine) -> None:
    async def slow_once(ctx: StepContext[Trip]) -> None:
        if ctx.attempt == 1:
            await asyncio.sleep(60)

    saga = Journal().saga()
    timed = Saga(
        "trip", saga.steps, input=Trip, on_compensated=slow_once, on_compensated_timeout=0.05,
        compensation_retry=FAST,
    )  # fmt: skip
    state = await run_saga(make_engine(timed), {"traveller": "ann"})

    assert state.status is SagaStatus.COMPENSATED
    assert attempts_of(state, ON_COMPENSATED, Phase.COMPENSATION) == [
        (1, AttemptStatus.FAILED, ErrorCode.TIMEOUT),
        (2, AttemptStatus.SUCCEEDED, None),
    ]
    assert [s.name for s in timed.steps] == ["book_flight", "book_hotel"]
