"""Saga fields for log records: which saga, order (correlation id), type and step a line is about."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from ecommerce_saga.saga import EventKind, SagaEvent, current_step

_GONE = (
    EventKind.SAGA_COMPLETED,
    EventKind.SAGA_COMPENSATED,
    EventKind.SAGA_PARKED,
    EventKind.LEASE_LOST,
    EventKind.ATTEMPT_ABANDONED,
)


@dataclass(frozen=True, slots=True)
class _Known:
    saga_type: str
    correlation_id: str | None
    step: str | None


class SagaLogContext:
    """Remembers the sagas running here (a `SagaObserver`) and adds their fields to log records.

    Register it with ``engine.add_observer(ctx)`` and ``observability.logs.add_log_context(ctx)``.
    A record logged while a step runs, by any module, gets ``saga_id``, ``saga_type``, ``step``,
    ``attempt`` and ``correlation_id`` (the order id); a record the engine logs with only a
    ``saga_id`` gets the saga's type, correlation id and latest step. Fields a record already has
    are kept.

    Args:
        max_sagas: Sagas remembered at most (oldest forgotten first).
    """

    def __init__(self, max_sagas: int = 10_000) -> None:
        self._max = max_sagas
        self._sagas: OrderedDict[str, _Known] = OrderedDict()

    def notify(self, event: SagaEvent) -> None:
        """Remember (or, once it has ended here, forget) the event's saga."""
        if event.kind in _GONE:
            self._sagas.pop(event.saga_id, None)
            return
        previous = self._sagas.pop(event.saga_id, None)
        step = event.step or (previous.step if previous else None)
        self._sagas[event.saga_id] = _Known(event.saga_type, event.correlation_id, step)
        while len(self._sagas) > self._max:
            self._sagas.popitem(last=False)

    def __call__(self, record: logging.LogRecord) -> Mapping[str, object]:
        """The saga fields for `record` (see the class docstring)."""
        running = current_step()
        if running is not None:
            known = self._sagas.get(running.saga_id)
            return {
                "saga_id": running.saga_id,
                "saga_type": running.saga_type,
                "step": running.step,
                "attempt": running.attempt,
                "correlation_id": known.correlation_id if known else None,
            }
        saga_id = record.__dict__.get("saga_id")
        known = self._sagas.get(saga_id) if isinstance(saga_id, str) else None
        if known is None:
            return {}
        return {"saga_type": known.saga_type, "correlation_id": known.correlation_id, "step": known.step}
