"""An attempt that ignores its cancellation: the worker gives its saga up, not renews its lease for ever.

A step's timeout cancels its attempt, and the runner waits for the attempt to stop (so that two
attempts of one step never run at once). An attempt that swallows the cancellation (a library
retrying on every exception, say) would keep the run waiting while the heartbeat renewed the
lease: the saga would stay RUNNING for good with nothing logged. Once an attempt outlives its
timeout by a lease's length, the worker reports it (`attempt_abandoned`, logged as an error) and
hands the saga over; recovery then closes the attempt as interrupted and runs the step again.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from ecommerce_saga.saga import (
    AttemptStatus,
    ErrorCode,
    EventKind,
    LoggingObserver,
    Phase,
    Saga,
    SagaStatus,
    SagaStep,
    StepContext,
)
from ecommerce_saga.saga.stores.memory import InMemorySagaStore
from tests.unit.conftest import MakeEngine, Recorder, attempts_of

LEASE = 0.3
"""Seconds: the attempt is given up about this long after its timeout."""


class Stubborn:
    """A step whose first attempt swallows every cancellation and waits until `released`."""

    def __init__(self) -> None:
        self.released = asyncio.Event()
        self.cancellations = 0
        self.applied: list[int] = []

    async def act(self, ctx: StepContext[object]) -> dict[str, int]:
        while ctx.attempt == 1 and not self.released.is_set():
            try:
                await self.released.wait()
            except asyncio.CancelledError:
                self.cancellations += 1  # and goes on waiting
        self.applied.append(ctx.attempt)
        return {"attempt": ctx.attempt}

    async def undo(self, ctx: StepContext[object]) -> None:
        """Never needed here."""


async def done(ctx: StepContext[object]) -> dict[str, bool]:
    return {"done": True}


def wedged_saga(stubborn: Stubborn) -> Saga[object]:
    return Saga(
        "wedged",
        [
            SagaStep("stubborn", stubborn.act, compensation=stubborn.undo, timeout=0.05),
            SagaStep("after", done),
        ],
    )


async def test_hands_a_saga_over_when_its_attempt_ignores_the_cancellation_and_runs_the_step_again(
    make_engine: MakeEngine, store: InMemorySagaStore, caplog: pytest.LogCaptureFixture
) -> None:
    stubborn, seen = Stubborn(), Recorder()
    engine = make_engine(
        wedged_saga(stubborn),
        lease_seconds=LEASE,
        recovery_interval=0.05,
        observers=[seen, LoggingObserver()],
    )
    await engine.start_background()
    try:
        with caplog.at_level(logging.ERROR, logger="ecommerce_saga.saga"):
            await engine.start("wedged", {}, saga_id="s-1")
            final = await engine.wait("s-1", timeout=15)  # bounds a failure; a pass takes ~0.5 s
    finally:
        stubborn.released.set()  # let the abandoned attempt end with the test

    assert final.status is SagaStatus.COMPLETED
    assert stubborn.cancellations >= 1  # its timeout did cancel it
    assert stubborn.applied == [2]  # the abandoned attempt had not finished when the saga did
    assert attempts_of(final, "stubborn", Phase.ACTION) == [
        (1, AttemptStatus.FAILED, ErrorCode.INTERRUPTED),
        (2, AttemptStatus.SUCCEEDED, None),
    ]
    abandoned = [event for event in seen.events if event.kind is EventKind.ATTEMPT_ABANDONED]
    assert [(event.saga_id, event.step, event.attempt) for event in abandoned] == [("s-1", "stubborn", 1)]
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert [(record.getMessage(), record.__dict__.get("step")) for record in errors] == [
        ("attempt_abandoned", "stubborn")
    ]


async def test_keeps_the_lease_of_an_attempt_that_stops_when_its_timeout_cancels_it(
    make_engine: MakeEngine, caplog: pytest.LogCaptureFixture
) -> None:
    async def slow(ctx: StepContext[object]) -> dict[str, int]:
        if ctx.attempt == 1:
            await asyncio.sleep(3600)  # cancelled by the timeout, as a step should be
        return {"attempt": ctx.attempt}

    saga: Saga[object] = Saga("slow", [SagaStep("slow", slow, timeout=0.05), SagaStep("after", done)])
    seen = Recorder()
    engine = make_engine(saga, lease_seconds=LEASE, recovery_interval=0.05, observers=[seen])
    await engine.start_background()
    with caplog.at_level(logging.ERROR, logger="ecommerce_saga.saga"):
        await engine.start("slow", {}, saga_id="s-1")
        final = await engine.wait("s-1", timeout=15)

    assert final.status is SagaStatus.COMPLETED
    assert attempts_of(final, "slow", Phase.ACTION) == [
        (1, AttemptStatus.FAILED, ErrorCode.TIMEOUT),
        (2, AttemptStatus.SUCCEEDED, None),
    ]
    assert EventKind.ATTEMPT_ABANDONED not in seen.kinds()
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


async def test_stops_even_when_an_attempt_would_not_stop(
    make_engine: MakeEngine, store: InMemorySagaStore
) -> None:
    stubborn = Stubborn()
    entered = asyncio.Event()

    async def announce(ctx: StepContext[object]) -> object:
        entered.set()
        return await stubborn.act(ctx)

    saga = Saga("wedged", [SagaStep("stubborn", announce, compensation=stubborn.undo, timeout=0.05)])
    engine = make_engine(saga, lease_seconds=LEASE)
    try:
        await engine.start("wedged", {}, saga_id="s-1")
        await entered.wait()
        await asyncio.wait_for(engine.stop(), timeout=15)  # bounds a failure: stop ends once overdue
        left = await store.get("s-1")
    finally:
        stubborn.released.set()

    assert left is not None
    assert left.status is SagaStatus.RUNNING
    assert left.lease_expires_at_ms == 0  # given up: the next worker takes it at once
    assert stubborn.applied == []
