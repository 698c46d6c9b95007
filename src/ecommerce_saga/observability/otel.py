"""Turns tracing on from the standard ``OTEL_*`` variables: the SDK, an OTLP exporter, MongoDB spans.

Tracing is off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``)
is set, ``OTEL_SDK_DISABLED`` is not true and ``OTEL_TRACES_EXPORTER`` is not ``none``. The SDK
and the exporter are the optional ``ecommerce-saga[otel]`` extra; without them a configured
endpoint logs one warning and the app runs untraced. The rest is the SDK's own reading of the
environment: ``OTEL_SERVICE_NAME`` (default ``ecommerce-saga``), ``OTEL_RESOURCE_ATTRIBUTES``,
``OTEL_TRACES_SAMPLER``, ``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_BSP_*``...
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from opentelemetry import trace
from pymongo import monitoring

from ecommerce_saga import __version__
from ecommerce_saga.observability.mongo import MongoCommandTracer

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

logger = logging.getLogger(__name__)

DEFAULT_SERVICE_NAME = "ecommerce-saga"

_ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_PROTOCOLS = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")

_configured: dict[str, TracerProvider | None] = {}
"""The process's one decision (under "provider"), made by the first `configure_tracing` call."""


def tracing_requested(environ: Mapping[str, str]) -> bool:
    """True when the environment asks for traces to be exported over OTLP."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return any(environ.get(name, "").strip() for name in _ENDPOINTS)


def configure_tracing(environ: Mapping[str, str] | None = None) -> TracerProvider | None:
    """Set up tracing for this process if the environment asks for it; return the provider or None.

    Idempotent: the first call decides, later calls return its result. Call it before the MongoDB
    client is created (PyMongo copies its global listeners into each new client). It sets the
    global tracer provider, which FastAPI (0.142+) uses for its HTTP server spans, and registers
    `MongoCommandTracer` with PyMongo.
    """
    if "provider" not in _configured:
        provider = build_tracer_provider(os.environ if environ is None else environ)
        if provider is not None:
            trace.set_tracer_provider(provider)
            monitoring.register(
                MongoCommandTracer(provider.get_tracer("ecommerce_saga.mongodb", __version__))
            )
            service = provider.resource.attributes.get("service.name")
            logger.info("tracing on: spans go to the OTLP endpoint", extra={"service_name": service})
        _configured["provider"] = provider
    return _configured["provider"]


def build_tracer_provider(environ: Mapping[str, str]) -> TracerProvider | None:
    """An SDK tracer provider exporting over OTLP, or None if tracing is off or its packages are missing.

    Touches no global state (see `configure_tracing` for that).
    """
    if not tracing_requested(environ):
        return None
    protocol = next((environ[name] for name in _PROTOCOLS if environ.get(name)), "http/protobuf")
    try:
        from opentelemetry.sdk.resources import Resource  # noqa: PLC0415 - the optional [otel] extra
        from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
        from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: PLC0415

        exporter = _exporter(protocol.strip().lower())
    except ImportError as exc:
        logger.warning(
            "tracing is configured but its packages are missing (pip install 'ecommerce-saga[otel]'); "
            "running without tracing",
            extra={"missing_module": exc.name, "otlp_protocol": protocol},
        )
        return None
    resource = Resource.create({"service.version": __version__})
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": DEFAULT_SERVICE_NAME}))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _exporter(protocol: str) -> SpanExporter:
    """The OTLP span exporter for `protocol`; it reads its endpoint, headers and timeout itself."""
    if protocol == "grpc":  # needs opentelemetry-exporter-otlp-proto-grpc, which the extra leaves out
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found,unused-ignore]  # noqa: PLC0415
            OTLPSpanExporter as GrpcSpanExporter,
        )

        grpc_exporter: SpanExporter = GrpcSpanExporter()
        return grpc_exporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # noqa: PLC0415

    return OTLPSpanExporter()
