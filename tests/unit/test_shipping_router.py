"""The shipping router in-process: auth, validation, and problem documents with stable codes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from ecommerce_saga.modules.shipping.repository import InMemoryShipmentRepository
from ecommerce_saga.modules.shipping.router import build_router
from ecommerce_saga.modules.shipping.service import LocalShippingService
from ecommerce_saga.settings import DEFAULT_COUNTRIES
from ecommerce_saga.web.auth import Authenticator
from ecommerce_saga.web.problems import PROBLEM_MEDIA_TYPE, install_problem_handlers

TOKENS = Authenticator(service_tokens=["service-token"], admin_tokens=["admin-token"])
SERVICE_AUTH = {"Authorization": "Bearer service-token"}
ADMIN_AUTH = {"Authorization": "Bearer admin-token"}
LONDON = {
    "name": "Ada Lovelace", "street": "12 St James's Square", "city": "London",
    "postal_code": "SW1Y 4JH", "country": "GB",
}  # fmt: skip


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of a small app serving the shipping router in-process, on the in-memory repository."""
    app = FastAPI()
    install_problem_handlers(app)
    service = LocalShippingService(InMemoryShipmentRepository(), DEFAULT_COUNTRIES)
    app.include_router(build_router(service, TOKENS))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://shop.test", headers=ADMIN_AUTH
    ) as client:
        yield client


def _body(order_id: str, **address: str) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "customer_id": "cus_ada",
        "address": {**LONDON, **address},
        "method": "EXPRESS",
        "idempotency_key": f"{order_id}:ship",
    }


class TestShippingRouter:
    """The router's HTTP behaviour: auth, validation and problem documents."""

    async def test_answers_401_when_service_token_is_missing(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/api/shipping/schedule", json=_body(_id("ord")), headers={"Authorization": ""}
        )

        assert response.status_code == 401
        assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
        assert response.json()["code"] == "auth.token_missing"

    async def test_answers_403_when_service_token_is_wrong(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/api/shipping/cancel",
            json={"order_id": _id("ord"), "idempotency_key": "k"},
            headers=ADMIN_AUTH,
        )

        assert response.status_code == 403

    async def test_schedules_over_http_when_country_is_lower_case(self, client: httpx.AsyncClient) -> None:
        order_id = _id("ord")

        response = await client.post(
            "/api/shipping/schedule", json=_body(order_id, country="gb"), headers=SERVICE_AUTH
        )

        assert response.status_code == 200
        shipment = response.json()
        assert shipment["address"]["country"] == "GB"
        fetched = await client.get(f"/api/shipping/{shipment['shipping_id']}")
        assert fetched.json() == shipment

    @pytest.mark.parametrize("country", ["GBR", "1A", ""])
    async def test_answers_422_problem_when_country_code_is_bad(
        self, client: httpx.AsyncClient, country: str
    ) -> None:
        response = await client.post(
            "/api/shipping/schedule", json=_body(_id("ord"), country=country), headers=SERVICE_AUTH
        )

        assert response.status_code == 422
        assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
        problem = response.json()
        assert problem["code"] == "validation_error"
        assert [p["name"] for p in problem["invalid_params"]] == ["address.country"]

    async def test_answers_409_problem_when_country_is_not_served(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/api/shipping/schedule", json=_body(_id("ord"), country="BR"), headers=SERVICE_AUTH
        )

        assert response.status_code == 409
        assert response.json()["code"] == "shipping.unavailable"

    async def test_answers_404_problem_when_shipment_is_unknown(self, client: httpx.AsyncClient) -> None:
        response = await client.get(f"/api/shipping/{_id('shp')}")

        assert response.status_code == 404
        assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
        assert response.json()["code"] == "shipping.not_found"

    @pytest.mark.parametrize(
        "query",
        [
            {"customer_id": '{"$ne": null}'},
            {"customer_id": "a.b"},
            {"status": "SHIPPED"},
            {"limit": "0"},
            {"limit": "101"},
            {"skip": "-1"},
            {"from": "2030-01-04T12:00:00"},
            {"to": "yesterday"},
            {"from": "2030-02-01T00:00:00Z", "to": "2030-01-01T00:00:00Z"},
        ],
    )
    async def test_answers_422_when_list_query_is_invalid(
        self, client: httpx.AsyncClient, query: dict[str, str]
    ) -> None:
        response = await client.get("/api/shipping", params=query)

        assert response.status_code == 422
        assert response.json()["code"] == "validation_error"

    async def test_answers_422_when_shipping_id_is_unsafe(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/api/shipping/$where")

        assert response.status_code == 422

    async def test_lists_over_http_when_filtered_by_time(self, client: httpx.AsyncClient) -> None:
        order_id = _id("ord")
        await client.post("/api/shipping/schedule", json=_body(order_id), headers=SERVICE_AUTH)
        await client.post(
            "/api/shipping/cancel",
            json={"order_id": order_id, "idempotency_key": "k"},
            headers=SERVICE_AUTH,
        )
        params = {"customer_id": "cus_ada", "status": "CANCELLED", "from": "2000-01-01T00:00:00Z"}

        response = await client.get("/api/shipping", params={**params, "limit": "5"})

        page = response.json()
        assert response.status_code == 200
        assert [s["order_id"] for s in page["items"]] == [order_id]
        assert (page["total"], page["limit"], page["skip"]) == (1, 5, 0)
