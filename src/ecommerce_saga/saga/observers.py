"""Lifecycle hooks: the engine reports every transition to its observers."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from ecommerce_saga.saga.state import ErrorInfo, Phase, SagaState, SagaStatus

# A failing observer is reported under the engine's logger name, as it was before `Notifier` left
# engine.py: log configuration may refer to it.
_engine_logger = logging.getLogger("ecommerce_saga.saga.engine")


class EventKind(StrEnum):
    """What happened."""

    SAGA_STARTED = "saga_started"
    STEP_STARTED = "step_started"
    STEP_SUCCEEDED = "step_succeeded"
    STEP_FAILED = "step_failed"
    RETRY_SCHEDULED = "retry_scheduled"
    COMPENSATION_STARTED = "compensation_started"
    COMPENSATION_SUCCEEDED = "compensation_succeeded"
    COMPENSATION_FAILED = "compensation_failed"
    SAGA_COMPLETED = "saga_completed"
    SAGA_COMPENSATED = "saga_compensated"
    SAGA_PARKED = "saga_parked"
    SAGA_RECOVERED = "saga_recovered"
    LEASE_LOST = "lease_lost"
    ATTEMPT_ABANDONED = "attempt_abandoned"
    """An attempt would not stop after its timeout: this worker gave the saga up (see
    `SagaStep.timeout`); recovery runs the step again."""
    OPERATOR_ACTION = "operator_action"
    DEFINITION_MISSING = "definition_missing"
    """A saga waits for a worker with its definition version (reported once per saga and engine)."""


@dataclass(frozen=True, slots=True)
class SagaEvent:
    """One lifecycle event.

    Attributes:
        kind: What happened.
        saga_id: The saga's id.
        saga_type: The saga definition's name.
        correlation_id: The saga's correlation id, if any.
        step: The step concerned, if any.
        attempt: The attempt number, for step events.
        duration_seconds: How long the attempt (or, for final events, the saga) took.
        error: The failure, for failure events.
        detail: Free text (an operator's reason, a retry delay).
    """

    kind: EventKind
    saga_id: str
    saga_type: str
    correlation_id: str | None = None
    step: str | None = None
    attempt: int | None = None
    duration_seconds: float | None = None
    error: ErrorInfo | None = None
    detail: str | None = None


class SagaObserver(Protocol):
    """Receives every `SagaEvent`. Must be fast and must not raise; it runs on the engine's path."""

    def notify(self, event: SagaEvent) -> None:
        """Handle one event."""
        ...


_LEVELS = {
    # each attempt's start and success: DEBUG (a busy shop writes several per order)
    EventKind.STEP_STARTED: logging.DEBUG,
    EventKind.STEP_SUCCEEDED: logging.DEBUG,
    EventKind.COMPENSATION_STARTED: logging.DEBUG,
    # what an operator reads: INFO and up
    EventKind.STEP_FAILED: logging.WARNING,
    EventKind.COMPENSATION_FAILED: logging.WARNING,
    EventKind.SAGA_PARKED: logging.ERROR,
    EventKind.ATTEMPT_ABANDONED: logging.ERROR,
    EventKind.LEASE_LOST: logging.WARNING,
    EventKind.DEFINITION_MISSING: logging.WARNING,
}


class LoggingObserver:
    """Logs every event as a structured record carrying the saga id, type and step."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._logger = logger or logging.getLogger("ecommerce_saga.saga")

    def notify(self, event: SagaEvent) -> None:
        """Log `event`: step starts and successes at DEBUG, the saga's course at INFO, failures at
        WARNING, parked sagas and abandoned attempts at ERROR."""
        level = _LEVELS.get(event.kind, logging.INFO)
        if not self._logger.isEnabledFor(level):
            return
        extra = {
            "saga_id": event.saga_id,
            "saga_type": event.saga_type,
            "correlation_id": event.correlation_id,
            "step": event.step,
            "attempt": event.attempt,
            "duration_s": event.duration_seconds,
            "error_code": event.error.code if event.error else None,
            "error": event.error.message if event.error else None,
            "detail": event.detail,
        }
        extra = {key: value for key, value in extra.items() if value is not None}
        self._logger.log(level, event.kind.value, extra=extra)


_FINAL_EVENTS = {
    SagaStatus.COMPLETED: EventKind.SAGA_COMPLETED,
    SagaStatus.COMPENSATED: EventKind.SAGA_COMPENSATED,
    SagaStatus.REQUIRES_ATTENTION: EventKind.SAGA_PARKED,
}


class Notifier:
    """The engine's side of the observers: builds each `SagaEvent` and hands it to every observer.

    An observer that raises is logged and skipped; it never stops the saga.

    Args:
        observers: The observers to notify, in order.
    """

    def __init__(self, observers: Iterable[SagaObserver]) -> None:
        self._observers = list(observers)

    def add(self, observer: SagaObserver) -> None:
        """Notify one more observer."""
        self._observers.append(observer)

    def emit(
        self,
        kind: EventKind,
        state: SagaState,
        *,
        step: str | None = None,
        attempt: int | None = None,
        duration: float | None = None,
        error: ErrorInfo | None = None,
        detail: str | None = None,
    ) -> None:
        """Notify every observer of one event about the saga in `state`."""
        event = SagaEvent(
            kind=kind,
            saga_id=state.saga_id,
            saga_type=state.saga_type,
            correlation_id=state.correlation_id,
            step=step,
            attempt=attempt,
            duration_seconds=duration,
            error=error,
            detail=detail,
        )
        for observer in self._observers:
            try:
                observer.notify(event)
            except Exception:
                _engine_logger.exception("saga observer failed", extra={"saga_id": state.saga_id})

    def transition(self, state: SagaState) -> None:
        """Announce where a just-saved state leads: the saga's end or parking, or a first attempt."""
        if state.status in _FINAL_EVENTS:
            duration = (state.updated_at - state.created_at).total_seconds()
            self.emit(_FINAL_EVENTS[state.status], state, duration=duration, error=state.failure)
            return
        entry = state.open_entry()
        if entry is not None and entry.attempt == 1:
            kind = EventKind.STEP_STARTED if entry.phase is Phase.ACTION else EventKind.COMPENSATION_STARTED
            self.emit(kind, state, step=entry.step, attempt=1)
