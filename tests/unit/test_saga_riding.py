"""The runner's side of `SagaStep.riding`: an attempt whose writes the store made is not run
again; an attempt whose writes were not made is the action's; a crash after the writes leaves
the step to its action, after recovery."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ecommerce_saga.saga import (
    AttemptStatus,
    Phase,
    Saga,
    SagaState,
    SagaStatus,
    SagaStep,
    StepContext,
    StepKind,
    StepWrites,
)
from ecommerce_saga.saga.stores.memory import InMemorySagaStore
from ecommerce_saga.saga.testing import SimulatedCrash
from tests.unit.conftest import MakeEngine, attempts_of, crash_then_recover


class WritingStore(InMemorySagaStore):
    """Makes the writes it is handed (callables) right after the save, as a store that can."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[Sequence[object]] = []

    async def save_and_write(self, state: SagaState, writes: Sequence[object]) -> tuple[SagaState, bool]:
        saved = await self.save(state)
        self._make(writes)
        return saved, True

    async def create_and_write(
        self, state: SagaState, writes: Sequence[object], preceded_by: Sequence[object] = ()
    ) -> tuple[bool, bool]:
        if not await self.create(state, preceded_by):
            return False, False
        self._make(writes)
        return True, True

    def _make(self, writes: Sequence[object]) -> None:
        self.written.append(writes)
        for write in writes:
            assert callable(write)
            write()


class Parcel:
    """A two-step saga whose second step ships a parcel, by its action or by its writes."""

    def __init__(self) -> None:
        self.shipped: list[str] = []
        self.actions = 0
        self.made = 0

    def saga(self, writes: Callable[[StepContext[Any]], StepWrites[dict[str, Any]] | None]) -> Saga[Any]:
        async def pack(ctx: StepContext[Any]) -> dict[str, Any]:
            return {}

        ship = SagaStep("ship", self.ship, kind=StepKind.PIVOT).riding(writes)
        return Saga("parcel", [SagaStep("pack", pack), ship])

    async def ship(self, ctx: StepContext[Any]) -> dict[str, Any]:
        self.actions += 1
        if ctx.saga_id not in self.shipped:  # idempotent
            self.shipped.append(ctx.saga_id)
        return {"by": "action"}

    def writes(self, ctx: StepContext[Any]) -> StepWrites[dict[str, Any]]:
        def count() -> None:
            self.made += 1

        return StepWrites([lambda: self.shipped.append(ctx.saga_id)], {"by": "writes"}, made=count)


async def test_writes_the_store_made_are_the_attempt(make_engine: MakeEngine) -> None:
    parcel, store = Parcel(), WritingStore()
    engine = make_engine(parcel.saga(parcel.writes), store=store)

    await engine.start("parcel", {}, saga_id="p1")
    state = await engine.wait("p1", timeout=5)

    assert state.status is SagaStatus.COMPLETED
    assert state.outputs["ship"] == {"by": "writes"}
    assert (parcel.shipped, parcel.actions, parcel.made, len(store.written)) == (["p1"], 0, 1, 1)
    assert attempts_of(state, "ship", Phase.ACTION) == [(1, AttemptStatus.SUCCEEDED, None)]


async def test_a_first_step_rides_on_the_saga_s_insert(make_engine: MakeEngine) -> None:
    parcel, store = Parcel(), WritingStore()
    saga = Saga("parcel", [SagaStep("ship", parcel.ship).riding(parcel.writes)])
    engine = make_engine(saga, store=store)

    await engine.start("parcel", {}, saga_id="p1")
    state = await engine.wait("p1", timeout=5)
    again = await engine.start("parcel", {}, saga_id="p1")  # a repeated start: no writes again

    assert state.outputs["ship"] == {"by": "writes"}
    assert (parcel.shipped, parcel.actions, parcel.made, len(store.written)) == (["p1"], 0, 1, 1)
    assert again.status is SagaStatus.COMPLETED


async def test_a_store_that_makes_no_writes_leaves_the_attempt_to_the_action(make_engine: MakeEngine) -> None:
    parcel = Parcel()
    engine = make_engine(parcel.saga(parcel.writes))  # InMemorySagaStore: never makes them

    await engine.start("parcel", {}, saga_id="p1")
    state = await engine.wait("p1", timeout=5)

    assert state.outputs["ship"] == {"by": "action"}
    assert (parcel.shipped, parcel.actions, parcel.made) == (["p1"], 1, 0)


async def test_no_writes_built_leaves_the_attempt_to_the_action(make_engine: MakeEngine) -> None:
    parcel, store = Parcel(), WritingStore()
    engine = make_engine(parcel.saga(lambda ctx: None), store=store)

    await engine.start("parcel", {}, saga_id="p1")
    state = await engine.wait("p1", timeout=5)

    assert state.outputs["ship"] == {"by": "action"}
    assert (parcel.actions, store.written) == (1, [])


async def test_a_crash_right_after_the_writes_leaves_the_step_to_its_action_after_recovery(
    make_engine: MakeEngine,
) -> None:
    parcel = Parcel()

    class CrashingStore(WritingStore):
        async def save_and_write(self, state: SagaState, writes: Sequence[object]) -> tuple[SagaState, bool]:
            await super().save_and_write(state, writes)
            raise SimulatedCrash  # the worker dies before it hears that they were made

    store = CrashingStore()
    saga = parcel.saga(parcel.writes)

    def make(*definitions: Saga[Any], **options: Any) -> Any:
        return make_engine(*definitions, store=store, **options)

    recovered = await crash_then_recover(make, saga, "p1")

    assert recovered.stuck.status is SagaStatus.RUNNING  # ship was opened, and its write made
    assert recovered.final.status is SagaStatus.COMPLETED
    assert recovered.final.outputs["ship"] == {"by": "action"}
    assert parcel.shipped == ["p1"]  # once: the action found it shipped
    ship = attempts_of(recovered.final, "ship", Phase.ACTION)
    assert [status for _, status, _ in ship][-1] is AttemptStatus.SUCCEEDED
    assert parcel.actions == 1
