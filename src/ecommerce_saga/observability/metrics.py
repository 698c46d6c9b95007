"""Prometheus metrics of the saga engine: a `SagaObserver`, and the parked-saga gauge read from the store.

Every metric is labelled by ``saga_type`` (and ``step``, ``phase``, ``outcome`` where it applies),
all of them names from the saga definitions, so cardinality is bounded by the code.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ecommerce_saga.saga import EventKind, Phase, SagaEngine, SagaEvent, SagaQuery, SagaStatus

logger = logging.getLogger(__name__)

STEP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Seconds: a step is one local call (a millisecond) or one remote call (tens of ms), up to its timeout."""
SAGA_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)
"""Seconds: a saga is a handful of steps, plus retry back-off; a parked one may wait much longer."""

_FINAL_OUTCOMES = {
    EventKind.SAGA_COMPLETED: "completed",
    EventKind.SAGA_COMPENSATED: "compensated",
    EventKind.SAGA_PARKED: "parked",
}
_STEP_OUTCOMES = {
    EventKind.STEP_SUCCEEDED: (Phase.ACTION, "succeeded"),
    EventKind.STEP_FAILED: (Phase.ACTION, "failed"),
    EventKind.COMPENSATION_SUCCEEDED: (Phase.COMPENSATION, "succeeded"),
    EventKind.COMPENSATION_FAILED: (Phase.COMPENSATION, "failed"),
}
_COMPENSATION_EVENTS = {
    EventKind.COMPENSATION_STARTED,
    EventKind.COMPENSATION_SUCCEEDED,
    EventKind.COMPENSATION_FAILED,
}


@dataclass
class _Tracked:
    """A saga this process is driving, and the phase it was last seen in (None: not known)."""

    saga_type: str
    phase: Phase | None = None


class SagaMetrics:
    """Saga counters, gauges and histograms in `registry`; register it with `SagaEngine.add_observer`.

    ``saga_failed_total`` counts sagas that stopped forward progress because a step failed (or the
    saga's deadline passed): seen here moving from their actions to compensation or to parking.
    An operator's cancellation is not a failure. ``saga_in_flight`` counts the sagas this process
    is driving; `prune` drops those it no longer is (a crashed run emits no event).

    Args:
        registry: Where the metrics are registered.
        saga_types: Known saga types, exported as zero from the start (so rates and alerts work).
    """

    def __init__(self, registry: CollectorRegistry, saga_types: Iterable[str] = ()) -> None:
        def counter(name: str, documentation: str, labels: tuple[str, ...] = ("saga_type",)) -> Counter:
            return Counter(name, documentation, labels, registry=registry)

        def histogram(
            name: str, documentation: str, labels: tuple[str, ...], buckets: tuple[float, ...]
        ) -> Histogram:
            return Histogram(name, documentation, labels, buckets=buckets, registry=registry)

        self.started = counter("saga_started", "Sagas started.")
        self.completed = counter("saga_completed", "Sagas that completed.")
        self.failed = counter("saga_failed", "Sagas that stopped forward progress on a failure.")
        self.compensated = counter("saga_compensated", "Sagas that ended compensated.")
        self.parked = counter("saga_parked", "Sagas parked for an operator (REQUIRES_ATTENTION).")
        self.recoveries = counter("saga_recoveries", "Sagas claimed by recovery after their worker stopped.")
        self.lease_lost = counter("saga_lease_lost", "Saga runs stopped: another worker took the lease.")
        self.attempts_abandoned = counter(
            "saga_attempts_abandoned",
            "Attempts that would not stop after their timeout; their saga was handed over.",
            ("saga_type", "step"),
        )
        self.definition_missing = counter(
            "saga_definition_missing",
            "Sagas seen waiting for a worker with their definition version (once per saga and process).",
        )
        self.step_retries = counter(
            "saga_step_retries", "Retries after a failed attempt.", ("saga_type", "step")
        )
        self.compensations = counter("saga_compensations", "Steps undone.", ("saga_type", "step"))
        self.in_flight = Gauge(
            "saga_in_flight",
            "Sagas running or compensating in this process.",
            ["saga_type"],
            registry=registry,
        )
        self.duration = histogram(
            "saga_duration_seconds",
            "Time from a saga's start to its end (completed, compensated or parked).",
            ("saga_type", "outcome"),
            SAGA_BUCKETS,
        )
        self.step_duration = histogram(
            "saga_step_duration_seconds",
            "Duration of one attempt of a step's action or compensation.",
            ("saga_type", "step", "phase", "outcome"),
            STEP_BUCKETS,
        )
        self._active: dict[str, _Tracked] = {}
        by_type = (self.started, self.completed, self.failed, self.compensated, self.parked, self.recoveries)
        for saga_type in saga_types:
            for metric in (*by_type, self.lease_lost, self.in_flight):
                metric.labels(saga_type)

    def notify(self, event: SagaEvent) -> None:
        """Update the metrics for one engine event."""
        if event.kind in _FINAL_OUTCOMES:
            self._finished(event)
        elif event.kind is EventKind.LEASE_LOST:
            self.lease_lost.labels(event.saga_type).inc()
            self._untrack(event.saga_id)
        elif event.kind is EventKind.ATTEMPT_ABANDONED:  # the run ends: recovery takes the saga
            self.attempts_abandoned.labels(event.saga_type, event.step or "").inc()
            self._untrack(event.saga_id)
        elif event.kind is EventKind.DEFINITION_MISSING:  # a saga this process does not drive
            self.definition_missing.labels(event.saga_type).inc()
        else:
            self._progressed(event, self._track(event))

    def prune(self, is_running_here: Callable[[str], bool]) -> None:
        """Stop counting as in flight the sagas this process no longer drives."""
        for saga_id in [saga_id for saga_id in self._active if not is_running_here(saga_id)]:
            self._untrack(saga_id)

    def _progressed(self, event: SagaEvent, tracked: _Tracked) -> None:
        kind, saga_type = event.kind, event.saga_type
        if kind is EventKind.SAGA_STARTED:
            self.started.labels(saga_type).inc()
            tracked.phase = Phase.ACTION
        elif kind in (EventKind.SAGA_RECOVERED, EventKind.OPERATOR_ACTION):
            if kind is EventKind.SAGA_RECOVERED:
                self.recoveries.labels(saga_type).inc()
            tracked.phase = None  # it may be in either phase; don't count a failure seen elsewhere
        elif kind is EventKind.RETRY_SCHEDULED:
            self.step_retries.labels(saga_type, event.step or "").inc()
        elif kind in _COMPENSATION_EVENTS:
            if tracked.phase is Phase.ACTION:
                self.failed.labels(saga_type).inc()
            tracked.phase = Phase.COMPENSATION
        else:
            tracked.phase = Phase.ACTION
        if kind is EventKind.COMPENSATION_SUCCEEDED:
            self.compensations.labels(saga_type, event.step or "").inc()
        self._observe_step(event)

    def _observe_step(self, event: SagaEvent) -> None:
        phase_outcome = _STEP_OUTCOMES.get(event.kind)
        if phase_outcome is None or event.duration_seconds is None:
            return
        phase, outcome = phase_outcome
        labels = (event.saga_type, event.step or "", phase.value, outcome)
        self.step_duration.labels(*labels).observe(event.duration_seconds)

    def _finished(self, event: SagaEvent) -> None:
        tracked = self._untrack(event.saga_id)
        saga_type, outcome = event.saga_type, _FINAL_OUTCOMES[event.kind]
        counter = {"completed": self.completed, "compensated": self.compensated, "parked": self.parked}[
            outcome
        ]
        counter.labels(saga_type).inc()
        if outcome != "completed" and tracked is not None and tracked.phase is Phase.ACTION:
            self.failed.labels(saga_type).inc()
        if event.duration_seconds is not None:
            self.duration.labels(saga_type, outcome).observe(event.duration_seconds)

    def _track(self, event: SagaEvent) -> _Tracked:
        tracked = self._active.get(event.saga_id)
        if tracked is None:
            tracked = self._active[event.saga_id] = _Tracked(event.saga_type)
            self.in_flight.labels(event.saga_type).inc()
        return tracked

    def _untrack(self, saga_id: str) -> _Tracked | None:
        tracked = self._active.pop(saga_id, None)
        if tracked is not None:
            self.in_flight.labels(tracked.saga_type).dec()
        return tracked


class ParkedSagasGauge:
    """``saga_parked_current{saga_type}``: sagas waiting for an operator, counted in the store.

    (Not ``saga_parked``: that family is the ``saga_parked_total`` counter, and OpenMetrics, which
    Prometheus negotiates by default, forbids a gauge of the same name.)

    The count is the database's truth (parked by any worker, resumed by any operator), refreshed
    by `refresh` at most every `max_age` seconds; concurrent scrapes share one refresh. If the
    store cannot answer, the last known values stay.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        engine: SagaEngine,
        *,
        max_age: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._gauge = Gauge(
            "saga_parked_current",
            "Sagas parked (REQUIRES_ATTENTION) in the store now.",
            ["saga_type"],
            registry=registry,
        )
        self._engine = engine
        self._max_age = max_age
        self._clock = clock
        self._lock = asyncio.Lock()
        self._refreshed_at: float | None = None

    def _fresh(self) -> bool:
        return self._refreshed_at is not None and self._clock() - self._refreshed_at < self._max_age

    async def refresh(self) -> None:
        """Count parked sagas per type in the store, unless the last count is recent enough."""
        if self._fresh():
            return
        async with self._lock:
            if self._fresh():  # another scrape refreshed it while this one waited
                return
            try:
                for saga_type in self._engine.definitions:
                    query = SagaQuery(statuses=[SagaStatus.REQUIRES_ATTENTION], saga_type=saga_type, limit=1)
                    _, total = await self._engine.find(query)
                    self._gauge.labels(saga_type).set(total)
            except Exception:
                logger.warning(
                    "could not count parked sagas; saga_parked_current keeps its last value", exc_info=True
                )
            finally:
                self._refreshed_at = self._clock()
