"""Orders benchmark: POST /api/orders under load, against a hand-rolled baseline on the same database.

Starts the embedded MongoDB-wire server (or uses --url) and the app as a real uvicorn process,
loads it with wrk (Debian package `wrk`) at each concurrency, and prints orders/s and latency
percentiles. In the same run, a baseline does the same business writes directly with PyMongo and
no saga, API or idempotency: vault a payment method, insert the order, hold the stock (one
conditional update), insert the reservation, the payment and the shipment, mark the order
COMPLETED, insert the notification.

    python benchmarks/orders_bench.py [--seconds 10] [--concurrency 1 16 64] [--url mongodb://...]
        [--commands-only]

The machine and the numbers go to stdout as a markdown table, then the database commands per
order: one order at a time, and with 16 or 64 clients placing orders at once (``--commands-only``:
those alone, no load). It measures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
from pymongo import AsyncMongoClient, ReturnDocument, monitoring
from starlette.types import ASGIApp

from ecommerce_saga.db.embedded import EmbeddedMongo, die_with_parent, free_port
from ecommerce_saga.identity import DEV_AUDIENCE, DEV_ISSUER, DevelopmentIssuer, OidcClaims

TOKEN = "bench-token"
PRODUCT: dict[str, Any] = {
    "product_id": "bench-widget",
    "name": "Widget",
    "category": "bench",
    "price_cents": 1999,
    "quantity": 1_000_000,
}
ORDER: dict[str, Any] = {
    "customer_id": "bench-customer",
    "items": [{"product_id": "bench-widget", "quantity": 1}],
    "payment": {
        "method": "CREDIT_CARD",
        "card_number": "4242424242424242",
        "expiry_month": 12,
        "expiry_year": 2031,
        "cvv": "123",
    },
    "shipping_address": {
        "name": "Ada",
        "street": "1 Main St",
        "city": "Springfield",
        "postal_code": "12345",
        "country": "US",
    },
}
WRK_DONE = """
-- Every thread's `counts` table (if the script keeps one) is summed here, in the main state, and
-- its `samples` (strings, e.g. the first error answers) printed one per line.
local threads = {}
function setup(thread) table.insert(threads, thread) end
function done(summary, latency, requests)
  local e, counts, parts = summary.errors, {}, {}
  for _, thread in ipairs(threads) do
    for key, n in pairs(thread:get("counts") or {}) do counts[key] = (counts[key] or 0) + n end
    for _, sample in ipairs(thread:get("samples") or {}) do io.write("SAMPLE ", sample, "\\n") end
  end
  for key, n in pairs(counts) do parts[#parts + 1] = string.format('"%s": %d', key, n) end
  io.write(string.format('RESULT {"requests": %d, "duration_us": %d, "transport_errors": %d, '
    .. '"http_errors": %d, "p50": %f, "p95": %f, "p99": %f, "counts": {%s}}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    table.concat(parts, ", ")))
end
"""
"""wrk's summary as one `RESULT {json}` line; latencies in ms; `http_errors` counts answers >= 400."""


def lua_string(text: str) -> str:
    """`text` as a Lua string literal (a JSON string is one, for ASCII text)."""
    return json.dumps(text, ensure_ascii=True)


BENCH_IDENTITY = Path(tempfile.gettempdir()) / "ecommerce-saga-bench-identity"
"""The benchmarked apps' data folder: their development issuer's key, shared with `customer_token`."""


def customer_token(customer: str) -> str:
    """A customer's access token the benchmarked apps accept (their development issuer signs it)."""
    issuer = DevelopmentIssuer.load_or_create(
        BENCH_IDENTITY, OidcClaims(issuer=DEV_ISSUER, audience=DEV_AUDIENCE)
    )
    return issuer.mint(customer, ttl_seconds=6 * 3600)


def wrk_script(body: dict[str, Any]) -> str:
    """A wrk script that posts `body` again and again, as its customer (a signed access token)."""
    return (
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {customer_token(body["customer_id"])}"\n'
        f"wrk.body = {lua_string(json.dumps(body))}\n{WRK_DONE}"
    )


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run measured."""

    rps: float
    p50: float
    p95: float
    p99: float
    transport_errors: int
    http_errors: int
    counts: dict[str, int]
    """What the script's `response` hook counted, if it has one (else empty)."""
    samples: list[str]
    """What the script kept as samples (the load benchmark keeps the first error answers)."""

    @property
    def errors(self) -> int:
        """Requests without a successful answer: transport errors and HTTP status >= 400."""
        return self.transport_errors + self.http_errors


def machine() -> str:
    """The machine in one line: cores, CPU model, Python and the embedded server's version."""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return (
        f"{os.cpu_count()} cores, {model}, Python {platform.python_version()}, nx-27017 {version('nx-27017')}"
    )


def launch_app(
    mongo_url: str,
    db: str,
    log: Path,
    *,
    port: int | None = None,
    workers: int = 1,
    env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """Start `ecommerce-saga serve` on `db` (output appended to `log`); return it and its URL at once."""
    port = port or free_port()
    environment = {
        **os.environ,
        "SHOP_MONGODB_URL": mongo_url,
        "SHOP_MONGODB_DB": db,
        "SHOP_SERVICE_TOKEN": TOKEN,
        "SHOP_ADMIN_TOKEN": TOKEN,
        "SHOP_LOG_LEVEL": "WARNING",
        "SHOP_DEMO_CATALOG": "false",
        "SHOP_DATA_DIR": str(BENCH_IDENTITY),
        "SHOP_OIDC_ISSUER": "",
        "SHOP_METRICS_PORT": "0",
        **(env or {}),
    }
    command = [sys.executable, "-m", "ecommerce_saga", "serve", "--port", str(port)]
    if workers > 1:
        command += ["--workers", str(workers)]
    with log.open("ab") as out:
        process = subprocess.Popen(
            command,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - only sets the death signal
        )
    return process, f"http://127.0.0.1:{port}"


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    """Wait until `url`/readyz answers 200; kill `process` and raise if it exits or times out first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    stop_app(process)
    raise RuntimeError(f"the app at {url} did not start (exit code {process.returncode}); see {log}")


def start_app(
    mongo_url: str,
    db: str,
    log: Path,
    *,
    port: int | None = None,
    workers: int = 1,
    env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """`launch_app`, then wait until the app is ready."""
    process, url = launch_app(mongo_url, db, log, port=port, workers=workers, env=env)
    wait_ready(url, process, log)
    return process, url


def stop_app(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if the process has not exited within 30 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@contextlib.contextmanager
def database(url: str | None, work: Path) -> Iterator[tuple[str, EmbeddedMongo | None]]:
    """`url`, or an embedded server in `work`/db started here and stopped on exit."""
    if url is not None:
        yield url, None
        return
    embedded = EmbeddedMongo(data_dir=work / "db")
    embedded.start()
    try:
        yield embedded.url, embedded
    finally:
        embedded.stop()


def run_wrk(url: str, concurrency: int, seconds: int, script: Path, *script_args: str) -> WrkResult:
    """Load `url` with wrk and `script` (which must end with `WRK_DONE`) for `seconds`."""
    command = ["wrk", "-t", str(min(concurrency, 2)), "-c", str(concurrency), "-d", f"{seconds}s"]
    command += ["--timeout", "30s", "-s", str(script), url]
    if script_args:
        command += ["--", *script_args]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    return WrkResult(
        rps=result["requests"] / (result["duration_us"] / 1e6),
        p50=result["p50"],
        p95=result["p95"],
        p99=result["p99"],
        transport_errors=result["transport_errors"],
        http_errors=result["http_errors"],
        counts=result["counts"],
        samples=[line.removeprefix("SAMPLE ") for line in out.splitlines() if line.startswith("SAMPLE ")],
    )


async def seed_baseline(db: Any) -> None:
    """The product the baseline orders."""
    await db.products.insert_one(
        {
            "_id": "bench-widget",
            "name": "Widget",
            "price_cents": 1999,
            "available": 10_000_000,
            "reserved": 0,
            "holds": {},
        }
    )


async def baseline_order(db: Any) -> None:
    """One order's business writes, done directly: the baseline."""
    now = datetime.now(UTC)
    order_id = f"ord_{uuid.uuid4().hex}"
    await db.payment_methods.insert_one({"_id": f"pm_{uuid.uuid4().hex}", "brand": "visa", "last4": "4242"})
    await db.orders.insert_one(
        {
            "_id": order_id,
            "status": "PENDING",
            "customer_id": "c",
            "items": [{"product_id": "bench-widget", "quantity": 1, "price_cents": 1999}],
            "total_cents": 1999,
            "created_at": now,
        }
    )
    held = await db.products.find_one_and_update(
        {"_id": "bench-widget", "available": {"$gte": 1}, f"holds.{order_id}": {"$exists": False}},
        {"$inc": {"available": -1, "reserved": 1}, "$set": {f"holds.{order_id}": 1}},
        return_document=ReturnDocument.AFTER,
    )
    assert held is not None
    await db.reservations.insert_one(
        {
            "_id": order_id,
            "status": "RESERVED",
            "items": [{"product_id": "bench-widget", "quantity": 1}],
            "created_at": now,
        }
    )
    await db.payments.insert_one(
        {"_id": order_id, "status": "COMPLETED", "amount_cents": 1999, "created_at": now}
    )
    await db.shipments.insert_one(
        {"_id": order_id, "status": "SCHEDULED", "tracking_number": uuid.uuid4().hex, "created_at": now}
    )
    await db.orders.update_one({"_id": order_id}, {"$set": {"status": "COMPLETED"}})
    await db.notifications.insert_one(
        {
            "_id": f"ntf_{uuid.uuid4().hex}",
            "order_id": order_id,
            "type": "ORDER_CONFIRMED",
            "created_at": now,
        }
    )


async def baseline(mongo_url: str, db_name: str, concurrency: int, seconds: int) -> dict[str, float]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
    db = client[db_name]
    await seed_baseline(db)
    latencies: list[float] = []
    stop_at = time.monotonic() + seconds

    async def worker() -> None:
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            await baseline_order(db)
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    await client.drop_database(db_name)
    await client.close()
    q = statistics.quantiles(latencies, n=100)
    return {
        "rps": len(latencies) / elapsed,
        "p50": statistics.median(latencies),
        "p95": q[94],
        "p99": q[98],
        "errors": 0,
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.asynccontextmanager
async def in_process_shop(
    mongo_url: str, prefix: str, wrap: Callable[[ASGIApp], ASGIApp] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """The app in this process on a fresh database with the bench product, and a client as its
    customer; `wrap`, if given, wraps the app as the client reaches it (an outermost middleware)."""
    from asgi_lifespan import LifespanManager  # noqa: PLC0415 - only the in-process measurements need it

    from ecommerce_saga.main import create_app  # noqa: PLC0415
    from ecommerce_saga.settings import Settings  # noqa: PLC0415

    settings = Settings(
        mongodb_url=mongo_url, mongodb_db=f"{prefix}_{uuid.uuid4().hex[:8]}", service_token=TOKEN,
        admin_token=TOKEN, demo_catalog=False, log_level="WARNING", data_dir=BENCH_IDENTITY, metrics_port=0,
        oidc_issuer=None,
    )  # fmt: skip
    app = create_app(settings)
    as_customer = {"Authorization": f"Bearer {customer_token(ORDER['customer_id'])}"}
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app if wrap is None else wrap(manager.app))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", headers=as_customer
        ) as client:
            await client.post("/api/inventory", json=PRODUCT, headers={"Authorization": f"Bearer {TOKEN}"})
            yield client


def command_label(event: monitoring.CommandStartedEvent) -> str:
    """A command by name and collection (``insert orders``); a client-level ``bulkWrite`` by the
    collections it writes into (``bulkWrite orders+sagas``)."""
    if event.command_name == "bulkWrite":
        return "bulkWrite " + "+".join(
            str(ns["ns"]).partition(".")[2] for ns in event.command.get("nsInfo", [])
        )
    target = event.command.get(event.command_name)
    return f"{event.command_name} {target if isinstance(target, str) else ''}".strip()


async def count_operations(
    mongo_url: str, orders: int = 20, clients: tuple[int, ...] = (16, 64)
) -> tuple[Counter[str], float, dict[int, Counter[str]]]:
    """Database commands per order: the app's (run in this process), by command and collection,
    one order at a time; the baseline's; and the app's in all when each of `clients` clients places
    orders one after another, all at once (concurrent writes may share a command: the saga
    store's, the repositories' inserts)."""
    seen: Counter[str] = Counter()

    class Listener(monitoring.CommandListener):
        def started(self, event: monitoring.CommandStartedEvent) -> None:
            seen[command_label(event)] += 1

        def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
            pass

        def failed(self, event: monitoring.CommandFailedEvent) -> None:
            pass

    monitoring.register(Listener())
    async with in_process_shop(mongo_url, "ops") as client:
        await client.post("/api/orders", json=ORDER)  # warm-up
        await asyncio.sleep(0.5)  # let its confirmation finish
        seen.clear()
        for _ in range(orders):
            response = await client.post("/api/orders", json=ORDER)
            assert response.json()["status"] == "COMPLETED", response.text
        await asyncio.sleep(0.5)
        api = Counter(
            {name: round(count / orders, 2) for name, count in seen.items() if name.split()[0] != "ping"}
        )
        together: dict[int, Counter[str]] = {}
        per_client = 12

        async def client_placing() -> None:  # one client placing orders one after another
            for _ in range(per_client):
                response = await client.post("/api/orders", json=ORDER)
                assert response.json()["status"] == "COMPLETED", response.text

        for concurrency in clients:
            seen.clear()
            await asyncio.gather(*(client_placing() for _ in range(concurrency)))
            await asyncio.sleep(0.5)
            placed = per_client * concurrency
            together[concurrency] = Counter(
                {name: count / placed for name, count in seen.items() if name.split()[0] != "ping"}
            )
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
    db = mongo[f"ops_base_{uuid.uuid4().hex[:8]}"]
    await seed_baseline(db)
    seen.clear()
    for _ in range(orders):
        await baseline_order(db)
    base = round(sum(seen.values()) / orders, 2)
    await mongo.drop_database(db.name)
    await mongo.close()
    return api, base, together


def _measure(
    mongo_url: str, embedded_pid: int | None, concurrency: int, seconds: int, work: Path
) -> tuple[WrkResult, dict[str, float]]:
    """The API at one concurrency on a fresh database and app: wrk's numbers and CPU ms per order."""
    db = f"bench_{uuid.uuid4().hex[:8]}"
    script = work / "order.lua"
    script.write_text(wrk_script(ORDER))
    app, url = start_app(mongo_url, db, work / f"app-{concurrency}.log")
    try:
        httpx.post(
            f"{url}/api/inventory", json=PRODUCT, headers={"Authorization": f"Bearer {TOKEN}"}
        ).raise_for_status()
        run_wrk(f"{url}/api/orders", concurrency, 2, script)  # warm-up
        app_cpu, db_cpu = cpu_seconds(app.pid), cpu_seconds(embedded_pid) if embedded_pid else 0.0
        api = run_wrk(f"{url}/api/orders", concurrency, seconds, script)
        placed = api.rps * seconds
        if placed == 0:  # no order answered within the run (a machine too busy): no CPU per order
            cpu = {"app": float("nan"), "db": float("nan")}
        else:
            cpu = {"app": (cpu_seconds(app.pid) - app_cpu) * 1000 / placed}
            if embedded_pid:
                cpu["db"] = (cpu_seconds(embedded_pid) - db_cpu) * 1000 / placed
    finally:
        stop_app(app)
    return api, cpu


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--url", help="a MongoDB URL (default: an embedded server in a temp folder)")
    parser.add_argument("--commands-only", action="store_true", help="count commands per order; no load")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.stderr.write("wrk is needed: apt-get install wrk\n")
        return 2
    work = Path(tempfile.mkdtemp(prefix="orders-bench-"))
    rows = []
    with database(args.url, work) as (mongo_url, embedded):
        embedded_pid = embedded.process.pid if embedded is not None and embedded.process else None
        operations, baseline_operations, together = asyncio.run(count_operations(mongo_url))
        for concurrency in [] if args.commands_only else args.concurrency:
            api, cpu = _measure(mongo_url, embedded_pid, concurrency, args.seconds, work)
            base = asyncio.run(baseline(mongo_url, f"base_{uuid.uuid4().hex[:8]}", concurrency, args.seconds))
            rows.append((concurrency, api, cpu, base))
    print(f"Machine: {machine()}\n")
    if rows:
        print(
            "| concurrency | API orders/s | p50 ms | p95 ms | p99 ms | errors "
            "| baseline orders/s | baseline p50 ms | API / baseline |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for concurrency, api, _, base in rows:
            print(
                f"| {concurrency} | {api.rps:.0f} | {api.p50:.1f} | {api.p95:.1f} | {api.p99:.1f} | "
                f"{api.errors} | {base['rps']:.0f} | {base['p50']:.1f} | {api.rps / base['rps']:.0%} |"
            )
        print("\nCPU per order, in ms (app; embedded database):")
        for concurrency, _, cpu, _ in rows:
            print(f"  c={concurrency}: {cpu['app']:.1f}; {cpu.get('db', float('nan')):.1f}")
    print(
        f"\nDatabase operations per order: {sum(operations.values()):.1f} "
        f"(the baseline: {baseline_operations:g})"
    )
    for name, count in sorted(operations.items(), key=lambda item: -item[1]):
        print(f"  {count:5.2f}  {name}")
    for concurrency, sent in together.items():
        print(
            f"\nDatabase commands per order, {concurrency} clients placing 12 orders each: "
            f"{sum(sent.values()):.1f}"
        )
        for name, count in sent.most_common():
            print(f"  {count:5.2f}  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
