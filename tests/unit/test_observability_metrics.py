"""Saga metrics: the observer driven by events, and by a real engine running scripted sagas."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from ecommerce_saga.observability import ParkedSagasGauge, SagaMetrics
from ecommerce_saga.saga import EventKind, Saga, SagaEngine, SagaEvent, SagaQuery, SagaState, SagaStatus
from ecommerce_saga.saga.stores.memory import InMemorySagaStore
from ecommerce_saga.saga.testing import FaultPlan, InMemoryLedger, scripted_saga
from tests.waiting import eventually

K = EventKind
STEPS = ["reserve", "charge", "ship"]
MakeEngine = Callable[..., SagaEngine]


class Metrics:
    """A registry with the saga metrics in it, and a reader of its samples."""

    def __init__(self, *saga_types: str) -> None:
        self.registry = CollectorRegistry()
        self.sagas = SagaMetrics(self.registry, saga_types)

    def value(self, name: str, **labels: str) -> float:
        sample = self.registry.get_sample_value(name, labels)
        return 0.0 if sample is None else sample

    def counts(self, *names: str, saga_type: str = "order") -> list[float]:
        return [self.value(name, saga_type=saga_type) for name in names]


class FakeClock:
    """Seconds that move only when told."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def event(kind: EventKind, saga_id: str = "s-1", **fields: Any) -> SagaEvent:
    return SagaEvent(kind=kind, saga_id=saga_id, saga_type="order", correlation_id="order-1", **fields)


@pytest.fixture
def store() -> InMemorySagaStore:
    return InMemorySagaStore()


@pytest.fixture
async def make_engine(store: InMemorySagaStore) -> AsyncIterator[MakeEngine]:
    engines: list[SagaEngine] = []

    def make(*definitions: Saga, **options: Any) -> SagaEngine:
        engine = SagaEngine(store, definitions, observers=[], **options)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        await engine.stop()


# ---------------------------------------------------------------- driven by events


def test_exports_zero_for_every_known_saga_type_before_any_saga_ran() -> None:
    metrics = Metrics("order", "refund")

    exposition = metrics.registry.get_sample_value("saga_completed_total", {"saga_type": "refund"})

    assert exposition == 0.0
    assert metrics.registry.get_sample_value("saga_in_flight", {"saga_type": "order"}) == 0.0


def test_counts_one_failure_when_a_saga_moves_from_its_actions_to_compensation() -> None:
    metrics = Metrics()
    for kind, step in [
        (K.SAGA_STARTED, None),
        (K.STEP_STARTED, "reserve"),
        (K.STEP_SUCCEEDED, "reserve"),
        (K.STEP_STARTED, "charge"),
        (K.STEP_FAILED, "charge"),
        (K.COMPENSATION_STARTED, "reserve"),
        (K.COMPENSATION_SUCCEEDED, "reserve"),
    ]:
        metrics.sagas.notify(event(kind, step=step, attempt=1 if step else None, duration_seconds=0.002))
    metrics.sagas.notify(event(K.SAGA_COMPENSATED, duration_seconds=0.5))

    assert metrics.counts("saga_started_total", "saga_failed_total", "saga_compensated_total") == [1, 1, 1]
    assert metrics.value("saga_compensations_total", saga_type="order", step="reserve") == 1
    assert metrics.value("saga_in_flight", saga_type="order") == 0
    assert metrics.value("saga_duration_seconds_count", saga_type="order", outcome="compensated") == 1
    failed_attempts = {"saga_type": "order", "step": "charge", "phase": "action", "outcome": "failed"}
    assert metrics.value("saga_step_duration_seconds_count", **failed_attempts) == 1


def test_counts_a_failure_when_a_saga_with_nothing_to_undo_ends_compensated() -> None:
    metrics = Metrics()
    metrics.sagas.notify(event(K.SAGA_STARTED))
    metrics.sagas.notify(event(K.STEP_FAILED, step="reserve", attempt=1, duration_seconds=0.001))
    metrics.sagas.notify(event(K.SAGA_COMPENSATED, duration_seconds=0.01))

    assert metrics.counts("saga_failed_total", "saga_compensated_total") == [1, 1]


def test_does_not_count_a_failure_when_a_recovered_saga_was_already_compensating() -> None:
    metrics = Metrics()
    metrics.sagas.notify(event(K.SAGA_RECOVERED))
    metrics.sagas.notify(event(K.COMPENSATION_SUCCEEDED, step="reserve", attempt=2, duration_seconds=0.01))
    metrics.sagas.notify(event(K.SAGA_COMPENSATED, duration_seconds=3.0))

    assert metrics.counts("saga_recoveries_total", "saga_failed_total", "saga_compensated_total") == [1, 0, 1]


def test_does_not_count_an_operator_cancellation_as_a_failure() -> None:
    metrics = Metrics()
    metrics.sagas.notify(event(K.SAGA_STARTED))
    metrics.sagas.notify(event(K.STEP_SUCCEEDED, step="reserve", attempt=1, duration_seconds=0.001))
    metrics.sagas.notify(event(K.OPERATOR_ACTION, detail="cancel by ops: customer asked"))
    metrics.sagas.notify(event(K.COMPENSATION_STARTED, step="reserve", attempt=1))
    metrics.sagas.notify(event(K.SAGA_COMPENSATED))

    assert metrics.counts("saga_failed_total", "saga_compensated_total") == [0, 1]


def test_counts_a_saga_parked_from_compensation_as_failed_only_once() -> None:
    metrics = Metrics()
    metrics.sagas.notify(event(K.SAGA_STARTED))
    metrics.sagas.notify(event(K.STEP_FAILED, step="charge", attempt=1, duration_seconds=0.001))
    metrics.sagas.notify(event(K.COMPENSATION_FAILED, step="reserve", attempt=1, duration_seconds=0.001))
    metrics.sagas.notify(event(K.COMPENSATION_FAILED, step="reserve", attempt=2))  # no duration: skipped
    metrics.sagas.notify(event(K.SAGA_PARKED, duration_seconds=1.0))

    assert metrics.counts("saga_failed_total", "saga_parked_total", "saga_in_flight") == [1, 1, 0]
    failed = {"saga_type": "order", "step": "reserve", "phase": "compensation", "outcome": "failed"}
    assert metrics.value("saga_step_duration_seconds_count", **failed) == 1


def test_counts_a_saga_in_flight_once_until_it_ends_or_loses_its_lease() -> None:
    metrics = Metrics()
    metrics.sagas.notify(event(K.SAGA_STARTED, saga_id="a"))
    metrics.sagas.notify(event(K.SAGA_STARTED, saga_id="b"))
    metrics.sagas.notify(event(K.SAGA_RECOVERED, saga_id="b"))  # a stale run of b replaced here
    in_flight_then = metrics.value("saga_in_flight", saga_type="order")
    metrics.sagas.notify(event(K.LEASE_LOST, saga_id="a"))
    metrics.sagas.notify(event(K.SAGA_COMPLETED, saga_id="b", duration_seconds=0.1))

    assert in_flight_then == 2
    assert metrics.counts("saga_in_flight", "saga_lease_lost_total", "saga_completed_total") == [0, 1, 1]


def test_counts_an_abandoned_attempt_by_step_and_no_longer_counts_its_saga_in_flight() -> None:
    metrics = Metrics()
    metrics.sagas.notify(event(K.SAGA_STARTED, saga_id="a"))
    metrics.sagas.notify(event(K.ATTEMPT_ABANDONED, saga_id="a", step="charge", attempt=1))

    assert metrics.value("saga_attempts_abandoned_total", saga_type="order", step="charge") == 1
    assert metrics.counts("saga_in_flight", "saga_failed_total") == [0, 0]


def test_stops_counting_a_saga_in_flight_when_this_process_no_longer_drives_it() -> None:
    metrics = Metrics()
    metrics.sagas.notify(event(K.SAGA_STARTED, saga_id="a"))
    metrics.sagas.notify(event(K.SAGA_STARTED, saga_id="b"))

    metrics.sagas.prune(lambda saga_id: saga_id == "b")

    assert metrics.value("saga_in_flight", saga_type="order") == 1


# ---------------------------------------------------------------- a real engine


async def test_counts_a_completed_saga_and_times_each_step(make_engine: MakeEngine) -> None:
    metrics = Metrics("order")
    engine = make_engine(scripted_saga("order", STEPS, InMemoryLedger()))
    engine.add_observer(metrics.sagas)

    await engine.start("order", {}, saga_id="s-1")
    await engine.wait("s-1", timeout=5)

    assert metrics.counts("saga_started_total", "saga_completed_total", "saga_failed_total") == [1, 1, 0]
    assert metrics.value("saga_in_flight", saga_type="order") == 0
    assert metrics.value("saga_duration_seconds_count", saga_type="order", outcome="completed") == 1
    for step in STEPS:
        labels = {"saga_type": "order", "step": step, "phase": "action", "outcome": "succeeded"}
        assert metrics.value("saga_step_duration_seconds_count", **labels) == 1


async def test_counts_the_failure_and_each_compensation_when_a_step_is_rejected(
    make_engine: MakeEngine,
) -> None:
    metrics = Metrics("order")
    engine = make_engine(
        scripted_saga("order", STEPS, InMemoryLedger(), FaultPlan().fail_permanently("ship"))
    )
    engine.add_observer(metrics.sagas)

    await engine.start("order", {}, saga_id="s-1")
    state = await engine.wait("s-1", timeout=5)

    assert state.status is SagaStatus.COMPENSATED
    assert metrics.counts("saga_failed_total", "saga_compensated_total", "saga_completed_total") == [1, 1, 0]
    compensated = [metrics.value("saga_compensations_total", saga_type="order", step=s) for s in STEPS]
    assert compensated == [1, 1, 0]


async def test_counts_retries_and_the_failed_attempts_when_a_step_fails_transiently(
    make_engine: MakeEngine,
) -> None:
    metrics = Metrics("order")
    faults = FaultPlan().fail_transiently("charge", times=2)
    engine = make_engine(scripted_saga("order", STEPS, InMemoryLedger(), faults))
    engine.add_observer(metrics.sagas)

    await engine.start("order", {}, saga_id="s-1")
    await engine.wait("s-1", timeout=5)

    failed = {"saga_type": "order", "step": "charge", "phase": "action", "outcome": "failed"}
    assert metrics.value("saga_step_retries_total", saga_type="order", step="charge") == 2
    assert metrics.value("saga_step_duration_seconds_count", **failed) == 2
    assert metrics.counts("saga_completed_total", "saga_failed_total") == [1, 0]


async def test_counts_a_parked_saga_in_the_store_and_caches_the_count(
    make_engine: MakeEngine,
) -> None:
    faults = FaultPlan().fail_permanently("ship").fail_compensation("reserve", times=None)
    saga = scripted_saga("order", STEPS, InMemoryLedger(), faults, compensation_attempts=2)
    metrics, clock = Metrics("order"), FakeClock()
    engine = make_engine(saga)
    engine.add_observer(metrics.sagas)
    parked = ParkedSagasGauge(metrics.registry, engine, max_age=5, clock=clock)

    await engine.start("order", {}, saga_id="s-1")
    assert (await engine.wait("s-1", timeout=5)).status is SagaStatus.REQUIRES_ATTENTION
    await parked.refresh()
    first_count = metrics.value("saga_parked_current", saga_type="order")
    await engine.start("order", {}, saga_id="s-2")
    await engine.wait("s-2", timeout=5)
    await parked.refresh()
    cached_count = metrics.value("saga_parked_current", saga_type="order")
    clock.advance(5)
    await parked.refresh()

    assert (first_count, cached_count) == (1, 1)
    assert metrics.value("saga_parked_current", saga_type="order") == 2
    assert metrics.counts("saga_parked_total", "saga_failed_total", "saga_in_flight") == [2, 2, 0]


class FlakyStore(InMemorySagaStore):
    """A store whose queries fail while `down` is set."""

    down = False

    async def find(self, query: SagaQuery) -> tuple[list[SagaState], int]:
        if self.down:
            raise ConnectionError("database down")
        return await super().find(query)


async def test_keeps_the_last_parked_count_when_the_store_fails(caplog: pytest.LogCaptureFixture) -> None:
    faults = FaultPlan().fail_permanently("ship").fail_compensation("reserve", times=None)
    saga = scripted_saga("order", STEPS, InMemoryLedger(), faults, compensation_attempts=1)
    metrics, clock, store = Metrics("order"), FakeClock(), FlakyStore()
    engine = SagaEngine(store, [saga], observers=[])
    parked = ParkedSagasGauge(metrics.registry, engine, max_age=1, clock=clock)
    await engine.start("order", {}, saga_id="s-1")
    await engine.wait("s-1", timeout=5)
    await parked.refresh()

    store.down = True
    clock.advance(2)
    await parked.refresh()

    assert metrics.value("saga_parked_current", saga_type="order") == 1
    assert "could not count parked sagas" in caplog.text


async def test_counts_a_recovery_and_drops_the_crashed_run_from_in_flight(make_engine: MakeEngine) -> None:
    saga = scripted_saga("order", STEPS, InMemoryLedger(), FaultPlan().crash_after("charge"))
    crashed_metrics, recovering_metrics, clock = Metrics("order"), Metrics("order"), FakeClock()
    crashed = make_engine(saga, worker_id="worker-a")
    crashed.add_observer(crashed_metrics.sagas)
    recovering = make_engine(saga, worker_id="worker-b", clock=clock)
    recovering.add_observer(recovering_metrics.sagas)

    await crashed.start("order", {}, saga_id="s-1")
    await eventually(lambda: not crashed.is_running_here("s-1"))
    in_flight_after_crash = crashed_metrics.value("saga_in_flight", saga_type="order")
    crashed_metrics.sagas.prune(crashed.is_running_here)
    clock.advance(60)
    assert await recovering.recover_once() == 1
    await recovering.wait("s-1", timeout=5)

    assert in_flight_after_crash == 1  # no event says the run died ...
    assert crashed_metrics.value("saga_in_flight", saga_type="order") == 0  # ... pruning notices
    assert recovering_metrics.counts("saga_recoveries_total", "saga_completed_total", "saga_in_flight") == [
        1,
        1,
        0,
    ]
    assert recovering_metrics.value("saga_started_total", saga_type="order") == 0


def test_counts_a_saga_waiting_for_its_definition_without_counting_it_in_flight() -> None:
    metrics = Metrics("order")

    metrics.sagas.notify(event(K.DEFINITION_MISSING, "s-1", detail="v1"))
    metrics.sagas.notify(event(K.DEFINITION_MISSING, "s-2", detail="v1"))

    assert metrics.value("saga_definition_missing_total", saga_type="order") == 2.0
    assert metrics.value("saga_in_flight", saga_type="order") == 0.0
