"""Metrics, traces and log fields for the app and its saga engine.

`install_observability(app, container)` builds Prometheus metrics at ``GET /metrics`` (served on the
management port by `ManagementServer`; HTTP
requests by route template; sagas and steps by type, outcome and phase), traces sagas and their
step attempts when OpenTelemetry is configured through the standard ``OTEL_*`` variables, and
adds saga and trace fields to log records. `configure_tracing()` must run before the MongoDB
client is created; `outgoing_trace_headers()` gives an HTTP client the headers that carry the
current trace to the next service. See ``docs/observability.md``.

The saga engine knows nothing of any of this: the saga metrics, spans and log fields come from
`SagaObserver` implementations and a step hook registered on the engine.
"""

from ecommerce_saga.observability.install import Observability, install_observability
from ecommerce_saga.observability.logcontext import SagaLogContext
from ecommerce_saga.observability.management import ManagementServer
from ecommerce_saga.observability.metrics import ParkedSagasGauge, SagaMetrics
from ecommerce_saga.observability.middleware import HttpMetrics, PrometheusMiddleware
from ecommerce_saga.observability.mongo import MongoCommandTracer
from ecommerce_saga.observability.otel import build_tracer_provider, configure_tracing, tracing_requested
from ecommerce_saga.observability.tracing import (
    SagaTracer,
    current_trace_ids,
    exclude_from_tracing,
    outgoing_trace_headers,
)

__all__ = [
    "HttpMetrics",
    "ManagementServer",
    "MongoCommandTracer",
    "Observability",
    "ParkedSagasGauge",
    "PrometheusMiddleware",
    "SagaLogContext",
    "SagaMetrics",
    "SagaTracer",
    "build_tracer_provider",
    "configure_tracing",
    "current_trace_ids",
    "exclude_from_tracing",
    "install_observability",
    "outgoing_trace_headers",
    "tracing_requested",
]
