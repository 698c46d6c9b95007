"""The engine's forward path on the in-memory store: outputs, context, keys, write-ahead, write counts."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ecommerce_saga.saga import (
    AttemptStatus,
    Phase,
    RetryPolicy,
    Saga,
    SagaNotFoundError,
    SagaQuery,
    SagaStatus,
    SagaStep,
    StepContext,
    UnknownSagaTypeError,
)
from ecommerce_saga.saga.stores.memory import InMemorySagaStore
from ecommerce_saga.saga.testing import (
    DO,
    FaultPlan,
    InMemoryLedger,
    assert_invariants,
    scripted_saga,
)
from tests.unit.conftest import MakeEngine

STEPS = ["reserve", "charge", "ship", "notify"]

FAST_RETRY = RetryPolicy(initial_interval=0.001, maximum_interval=0.005, maximum_attempts=4)


async def test_completes_with_each_effect_applied_once_when_every_step_succeeds(
    make_engine: MakeEngine,
) -> None:
    ledger = InMemoryLedger()
    saga = scripted_saga("order", STEPS, ledger)
    engine = make_engine(saga)

    started = await engine.start("order", {"order_id": "o-1"}, saga_id="s-1")
    final = await engine.wait(started.saga_id, timeout=5)

    assert started.status is SagaStatus.RUNNING
    assert final.status is SagaStatus.COMPLETED
    assert final.current_step == 4
    assert final.outputs == {name: {"step": name, "applied": True} for name in STEPS}
    assert [e.step for e in await ledger.effects("s-1")] == STEPS
    assert_invariants(final, saga, await ledger.effects("s-1"))


async def test_writes_exactly_five_times_when_a_four_step_saga_succeeds(
    make_engine: MakeEngine, store: InMemorySagaStore
) -> None:
    engine = make_engine(scripted_saga("order", STEPS, InMemoryLedger()))

    await engine.start("order", {}, saga_id="s-1")
    final = await engine.wait("s-1", timeout=5)

    assert final.status is SagaStatus.COMPLETED
    assert store.writes == 5
    assert final.version == 4  # create stores version 0; each of the four saves adds one


async def test_writes_once_more_per_retry_when_steps_fail_transiently(
    make_engine: MakeEngine, store: InMemorySagaStore
) -> None:
    faults = FaultPlan().fail_transiently("charge", times=2).fail_transiently("notify", times=1)
    engine = make_engine(scripted_saga("order", STEPS, InMemoryLedger(), faults))

    await engine.start("order", {}, saga_id="s-1")
    final = await engine.wait("s-1", timeout=5)

    assert final.status is SagaStatus.COMPLETED
    assert store.writes == 5 + 3


async def test_stores_outputs_under_step_names_when_later_steps_read_them(
    make_engine: MakeEngine,
) -> None:
    seen: dict[str, tuple[StepContext, dict[str, Any]]] = {}

    def look(ctx: StepContext) -> None:
        seen[ctx.step] = (ctx, {name: dict(output) for name, output in ctx.outputs.items()})

    async def reserve(ctx: StepContext) -> dict[str, Any]:
        look(ctx)
        return {"reservation_id": "r-1", "lines": [{"sku": "A", "qty": 2}, {"sku": "B", "qty": 1}]}

    async def charge(ctx: StepContext) -> dict[str, Any]:
        look(ctx)
        return {"payment_id": "p-1", "amount": ctx.input["amount"]}

    async def ship(ctx: StepContext) -> None:
        look(ctx)

    saga = Saga("order", [SagaStep("reserve", reserve), SagaStep("charge", charge), SagaStep("ship", ship)])
    engine = make_engine(saga)

    await engine.start("order", {"amount": 1200, "customer": {"id": "c-1"}}, saga_id="s-1")
    final = await engine.wait("s-1", timeout=5)

    reserved = {"reservation_id": "r-1", "lines": [{"sku": "A", "qty": 2}, {"sku": "B", "qty": 1}]}
    charged = {"payment_id": "p-1", "amount": 1200}
    assert final.outputs == {"reserve": reserved, "charge": charged, "ship": {}}  # None stores {}
    assert seen["reserve"][1] == {}
    assert seen["charge"][1] == {"reserve": reserved}  # by step name, not merged flat
    assert seen["ship"][1] == {"reserve": reserved, "charge": charged}
    for name, (ctx, _) in seen.items():
        assert (ctx.step, ctx.saga_type, ctx.saga_id) == (name, "order", "s-1")
        assert dict(ctx.input) == {"amount": 1200, "customer": {"id": "c-1"}}
        assert ctx.output is None
        assert not ctx.compensating


async def test_gives_input_read_only_when_an_action_tries_to_change_it(make_engine: MakeEngine) -> None:
    async def meddle(ctx: StepContext) -> None:
        ctx.input["amount"] = 0  # type: ignore[index]

    engine = make_engine(Saga("order", [SagaStep("meddle", meddle)]))

    await engine.start("order", {"amount": 5}, saga_id="s-1")
    final = await engine.wait("s-1", timeout=5)

    assert final.input == {"amount": 5}
    assert final.history[0].error is not None
    assert final.history[0].error.type == "TypeError"


async def test_keeps_the_idempotency_key_when_a_step_is_retried(make_engine: MakeEngine) -> None:
    calls: list[tuple[int, str]] = []

    async def flaky(ctx: StepContext) -> None:
        calls.append((ctx.attempt, ctx.idempotency_key))
        if ctx.attempt < 3:
            raise ConnectionError("gateway unreachable")

    saga = Saga("order", [SagaStep("charge", flaky, retry=FAST_RETRY)])
    engine = make_engine(saga)

    await engine.start("order", {}, saga_id="s-1")
    final = await engine.wait("s-1", timeout=5)

    assert final.status is SagaStatus.COMPLETED
    assert calls == [(1, "s-1:charge"), (2, "s-1:charge"), (3, "s-1:charge")]


async def test_records_the_started_attempt_when_the_action_or_compensation_runs(
    make_engine: MakeEngine, store: InMemorySagaStore
) -> None:
    observed: list[tuple[str, Phase, int, str, Phase, int, AttemptStatus]] = []

    async def record(ctx: StepContext) -> None:
        stored = await store.get(ctx.saga_id)
        assert stored is not None
        last = stored.history[-1]
        phase = Phase.COMPENSATION if ctx.compensating else Phase.ACTION
        observed.append((ctx.step, phase, ctx.attempt, last.step, last.phase, last.attempt, last.status))

    async def flaky_then_reject(ctx: StepContext) -> None:
        await record(ctx)
        if ctx.attempt == 1:
            raise TimeoutError
        raise _RejectedError("no stock")

    saga = Saga(
        "order",
        [
            SagaStep("reserve", record, record),
            SagaStep("charge", record, record),
            SagaStep("ship", flaky_then_reject, record, retry=FAST_RETRY),
        ],
        compensation_retry=FAST_RETRY,
    )
    engine = make_engine(saga)

    await engine.start("order", {}, saga_id="s-1")
    final = await engine.wait("s-1", timeout=5)

    assert final.status is SagaStatus.COMPENSATED
    assert [o[:3] for o in observed] == [
        ("reserve", Phase.ACTION, 1),
        ("charge", Phase.ACTION, 1),
        ("ship", Phase.ACTION, 1),
        ("ship", Phase.ACTION, 2),
        ("charge", Phase.COMPENSATION, 1),
        ("reserve", Phase.COMPENSATION, 1),
    ]
    for step, phase, attempt, stored_step, stored_phase, stored_attempt, status in observed:
        assert (stored_step, stored_phase, stored_attempt) == (step, phase, attempt)
        assert status is AttemptStatus.STARTED


async def test_runs_once_when_started_twice_with_the_same_id(
    make_engine: MakeEngine, store: InMemorySagaStore
) -> None:
    ledger = InMemoryLedger()
    engine = make_engine(scripted_saga("order", STEPS, ledger))

    first, second = await asyncio.gather(
        engine.start("order", {"n": 1}, saga_id="s-1"), engine.start("order", {"n": 1}, saga_id="s-1")
    )
    final = await engine.wait("s-1", timeout=5)
    again = await engine.start("order", {"n": 2}, saga_id="s-1")

    assert first.saga_id == second.saga_id == again.saga_id == "s-1"
    assert final.status is SagaStatus.COMPLETED
    assert again.status is SagaStatus.COMPLETED
    assert again.input == {"n": 1}  # the existing saga is returned unchanged
    assert [(e.step, e.kind) for e in await ledger.effects("s-1")] == [(s, DO) for s in STEPS]
    assert ledger.duplicates == 0
    assert store.writes == 5


async def test_finds_sagas_when_filtered_by_status_type_or_correlation_id(make_engine: MakeEngine) -> None:
    ledger = InMemoryLedger()
    faults = FaultPlan().fail_permanently("refund")
    engine = make_engine(
        scripted_saga("order", ["reserve"], ledger), scripted_saga("returns", ["refund"], ledger, faults)
    )
    for n in range(3):
        await engine.start("order", {}, saga_id=f"o-{n}", correlation_id=f"order-{n}")
    await engine.start("returns", {}, saga_id="r-0", correlation_id="order-1")
    for saga_id in ("o-0", "o-1", "o-2", "r-0"):
        await engine.wait(saga_id, timeout=5)

    completed, total_completed = await engine.find(SagaQuery(statuses=[SagaStatus.COMPLETED]))
    returns, _ = await engine.find(SagaQuery(saga_type="returns"))
    related, total_related = await engine.find(SagaQuery(correlation_id="order-1"))
    page, total = await engine.find(SagaQuery(limit=2, skip=1))

    assert total_completed == 3
    assert {s.saga_id for s in completed} == {"o-0", "o-1", "o-2"}
    assert [(s.saga_id, s.status) for s in returns] == [("r-0", SagaStatus.COMPENSATED)]
    assert total_related == 2
    assert {s.saga_id for s in related} == {"o-1", "r-0"}
    assert total == 4
    assert len(page) == 2


async def test_raises_when_the_saga_type_or_id_is_unknown(make_engine: MakeEngine) -> None:
    engine = make_engine(scripted_saga("order", STEPS, InMemoryLedger()))

    with pytest.raises(UnknownSagaTypeError, match="no saga definition named 'refund'"):
        await engine.start("refund", {})
    with pytest.raises(SagaNotFoundError):
        await engine.get("nope")


async def test_generates_an_id_when_none_is_given(make_engine: MakeEngine) -> None:
    engine = make_engine(scripted_saga("order", STEPS, InMemoryLedger()))

    one = await engine.start("order", {})
    two = await engine.start("order", {})

    assert one.saga_id != two.saga_id
    assert (await engine.wait(one.saga_id, timeout=5)).status is SagaStatus.COMPLETED
    assert (await engine.wait(two.saga_id, timeout=5)).status is SagaStatus.COMPLETED


class _RejectedError(Exception):
    retryable = False
    code = "test.rejected"


async def test_peeks_at_a_driven_saga_as_last_written_and_at_nothing_once_it_ends(
    make_engine: MakeEngine, store: InMemorySagaStore
) -> None:
    gate = asyncio.Event()

    async def wait_for_gate(ctx: StepContext[Any]) -> dict[str, Any]:
        await gate.wait()
        return {}

    async def first(ctx: StepContext[Any]) -> dict[str, Any]:
        return {"first": True}

    saga = Saga("gated", [SagaStep("first", first), SagaStep("gated", wait_for_gate)])
    engine = make_engine(saga)
    await engine.start("gated", {}, saga_id="s-1")

    deadline = asyncio.get_running_loop().time() + 5
    while engine.peek("s-1", lambda state: state.current_step) != 1:
        assert asyncio.get_running_loop().time() < deadline, "the saga never reached its second step"
        await asyncio.sleep(0.001)
    held = engine.peek("s-1", lambda state: state.model_dump())
    stored = await store.get("s-1")
    assert stored is not None
    assert held == stored.model_dump()

    gate.set()
    final = await engine.wait("s-1", timeout=5)

    assert final.status is SagaStatus.COMPLETED
    assert engine.peek("s-1", lambda state: state.status) is None
