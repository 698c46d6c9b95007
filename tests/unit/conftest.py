"""Fixtures of the engine's unit tests: an in-memory store, and engines stopped after each test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from ecommerce_saga.saga import AttemptStatus, Phase, Saga, SagaEngine, SagaState
from ecommerce_saga.saga.stores.memory import InMemorySagaStore

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
