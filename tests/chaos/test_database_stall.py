"""The database stops answering under load (SIGSTOP), then thaws: every request is bounded.

A stalled MongoDB primary (a long GC or disk pause) keeps its connections open and answers
nothing. The app bounds every database operation (SHOP_MONGODB_OPERATION_TIMEOUT_SECONDS), so
while the server is frozen each request answers — 201/202, or 503 problem+json with Retry-After —
within the bound plus a margin, and readiness says 503. After SIGCONT every order the client was
told about settles, the 503'd requests retried with their keys yield one order each, the audit
balances, stock is conserved, and no service logged an error or a traceback.

The freeze lasts STALL_SECONDS, five times the bound. The check is that the bound, not the thaw,
ended each request: every request and probe that began at least BOUND + MARGIN before the thaw
was answered before the thaw. That holds on a loaded machine too (where a bounded request may
take seconds longer than its bound), and a request that waited for the server could not pass it.
Each topology's run stays near half a minute (the issue's 30 s freeze would prove no more).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from ecommerce_saga.db.embedded import EmbeddedMongo, free_port
from tests.chaos.load import (
    SETTINGS,
    SPLIT_SETTINGS,
    Catalog,
    LoadGenerator,
    Sent,
    answered_more,
    audit_books,
    check_outcomes,
    retry_unanswered,
    settle,
)
from tests.e2e.conftest import Shop, start_app, start_split
from tests.e2e.shop import order_body, unique

BOUND = 2.0
"""SHOP_MONGODB_OPERATION_TIMEOUT_SECONDS in these runs."""
MARGIN = 3.0
"""Above the bound: HTTP and the app's own work, on a loaded 2-core machine (measured: see the docs)."""
STALL_SECONDS = 5 * BOUND
STALLED = {"SHOP_MONGODB_OPERATION_TIMEOUT_SECONDS": str(BOUND)}


@contextmanager
def _shop(topology: str, mongo_url: str, log_dir: Path) -> Iterator[Shop]:
    if topology == "monolith":
        shop = Shop.monolith(start_app(mongo_url, log_dir, **SETTINGS, **STALLED))
    else:
        shop = start_split(mongo_url, log_dir, **SPLIT_SETTINGS, **STALLED)
    try:
        yield shop
    finally:
        for app in shop.apps.values():
            app.stop()


@dataclass(frozen=True)
class Probe:
    """A read sent while the server was frozen, and what it got back."""

    path: str
    status: int | None
    begun: float
    seconds: float


@dataclass
class Freeze:
    """When the server was frozen and thawed (`time.monotonic()`), and the probes sent in between."""

    frozen_at: float = 0.0
    thawed_at: float = 0.0
    probes: list[Probe] = field(default_factory=list)


async def _probe(client: httpx.AsyncClient, path: str) -> Probe:
    begun = time.monotonic()
    try:
        status: int | None = (await client.get(path, timeout=30)).status_code
    except httpx.HTTPError:
        status = None
    return Probe(path, status, begun, time.monotonic() - begun)


async def _probe_until_thawed(client: httpx.AsyncClient, freeze: Freeze, order_id: str) -> None:
    while not freeze.thawed_at:
        for path in ("/readyz", "/api/inventory?limit=1", f"/api/orders/{order_id}"):
            freeze.probes.append(await _probe(client, path))


async def _stall_under_load(shop: Shop, server: EmbeddedMongo, load: LoadGenerator, order_id: str) -> Freeze:
    """Freeze the server mid-load for STALL_SECONDS, probe the shop meanwhile, thaw it."""
    assert server.process is not None
    running = asyncio.create_task(load.run())
    freeze = Freeze()
    try:
        await answered_more(load, than=load.answered + 9)  # orders flow before the freeze
        async with shop.async_client() as client:
            server.process.send_signal(signal.SIGSTOP)
            freeze.frozen_at = time.monotonic()
            try:
                probing = asyncio.create_task(_probe_until_thawed(client, freeze, order_id))
                await asyncio.sleep(STALL_SECONDS)
            finally:
                server.process.send_signal(signal.SIGCONT)  # never leave a frozen server behind
                freeze.thawed_at = time.monotonic()
            await probing
        await answered_more(load, than=load.answered + 9)  # and again after the thaw
    finally:
        load.stop()
        await running
    return freeze


def _errors_logged(log_dir: Path) -> list[str]:
    return [
        f"{log.name}: {line[:300]}"
        for log in sorted(log_dir.glob("app-*.log"))
        for line in log.read_text(errors="replace").splitlines()
        if '"level": "ERROR"' in line or '"level": "CRITICAL"' in line or line.startswith("Traceback")
    ]


def _first_order(client: httpx.Client, catalog: Catalog) -> str:
    body = order_body(catalog.stocked[0])
    response = client.post("/api/orders", json=body, headers={"Idempotency-Key": unique("stall-first")})
    assert response.status_code in (201, 202), response.text
    order_id: str = response.json()["order_id"]
    return order_id


@pytest.mark.e2e
@pytest.mark.parametrize("topology", ["monolith", "split"])
def test_answers_every_request_within_the_bound_while_the_database_is_frozen(
    topology: str, tmp_path: Path
) -> None:
    server = EmbeddedMongo(data_dir=tmp_path / "db", port=free_port())
    server.start()
    try:
        with _shop(topology, server.url, tmp_path) as shop:
            with shop.client() as client:
                catalog = Catalog.create(client)
                first = _first_order(client, catalog)
            load = LoadGenerator(shop.async_client, catalog, concurrency=6)

            freeze = asyncio.run(_stall_under_load(shop, server, load, first))

            refused = [request for request in load.sent if request.status == 503]
            slowest = max(load.sent, key=lambda request: request.seconds or 0)
            slowest_probe = max(probe.seconds for probe in freeze.probes)
            print(  # noqa: T201
                f"{topology}: {len(load.sent)} requests, {len(refused)} answered 503; slowest request "
                f"{slowest.seconds:.2f}s, slowest probe {slowest_probe:.2f}s (bound {BOUND:g}s)"
            )
            _check_bounded(load.sent, freeze)
            with shop.client() as client:
                retry_unanswered(client, load.sent)
                orders = settle(client, load.sent)
            check_outcomes(load.sent, orders)
            report = asyncio.run(audit_books(server.url, shop.apps["order"].db_name, catalog))
        told = {request.order_id for request in load.sent} | {first}
        assert report.counts["orders"] == len(told), "the shop holds orders its client was never told about"
        assert not _errors_logged(tmp_path), _errors_logged(tmp_path)[:5]
    finally:
        server.stop()


def _check_bounded(sent: list[Sent], freeze: Freeze) -> None:
    """The bound, not the thaw, ended every request and probe; they answered 201/202/503 (probes 503).

    Judged: whatever began at least BOUND + MARGIN before the thaw. It must have been answered
    before the thaw — a request that waited for the server would end only after it.
    """
    judge_until = freeze.thawed_at - (BOUND + MARGIN)
    judged = [
        r for r in sent if r.sent_at is not None and r.sent_at <= judge_until and _ends(r) > freeze.frozen_at
    ]
    assert judged, "no order request was in flight while the database was frozen"
    waited = [(r.key, r.status, round(r.seconds or 0, 2)) for r in judged if _ends(r) > freeze.thawed_at]
    assert not waited, f"requests answered only after the thaw: {waited[:10]}"
    assert {request.status for request in sent} <= {201, 202, 503}, {r.status for r in sent}
    assert any(request.status == 503 for request in sent), "no order request met the frozen database"
    probes = [probe for probe in freeze.probes if probe.begun <= judge_until]
    assert probes, "no probe was judged"
    late = [probe for probe in probes if probe.begun + probe.seconds > freeze.thawed_at]
    assert not late, f"probes answered only after the thaw: {late[:10]}"
    assert {probe.status for probe in probes if probe.path == "/readyz"} == {503}, probes[:6]
    assert {probe.status for probe in probes} == {503}, probes[:12]


def _ends(request: Sent) -> float:
    assert request.sent_at is not None
    return request.sent_at + (request.seconds if request.seconds is not None else float("inf"))
