"""The notification router in-process: auth, validation, and problem documents with stable codes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from ecommerce_saga.modules.notification.contract import Notification
from ecommerce_saga.modules.notification.repository import InMemoryNotificationRepository
from ecommerce_saga.modules.notification.router import build_router
from ecommerce_saga.modules.notification.service import LocalNotificationService
from ecommerce_saga.web.auth import Authenticator
from ecommerce_saga.web.problems import PROBLEM_MEDIA_TYPE, install_problem_handlers

TOKENS = Authenticator(service_tokens=["service-token"], admin_tokens=["admin-token"])
SERVICE_AUTH = {"Authorization": "Bearer service-token"}
ADMIN_AUTH = {"Authorization": "Bearer admin-token"}


class FlakySender:
    """A `NotificationSender` that fails the first `failures` calls."""

    def __init__(self) -> None:
        self.failures = 0

    def screen(self, notification: Notification) -> None:
        return None

    async def send(self, notification: Notification) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("the mail gateway is down")


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def sender() -> FlakySender:
    """The sender behind the router's service."""
    return FlakySender()


@pytest.fixture
async def client(sender: FlakySender) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of a small app serving the notification router in-process (no database)."""
    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(
        build_router(LocalNotificationService(InMemoryNotificationRepository(), sender), TOKENS)
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://shop.test", headers=ADMIN_AUTH
    ) as client:
        yield client


def _body(order_id: str, **changes: Any) -> dict[str, Any]:
    fields = {"customer_id": "cus_ada", "type": "ORDER_CONFIRMED", "idempotency_key": "k"}
    return {"order_id": order_id, **fields, **changes}


class TestNotificationRouter:
    """The router's HTTP behaviour: auth, validation and problem documents."""

    async def test_answers_401_when_service_token_is_missing(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/api/notifications/send", json=_body(_id("ord")), headers={"Authorization": ""}
        )

        assert response.status_code == 401
        assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE

    async def test_answers_401_when_cancel_has_no_service_token(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/api/notifications/cancel",
            json={"order_id": _id("ord"), "customer_id": "cus_ada", "idempotency_key": "k"},
            headers={"Authorization": ""},
        )

        assert response.status_code == 401

    async def test_sends_and_marks_read_over_http_when_authorised(self, client: httpx.AsyncClient) -> None:
        sent = await client.post("/api/notifications/send", json=_body(_id("ord")), headers=SERVICE_AUTH)
        notification_id = sent.json()["notification_id"]

        read = await client.post(f"/api/notifications/{notification_id}/read")
        listed = await client.get(
            "/api/notifications", params={"customer_id": "cus_ada", "read_status": "read"}
        )

        assert sent.status_code == 200
        assert sent.json()["status"] == "SENT"
        assert read.json()["read"] is True
        assert [n["notification_id"] for n in listed.json()["items"]] == [notification_id]

    async def test_answers_503_problem_when_sender_fails(
        self, client: httpx.AsyncClient, sender: FlakySender
    ) -> None:
        sender.failures = 1

        response = await client.post("/api/notifications/send", json=_body(_id("ord")), headers=SERVICE_AUTH)

        assert response.status_code == 503
        assert response.json()["code"] == "notification.delivery_failed"

    @pytest.mark.parametrize("path", ["/api/notifications/{id}", "/api/notifications/{id}/read"])
    async def test_answers_404_problem_when_notification_is_unknown(
        self, client: httpx.AsyncClient, path: str
    ) -> None:
        url = path.format(id=_id("ntf"))
        response = await (client.post(url) if url.endswith("/read") else client.get(url))

        assert response.status_code == 404
        assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
        assert response.json()["code"] == "notification.not_found"

    @pytest.mark.parametrize(
        "body",
        [
            {"type": "ORDER_SHIPPED"},
            {"order_id": "$ne"},
            {"details": {"$where": "1"}},
            {"details": {"x": {"$gt": ""}}},
            {"extra": "field"},
        ],
    )
    async def test_answers_422_problem_when_send_body_is_invalid(
        self, client: httpx.AsyncClient, body: dict[str, Any]
    ) -> None:
        response = await client.post(
            "/api/notifications/send", json={**_body(_id("ord")), **body}, headers=SERVICE_AUTH
        )

        assert response.status_code == 422
        assert response.json()["code"] == "validation_error"

    @pytest.mark.parametrize(
        "query",
        [
            {"read_status": "true"},
            {"type": "ORDER_SHIPPED"},
            {"customer_id": '{"$ne": null}'},
            {"limit": "0"},
            {"limit": "101"},
            {"skip": "-1"},
        ],
    )
    async def test_answers_422_when_list_query_is_invalid(
        self, client: httpx.AsyncClient, query: dict[str, str]
    ) -> None:
        response = await client.get("/api/notifications", params=query)

        assert response.status_code == 422
