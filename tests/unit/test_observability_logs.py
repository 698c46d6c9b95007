"""Log records carry the saga (id, order, type, step) and the trace they belong to, and no secrets."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider

from ecommerce_saga.observability import SagaLogContext
from ecommerce_saga.observability.install import trace_log_fields
from ecommerce_saga.observability.logs import (
    ContextFilter,
    JsonFormatter,
    TextFormatter,
    add_log_context,
    remove_log_context,
)
from ecommerce_saga.saga import (
    JsonObject,
    LoggingObserver,
    Saga,
    SagaEngine,
    SagaEvent,
    SagaStep,
    StepContext,
)
from ecommerce_saga.saga.stores.memory import InMemorySagaStore

step_logger = logging.getLogger("ecommerce_saga.modules.payment.test")


class Capture(logging.Handler):
    """Keeps every record, after the handler's filters (as the app's stderr handler has them)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.addFilter(ContextFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def find(self, message: str) -> logging.LogRecord:
        return next(r for r in self.records if r.getMessage() == message)


def fields(record: logging.LogRecord, *names: str) -> list[object]:
    return [record.__dict__.get(name) for name in names]


class Exploding:
    """An observer that fails, so that the engine logs a line of its own."""

    def notify(self, event: SagaEvent) -> None:
        if event.kind.value == "step_succeeded":
            raise RuntimeError("observer bug")


@pytest.fixture
def capture() -> Iterator[Capture]:
    handler, root = Capture(), logging.getLogger("ecommerce_saga")
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)  # the engine logs each step attempt at DEBUG
    yield handler
    root.removeHandler(handler)
    root.setLevel(previous)


@pytest.fixture
async def engine() -> AsyncIterator[SagaEngine]:
    async def charge(ctx: StepContext) -> JsonObject:
        step_logger.info("charging")
        return {}

    saga_context = SagaLogContext()
    engine = SagaEngine(
        InMemorySagaStore(),
        [Saga("place-order", [SagaStep("charge", charge)])],
        observers=[LoggingObserver(), saga_context, Exploding()],
    )
    add_log_context(saga_context)
    yield engine
    remove_log_context(saga_context)
    await engine.stop()


async def test_tags_lines_logged_inside_a_step_with_the_saga_order_type_and_step(
    engine: SagaEngine, capture: Capture
) -> None:
    await engine.start("place-order", {}, saga_id="s-1", correlation_id="order-1")
    await engine.wait("s-1", timeout=5)

    record = capture.find("charging")
    assert fields(record, "saga_id", "correlation_id", "saga_type", "step", "attempt") == [
        "s-1",
        "order-1",
        "place-order",
        "charge",
        1,
    ]


async def test_tags_the_engines_own_lines_and_its_events_with_the_whole_saga_context(
    engine: SagaEngine, capture: Capture
) -> None:
    await engine.start("place-order", {}, saga_id="s-1", correlation_id="order-1")
    await engine.wait("s-1", timeout=5)

    for message in ("saga observer failed", "step_succeeded", "saga_completed"):
        saga_fields = fields(capture.find(message), "saga_id", "correlation_id", "saga_type")
        assert saga_fields == ["s-1", "order-1", "place-order"], message
    assert fields(capture.find("saga observer failed"), "step") == ["charge"]
    assert fields(capture.find("step_succeeded"), "step") == ["charge"]


def test_adds_trace_and_span_ids_to_lines_logged_inside_a_span(capture: Capture) -> None:
    tracer = TracerProvider().get_tracer("test")
    add_log_context(trace_log_fields)
    try:
        with tracer.start_as_current_span("step charge") as span:
            step_logger.info("inside")
        step_logger.info("outside")
    finally:
        remove_log_context(trace_log_fields)

    context = span.get_span_context()
    inside, outside = capture.find("inside"), capture.find("outside")
    assert fields(inside, "trace_id", "span_id") == [f"{context.trace_id:032x}", f"{context.span_id:016x}"]
    assert fields(outside, "trace_id", "span_id") == [None, None]


def _record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("ecommerce_saga.web", logging.INFO, __file__, 1, message, args, None)
    record.__dict__.update(extra)
    return record


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter()], ids=["json", "text"])
def test_never_writes_authorization_headers_tokens_or_card_numbers(formatter: logging.Formatter) -> None:
    record = _record(
        "charge of %s with %s failed",
        "4242 4242 4242 4242",
        "Bearer s3cr3t-token",
        authorization="Bearer s3cr3t-token",
        service_token="s3cr3t",
        card_number="4000000000000002",
        order_id="order-1",
    )

    line = formatter.format(record)

    for secret in ("s3cr3t", "4242 4242 4242 4242", "4000000000000002"):
        assert secret not in line
    assert "[CARD ****4242]" in line
    assert "order-1" in line


def test_keeps_ids_and_durations_that_only_look_like_numbers() -> None:
    record = _record(
        "done", duration_s=0.0123456789012345, lease_expires_at_ms=1764115227123, ref="4242424242424241"
    )

    entry = json.loads(JsonFormatter().format(record))

    assert (entry["duration_s"], entry["lease_expires_at_ms"]) == (0.0123456789012345, 1764115227123)
    assert entry["ref"] == "4242424242424241"  # fails the Luhn check: not a card number
