"""The saga operations API in-process: an engine on the in-memory store running scripted sagas."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from ecommerce_saga.operations import build_router
from ecommerce_saga.saga import JsonObject, Saga, SagaEngine, SagaStatus, StepContext
from ecommerce_saga.saga.stores.memory import InMemorySagaStore
from ecommerce_saga.saga.testing import FaultPlan, InMemoryLedger, assert_invariants, scripted_saga
from ecommerce_saga.web.auth import Authenticator
from ecommerce_saga.web.problems import PROBLEM_MEDIA_TYPE, install_problem_handlers

ADMIN = {"Authorization": "Bearer admin-secret"}
SERVICE = {"Authorization": "Bearer service-secret"}
SECRET_INPUT = {"order_id": "o-1", "payment_token": "tok_live_abc", "card": {"api_key": "k", "last4": "4242"}}


class Shop:
    """The sagas under test, the engine that runs them, and the knobs to script them."""

    def __init__(self) -> None:
        self.ledger = InMemoryLedger()
        self.parking_faults = FaultPlan().fail_permanently("charge").fail_compensation("reserve", None)
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()
        self.checkout = scripted_saga("checkout", ["reserve", "charge"], self.ledger)
        self.parking = scripted_saga(
            "parking", ["reserve", "charge"], self.ledger, self.parking_faults, compensation_attempts=2
        )
        self.gated = self._gated()
        self.engine = SagaEngine(
            InMemorySagaStore(), [self.checkout, self.parking, self.gated], worker_id="w-1", observers=[]
        )

    def _gated(self) -> Saga:
        saga = scripted_saga("gated", ["reserve", "charge", "ship"], self.ledger)
        charge = saga.steps[1]

        async def wait_then_charge(ctx: StepContext) -> JsonObject | None:
            self.entered.set()
            await self.gate.wait()
            return await charge.action(ctx)

        steps = [saga.steps[0], replace(charge, action=wait_then_charge, timeout=30), saga.steps[2]]
        return replace(saga, steps=steps)

    async def run(self, saga_type: str, saga_id: str, correlation_id: str | None = None) -> SagaStatus:
        await self.engine.start(saga_type, SECRET_INPUT, saga_id=saga_id, correlation_id=correlation_id)
        return (await self.engine.wait(saga_id, timeout=5)).status


@pytest.fixture
async def shop() -> AsyncIterator[Shop]:
    shop = Shop()
    yield shop
    shop.gate.set()
    await shop.engine.stop()


@pytest.fixture
async def client(shop: Shop) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(
        build_router(
            shop.engine, Authenticator(service_tokens=["service-secret"], admin_tokens=["admin-secret"])
        )
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=ADMIN) as http:
        yield http


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body: dict[str, Any] = response.json()
    return body


async def test_lists_newest_first_with_the_total_when_paginated(
    shop: Shop, client: httpx.AsyncClient
) -> None:
    for n in range(3):
        await shop.run("checkout", f"s-{n}", correlation_id=f"o-{n}")
        await asyncio.sleep(0.002)  # distinct creation times, so "newest first" is observable

    first = (await client.get("/api/sagas", params={"limit": 2})).json()
    second = (await client.get("/api/sagas", params={"limit": 2, "skip": 2})).json()

    assert [s["saga_id"] for s in first["items"]] == ["s-2", "s-1"]
    assert [s["saga_id"] for s in second["items"]] == ["s-0"]
    assert (first["total"], first["limit"], first["skip"]) == (3, 2, 0)
    item = first["items"][0]
    assert (item["status"], item["correlation_id"], item["parked"]) == ("COMPLETED", "o-2", False)
    assert (item["current_step"], item["lease_expires_at"], item["lease_owner"]) == (None, None, "w-1")


async def test_filters_by_status_type_order_and_age_when_asked(shop: Shop, client: httpx.AsyncClient) -> None:
    await shop.run("checkout", "done", correlation_id="o-done")
    await shop.run("parking", "parked", correlation_id="o-parked")

    async def ids(**params: Any) -> list[str]:
        response = await client.get("/api/sagas", params=params)
        assert response.status_code == 200, response.text
        return [s["saga_id"] for s in response.json()["items"]]

    assert await ids(status="REQUIRES_ATTENTION") == ["parked"]
    assert sorted(await ids(status=["REQUIRES_ATTENTION", "COMPLETED"])) == ["done", "parked"]
    assert await ids(type="checkout") == ["done"]
    assert await ids(order_id="o-parked") == ["parked"]
    future = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    assert await ids(since=future) == []
    parked = (await client.get("/api/sagas", params={"status": "REQUIRES_ATTENTION"})).json()["items"][0]
    assert parked["parked"] is True
    assert (parked["current_step"], parked["current_phase"]) == ("reserve", "compensation")
    assert (parked["failure_code"], parked["failure_message"]) == ("test.rejected", "charge rejected")


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"skip": -1},
        {"status": "LOST"},
        {"since": "1700000000"},
        {"order_id": "$ne"},
    ],
)
async def test_answers_422_when_a_filter_is_invalid(
    client: httpx.AsyncClient, params: dict[str, Any]
) -> None:
    assert problem(await client.get("/api/sagas", params=params), 422)["code"] == "validation_error"


async def test_shows_every_attempt_and_masks_secrets_when_a_saga_is_read(
    shop: Shop, client: httpx.AsyncClient
) -> None:
    await shop.run("parking", "s-1", correlation_id="o-1")

    saga = (await client.get("/api/sagas/s-1")).json()

    assert saga["input"] == {
        "order_id": "o-1",
        "payment_token": "***",
        "card": {"api_key": "***", "last4": "4242"},
    }
    assert "tok_live_abc" not in str(saga)
    assert (saga["status"], saga["parked_from"], saga["actions"]) == (
        "REQUIRES_ATTENTION", "COMPENSATING", {"retry": True, "cancel": False},
    )  # fmt: skip
    assert saga["compensation"] == {
        "plan": ["reserve"], "position": 0, "total": 1, "done": [], "pending": ["reserve"],
    }  # fmt: skip
    assert [(s["name"], s["status"]) for s in saga["steps"]] == [
        ("reserve", "COMPENSATING"),
        ("charge", "FAILED"),
    ]
    rows = [(h["phase"], h["step"], h["attempt"], h["status"]) for h in saga["history"]]
    assert rows == [
        ("action", "reserve", 1, "SUCCEEDED"),
        ("action", "charge", 1, "FAILED"),
        ("compensation", "reserve", 1, "FAILED"),
        ("compensation", "reserve", 2, "FAILED"),
    ]
    failed = saga["history"][1]
    assert failed["error"] == {
        "type": "NonRetryableError",
        "code": "test.rejected",
        "message": "charge rejected",
    }
    assert failed["duration_ms"] >= 0 and failed["worker"] == "w-1" and failed["ended_at"]
    assert saga["version"] >= len(rows) - 1 and saga["fencing_token"] == 1


async def test_answers_404_problem_when_the_saga_is_unknown(client: httpx.AsyncClient) -> None:
    body = problem(await client.get("/api/sagas/nope"), 404)
    assert (body["code"], body["title"]) == ("saga.not_found", "Saga not found")
    for action in ("retry", "cancel"):
        response = await client.post(f"/api/sagas/nope/{action}", json={"reason": "why"})
        assert problem(response, 404)["code"] == "saga.not_found"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/sagas"),
        ("GET", "/api/sagas/s-1"),
        ("POST", "/api/sagas/s-1/retry"),
        ("POST", "/api/sagas/s-1/cancel"),
    ],
)
async def test_requires_the_admin_token_when_called(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    body = {"reason": "x"}
    anonymous = await client.request(method, path, json=body, headers={"Authorization": ""})
    as_service = await client.request(method, path, json=body, headers=SERVICE)

    assert problem(anonymous, 401)["code"] == "auth.token_missing"
    assert anonymous.headers["www-authenticate"] == 'Bearer realm="ecommerce-saga"'
    assert problem(as_service, 403)["code"] == "auth.forbidden"


async def test_compensates_and_records_the_operator_when_a_parked_saga_is_retried(
    shop: Shop, client: httpx.AsyncClient
) -> None:
    assert await shop.run("parking", "s-1") is SagaStatus.REQUIRES_ATTENTION
    shop.parking_faults.compensation_permanent.clear()  # the operator fixed what made the undo fail

    response = await client.post("/api/sagas/s-1/retry", json={"reason": "gateway is back", "actor": "alice"})
    final = await shop.engine.wait("s-1", timeout=5)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "COMPENSATING"
    assert final.status is SagaStatus.COMPENSATED
    saga = (await client.get("/api/sagas/s-1")).json()
    operator = [h for h in saga["history"] if h["phase"] == "operator"]
    assert [(h["step"], h["actor"], h["reason"]) for h in operator] == [
        ("resume", "alice", "gateway is back")
    ]
    assert saga["compensation"]["done"] == ["reserve"]
    assert_invariants(final, shop.parking, await shop.ledger.effects("s-1"))


async def test_conflicts_with_not_parked_when_retrying_a_saga_that_is_not_parked(
    shop: Shop, client: httpx.AsyncClient
) -> None:
    await shop.run("checkout", "s-1")

    body = problem(await client.post("/api/sagas/s-1/retry", json={"reason": "just in case"}), 409)

    assert body["code"] == "saga.not_parked"
    assert "not parked" in body["detail"]


async def test_compensates_when_a_running_saga_is_cancelled(shop: Shop, client: httpx.AsyncClient) -> None:
    await shop.engine.start("gated", SECRET_INPUT, saga_id="s-1")
    await asyncio.wait_for(shop.entered.wait(), 5)
    listed = (await client.get("/api/sagas/s-1")).json()
    assert (listed["status"], listed["current_step"], listed["actions"]["cancel"]) == (
        "RUNNING",
        "charge",
        True,
    )
    assert listed["lease_expires_at"] is not None

    response = await client.post("/api/sagas/s-1/cancel", json={"reason": "customer called"})
    final = await shop.engine.wait("s-1", timeout=5)

    assert response.status_code == 200, response.text
    assert final.status is SagaStatus.COMPENSATED
    assert final.failure is not None and final.failure.code == "saga.cancelled"
    operator = [(e.step, e.actor, e.reason) for e in final.history if e.phase == "operator"]
    assert operator == [("cancel", "admin", "customer called")]
    assert_invariants(final, shop.gated, await shop.ledger.effects("s-1"))


async def test_conflicts_with_not_cancellable_when_the_saga_has_finished(
    shop: Shop, client: httpx.AsyncClient
) -> None:
    await shop.run("checkout", "s-1")

    body = problem(await client.post("/api/sagas/s-1/cancel", json={"reason": "too late"}), 409)

    assert body["code"] == "saga.not_cancellable"


@pytest.mark.parametrize(
    "body",
    [{}, {"reason": ""}, {"reason": "   "}, {"reason": "x" * 501}, {"reason": "ok", "actor": "$where"}],
)
async def test_answers_422_when_the_operator_command_is_invalid(
    shop: Shop, client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    await shop.run("parking", "s-1")

    assert problem(await client.post("/api/sagas/s-1/retry", json=body), 422)["code"] == "validation_error"
    assert (await shop.engine.get("s-1")).status is SagaStatus.REQUIRES_ATTENTION
