"""Fixtures of the engine's unit tests: an in-memory store, and engines stopped after each test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from ecommerce_saga.saga import Saga, SagaEngine
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
