"""Wires metrics, tracing and log fields into the app: one call from `create_app`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from fastapi import FastAPI
from opentelemetry.trace import TracerProvider
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ecommerce_saga import __version__
from ecommerce_saga.observability.logcontext import SagaLogContext
from ecommerce_saga.observability.logs import LogContext, add_log_context, remove_log_context
from ecommerce_saga.observability.metrics import ParkedSagasGauge, SagaMetrics
from ecommerce_saga.observability.middleware import HttpMetrics, PrometheusMiddleware
from ecommerce_saga.observability.otel import configure_tracing
from ecommerce_saga.observability.tracing import TRACER_NAME, SagaTracer, current_trace_ids
from ecommerce_saga.saga import SagaEngine

METRICS_PATH = "/metrics"


class EngineHolder(Protocol):
    """What `install_observability` needs of the app's `Container`: its saga engine, if it runs one."""

    @property
    def engine(self) -> SagaEngine | None:
        """The engine, or None in a process that hosts no saga."""
        ...


def trace_log_fields(record: logging.LogRecord) -> Mapping[str, object]:
    """A `LogContext`: the current ``trace_id`` and ``span_id``."""
    return current_trace_ids()


@dataclass
class Observability:
    """What `install_observability` set up; kept on ``app.state.observability``."""

    registry: CollectorRegistry
    http: HttpMetrics
    engine: SagaEngine | None = None
    sagas: SagaMetrics | None = None
    parked: ParkedSagasGauge | None = None
    tracer: SagaTracer | None = None
    log_contexts: list[LogContext] = field(default_factory=list)
    management_app: Starlette | None = None
    """Serves `/metrics`; run it on the management port (`ManagementServer`), never on the API's."""

    async def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The metrics in the format `accept` asks for (Prometheus text, or OpenMetrics), and its type."""
        if self.parked is not None:
            await self.parked.refresh()
        if self.sagas is not None and self.engine is not None:
            self.sagas.prune(self.engine.is_running_here)
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type

    def close(self) -> None:
        """End the saga spans still open and stop adding log fields (the app is stopping)."""
        if self.tracer is not None:
            self.tracer.close()
        for provider in self.log_contexts:
            remove_log_context(provider)


def install_observability(
    app: FastAPI,
    container: EngineHolder,
    *,
    tracer_provider: TracerProvider | None = None,
    parked_max_age: float = 5.0,
) -> None:
    """Build the ``/metrics`` app, count HTTP requests and sagas, trace sagas if tracing is on, enrich logs.

    Call it in `create_app` before the app starts (it adds a middleware), with `configure_tracing`
    called before the container was built (see `configure_tracing`).

    Args:
        app: The app; gets the middleware and a shutdown step in its lifespan. ``/metrics`` is
            served by ``app.state.observability.management_app``, on a port of its own.
        container: Its ``engine``, if this process runs one, is observed.
        tracer_provider: Traces with this provider instead of `configure_tracing`'s (tests).
        parked_max_age: Seconds a count of parked sagas is reused by later scrapes.
    """
    registry = CollectorRegistry()
    obs = Observability(registry=registry, http=HttpMetrics(registry), engine=container.engine)
    app.add_middleware(PrometheusMiddleware, metrics=obs.http)
    provider = tracer_provider or configure_tracing()
    if provider is not None:
        obs.log_contexts.append(trace_log_fields)
    if container.engine is not None:
        _observe_engine(obs, container.engine, provider, parked_max_age)
    for log_context in obs.log_contexts:
        add_log_context(log_context)

    async def metrics(request: Request) -> Response:
        body, content_type = await obs.exposition(request.headers.get("accept"))
        return Response(body, media_type=content_type)

    obs.management_app = Starlette(routes=[Route(METRICS_PATH, metrics, methods=["GET"])])
    app.state.observability = obs
    _on_shutdown(app, obs.close)


def _observe_engine(
    obs: Observability, engine: SagaEngine, provider: TracerProvider | None, parked_max_age: float
) -> None:
    obs.sagas = SagaMetrics(obs.registry, engine.definitions)
    obs.parked = ParkedSagasGauge(obs.registry, engine, max_age=parked_max_age)
    engine.add_observer(obs.sagas)
    saga_log_context = SagaLogContext()
    engine.add_observer(saga_log_context)
    obs.log_contexts.append(saga_log_context)
    if provider is not None:
        obs.tracer = SagaTracer(provider.get_tracer(TRACER_NAME, __version__))
        engine.add_observer(obs.tracer)
        engine.add_step_hook(obs.tracer.step_span)


def _on_shutdown(app: FastAPI, cleanup: Callable[[], None]) -> None:
    """Run `cleanup` after the app's own lifespan has ended (the engine is stopped by then)."""
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(running: Any) -> AsyncIterator[Any]:
        try:
            async with inner(running) as state:
                yield state
        finally:
            cleanup()

    app.router.lifespan_context = lifespan
