"""The authorization matrix: every operation by every kind of caller, asserted from docs/security.md.

The table in the docs is the single source: this test parses it, fails when the API has an operation
without a row, and asks every cell of the real app over HTTP, in one process and in five.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ADMIN_TOKEN, SERVICE_TOKEN, Shop
from tests.e2e.shop import DECLINED_CARD, items_of, new_product, order_body, unique
from tests.identity_provider import shared_provider
from tests.waiting import eventually_blocking

DOCS = Path(__file__).parents[2] / "docs" / "security.md"
CALLERS = ("anonymous", "customer A", "customer B", "operator", "service")
ROW = re.compile(r"^\| `(?P<method>[A-Z]+) (?P<target>[^`]+)`(?: \[(?P<note>[^\]]+)\])? \|(?P<cells>.+)\|$")
DEVELOPMENT_ONLY = "development issuer only"
NOT_IN_SCHEMA = {("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/console"), ("GET", "/metrics")}
"""Served, but not operations of the schema (or, for /metrics, deliberately not served on this port)."""


@dataclass(frozen=True)
class Row:
    """One row of the matrix: a request and the status each caller must get."""

    method: str
    target: str
    note: str | None
    expected: dict[str, int]

    @property
    def path(self) -> str:
        """The path template, without the query."""
        return self.target.split("?", 1)[0]

    def __str__(self) -> str:
        return f"{self.method} {self.target}" + (f" [{self.note}]" if self.note else "")


def matrix() -> list[Row]:
    """The rows of the documented matrix."""
    rows = []
    for line in DOCS.read_text().splitlines():
        match = ROW.match(line)
        if match is None:
            continue
        cells = [int(cell.strip()) for cell in match["cells"].split("|")]
        assert len(cells) == len(CALLERS), line
        rows.append(
            Row(match["method"], match["target"], match["note"], dict(zip(CALLERS, cells, strict=True)))
        )
    assert len(rows) > 30, "the matrix table was not found in docs/security.md"
    return rows


@dataclass
class Objects:
    """Customer A's records, and the ids the matrix's paths need."""

    customer_a: str
    customer_b: str
    ids: dict[str, str]
    a_order: Callable[[], dict[str, Any]]


@pytest.fixture
def objects(shop: Shop) -> Iterator[Objects]:
    """A completed order of A (payment, shipment, notification) and a failed one (nothing to cancel)."""
    a, b = unique("cust-a"), unique("cust-b")
    provider = shared_provider()
    with shop.client(provider.token(a)) as as_a, shop.client() as operator:
        product = new_product(operator, {"Authorization": f"Bearer {ADMIN_TOKEN}"}, quantity=50)
        completed = as_a.post("/api/orders", json=_without_customer(order_body(product)))
        failed = as_a.post("/api/orders", json=_without_customer(order_body(product, payment=DECLINED_CARD)))
        assert (completed.status_code, failed.status_code) == (201, 201), completed.text + failed.text
        order, failed_order = completed.json(), failed.json()
        assert (order["status"], failed_order["status"]) == ("COMPLETED", "FAILED")
        notes = eventually_blocking(
            lambda: items_of(as_a, "/api/notifications", type="ORDER_CONFIRMED"), bool
        )
        yield Objects(
            a, b,
            {
                "order_id": failed_order["order_id"], "payment_id": order["payment_id"],
                "shipping_id": order["shipping_id"], "notification_id": notes[0]["notification_id"],
                "product_id": product, "saga_id": order["saga_id"], "A": a,
                "name": "20300101T000000-ntf_none.eml",
            },
            lambda: order_body(product, customer_id=a),
        )  # fmt: skip


def _without_customer(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key != "customer_id"}


def _tokens(objects: Objects) -> dict[str, str | None]:
    provider = shared_provider()
    return {
        "anonymous": None,
        "customer A": provider.token(objects.customer_a),
        "customer B": provider.token(objects.customer_b, kid=provider.ec_kid),
        "operator": ADMIN_TOKEN,
        "service": SERVICE_TOKEN,
    }


def _operations(shop: Shop) -> set[tuple[str, str]]:
    """Every operation of every process's OpenAPI document."""
    found = set()
    for url in set(shop.urls.values()):
        spec = httpx.get(f"{url}/openapi.json", timeout=30).json()
        found |= {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    return found


def test_has_a_row_for_every_operation(shop: Shop) -> None:
    documented = {(row.method, row.path) for row in matrix()}
    missing = _operations(shop) - documented
    assert not missing, f"operations without a row in docs/security.md: {sorted(missing)}"


def test_answers_each_caller_as_the_matrix_says(shop: Shop, objects: Objects) -> None:
    operations = _operations(shop)
    tokens = _tokens(objects)
    wrong = []
    asked = 0
    for row in matrix():
        if (row.method, row.path) not in operations and (row.method, row.path) not in NOT_IN_SCHEMA:
            assert row.note == DEVELOPMENT_ONLY, f"{row} is documented but not served"
            continue
        target = re.sub(r"\{(\w+)\}", lambda m: objects.ids[m[1]], row.target).replace(
            "=A", f"={objects.customer_a}"
        )
        body = objects.a_order() if row.note == "A's order" else {}
        for caller, expected in row.expected.items():
            with shop.client(tokens[caller]) as client:
                response = client.request(row.method, target, json=body if row.method == "POST" else None)
            asked += 1
            if response.status_code != expected:
                wrong.append(
                    f"{row} as {caller}: {response.status_code}, expected {expected}: {response.text[:160]}"
                )
            elif response.status_code in (401, 403):
                assert response.headers["content-type"].startswith("application/problem+json"), row
                assert response.headers["www-authenticate"].startswith("Bearer"), row
    assert not wrong, "\n".join(wrong)
    assert asked >= 200
