"""Fixtures of the engine's unit tests: an in-memory store, and engines stopped after each test."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from ecommerce_saga.saga import AttemptStatus, EventKind, Phase, Saga, SagaEngine, SagaEvent, SagaState
from ecommerce_saga.saga.stores.memory import InMemorySagaStore
from tests.waiting import eventually

MakeEngine = Callable[..., SagaEngine]


@pytest.fixture
def store() -> InMemorySagaStore:
    """The test's saga store."""
    return InMemorySagaStore()


@pytest.fixture
async def make_engine(store: InMemorySagaStore) -> AsyncIterator[MakeEngine]:
    """Build engines on the test's store (or `store=`), without observers unless given; all are
    stopped when the test ends."""
    engines: list[SagaEngine] = []

    def make(*definitions: Saga, **options: Any) -> SagaEngine:
        options.setdefault("observers", [])
        engine = SagaEngine(options.pop("store", store), definitions, **options)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        await engine.stop()


class Recorder:
    """An observer that keeps every event."""

    def __init__(self) -> None:
        self.events: list[SagaEvent] = []

    def notify(self, event: SagaEvent) -> None:
        self.events.append(event)

    def kinds(self) -> list[EventKind]:
        return [event.kind for event in self.events]

    def trail(self) -> list[tuple[EventKind, str | None, int | None]]:
        return [(e.kind, e.step, e.attempt) for e in self.events]


def attempts_of(state: SagaState, step: str, phase: Phase) -> list[tuple[int, AttemptStatus, str | None]]:
    """Each attempt of `step` in `phase`: its number, outcome and error code."""
    return [
        (e.attempt, e.status, e.error.code if e.error else None)
        for e in state.history
        if e.step == step and e.phase is phase
    ]


async def run_saga(engine: SagaEngine, saga_input: dict[str, Any] | None = None) -> SagaState:
    """Start the engine's (first) saga as `s-1` and wait for it to end or park."""
    saga_type = next(iter(engine.definitions))
    await engine.start(saga_type, saga_input or {}, saga_id="s-1")
    return await engine.wait("s-1", timeout=5)


class CountingStore(InMemorySagaStore):
    """Counts the saves of a saga's state (not its creation, nor lease renewals), and keeps the
    last history entry each save carried: which step, in which status."""

    def __init__(self) -> None:
        super().__init__()
        self.heads: list[tuple[str, AttemptStatus]] = []

    @property
    def saves(self) -> int:
        return len(self.heads)

    async def save(self, state: SagaState) -> SagaState:
        self.heads.append((state.history[-1].step, state.history[-1].status))
        return await super().save(state)


class FakeClock:
    """Seconds since the epoch that move only when told, starting at the real time."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class Recovered:
    """A saga whose run crashed, as the crashed worker left it and as another worker ended it."""

    stuck: SagaState
    claimed: int
    final: SagaState


async def crash_then_recover(make_engine: MakeEngine, saga: Saga, saga_id: str = "s-1") -> Recovered:
    """Run `saga` on worker-a until its run stops (a step of it crashes), then let worker-b, a
    minute later, claim whatever is due and drive the saga to its end."""
    clock = FakeClock()
    crashed = make_engine(saga, worker_id="worker-a")
    recovering = make_engine(saga, worker_id="worker-b", clock=clock)
    await crashed.start(saga.name, {}, saga_id=saga_id)
    await eventually(lambda: not crashed.is_running_here(saga_id))
    stuck = await crashed.get(saga_id)
    clock.advance(60)
    claimed = await recovering.recover_once()
    return Recovered(stuck, claimed, await recovering.wait(saga_id, timeout=5))
