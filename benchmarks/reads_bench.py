"""What the shop's reads cost as its data grows (a script, not a test).

Starts the embedded MongoDB-wire server and the app (a real uvicorn process, as
`orders_bench.py` does), places orders with wrk (16 clients) until the database holds each of
`--orders` orders in turn, and at each size times the reads a shop serves all day: the public
product page, a customer's lists (the benchmark's customer, whose orders these all are, and a
customer with none), an operator's lists, and the saga API's calls behind the console (its
banner, a page of one status, the newest saga). Each read is called `--calls` times in a row;
the median wall time is printed, with the database's CPU per call. A read whose time grows with
the data reads more than it returns. At each size it also times, in this process, the read of
the orphan-order pass the app runs every few seconds (`BeanieOrderRepository.pending_since_before`).

``--scrape-seconds N``: at the last size, wrk places orders (16 clients) for N seconds twice,
once alone and once while a thread asks the app's management port for `/metrics` every 5.5 s
(as a Prometheus scraper would), and prints orders/s and the p99 of each.

It measures; it asserts nothing.

    .venv/bin/python benchmarks/reads_bench.py [--orders 1000 5000] [--calls 10] [--scrape-seconds 0]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from beanie import init_beanie
from pymongo import AsyncMongoClient

import orders_bench as ob
from ecommerce_saga.db.embedded import free_port
from ecommerce_saga.modules.order.documents import OrderDocument
from ecommerce_saga.modules.order.repository import BeanieOrderRepository
from ecommerce_saga.shared.clock import utcnow

READS = [
    ("anyone", "/api/inventory/{product}"),
    ("operator", "/api/inventory/{product}"),
    ("customer", "/api/orders"),
    ("customer", "/api/payments"),
    ("customer", "/api/shipping"),
    ("customer", "/api/notifications"),
    ("new customer", "/api/orders"),
    ("operator", "/api/orders"),
    ("operator", "/api/orders?status=FAILED"),
    ("operator", "/api/sagas?status=REQUIRES_ATTENTION&limit=1"),
    ("operator", "/api/sagas?status=COMPLETED&limit=20"),
    ("operator", "/api/sagas?limit=1"),
]
"""(caller, path) pairs; ``{product}`` is the benchmark's product."""


def headers(caller: str) -> dict[str, str]:
    """The bearer of each kind of caller (none for anyone)."""
    if caller == "anyone":
        return {}
    if caller == "operator":
        return {"Authorization": f"Bearer {ob.TOKEN}"}
    customer = ob.ORDER["customer_id"] if caller == "customer" else "bench-newcomer"
    return {"Authorization": f"Bearer {ob.customer_token(customer)}"}


def stored_orders(base: str) -> int:
    """How many orders the shop holds (an operator's list, its total)."""
    page = httpx.get(f"{base}/api/orders", params={"limit": 1}, headers=headers("operator"), timeout=120)
    page.raise_for_status()
    return int(page.json()["total"])


def measure(base: str, db_pid: int, calls: int) -> list[tuple[str, str, float, float]]:
    """Each read's median ms and the database's CPU ms per call."""
    rows = []
    with httpx.Client(base_url=base, timeout=120) as client:
        for caller, template in READS:
            path = template.format(product=ob.PRODUCT["product_id"])
            client.get(path, headers=headers(caller)).raise_for_status()
            times = []
            before = ob.cpu_seconds(db_pid)
            for _ in range(calls):
                start = time.perf_counter()
                client.get(path, headers=headers(caller))
                times.append((time.perf_counter() - start) * 1000)
            db_ms = (ob.cpu_seconds(db_pid) - before) * 1000 / calls
            rows.append((caller, path, statistics.median(times), db_ms))
    return rows


async def orphan_pass_ms(mongo_url: str, db: str, calls: int) -> float:
    """The median ms of the orphan-order pass's read (PENDING orders older than a minute, 100)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
    try:
        await init_beanie(database=client[db], document_models=[OrderDocument])
        repository, times = BeanieOrderRepository(), []
        for _ in range(calls):
            start = time.perf_counter()
            await repository.pending_since_before(utcnow() - timedelta(minutes=1), limit=100)
            times.append((time.perf_counter() - start) * 1000)
        return statistics.median(times)
    finally:
        await client.close()


def _scrape(metrics: str, stop: threading.Event) -> None:
    while not stop.wait(5.5):
        httpx.get(metrics, timeout=120)


def with_scrapes(base: str, metrics: str, seconds: int, script: Path) -> None:
    """Orders placed alone, then with `/metrics` asked every 5.5 s: orders/s and p99 of each."""
    for scraping in (False, True):
        stop = threading.Event()

        scraper = threading.Thread(target=_scrape, args=(metrics, stop))
        if scraping:
            scraper.start()
        run = ob.run_wrk(f"{base}/api/orders", 16, seconds, script)
        stop.set()
        if scraping:
            scraper.join()
        print(f"{'with' if scraping else 'without'} scrapes: {run.rps:.0f} orders/s, p99 {run.p99:.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--scrape-seconds", type=int, default=0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="reads-bench-"))
    script = work / "order.lua"
    script.write_text(ob.wrk_script(ob.ORDER))
    print(f"Machine: {ob.machine()}\n")
    print("| orders | caller | read | median ms | database CPU ms per call |")
    print("|---:|---|---|---:|---:|")
    with ob.database(None, work) as (mongo_url, embedded):
        assert embedded is not None and embedded.process is not None
        db = f"reads_{uuid.uuid4().hex[:8]}"
        management = free_port()
        app, base = ob.start_app(mongo_url, db, work / "app.log", env={"SHOP_METRICS_PORT": str(management)})
        try:
            httpx.post(
                f"{base}/api/inventory", json=ob.PRODUCT, headers={"Authorization": f"Bearer {ob.TOKEN}"}
            ).raise_for_status()
            for target in sorted(args.orders):
                while (placed := stored_orders(base)) < target:
                    ob.run_wrk(f"{base}/api/orders", 16, max(1, min(10, (target - placed) // 200)), script)
                for caller, path, median, db_ms in measure(base, embedded.process.pid, args.calls):
                    print(f"| {placed} | {caller} | `{path}` | {median:.1f} | {db_ms:.1f} |", flush=True)
                orphans = asyncio.run(orphan_pass_ms(mongo_url, db, args.calls))
                print(f"| {placed} | the app | the orphan-order pass's read | {orphans:.1f} | |", flush=True)
            if args.scrape_seconds:
                print()
                with_scrapes(base, f"http://127.0.0.1:{management}/metrics", args.scrape_seconds, script)
        finally:
            ob.stop_app(app)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
