"""HTTP metrics by route template, and the /metrics endpoint that `install_observability` adds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry

from ecommerce_saga.observability import (
    HttpMetrics,
    Observability,
    PrometheusMiddleware,
    install_observability,
)
from ecommerce_saga.saga import SagaEngine
from ecommerce_saga.saga.stores.memory import InMemorySagaStore
from ecommerce_saga.saga.testing import InMemoryLedger, scripted_saga


def build_app() -> FastAPI:
    app = FastAPI()

    @app.get("/api/orders/{order_id}")
    async def get_order(order_id: str) -> dict[str, str]:
        if order_id == "missing":
            return cast(dict[str, str], JSONResponse({"code": "order.not_found"}, status_code=404))
        return {"order_id": order_id}

    @app.post("/api/orders", status_code=201)
    async def place_order() -> dict[str, str]:
        return {"order_id": "o-1"}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("bug")

    return app


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
async def client(registry: CollectorRegistry) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app()
    app.add_middleware(PrometheusMiddleware, metrics=HttpMetrics(registry))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as http:
        yield http


async def test_labels_requests_by_route_template_not_by_raw_path(
    client: httpx.AsyncClient, registry: CollectorRegistry
) -> None:
    for order_id in ("o-1", "o-2", "o-3"):
        await client.get(f"/api/orders/{order_id}")
    await client.post("/api/orders")

    route = "/api/orders/{order_id}"
    assert sample(registry, "http_requests_total", method="GET", route=route, status="200") == 3
    assert sample(registry, "http_requests_total", method="POST", route="/api/orders", status="201") == 1
    assert sample(registry, "http_request_duration_seconds_count", method="GET", route=route) == 3
    assert sample(registry, "http_requests_in_flight") == 0
    assert (
        registry.get_sample_value(
            "http_requests_total", {"method": "GET", "route": "/api/orders/o-1", "status": "200"}
        )
        is None
    )


async def test_keeps_the_route_and_the_status_of_error_answers(
    client: httpx.AsyncClient, registry: CollectorRegistry
) -> None:
    await client.get("/api/orders/missing")
    await client.delete("/api/orders")
    answer = await client.get("/boom")

    assert answer.status_code == 500
    assert (
        sample(registry, "http_requests_total", method="GET", route="/api/orders/{order_id}", status="404")
        == 1
    )
    assert sample(registry, "http_requests_total", method="DELETE", route="/api/orders", status="405") == 1
    assert sample(registry, "http_requests_total", method="GET", route="/boom", status="500") == 1


async def test_labels_every_unknown_path_as_one_unmatched_route(
    client: httpx.AsyncClient, registry: CollectorRegistry
) -> None:
    for path in ("/wp-admin", "/.env", "/api/nothing/here"):
        assert (await client.get(path)).status_code == 404
    await client.request("BREW", "/coffee")

    assert sample(registry, "http_requests_total", method="GET", route="unmatched", status="404") == 3
    assert sample(registry, "http_requests_total", method="OTHER", route="unmatched", status="404") == 1


# ---------------------------------------------------------------- install_observability


@pytest.fixture
async def installed() -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI, SagaEngine]]:
    engine = SagaEngine(
        InMemorySagaStore(), [scripted_saga("order", ["reserve", "charge"], InMemoryLedger())]
    )
    app = build_app()
    install_observability(app, SimpleNamespace(engine=engine))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://shop") as http:
            yield http, app, engine
    await engine.stop()


async def scrape(app: FastAPI, headers: dict[str, str] | None = None) -> httpx.Response:
    """GET /metrics from the app's management app (served on the management port in a real process)."""
    management = cast(Observability, app.state.observability).management_app
    assert management is not None
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=management), base_url="http://mgmt"
    ) as http:
        return await http.get("/metrics", headers=headers)


async def test_serves_saga_and_http_metrics_on_the_management_app_not_the_api(
    installed: tuple[httpx.AsyncClient, FastAPI, SagaEngine],
) -> None:
    client, app, engine = installed
    await engine.start("order", {}, saga_id="s-1")
    await engine.wait("s-1", timeout=5)
    await client.get("/api/orders/o-1")

    response = await scrape(app)
    schema: dict[str, Any] = (await client.get("/openapi.json")).json()

    assert (await client.get("/metrics")).status_code == 404
    assert (await client.get("/%6detrics")).status_code == 404
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'saga_completed_total{saga_type="order"} 1.0' in response.text
    assert 'saga_parked_current{saga_type="order"} 0.0' in response.text
    assert (
        'http_requests_total{method="GET",route="/api/orders/{order_id}",status="200"} 1.0' in response.text
    )
    assert "/metrics" not in schema["paths"]


async def test_answers_in_openmetrics_when_the_scraper_asks_for_it(
    installed: tuple[httpx.AsyncClient, FastAPI, SagaEngine],
) -> None:
    _, app, _ = installed

    response = await scrape(app, {"Accept": "application/openmetrics-text; version=1.0.0"})

    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")


async def test_keeps_metrics_per_app_so_two_apps_can_live_in_one_process() -> None:
    apps = [build_app(), build_app()]
    for app in apps:
        install_observability(app, SimpleNamespace(engine=None))
    first, second = (cast(Observability, app.state.observability) for app in apps)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=apps[0]), base_url="http://shop") as http:
        await http.get("/api/orders/o-1")

    route = {"method": "GET", "route": "/api/orders/{order_id}", "status": "200"}
    assert sample(first.registry, "http_requests_total", **route) == 1
    assert sample(second.registry, "http_requests_total", **route) == 0
    assert first.sagas is None
