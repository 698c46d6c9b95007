"""The console is served by the app: its page, its assets, a strict content policy, and no CDN."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from ecommerce_saga.operations import install_operations
from ecommerce_saga.operations.console import CONSOLE_DIR
from ecommerce_saga.saga import SagaEngine
from ecommerce_saga.saga.stores.memory import InMemorySagaStore
from ecommerce_saga.saga.testing import InMemoryLedger, scripted_saga
from ecommerce_saga.web.auth import Authenticator


class Host:
    """The part of the composition root that operations use."""

    def __init__(self, engine: SagaEngine | None) -> None:
        self.engine = engine
        self.auth = Authenticator(service_tokens=["service-secret"], admin_tokens=["admin-secret"])


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    engine = SagaEngine(InMemorySagaStore(), [scripted_saga("order", ["a"], InMemoryLedger())], observers=[])
    install_operations(app, Host(engine))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        yield http


async def test_serves_the_page_with_a_strict_content_policy_when_asked_for_the_console(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/console")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert '<script type="module" src="console/static/js/app.js">' in response.text


async def test_serves_every_asset_the_page_links_to_when_loaded(client: httpx.AsyncClient) -> None:
    page = (await client.get("/console")).text
    modules = {path.name for path in (CONSOLE_DIR / "js").glob("*.js")}

    for href in re.findall(r'(?:href|src)="(console/static/[^"]+)"', page):
        assert (await client.get(f"/{href}")).status_code == 200, href
    for name in modules:
        response = await client.get(f"/console/static/js/{name}")
        assert response.status_code == 200
        assert "javascript" in response.headers["content-type"]


async def test_redirects_to_the_page_when_the_url_has_a_trailing_slash(client: httpx.AsyncClient) -> None:
    response = await client.get("/console/")

    assert response.status_code == 308
    assert response.headers["location"] == "../console"


async def test_leaves_the_console_out_of_the_openapi_document_when_installed(
    client: httpx.AsyncClient,
) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]

    assert "/api/sagas" in paths and "/api/sagas/{saga_id}/retry" in paths
    assert not [path for path in paths if path.startswith("/console")]


def test_installs_nothing_when_the_process_runs_no_saga_engine() -> None:
    app = FastAPI()

    install_operations(app, Host(None))

    assert not [
        route for route in app.routes if getattr(route, "path", "").startswith(("/api/sagas", "/console"))
    ]


@pytest.mark.parametrize(
    "path", sorted(p for p in CONSOLE_DIR.rglob("*") if p.suffix in {".js", ".html", ".css"})
)
def test_loads_nothing_from_elsewhere_and_never_parses_data_as_html_when_shipped(path: Path) -> None:
    text = path.read_text()

    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), "the console must work offline"
    assert not re.search(
        r"\.(inner|outer)HTML\b|insertAdjacentHTML|document\.write|createContextualFragment", text
    )
