"""The payment routes in-process: auth, validation, problem+json errors, and no operator smuggling."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from ecommerce_saga.modules.payment.gateway import SandboxGateway
from ecommerce_saga.modules.payment.repository import InMemoryPaymentRepository, InMemorySandboxLedger
from ecommerce_saga.modules.payment.router import build_router
from ecommerce_saga.modules.payment.service import LocalPaymentService
from ecommerce_saga.web.auth import Authenticator
from ecommerce_saga.web.problems import PROBLEM_MEDIA_TYPE, install_problem_handlers

SERVICE = {"Authorization": "Bearer service-secret"}
DECLINING_CARD = "4000000000000002"


def card_body(number: str = "4242 4242 4242 4242") -> dict[str, Any]:
    return {
        "method": "CREDIT_CARD",
        "card_number": number,
        "expiry_month": 12,
        "expiry_year": 2099,
        "cvv": "321",
    }


@pytest.fixture
def app() -> FastAPI:
    """A small app serving the payment router in-process, on the in-memory repositories."""
    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(
        build_router(
            LocalPaymentService(InMemoryPaymentRepository(), SandboxGateway(InMemorySandboxLedger())),
            Authenticator(service_tokens=["service-secret"], admin_tokens=["admin"]),
        )
    )
    return app


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://test",
        headers={"Authorization": "Bearer admin"},
    ) as client:
        yield client


async def pay(client: httpx.AsyncClient, order_id: str, number: str = "4242424242424242") -> httpx.Response:
    method = await client.post("/api/payments/methods", json=card_body(number), headers=SERVICE)
    assert method.status_code == 201, method.text
    command = {
        "order_id": order_id, "customer_id": "cus_http", "amount_cents": 1234,
        "payment_token": method.json()["token"], "idempotency_key": f"key-{order_id}",
    }  # fmt: skip
    return await client.post("/api/payments/process", json=command, headers=SERVICE)


@pytest.mark.parametrize("path", ["/api/payments/process", "/api/payments/refund", "/api/payments/methods"])
async def test_answers_401_when_service_token_is_missing(client: httpx.AsyncClient, path: str) -> None:
    response = await client.post(path, json={}, headers={"Authorization": ""})

    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert response.json()["code"] == "auth.token_missing"


async def test_answers_403_when_service_token_is_wrong(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/payments/methods", json=card_body(), headers={"Authorization": "Bearer admin"}
    )

    assert response.status_code == 403


async def test_answers_422_without_echoing_card_when_card_fails_luhn_check(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/payments/methods", json=card_body("4242 4242 4242 4241"), headers=SERVICE
    )

    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert "Luhn" in problem["detail"]
    assert "4241" not in response.text
    assert "321" not in response.text


async def test_returns_token_and_masked_card_when_card_is_tokenized(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/payments/methods", json=card_body(), headers=SERVICE)

    method = response.json()
    assert (method["brand"], method["last4"], method["method"]) == ("visa", "4242", "CREDIT_CARD")
    assert method["token"].startswith("pm_")
    assert "4242424242424242" not in response.text


async def test_charges_and_reads_payment_when_card_is_approved(client: httpx.AsyncClient) -> None:
    charged = await pay(client, "ord_http_ok")

    assert charged.status_code == 200, charged.text
    payment = charged.json()
    assert (payment["status"], payment["amount_cents"]) == ("COMPLETED", 1234)
    read = await client.get(f"/api/payments/{payment['payment_id']}")
    assert read.json() == payment
    listed = await client.get("/api/payments", params={"customer_id": "cus_http", "status": "COMPLETED"})
    assert [p["payment_id"] for p in listed.json()["items"]] == [payment["payment_id"]]


async def test_answers_402_problem_with_decline_code_when_card_is_declined(client: httpx.AsyncClient) -> None:
    response = await pay(client, "ord_http_declined", DECLINING_CARD)

    assert response.status_code == 402
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    problem = response.json()
    assert (problem["code"], problem["decline_code"]) == ("payment.declined", "card_declined")
    assert problem["status"] == 402


async def test_answers_409_when_order_was_voided_before_charge(client: httpx.AsyncClient) -> None:
    voided = await client.post(
        "/api/payments/refund", json={"order_id": "ord_http_void", "idempotency_key": "r"}, headers=SERVICE
    )
    assert voided.json()["status"] == "VOIDED"

    response = await pay(client, "ord_http_void")

    assert (response.status_code, response.json()["code"]) == (409, "payment.voided")


async def test_answers_404_when_payment_is_unknown(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/payments/pay_missing")

    assert (response.status_code, response.json()["code"]) == (404, "payment.not_found")


@pytest.mark.parametrize(
    "params",
    [
        {"customer_id": '{"$ne": null}'},
        {"customer_id": "cus.1"},
        {"status": "$ne"},
        {"from": "yesterday"},
        {"from": "2030-02-01T00:00:00Z", "to": "2030-01-01T00:00:00Z"},
        {"limit": "0"},
        {"limit": "101"},
        {"skip": "-1"},
    ],
)
async def test_answers_422_when_list_query_is_invalid(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    response = await client.get("/api/payments", params=params)

    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


@pytest.mark.parametrize("payment_id", ["$where", "pay.1", "a" * 65])
async def test_answers_422_when_payment_id_is_not_a_safe_id(
    client: httpx.AsyncClient, payment_id: str
) -> None:
    response = await client.get(f"/api/payments/{payment_id}")

    assert response.status_code == 422


async def test_answers_422_when_body_smuggles_an_operator(client: httpx.AsyncClient) -> None:
    body = {"order_id": {"$ne": None}, "idempotency_key": "r"}

    response = await client.post("/api/payments/refund", json=body, headers=SERVICE)

    assert response.status_code == 422


def test_documents_problem_responses_when_openapi_is_generated(app: FastAPI) -> None:
    paths = app.openapi()["paths"]

    assert {"401", "402", "403", "404", "409", "422", "503"} <= paths["/api/payments/process"]["post"][
        "responses"
    ].keys()
    assert "404" in paths["/api/payments/{payment_id}"]["get"]["responses"]
    assert "saga" in paths["/api/payments/methods"]["post"]["tags"]
    assert {p["name"] for p in paths["/api/payments"]["get"]["parameters"]} == {
        "customer_id", "status", "from", "to", "limit", "skip",
    }  # fmt: skip
