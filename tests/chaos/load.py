"""Chaos-test harness: a load generator that keeps every request it sent, and the checks after.

The generator places orders continuously from several concurrent clients, each request with its
own Idempotency-Key, in a mix of 80 % that should complete and 20 % spread over the three failure
branches (no stock, a declined card, an address the couriers do not serve). It records what each
request got back — an order id, an error status, or no answer — so that after the faults the
client can do what a real one does: retry what got no answer with the same key, and check that
every order it was told about exists and reached a final state. Then the audit reads the books.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from pymongo import AsyncMongoClient

from ecommerce_saga.bootstrap import audit_sources
from ecommerce_saga.operations.audit import AuditReport, audit
from ecommerce_saga.saga import SagaStatus
from ecommerce_saga.saga.stores.mongo import DEFAULT_COLLECTION as SAGA_COLLECTION
from tests.e2e.conftest import ADMIN_TOKEN
from tests.e2e.shop import ADDRESS, DECLINED_CARD, order_body, unique
from tests.identity_provider import shared_provider
from tests.waiting import eventually

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
FINAL = ("COMPLETED", "FAILED", "CANCELLED")
SETTINGS = {
    "SHOP_SAGA_LEASE_SECONDS": "1",
    "SHOP_SAGA_RECOVERY_INTERVAL_SECONDS": "0.5",
    "SHOP_ORDER_WAIT_SECONDS": "0",
    "SHOP_LOG_LEVEL": "WARNING",
}
"""A coordinator under chaos: short leases, so a killed worker's sagas are recovered in seconds."""
SPLIT_SETTINGS = {
    **SETTINGS,
    "SHOP_SAGA_LEASE_SECONDS": "2",
    "SHOP_HTTP_TIMEOUT_SECONDS": "1",
    "SHOP_SAGA_STEP_ATTEMPTS": "40",
}
"""Five services under faults: short HTTP timeouts, and a step retry budget that outlasts outages."""


def chaos_seed() -> int:
    """The seed of a random fault schedule: CHAOS_SEED if set, else a new one; printed either way."""
    seed = int(os.environ.get("CHAOS_SEED", random.randrange(1_000_000)))
    print(f"CHAOS_SEED={seed}")  # noqa: T201 - to rerun the same schedule
    return seed


STOCK = 400
"""Units of each stocked product: enough that most good orders complete, few enough to matter."""


@dataclass
class Sent:
    """One order request and what it got back (None: no answer, the connection broke)."""

    key: str
    body: dict[str, Any]
    kind: str
    status: int | None = None
    order_id: str | None = None
    sent_at: float | None = None
    """When the first attempt was sent (`time.monotonic()`)."""
    seconds: float | None = None
    """How long the first attempt waited for its answer (or for the connection to break)."""
    token: str = ""
    """The customer's access token: orders are placed as the customer, as a shop's front end does."""
    email: bool = False
    """Whether the token carries the customer's `email` (`<customer id>@example.com`)."""

    def __post_init__(self) -> None:
        if not self.token:
            provider = shared_provider()
            customer = self.body["customer_id"]
            claims: dict[str, Any] = {"email": f"{customer}@example.com"} if self.email else {}
            self.token = provider.token(customer, kid=provider.ec_kid, ttl=3600, **claims)

    def headers(self) -> dict[str, str]:
        """The request's headers: its key, its customer's token, and no waiting for the saga."""
        return {
            "Idempotency-Key": self.key,
            "Prefer": "respond-async",
            "Authorization": f"Bearer {self.token}",
        }


@dataclass
class Catalog:
    """The products a load runs against: some stocked, one with nothing on the shelf."""

    stocked: list[str]
    empty: str

    @classmethod
    def create(cls, client: httpx.Client, products: int = 3) -> Catalog:
        """Create the products through the API."""
        catalog = cls([unique("sku") for _ in range(products)], unique("sku-empty"))
        for product_id in [*catalog.stocked, catalog.empty]:
            quantity = 0 if product_id == catalog.empty else STOCK
            body = {"product_id": product_id, "name": "Chaos widget", "category": "chaos",
                    "price_cents": 999, "quantity": quantity}  # fmt: skip
            response = client.post("/api/inventory", json=body, headers=ADMIN)
            assert response.status_code == 201, response.text
        return catalog


MIX = [*["ok"] * 4, "declined", *["ok"] * 4, "unshippable", *["ok"] * 4, "out_of_stock"]
"""12 good orders and one of each failure branch: 80 % / 20 %."""


@dataclass
class LoadGenerator:
    """Orders from `concurrency` clients until stopped; everything sent is kept in `sent`."""

    client_factory: Callable[[], httpx.AsyncClient]
    catalog: Catalog
    concurrency: int = 6
    emails: bool = False
    """Customers' tokens carry an email address, so every order's notice is mailed."""
    sent: list[Sent] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _kinds: itertools.cycle[str] = field(default_factory=lambda: itertools.cycle(MIX))

    def body(self, kind: str) -> dict[str, Any]:
        """An order body of the given kind."""
        product = self.catalog.stocked[len(self.sent) % len(self.catalog.stocked)]
        body = order_body(product, quantity=1 + len(self.sent) % 2)
        if kind == "declined":
            body["payment"] = DECLINED_CARD
        elif kind == "unshippable":
            body["shipping_address"] = {**ADDRESS, "country": "BR"}
        elif kind == "out_of_stock":
            body["items"] = [{"product_id": self.catalog.empty, "quantity": 1}]
        return body

    async def run(self) -> None:
        """Send orders until `stop()`."""
        async with self.client_factory() as client:
            await asyncio.gather(*(self._client(client) for _ in range(self.concurrency)))

    def stop(self) -> None:
        """Let every client finish its request in flight, then stop."""
        self._stop.set()

    async def _client(self, client: httpx.AsyncClient) -> None:
        while not self._stop.is_set():
            kind = next(self._kinds)
            request = Sent(f"chaos-{unique('key')}", self.body(kind), kind, email=self.emails)
            self.sent.append(request)
            await send(client, request)
            if request.status is None or request.status >= 500:
                await asyncio.sleep(0.1)  # the service is down: do not spin

    @property
    def answered(self) -> int:
        """Requests answered with an order."""
        return sum(1 for request in self.sent if request.order_id)


async def send(client: httpx.AsyncClient, request: Sent) -> None:
    """POST the order with its key; record the answer (or its absence)."""
    request.sent_at = time.monotonic()
    try:
        response = await client.post("/api/orders", json=request.body, headers=request.headers(), timeout=20)
    except httpx.HTTPError:
        return
    finally:
        request.seconds = time.monotonic() - request.sent_at
    request.status = response.status_code
    if response.status_code in (200, 201, 202):
        order_id = response.json()["order_id"]
        assert request.order_id in (None, order_id), f"key {request.key} answered two orders"
        request.order_id = order_id
    else:  # only "come back later" is acceptable under faults; a 4xx/500 would be a bug
        assert response.status_code == 503, (response.status_code, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")


def retry_unanswered(
    client: httpx.Client, sent: list[Sent], deadline_seconds: float = 60, concurrency: int = 8
) -> None:
    """Retry every request that got no order, with the same key, until each is answered.

    A replay of an answered key must return the same order; this is checked on a sample of them.
    Requests are retried `concurrency` at a time, as many clients would.
    """
    deadline = time.monotonic() + deadline_seconds
    again = [request for number, request in enumerate(sent) if request.order_id is None or number % 4 == 0]
    with ThreadPoolExecutor(concurrency) as pool:
        for done in pool.map(lambda request: _retry(client, request, deadline), again):
            assert done is None


def _retry(client: httpx.Client, request: Sent, deadline: float) -> None:
    while True:
        try:
            response = client.post("/api/orders", json=request.body, headers=request.headers(), timeout=20)
        except httpx.HTTPError:
            response = None
        if response is not None and response.status_code in (200, 201, 202):
            order_id = response.json()["order_id"]
            assert request.order_id in (None, order_id), f"a replay of {request.key} made a new order"
            request.order_id = order_id
            return
        assert response is None or response.status_code == 503, response.text
        assert time.monotonic() < deadline, f"{request.key} never answered"
        time.sleep(0.2)


def settle(client: httpx.Client, sent: list[Sent], timeout: float = 120) -> list[dict[str, Any]]:
    """Wait until every order the client was told about is final; return them."""
    order_ids = sorted({request.order_id for request in sent if request.order_id})
    deadline = time.monotonic() + timeout
    pending = set(order_ids)
    orders: dict[str, dict[str, Any]] = {}
    while pending:
        for order_id in sorted(pending):
            response = client.get(f"/api/orders/{order_id}")
            assert response.status_code in (200, 503), response.text  # never 404: accepted means kept
            if response.status_code == 200 and response.json()["status"] in FINAL:
                orders[order_id] = response.json()
                pending.discard(order_id)
        if pending:
            assert time.monotonic() < deadline, f"orders not final after {timeout:g}s: {sorted(pending)[:10]}"
            time.sleep(0.25)
    return [orders[order_id] for order_id in order_ids]


def check_outcomes(sent: list[Sent], orders: list[dict[str, Any]]) -> Counter[str]:
    """Each kind of order ended the way it must; returns the count of final statuses."""
    status_of = {order["order_id"]: order["status"] for order in orders}
    for request in sent:
        if request.order_id is None:
            continue
        status = status_of[request.order_id]
        if request.kind != "ok":
            assert status == "FAILED", (request.kind, request.order_id, status)
    statuses = Counter(status_of.values())
    assert statuses["COMPLETED"] > 0, statuses
    return statuses


async def settled_audit(mongo_url: str, db_name: str, timeout: float = 60) -> AuditReport:
    """The audit, once no saga is in flight any more (or after `timeout`).

    An order is final at its pivot, but its saga may still be sending the confirmation; the
    books are judged once every saga has finished.
    """
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
    deadline = time.monotonic() + timeout
    try:
        report = await audit(audit_sources(client[db_name]))
        while report.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            report = await audit(audit_sources(client[db_name]))
    finally:
        await client.close()
    return report


def stock_lost(report: AuditReport, catalog: Catalog) -> list[str]:
    """Products whose units were created or lost (available + reserved must stay what was stocked)."""
    expected = {product: STOCK for product in catalog.stocked} | {catalog.empty: 0}
    return [
        f"{product}: {report.stock.get(product)}"
        for product, units in expected.items()
        if sum((report.stock.get(product) or {}).values()) != units
    ]


async def audit_books(mongo_url: str, db_name: str, catalog: Catalog, timeout: float = 60) -> AuditReport:
    """Audit the database once every saga has finished, and check that no stock was made or lost."""
    report = await settled_audit(mongo_url, db_name, timeout)
    # unfinished sagas: say what they look like, and whether anything moves them
    unfinished = "\n" + await describe_sagas(mongo_url, db_name, report.in_flight) if report.in_flight else ""
    assert report.ok, report.summary() + unfinished
    assert not stock_lost(report, catalog), stock_lost(report, catalog)
    return report


async def describe_sagas(mongo_url: str, db_name: str, saga_ids: list[str], apart: float = 3.0) -> str:
    """Two looks at each saga, `apart` seconds apart: its status, step, lease and version, and its
    last attempts. A lease renewed at a constant fencing token is a run still alive (a heartbeat);
    a fencing token that climbs is a recovery claiming it again and again; nothing changing is a
    saga no worker takes."""
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
    fields = ("status", "current_step", "lease_owner", "lease_expires_at_ms", "fencing_token", "version")
    try:
        looks = []
        for look in range(2):
            if look:
                await asyncio.sleep(apart)
            now_ms = int(time.time() * 1000)
            found = mongo[db_name][SAGA_COLLECTION].find({"_id": {"$in": saga_ids[:5]}})
            looks.append((now_ms, {doc["_id"]: doc async for doc in found}))
    finally:
        await mongo.close()
    lines = []
    for saga_id in saga_ids[:5]:
        for now_ms, docs in looks:
            doc = docs.get(saga_id, {})
            state = {name: doc.get(name) for name in fields}
            lease = doc.get("lease_expires_at_ms")
            lease_left = None if not isinstance(lease, int) else lease - now_ms
            lines.append(f"  saga {saga_id} at {now_ms}: {state}, lease left {lease_left} ms")
        history = looks[-1][1].get(saga_id, {}).get("history", [])
        for entry in history[-4:]:
            error = (entry.get("error") or {}).get("message", "")
            lines.append(
                f"    {entry.get('step')} {entry.get('phase')} #{entry.get('attempt')} {entry.get('status')} "
                f"{entry.get('started_at')} to {entry.get('ended_at')} {error}"
            )
    return "\n".join(lines)


async def sagas_in_flight(
    mongo_url: str, db_name: str, *, at_least: int = 1, owner: str | None = None, timeout: float = 60
) -> int:
    """Wait until the store shows `at_least` sagas running or compensating; return how many it shows.

    Faults are injected on this condition, not after a fixed time: on a loaded machine a timer may
    go off while no saga has started yet, and a fault that hits nothing proves nothing. `owner`
    counts only the sagas leased by that worker. The count is returned when the timeout passes too;
    the caller's own check says what was expected.
    """
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    query: dict[str, Any] = {"status": {"$in": [str(status) for status in SagaStatus if status.is_active]}}
    if owner is not None:
        query["lease_owner"] = owner
    deadline = time.monotonic() + timeout
    try:
        while True:
            count = await mongo[db_name][SAGA_COLLECTION].count_documents(query)
            if count >= at_least or time.monotonic() > deadline:
                return count
            await asyncio.sleep(0.02)
    finally:
        await mongo.close()


async def answered_more(load: LoadGenerator, than: int, timeout: float = 60) -> None:
    """Wait until the load has been answered with more than `than` orders."""
    await eventually(lambda: load.answered, lambda answered: answered > than, timeout=timeout,
                     what=f"the shop answers orders again (more than {than})")  # fmt: skip


async def saga_documents(mongo_url: str, db_name: str) -> list[dict[str, Any]]:
    """Every saga document of the database, as stored."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
    try:
        return [saga async for saga in client[db_name].sagas.find({})]
    finally:
        await client.close()


def never_twice_at_once(saga: dict[str, Any]) -> None:
    """No step succeeded twice, and attempts by different workers did not overlap in time."""
    succeeded = Counter((h["step"], h["phase"]) for h in saga["history"] if h["status"] == "SUCCEEDED")
    assert all(count == 1 for count in succeeded.values()), (saga["_id"], succeeded)
    spans: list[tuple[datetime, datetime, str]] = [
        (h["started_at"], h["ended_at"], h["worker"])
        for h in saga["history"]
        if h.get("ended_at") is not None and h.get("worker") is not None
    ]
    spans.sort()
    for (_, ended, worker), (started, _, next_worker) in itertools.pairwise(spans):
        if worker != next_worker:
            assert ended <= started, (saga["_id"], worker, next_worker)
