"""Client spans for MongoDB commands: a PyMongo `CommandListener` (works for the async client too).

Only commands issued inside a trace get a span: the recovery loop's claim every few seconds and
the metrics' parked-saga count would otherwise each start a trace of their own. Statements are
never recorded (documents hold payment tokens); the span carries the operation and collection.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from pymongo import monitoring

_Key = tuple[int, object]


def _key(
    event: monitoring.CommandStartedEvent | monitoring.CommandSucceededEvent | monitoring.CommandFailedEvent,
) -> _Key:
    return event.request_id, event.connection_id


class MongoCommandTracer(monitoring.CommandListener):
    """Makes a span per MongoDB command (register before clients are created: PyMongo copies listeners).

    Use with ``pymongo.monitoring.register(MongoCommandTracer(tracer))`` or a client's
    ``event_listeners``. PyMongo calls it on the task that runs the command, so the span's parent
    is whatever span is current there (a saga step, an HTTP request).
    """

    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer
        self._spans: dict[_Key, Span] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        """Open the command's span, if a trace is being recorded."""
        if not trace.get_current_span().get_span_context().is_valid:
            return
        collection = event.command.get(event.command_name)
        attributes: dict[str, str | int] = {
            "db.system.name": "mongodb",
            "db.namespace": event.database_name,
            "db.operation.name": event.command_name,
        }
        name = event.command_name
        if isinstance(collection, str) and collection:
            attributes["db.collection.name"] = collection
            name = f"{event.command_name} {collection}"
        host, port = event.connection_id
        attributes["server.address"] = host
        if port is not None:
            attributes["server.port"] = port
        self._spans[_key(event)] = self._tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        """End the command's span."""
        span = self._spans.pop(_key(event), None)
        if span is not None:
            span.end()

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        """End the command's span as failed, with the server's error name."""
        span = self._spans.pop(_key(event), None)
        if span is None:
            return
        failure = event.failure
        error = str(failure.get("codeName") or failure.get("code") or "MongoError")
        span.set_attribute("error.type", error)
        span.set_status(Status(StatusCode.ERROR, error))
        span.end()
