"""HTTP request metrics: a pure ASGI middleware labelling requests by route template, not raw path."""

from __future__ import annotations

import time
from collections.abc import MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 30.0)
"""Seconds: most answers take milliseconds; placing an order waits for its saga (up to seconds)."""

UNMATCHED = "unmatched"
"""The route label of a request no route matched (404s for arbitrary paths, bounded to one series)."""

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class HttpMetrics:
    """``http_requests_total``, ``http_request_duration_seconds`` and ``http_requests_in_flight``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "http_requests", "HTTP requests answered.", ["method", "route", "status"], registry=registry
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, until the last byte of the response was sent.",
            ["method", "route"],
            buckets=HTTP_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge("http_requests_in_flight", "HTTP requests being answered.", registry=registry)


def route_template(scope: MutableMapping[str, Any]) -> str:
    """The template of the route that served the request (``/api/orders/{order_id}``), or `UNMATCHED`.

    Starlette's router records the matched route in the scope (FastAPI's included routers too).
    """
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template if isinstance(template, str) and template else UNMATCHED


class PrometheusMiddleware:
    """Counts and times every HTTP request: ``app.add_middleware(PrometheusMiddleware, metrics=...)``.

    A pure ASGI middleware (no `BaseHTTPMiddleware`): the response streams through untouched, and
    only the status of ``http.response.start`` is read. A request that raises before answering
    counts as a 500, which is what the server error middleware around it sends.
    """

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request, then record it."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        started = time.perf_counter()
        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.in_flight.dec()
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            route = route_template(scope)
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.duration.labels(method, route).observe(elapsed)
