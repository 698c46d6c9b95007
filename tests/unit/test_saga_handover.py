"""Graceful hand-over: a worker that stops lets its attempts finish, saves them, frees its leases."""

from __future__ import annotations

import asyncio

from ecommerce_saga.saga import (
    AttemptStatus,
    ErrorCode,
    Phase,
    Saga,
    SagaStatus,
    SagaStep,
    StepContext,
)
from ecommerce_saga.saga.stores.memory import InMemorySagaStore
from tests.unit.conftest import MakeEngine, attempts_of
from tests.waiting import eventually


class Gate:
    """A step that blocks until opened, counting how often its effect was applied."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.opened = asyncio.Event()
        self.applied: dict[str, int] = {}

    def saga(self) -> Saga[object]:
        async def slow(ctx: StepContext[object]) -> dict[str, str]:
            self.entered.set()
            await self.opened.wait()
            self.applied[ctx.idempotency_key] = self.applied.get(ctx.idempotency_key, 0) + 1
            return {"done": ctx.step}

        async def quick(ctx: StepContext[object]) -> dict[str, str]:
            self.applied[ctx.idempotency_key] = self.applied.get(ctx.idempotency_key, 0) + 1
            return {"done": ctx.step}

        return Saga("handover", [SagaStep("slow", slow), SagaStep("quick", quick)])


async def test_saves_the_attempt_in_flight_and_frees_the_lease_when_stopped_with_a_grace_period(
    make_engine: MakeEngine, store: InMemorySagaStore
) -> None:
    gate = Gate()
    leaving, staying = make_engine(gate.saga(), lease_seconds=60), make_engine(gate.saga(), lease_seconds=60)
    await leaving.start("handover", {}, saga_id="s-1")
    await gate.entered.wait()

    stopping = asyncio.create_task(leaving.stop(grace=10))
    await eventually(lambda: leaving.stopping)
    gate.opened.set()  # the attempt in flight finishes within the grace period
    await stopping
    handed_over = await store.get("s-1")
    claimed = await staying.recover_once()  # at once: no lease to wait for
    done = await staying.wait("s-1", timeout=5)

    assert handed_over is not None
    assert handed_over.outputs == {"slow": {"done": "slow"}}  # its result was saved
    assert handed_over.lease_expires_at_ms == 0
    assert claimed == 1
    assert done.status is SagaStatus.COMPLETED
    assert gate.applied == {"s-1:slow": 1, "s-1:quick": 1}  # nothing done twice
    assert attempts_of(done, "slow", Phase.ACTION) == [(1, AttemptStatus.SUCCEEDED, None)]


async def test_cancels_the_attempt_and_frees_the_lease_when_the_grace_period_runs_out(
    make_engine: MakeEngine, store: InMemorySagaStore
) -> None:
    gate = Gate()
    leaving, staying = make_engine(gate.saga(), lease_seconds=60), make_engine(gate.saga(), lease_seconds=60)
    await leaving.start("handover", {}, saga_id="s-1")
    await gate.entered.wait()

    await leaving.stop(grace=0.05)  # the step never finishes in time
    handed_over = await store.get("s-1")
    gate.opened.set()
    claimed = await staying.recover_once()
    done = await staying.wait("s-1", timeout=5)

    assert handed_over is not None
    assert handed_over.lease_expires_at_ms == 0
    assert claimed == 1
    assert done.status is SagaStatus.COMPLETED
    assert attempts_of(done, "slow", Phase.ACTION) == [
        (1, AttemptStatus.FAILED, ErrorCode.INTERRUPTED),
        (2, AttemptStatus.SUCCEEDED, None),
    ]


async def test_stores_a_saga_started_while_stopping_for_another_worker(
    make_engine: MakeEngine, store: InMemorySagaStore
) -> None:
    gate = Gate()
    gate.opened.set()
    leaving, staying = make_engine(gate.saga(), lease_seconds=60), make_engine(gate.saga(), lease_seconds=60)
    await leaving.stop(grace=1)

    await leaving.start("handover", {}, saga_id="late")
    assert not leaving.is_running_here("late")
    assert await leaving.recover_once() == 0  # a stopped engine claims nothing
    assert await staying.recover_once() == 1
    done = await staying.wait("late", timeout=5)

    assert done.status is SagaStatus.COMPLETED
