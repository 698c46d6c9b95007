"""Serve a module's router in-process and reach it through a `ServiceClient` over `httpx.ASGITransport`.

A contract spec's HTTP subclass wraps the local service in the module's router, the way a split
deployment serves it, and hands the spec the module's `client.py` on top: requests and answers
cross the real JSON, auth and problem+json boundary, but no socket is opened.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import APIRouter, FastAPI

from ecommerce_saga.web.auth import Authenticator
from ecommerce_saga.web.problems import install_problem_handlers
from ecommerce_saga.web.service_client import ServiceClient

TOKEN = "contract-test-token"
TOKENS = Authenticator(service_tokens=[TOKEN], admin_tokens=[TOKEN])
"""The same token for both roles, so the client may also call the operators' routes (catalog, reads)."""


@asynccontextmanager
async def served_over_http(name: str, router: APIRouter) -> AsyncIterator[ServiceClient]:
    """A `ServiceClient` for an app that serves only `router`, with the shop's problem handlers."""
    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(router)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{name}")
    client = ServiceClient(name, http, TOKEN)
    try:
        yield client
    finally:
        await client.aclose()
