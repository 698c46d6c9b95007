"""OpenTelemetry spans for sagas and their step attempts, and the trace context for outgoing calls.

Only the OpenTelemetry API is used here: with no SDK configured every span is a no-op. The saga
span starts where the saga starts (inside the ``POST /api/orders`` server span, say) and ends
when the saga completes, compensates, parks or loses its lease in this process; each attempt of
an action or compensation is a child span of it, current while the step runs, so the HTTP calls
and MongoDB commands the step makes are its children, in this service and (through the
``traceparent`` header) in the next.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from ecommerce_saga.saga import EventKind, SagaEvent, StepContext
from ecommerce_saga.saga.errors import error_code, is_retryable

TRACER_NAME = "ecommerce_saga.saga"

_OUTCOMES = {
    EventKind.SAGA_COMPLETED: "completed",
    EventKind.SAGA_COMPENSATED: "compensated",
    EventKind.SAGA_PARKED: "parked",
    EventKind.LEASE_LOST: "lease_lost",
    EventKind.ATTEMPT_ABANDONED: "attempt_abandoned",
}
_OPENING = (EventKind.SAGA_STARTED, EventKind.SAGA_RECOVERED, EventKind.OPERATOR_ACTION)
_NOTED = (EventKind.RETRY_SCHEDULED, EventKind.COMPENSATION_STARTED)


UNTRACED_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})
"""Scrapes and probes: a trace each, every few seconds, would only bury the traces of orders."""


def exclude_from_tracing(scope: MutableMapping[str, Any]) -> bool:
    """True for a request FastAPI should not trace (pass as ``telemetry={"exclude": ...}``)."""
    return scope.get("path") in UNTRACED_PATHS


def outgoing_trace_headers() -> dict[str, str]:
    """Headers carrying the current trace to the service being called (W3C ``traceparent``...).

    Empty when no trace is being recorded. Pass it to `ServiceClient` as ``trace_headers``.
    """
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def current_trace_ids() -> dict[str, str]:
    """``trace_id`` and ``span_id`` of the current span, hex-encoded as backends show them; {} if none."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": format(context.trace_id, "032x"), "span_id": format(context.span_id, "016x")}


@dataclass
class _OpenSaga:
    span: Span
    correlation_id: str | None


class SagaTracer:
    """A span per saga (as a `SagaObserver`) and per step attempt (as an engine step hook).

    Register both halves: ``engine.add_observer(tracer)`` and ``engine.add_step_hook(tracer.step_span)``.

    Args:
        tracer: Makes the spans.
        max_open: Saga spans kept open at most; past it the oldest is ended (a safety bound for
            sagas whose run stopped without an event).
    """

    def __init__(self, tracer: Tracer, *, max_open: int = 10_000) -> None:
        self._tracer = tracer
        self._max_open = max_open
        self._open: OrderedDict[str, _OpenSaga] = OrderedDict()

    def notify(self, event: SagaEvent) -> None:
        """Open, annotate or end the saga's span."""
        if event.kind in _OPENING:
            self._begin(event)
        elif event.kind in _OUTCOMES:
            self._end(event)
        elif event.kind in _NOTED:
            opened = self._open.get(event.saga_id)
            if opened is not None:
                attributes: dict[str, str | int] = {
                    "saga.step": event.step or "",
                    "saga.attempt": event.attempt or 0,
                    "detail": event.detail or "",
                }
                opened.span.add_event(event.kind.value, attributes)

    @contextmanager
    def step_span(self, ctx: StepContext[Any]) -> Iterator[None]:
        """Run one attempt inside a span, a child of its saga's span when this process has one."""
        opened = self._open.get(ctx.saga_id)
        parent = trace.set_span_in_context(opened.span) if opened is not None else None
        phase = "compensation" if ctx.compensating else "action"
        attributes: dict[str, str | int] = {
            "saga.id": ctx.saga_id,
            "saga.type": ctx.saga_type,
            "saga.step": ctx.step,
            "saga.attempt": ctx.attempt,
            "saga.phase": phase,
        }
        if opened is not None and opened.correlation_id:
            attributes["saga.correlation_id"] = opened.correlation_id
        name = f"{'compensate' if ctx.compensating else 'step'} {ctx.step}"
        with self._tracer.start_as_current_span(
            name,
            context=parent,
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield
            except Exception as exc:
                _record_failure(span, exc)
                raise

    def close(self) -> None:
        """End every saga span still open (the process is stopping; recovery resumes those sagas)."""
        while self._open:
            _, opened = self._open.popitem(last=False)
            opened.span.set_attribute("saga.outcome", "interrupted")
            opened.span.end()

    def _begin(self, event: SagaEvent) -> None:
        if event.saga_id in self._open:
            return
        attributes: dict[str, str | bool] = {"saga.id": event.saga_id, "saga.type": event.saga_type}
        if event.correlation_id:
            attributes["saga.correlation_id"] = event.correlation_id
        if event.kind is not EventKind.SAGA_STARTED:
            attributes["saga.resumed_by"] = event.kind.value
        span = self._tracer.start_span(
            f"saga {event.saga_type}", kind=SpanKind.INTERNAL, attributes=attributes
        )
        self._open[event.saga_id] = _OpenSaga(span, event.correlation_id)
        while len(self._open) > self._max_open:
            _, oldest = self._open.popitem(last=False)
            oldest.span.set_attribute("saga.outcome", "untracked")
            oldest.span.end()

    def _end(self, event: SagaEvent) -> None:
        opened = self._open.pop(event.saga_id, None)
        if opened is None:
            return
        span = opened.span
        span.set_attribute("saga.outcome", _OUTCOMES[event.kind])
        if event.error is not None:
            span.set_attribute("saga.error.code", event.error.code or event.error.type)
        if event.kind in (EventKind.SAGA_COMPENSATED, EventKind.SAGA_PARKED, EventKind.ATTEMPT_ABANDONED):
            description = event.error.code or event.error.type if event.error else event.kind.value
            span.set_status(Status(StatusCode.ERROR, description))
        span.end()


def _record_failure(span: Span, exc: Exception) -> None:
    code = "saga.timeout" if isinstance(exc, TimeoutError) else error_code(exc)
    span.record_exception(exc)
    span.set_attributes(
        {
            "error.type": type(exc).__name__,
            "saga.error.code": code or type(exc).__name__,
            "saga.error.retryable": is_retryable(exc),
        }
    )
    span.set_status(Status(StatusCode.ERROR, code or type(exc).__name__))
