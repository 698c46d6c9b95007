"""`/docs` renders offline: Swagger UI's assets are served by the app, and the schema is complete."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from openapi_spec_validator import validate

from ecommerce_saga.main import create_app
from ecommerce_saga.settings import Settings


def _app_client(tmp_path: Path) -> httpx.AsyncClient:
    app = create_app(Settings(service_token="t", admin_token="t", data_dir=tmp_path, metrics_port=0))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app")


async def test_serves_every_swagger_asset_itself_when_docs_are_opened(tmp_path: Path) -> None:
    async with _app_client(tmp_path) as client:
        page = await client.get("/docs")
        assert page.status_code == 200
        assets = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", page.text)
        assert assets, page.text
        assert all(asset.startswith("/") for asset in assets), assets  # no CDN, no other host
        for asset in assets:
            assert (await client.get(asset)).status_code == 200, asset


async def test_documents_every_operation_with_its_error_responses_when_the_schema_is_read(
    tmp_path: Path,
) -> None:
    async with _app_client(tmp_path) as client:
        spec = (await client.get("/openapi.json")).json()
    validate(spec)  # a valid OpenAPI 3.1 document
    operations = [(path, method, op) for path, ops in spec["paths"].items() for method, op in ops.items()]
    assert len(operations) >= 30
    for path, method, op in operations:
        if path.startswith("/api/"):
            assert "422" in op["responses"], (method, path)
            problem = op["responses"]["422"]["content"]["application/problem+json"]
            assert "example" in problem, (method, path)
            public = method == "get" and path.startswith("/api/inventory")  # the catalog: anyone
            assert public or op.get("security") == [{"bearer": []}], (method, path)
            assert public or "401" in op["responses"], (method, path)
        body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
        if "$ref" in body:
            schema = spec["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
            assert "examples" in schema, (method, path)
