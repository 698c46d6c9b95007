"""The whole shop in the test's process, on the test's database, with an operator's client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from ecommerce_saga.main import create_app
from ecommerce_saga.settings import Settings


@asynccontextmanager
async def shop_in_process(
    mongo_url: str, db_name: str, data_dir: Path, name: str, **settings: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    """Start the shop (its lifespan included) on `db_name`; yield a client holding the admin
    token (``Bearer <name>-admin``) and the app. The shop stops, and its shutdown runs, on exit."""
    values: dict[str, Any] = {
        "mongodb_url": mongo_url, "mongodb_db": db_name, "service_token": f"{name}-service",
        "admin_token": f"{name}-admin", "demo_catalog": False, "log_level": "WARNING",
        "data_dir": data_dir, "metrics_port": 0, **settings,
    }  # fmt: skip
    app = create_app(Settings(**values))
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        headers = {"Authorization": f"Bearer {name}-admin"}
        async with httpx.AsyncClient(transport=transport, base_url="http://shop", headers=headers) as client:
            yield client, app
