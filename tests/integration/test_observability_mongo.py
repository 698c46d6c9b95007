"""Tracing of MongoDB commands: a client span per command, only inside a trace (embedded database)."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from pymongo import AsyncMongoClient
from pymongo.errors import OperationFailure

from ecommerce_saga.observability import MongoCommandTracer
from tests.spans import by_name, parent_id


async def test_makes_client_spans_for_mongodb_commands_only_inside_a_trace(
    mongo_url: str, db_name: str, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tracer = provider.get_tracer("test")
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongo_url, event_listeners=[MongoCommandTracer(tracer)]
    )
    try:
        await client[db_name]["orders"].insert_one({"_id": "untraced"})
        with tracer.start_as_current_span("step reserve") as step:
            await client[db_name]["orders"].find_one({"_id": "untraced"})
            with pytest.raises(OperationFailure):
                await client[db_name]["orders"].aggregate([{"$noSuchStage": 1}])
    finally:
        await client.drop_database(db_name)
        await client.close()

    spans = by_name(exporter)
    (find,) = spans["find orders"]
    assert parent_id(find) == step.get_span_context().span_id
    assert dict(find.attributes or {}) | {"server.port": 0} == {
        "db.system.name": "mongodb",
        "db.namespace": db_name,
        "db.operation.name": "find",
        "db.collection.name": "orders",
        "server.address": "127.0.0.1",
        "server.port": 0,
    }
    (failed,) = spans["aggregate orders"]
    assert failed.status.status_code is StatusCode.ERROR
    assert (failed.attributes or {})["error.type"]
    assert set(spans) == {"find orders", "aggregate orders", "step reserve"}  # none for the untraced insert
