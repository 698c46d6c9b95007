"""Tracing tests' helpers: spans a test's in-memory exporter finished, by name and parent.

The `exporter` and `provider` fixtures live in `tests/conftest.py`.
"""

from __future__ import annotations

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


def by_name(exporter: InMemorySpanExporter) -> dict[str, list[ReadableSpan]]:
    """The finished spans, grouped by name in the order they ended."""
    spans: dict[str, list[ReadableSpan]] = {}
    for span in exporter.get_finished_spans():
        spans.setdefault(span.name, []).append(span)
    return spans


def parent_id(span: ReadableSpan) -> int | None:
    """The span id of the span's parent, if it has one."""
    return span.parent.span_id if span.parent else None
