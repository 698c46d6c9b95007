"""Observability end to end: the real app's /metrics, and one trace across five processes.

The tracing test runs the split shop against a stand-in OTLP/HTTP collector on loopback, so it
checks what production relies on: the environment turns tracing on, the saga and each step get
spans, the step's ``traceparent`` reaches the next service, and MongoDB commands are traced.
"""

from __future__ import annotations

import gzip
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.e2e.conftest import Shop, start_split
from tests.e2e.shop import new_product, order_body
from tests.waiting import eventually_blocking

pytestmark = pytest.mark.e2e


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample `name{labels}` in a Prometheus text exposition, if present."""
    wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
    match = re.search(rf"^{re.escape(name)}\{{{re.escape(wanted)}\}} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else None


def test_counts_the_completed_saga_and_the_request_by_route_after_an_order(
    shop: Shop, client: httpx.Client, admin_headers: dict[str, str]
) -> None:
    product = new_product(client, admin_headers, quantity=3)
    placed = client.post("/api/orders", json=order_body(product))
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["order_id"]
    client.get(f"/api/orders/{order_id}")

    text = eventually_blocking(
        lambda: httpx.get(str(shop.apps["order"].metrics_url), timeout=10).text,
        lambda body: (metric(body, "saga_completed_total", saga_type="place-order") or 0) >= 1,
    )

    assert (metric(text, "saga_completed_total", saga_type="place-order") or 0) >= 1, text[:300]
    assert (metric(text, "saga_started_total", saga_type="place-order") or 0) >= 1
    assert metric(text, "saga_in_flight", saga_type="place-order") is not None
    assert metric(text, "saga_parked_current", saga_type="place-order") is not None
    created = metric(text, "http_requests_total", method="POST", route="/api/orders", status="201")
    assert (created or 0) >= 1
    assert metric(text, "http_requests_total", method="GET", route="/api/orders/{order_id}", status="200")
    assert order_id not in text  # routes are templates: no id ever becomes a label
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]
    for path in ("/metrics", "/%6detrics", "/metrics/"):  # not on the API's port, however spelt
        assert httpx.get(f"{shop.url}{path}", timeout=10).status_code == 404


def test_serves_only_http_metrics_where_no_saga_engine_runs(split_shop: Shop) -> None:
    text = httpx.get(str(split_shop.apps["payment"].metrics_url), timeout=10).text

    assert "http_requests_total" in text
    assert "saga_" not in text


# ---------------------------------------------------------------- tracing across services


def reserve_continued(spans: list[ExportedSpan]) -> bool:
    """Whether `spans` hold the inventory service's request made by the reserve step, and a
    MongoDB query under that request (not the quote's: the order's request asks for one too)."""
    steps = {s.span_id for s in spans if s.name == "step reserve_inventory"}
    requests = {s.span_id for s in spans if s.parent_id in steps and s.name.startswith("POST /api/inventory")}
    queries = [s for s in spans if s.attributes.get("db.system.name") == "mongodb"]
    return any(requests.intersection(ancestors(s, spans)) for s in queries)


def ancestors(span: ExportedSpan, spans: list[ExportedSpan]) -> list[str]:
    """The ids of `span`'s parent, its parent's parent... among `spans`."""
    by_id = {s.span_id: s for s in spans}
    found: list[str] = []
    parent = span.parent_id
    while parent and parent not in found:
        found.append(parent)
        parent = by_id[parent].parent_id if parent in by_id else ""
    return found


@dataclass(frozen=True)
class ExportedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]


class OtlpReceiver:
    """A stand-in OTLP/HTTP collector on 127.0.0.1 that keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[ExportedSpan] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                receiver.keep(ExportTraceServiceRequest.FromString(body))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def keep(self, request: ExportTraceServiceRequest) -> None:
        spans = [
            ExportedSpan(
                name=span.name,
                trace_id=span.trace_id.hex(),
                span_id=span.span_id.hex(),
                parent_id=span.parent_span_id.hex(),
                attributes={
                    kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in span.attributes
                },
            )
            for resource in request.resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        ]
        with self._lock:
            self.spans.extend(spans)

    def trace(self, trace_id: str) -> list[ExportedSpan]:
        with self._lock:
            return [span for span in self.spans if span.trace_id == trace_id]

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def traced(mongo_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Shop, OtlpReceiver]]:
    """The split shop exporting its traces to an `OtlpReceiver`."""
    with OtlpReceiver() as receiver:
        shop = start_split(
            mongo_url, tmp_path_factory.mktemp("traced"),
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, OTEL_BSP_SCHEDULE_DELAY="100",
        )  # fmt: skip
        try:
            yield shop, receiver
        finally:
            for app in shop.apps.values():
                app.stop()


EXPORT_WAIT = 60.0
"""How long the spans may take to reach the collector: five processes export on their own
schedules, and an export that meets a refused connection is retried after a backoff."""


def test_traces_an_order_from_the_request_through_each_step_into_the_next_service(
    traced: tuple[Shop, OtlpReceiver], admin_headers: dict[str, str]
) -> None:
    shop, receiver = traced
    with shop.client() as client:
        product = new_product(client, admin_headers, quantity=2)
        placed = client.post("/api/orders", json=order_body(product))
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["order_id"]

    saga = eventually_blocking(
        lambda: [s for s in receiver.spans if s.attributes.get("saga.correlation_id") == order_id],
        lambda found: any(s.name == "saga place-order" for s in found),
        timeout=EXPORT_WAIT,
        what="the saga's span reached the collector",
    )
    assert saga, "no saga span reached the collector: does create_app call configure_tracing()?"
    trace_id = saga[0].trace_id
    # Each service exports its spans on its own schedule, so the inventory's may arrive after the
    # notification's: wait until every span the checks below look for has reached the collector
    # (if the inventory did not continue the trace, this wait is what fails).
    spans = eventually_blocking(
        lambda: receiver.trace(trace_id),
        lambda found: all(any(s.name.startswith(f"POST /api/{service}") for s in found)
                          for service in ("inventory", "payments", "shipping", "notifications"))
        and reserve_continued(found),
        timeout=EXPORT_WAIT,
        what="every service's spans of the order reached the collector",
    )  # fmt: skip

    by_name = {span.name: span for span in spans}
    root = by_name["POST /api/orders"]
    reserve = by_name["step reserve_inventory"]
    remote = [s for s in spans if s.parent_id == reserve.span_id and s.name.startswith("POST /api/inventory")]
    assert root.parent_id == ""
    assert reserve.parent_id == by_name["saga place-order"].span_id
    assert reserve.attributes["saga.attempt"] == 1
    assert len(remote) == 1, sorted(s.name for s in spans)  # the inventory service continued the trace
    mongo = [s for s in spans if s.attributes.get("db.system.name") == "mongodb"]
    assert any(remote[0].span_id in ancestors(s, spans) for s in mongo)  # the inventory's own queries
    assert not [s for s in receiver.spans if s.name in ("GET /readyz", "GET /metrics")]  # probes: no traces
    log = shop.apps["order"].log
    completed = eventually_blocking(  # written once the confirmation's outcome is stored, just after its span
        lambda: [json.loads(line) for line in log.read_text().splitlines()
                 if order_id in line and '"saga_completed"' in line],
        bool, timeout=EXPORT_WAIT, what="the order process logged the saga's completion",
    )  # fmt: skip
    assert [entry["trace_id"] for entry in completed] == [trace_id]
