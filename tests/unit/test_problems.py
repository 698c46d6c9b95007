"""Errors that reach the web layer become problem+json: a database outage is a 503, not a 500."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from pymongo.errors import (
    AutoReconnect,
    ExecutionTimeout,
    NetworkTimeout,
    OperationFailure,
    ServerSelectionTimeoutError,
)

from ecommerce_saga.saga import StoreUnavailableError
from ecommerce_saga.web.problems import PROBLEM_MEDIA_TYPE, install_problem_handlers


def _app_raising(error: Exception) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise error

    return app


@pytest.mark.parametrize(
    "error",
    [
        ServerSelectionTimeoutError("no servers"),
        AutoReconnect("connection closed"),
        StoreUnavailableError("the saga store cannot be reached (AutoReconnect)"),
        NetworkTimeout("127.0.0.1:27017: timed out (configured timeouts: timeoutMS: 3000.0ms)"),
        ExecutionTimeout("operation would exceed time limit", 50),
    ],
)
async def test_answers_503_with_retry_after_when_the_database_cannot_be_reached(error: Exception) -> None:
    transport = httpx.ASGITransport(app=_app_raising(error), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        response = await client.get("/boom")

    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert response.headers["retry-after"] == "5"
    assert response.json()["code"] == "database_unavailable"


async def test_answers_500_when_a_database_error_is_no_outage() -> None:
    error = OperationFailure("unknown operator: $nope", 2)
    transport = httpx.ASGITransport(app=_app_raising(error), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        response = await client.get("/boom")

    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
