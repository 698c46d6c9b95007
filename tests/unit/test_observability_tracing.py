"""Tracing with an in-memory exporter: saga and step spans, parentage, propagation, set-up.

The MongoDB command spans need a database: tests/integration/test_observability_mongo.py.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from ecommerce_saga.observability import (
    SagaTracer,
    build_tracer_provider,
    current_trace_ids,
    exclude_from_tracing,
    outgoing_trace_headers,
    tracing_requested,
)
from ecommerce_saga.saga import JsonObject, Saga, SagaEngine, SagaStep, StepContext
from ecommerce_saga.saga.stores.memory import InMemorySagaStore
from ecommerce_saga.saga.testing import FaultPlan, InMemoryLedger, scripted_saga
from tests.spans import by_name, parent_id

STEPS = ["reserve", "charge"]
MakeEngine = Callable[..., SagaEngine]


@pytest.fixture
async def make_engine(provider: TracerProvider) -> AsyncIterator[MakeEngine]:
    engines: list[SagaEngine] = []

    def make(*definitions: Saga) -> SagaEngine:
        engine = SagaEngine(InMemorySagaStore(), definitions, observers=[])
        tracer = SagaTracer(provider.get_tracer("test"))
        engine.add_observer(tracer)
        engine.add_step_hook(tracer.step_span)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        await engine.stop()


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.span_id)


def ancestors(span: ReadableSpan, exporter: InMemorySpanExporter) -> list[int]:
    """The span ids from `span`'s parent up to the root (within the exported spans)."""
    by_id = {span_id(s): s for s in exporter.get_finished_spans()}
    found: list[int] = []
    parent = parent_id(span)
    while parent is not None and parent not in found:
        found.append(parent)
        parent = parent_id(by_id[parent]) if parent in by_id else None
    return found


async def test_makes_a_saga_span_with_a_child_span_per_step(
    make_engine: MakeEngine, exporter: InMemorySpanExporter
) -> None:
    engine = make_engine(scripted_saga("order", STEPS, InMemoryLedger()))

    await engine.start("order", {}, saga_id="s-1", correlation_id="order-1")
    await engine.wait("s-1", timeout=5)

    spans = by_name(exporter)
    (saga,) = spans["saga order"]
    (reserve,) = spans["step reserve"]
    assert dict(saga.attributes or {}) == {
        "saga.id": "s-1",
        "saga.type": "order",
        "saga.correlation_id": "order-1",
        "saga.outcome": "completed",
    }
    assert dict(reserve.attributes or {}) == {
        "saga.id": "s-1",
        "saga.type": "order",
        "saga.step": "reserve",
        "saga.attempt": 1,
        "saga.phase": "action",
        "saga.correlation_id": "order-1",
    }
    assert [parent_id(s) for s in (*spans["step reserve"], *spans["step charge"])] == [span_id(saga)] * 2
    assert saga.status.status_code is StatusCode.UNSET


async def test_marks_failed_attempts_and_compensations_when_a_step_fails(
    make_engine: MakeEngine, exporter: InMemorySpanExporter
) -> None:
    faults = FaultPlan().fail_transiently("charge", times=1).fail_permanently("ship")
    engine = make_engine(scripted_saga("order", [*STEPS, "ship"], InMemoryLedger(), faults))

    await engine.start("order", {}, saga_id="s-1")
    await engine.wait("s-1", timeout=5)

    spans = by_name(exporter)
    charges = sorted(spans["step charge"], key=lambda s: s.start_time or 0)
    (ship,) = spans["step ship"]
    (saga,) = spans["saga order"]
    assert [(s.attributes or {})["saga.attempt"] for s in charges] == [1, 2]
    assert [s.status.status_code for s in charges] == [StatusCode.ERROR, StatusCode.UNSET]
    assert (charges[0].attributes or {})["saga.error.retryable"] is True
    assert (ship.attributes or {})["saga.error.code"] == "test.rejected"
    assert ship.status.status_code is StatusCode.ERROR
    assert [e.name for e in ship.events] == ["exception"]
    compensations = [s for name, group in spans.items() if name.startswith("compensate") for s in group]
    assert sorted(s.name for s in compensations) == ["compensate charge", "compensate reserve"]
    assert {(s.attributes or {})["saga.phase"] for s in compensations} == {"compensation"}
    assert saga.status.status_code is StatusCode.ERROR
    assert (saga.attributes or {})["saga.outcome"] == "compensated"
    assert "retry_scheduled" in [e.name for e in saga.events]


async def test_carries_the_step_span_to_the_next_service_in_trace_headers(make_engine: MakeEngine) -> None:
    seen: list[tuple[dict[str, str], dict[str, str]]] = []

    async def call_remote(ctx: StepContext) -> JsonObject:
        seen.append((outgoing_trace_headers(), current_trace_ids()))
        return {}

    engine = make_engine(Saga("order", [SagaStep("charge", call_remote)]))
    await engine.start("order", {}, saga_id="s-1")
    await engine.wait("s-1", timeout=5)

    ((headers, ids),) = seen
    version, trace_id, parent, flags = headers["traceparent"].split("-")
    assert version == "00"
    assert int(flags, 16) & 1  # sampled
    assert (trace_id, parent) == (ids["trace_id"], ids["span_id"])
    assert outgoing_trace_headers() == {}
    assert current_trace_ids() == {}


async def test_parents_the_saga_on_the_http_request_that_started_it_and_continues_an_incoming_trace(
    make_engine: MakeEngine, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    engine = make_engine(scripted_saga("order", STEPS, InMemoryLedger()))
    app = FastAPI(telemetry={"tracer_provider": provider})

    @app.post("/api/orders")
    async def place_order() -> dict[str, str]:
        await engine.start("order", {}, saga_id="s-1")
        await engine.wait("s-1", timeout=5)
        return {"saga_id": "s-1"}

    incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop") as http:
        await http.post("/api/orders", headers={"traceparent": incoming})

    spans = by_name(exporter)
    (server,) = spans["POST /api/orders"]
    (saga,) = spans["saga order"]
    assert parent_id(server) == 0xB7AD6B7169203331
    assert span_id(server) in ancestors(saga, exporter)
    assert {format(s.context.trace_id, "032x") for s in exporter.get_finished_spans() if s.context} == {
        "0af7651916cd43dd8448eb211c80319c"
    }


async def test_makes_no_trace_for_scrapes_and_probes(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    app = FastAPI(telemetry={"tracer_provider": provider, "exclude": exclude_from_tracing})

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/orders/{order_id}")
    async def get_order(order_id: str) -> dict[str, str]:
        return {"order_id": order_id}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop") as http:
        await http.get("/healthz")
        await http.get("/api/orders/o-1")

    assert [s.name for s in exporter.get_finished_spans() if s.parent is None] == [
        "GET /api/orders/{order_id}"
    ]


async def test_ends_open_saga_spans_as_interrupted_when_the_app_stops(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    entered = asyncio.Event()

    async def hang(ctx: StepContext) -> JsonObject:
        entered.set()
        await asyncio.Event().wait()
        return {}

    tracer = SagaTracer(provider.get_tracer("test"))
    engine = SagaEngine(InMemorySagaStore(), [Saga("order", [SagaStep("charge", hang)])], observers=[tracer])
    engine.add_step_hook(tracer.step_span)
    await engine.start("order", {}, saga_id="s-1")
    await asyncio.wait_for(entered.wait(), 5)
    await engine.stop()

    tracer.close()

    (saga,) = by_name(exporter)["saga order"]
    (charge,) = by_name(exporter)["step charge"]
    assert (saga.attributes or {})["saga.outcome"] == "interrupted"
    assert parent_id(charge) == span_id(saga)


# ---------------------------------------------------------------- set-up from the environment


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "TRUE"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": " "}, False),
    ],
)
def test_traces_only_when_an_otlp_endpoint_is_configured(environ: dict[str, str], expected: bool) -> None:
    assert tracing_requested(environ) is expected


def test_names_the_service_ecommerce_saga_unless_otel_service_name_says_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    environ = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    default = build_tracer_provider(environ)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "payment-service")
    named = build_tracer_provider(environ)
    try:
        assert default is not None and named is not None
        assert default.resource.attributes["service.name"] == "ecommerce-saga"
        assert named.resource.attributes["service.name"] == "payment-service"
    finally:
        for provider in (default, named):
            if provider is not None:
                provider.shutdown()


def test_runs_untraced_with_one_warning_when_the_sdk_is_missing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)

    with caplog.at_level(logging.WARNING):
        provider = build_tracer_provider({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})

    assert provider is None
    assert [r.getMessage() for r in caplog.records if r.name.startswith("ecommerce_saga")] == [
        "tracing is configured but its packages are missing (pip install 'ecommerce-saga[otel]'); "
        "running without tracing"
    ]
    assert trace.get_current_span().get_span_context().is_valid is False
