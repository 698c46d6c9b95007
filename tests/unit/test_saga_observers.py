"""Observers receive the engine's lifecycle events in order, and cannot break a saga."""

from __future__ import annotations

import asyncio
import logging

import pytest

from ecommerce_saga.saga import (
    NO_RETRY,
    EventKind,
    Saga,
    SagaEvent,
    SagaStatus,
    SagaStep,
    StepContext,
)
from ecommerce_saga.saga.testing import FaultPlan, InMemoryLedger, scripted_saga
from tests.unit.conftest import MakeEngine, Recorder

K = EventKind


class Exploding:
    """An observer that raises on every event."""

    def __init__(self) -> None:
        self.calls = 0

    def notify(self, event: SagaEvent) -> None:
        self.calls += 1
        raise RuntimeError("observer bug")


async def test_reports_each_step_in_order_when_a_saga_completes(make_engine: MakeEngine) -> None:
    recorder = Recorder()
    engine = make_engine(
        scripted_saga("order", ["reserve", "charge"], InMemoryLedger()), observers=[recorder]
    )

    await engine.start("order", {}, saga_id="s-1", correlation_id="order-1")
    await engine.wait("s-1", timeout=5)

    assert recorder.trail() == [
        (K.SAGA_STARTED, None, None),
        (K.STEP_STARTED, "reserve", 1),
        (K.STEP_SUCCEEDED, "reserve", 1),
        (K.STEP_STARTED, "charge", 1),
        (K.STEP_SUCCEEDED, "charge", 1),
        (K.SAGA_COMPLETED, None, None),
    ]
    assert {(e.saga_id, e.saga_type, e.correlation_id) for e in recorder.events} == {
        ("s-1", "order", "order-1")
    }
    assert all(e.duration_seconds is not None for e in recorder.events if e.kind is K.STEP_SUCCEEDED)
    assert recorder.events[-1].duration_seconds is not None


async def test_reports_retries_and_compensation_in_order_when_steps_fail(make_engine: MakeEngine) -> None:
    recorder = Recorder()
    faults = FaultPlan().fail_transiently("charge").fail_permanently("ship").fail_compensation("reserve")
    saga = scripted_saga("order", ["reserve", "charge", "ship"], InMemoryLedger(), faults)
    engine = make_engine(saga, observers=[recorder])

    await engine.start("order", {}, saga_id="s-1")
    await engine.wait("s-1", timeout=5)

    assert recorder.trail() == [
        (K.SAGA_STARTED, None, None),
        (K.STEP_STARTED, "reserve", 1),
        (K.STEP_SUCCEEDED, "reserve", 1),
        (K.STEP_STARTED, "charge", 1),
        (K.STEP_FAILED, "charge", 1),
        (K.RETRY_SCHEDULED, "charge", 2),
        (K.STEP_SUCCEEDED, "charge", 2),
        (K.STEP_STARTED, "ship", 1),
        (K.STEP_FAILED, "ship", 1),
        (K.COMPENSATION_STARTED, "charge", 1),
        (K.COMPENSATION_SUCCEEDED, "charge", 1),
        (K.COMPENSATION_STARTED, "reserve", 1),
        (K.COMPENSATION_FAILED, "reserve", 1),
        (K.RETRY_SCHEDULED, "reserve", 2),
        (K.COMPENSATION_SUCCEEDED, "reserve", 2),
        (K.SAGA_COMPENSATED, None, None),
    ]
    failures = [e for e in recorder.events if e.error is not None]
    assert [e.error.code for e in failures if e.error] == [
        "test.unavailable",
        "test.rejected",
        "test.unavailable",
        "test.rejected",  # the saga's failure, reported with SAGA_COMPENSATED
    ]


async def test_reports_the_operator_and_the_park_when_an_operator_steps_in(make_engine: MakeEngine) -> None:
    recorder = Recorder()
    entered = asyncio.Event()

    async def wait_forever(ctx: StepContext) -> None:
        entered.set()
        await asyncio.Event().wait()

    async def undo(ctx: StepContext) -> None:
        raise ConnectionError("down")

    saga = Saga("order", [SagaStep("reserve", wait_forever, undo)], compensation_retry=NO_RETRY)
    engine = make_engine(saga, observers=[recorder])
    await engine.start("order", {}, saga_id="s-1")
    await asyncio.wait_for(entered.wait(), 5)

    await engine.cancel("s-1", actor="alice", reason="customer asked")
    await engine.wait("s-1", timeout=5)

    assert recorder.trail()[2:] == [
        (K.OPERATOR_ACTION, None, None),
        (K.COMPENSATION_STARTED, "reserve", 1),
        (K.COMPENSATION_FAILED, "reserve", 1),
        (K.SAGA_PARKED, None, None),
    ]
    assert recorder.events[2].detail == "cancel by alice: customer asked"


async def test_completes_when_an_observer_raises(make_engine: MakeEngine) -> None:
    exploding, recorder = Exploding(), Recorder()
    saga = scripted_saga(
        "order", ["reserve", "charge"], InMemoryLedger(), FaultPlan().fail_transiently("charge")
    )
    engine = make_engine(saga, observers=[exploding])
    engine.add_observer(recorder)

    await engine.start("order", {}, saga_id="s-1")
    final = await engine.wait("s-1", timeout=5)

    assert final.status is SagaStatus.COMPLETED
    assert exploding.calls == len(recorder.events) == 8  # later observers still hear everything


async def test_logs_failures_as_warnings_when_using_the_default_observer(
    make_engine: MakeEngine, caplog: pytest.LogCaptureFixture
) -> None:
    saga = scripted_saga("order", ["reserve"], InMemoryLedger(), FaultPlan().fail_permanently("reserve"))
    engine = make_engine(saga, observers=None)  # the default: a LoggingObserver

    with caplog.at_level(logging.INFO, logger="ecommerce_saga.saga"):
        await engine.start("order", {}, saga_id="s-1")
        await engine.wait("s-1", timeout=5)

    records = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "ecommerce_saga.saga"]
    assert (logging.WARNING, "step_failed") in records
    assert (logging.INFO, "saga_compensated") in records
    failed = next(r for r in caplog.records if r.getMessage() == "step_failed")
    assert (failed.saga_id, failed.step, failed.error_code) == ("s-1", "reserve", "test.rejected")  # type: ignore[attr-defined]
