"""Recovery time: kill -9 the order coordinator with N sagas in flight, restart it, time until all settle.

    .venv/bin/python benchmarks/recovery_bench.py [--sagas 10 100 500] [--lease 2] [--interval 0.5]
        [--clients 32] [--url mongodb://...]

For each N, on a fresh database: start the monolith with a short saga lease
(``SHOP_SAGA_LEASE_SECONDS``), a short recovery interval and ``SHOP_ORDER_WAIT_SECONDS=0``; post N
orders of the load benchmark's mix (80 % succeed, 20 % fail) with ``Prefer: respond-async`` from
``--clients`` connections; as soon as all N are accepted (202), SIGKILL the app and count, in the
database, the orders still PENDING and the sagas still running or compensating. Then start the app
again on the same port and database and poll the database until every order is final (COMPLETED
or FAILED) and every saga has finished (the confirmation notice runs after the order completes).

The killed worker's leases must expire before the restarted worker may claim its sagas: a lease
lasts ``--lease`` seconds from the saga's last write, and recovery looks every ``--interval``
seconds (and claims at most 100 sagas per pass), so both are inputs of the result and printed
with it. It measures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import cycle, islice
from pathlib import Path
from typing import Any

import httpx
from pymongo import MongoClient
from pymongo.database import Database

from ecommerce_saga.modules.order.contract import OrderStatus
from load_bench import ACTIVE_SAGA, SOLD_OUT, order_mix, progress
from orders_bench import (
    PRODUCT,
    TOKEN,
    customer_token,
    database,
    launch_app,
    machine,
    start_app,
    stop_app,
    wait_ready,
)

FINAL_ORDER = [str(OrderStatus.COMPLETED), str(OrderStatus.FAILED)]


@dataclass(frozen=True)
class Recovery:
    """One kill and restart with `sagas` orders placed."""

    sagas: int
    start_s: float
    """The app's first start, launch to /readyz."""
    accept_s: float
    """Posting all the orders, until the last 202."""
    answers: Counter[int]
    leases_lost: int
    """Before the kill: sagas whose lease ran out mid-step and which the app's own recovery took back."""
    pending_at_kill: int
    """Orders not yet COMPLETED or FAILED when the app was killed."""
    active_at_kill: int
    """Sagas running or compensating when the app was killed."""
    ready_s: float
    """Restart: launch to /readyz."""
    orders_final_s: float | None
    """Restart launch until every order is final (None: not within the deadline)."""
    sagas_final_s: float | None
    """Restart launch until no saga runs or compensates."""
    outcome: Counter[str]


def bodies(sagas: int, customer: str) -> list[dict[str, Any]]:
    """`sagas` order bodies from the load benchmark's mix, for `customer`."""
    mix = [json.loads(json.dumps(body).replace("@CUSTOMER@", customer)) for body in order_mix()]
    return list(islice(cycle(mix), sagas))


async def place(url: str, orders: list[dict[str, Any]], clients: int) -> Counter[int]:
    """Post every order with `Prefer: respond-async` over at most `clients` connections, as its customer."""
    limits = httpx.Limits(max_connections=clients)
    customers = {body["customer_id"] for body in orders}
    assert len(customers) == 1, customers
    auth = {"Authorization": f"Bearer {customer_token(customers.pop())}"}
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits, headers=auth) as http:
        answers = await asyncio.gather(
            *(http.post("/api/orders", json=body, headers={"Prefer": "respond-async"}) for body in orders)
        )
    return Counter(answer.status_code for answer in answers)


def count_unsettled(db: Database[dict[str, Any]], customer: str) -> tuple[int, int]:
    """Orders of `customer` not yet final, and sagas running or compensating."""
    pending = db.orders.count_documents({"customer_id": customer, "status": {"$nin": FINAL_ORDER}})
    return pending, db.sagas.count_documents({"status": {"$in": ACTIVE_SAGA}})


def wait_until_settled(
    db: Database[dict[str, Any]], customer: str, since: float, timeout: float
) -> tuple[float | None, float | None]:
    """Seconds from `since` until every order is final, and until every saga has finished."""
    orders_at = sagas_at = None
    deadline = time.monotonic() + timeout
    while (orders_at is None or sagas_at is None) and time.monotonic() < deadline:
        pending, active = count_unsettled(db, customer)
        now = time.monotonic() - since
        orders_at = now if orders_at is None and pending == 0 else orders_at
        sagas_at = now if sagas_at is None and active == 0 else sagas_at
        time.sleep(0.05)
    return orders_at, sagas_at


def burst_then_kill(
    mongo_url: str,
    db_name: str,
    env: dict[str, str],
    log: Path,
    orders: list[dict[str, Any]],
    *,
    clients: int,
) -> tuple[str, float, float, Counter[int]]:
    """Start the app, post `orders`, SIGKILL it; its URL, start and accept seconds, and the answers."""
    started = time.monotonic()
    app, url = start_app(mongo_url, db_name, log, env=env)
    try:
        start_s = time.monotonic() - started
        for product in (PRODUCT, SOLD_OUT):
            admin = {"Authorization": f"Bearer {TOKEN}"}
            httpx.post(f"{url}/api/inventory", json=product, headers=admin).raise_for_status()
        started = time.monotonic()
        answers = asyncio.run(place(url, orders, clients))
        accept_s = time.monotonic() - started
    finally:
        app.send_signal(signal.SIGKILL)
        app.wait(10)
    return url, start_s, accept_s, answers


def recover(mongo_url: str, sagas: int, args: argparse.Namespace, work: Path) -> Recovery:
    """Place `sagas` orders, kill -9 the app, restart it on the same port and database, time the recovery."""
    db_name, customer = f"recovery_{uuid.uuid4().hex[:8]}", f"recovery-{sagas}"
    env = {
        "SHOP_SAGA_LEASE_SECONDS": str(args.lease),
        "SHOP_SAGA_RECOVERY_INTERVAL_SECONDS": str(args.interval),
        "SHOP_ORDER_WAIT_SECONDS": "0",
        "SHOP_LOG_FORMAT": "json",  # lease losses are counted in the log
    }
    log, restart_log = work / f"app-{sagas}.log", work / f"app-{sagas}-restarted.log"
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_url, tz_aware=True)
    db = client[db_name]
    try:
        orders = bodies(sagas, customer)
        url, start_s, accept_s, answers = burst_then_kill(
            mongo_url, db_name, env, log, orders, clients=args.clients
        )
        pending, active = count_unsettled(db, customer)
        restarted = time.monotonic()
        app, _ = launch_app(mongo_url, db_name, restart_log, port=httpx.URL(url).port, env=env)
        try:
            wait_ready(url, app, restart_log)
            ready_s = time.monotonic() - restarted
            orders_s, sagas_s = wait_until_settled(db, customer, restarted, timeout=args.lease + 180)
        finally:
            stop_app(app)
        outcome = Counter(
            str(doc["status"]) for doc in db.orders.find({"customer_id": customer}, {"status": 1})
        )
        leases_lost = log.read_text().count('"message": "lease_lost"')
    finally:
        client.drop_database(db_name)
        client.close()
    return Recovery(
        sagas, start_s, accept_s, answers, leases_lost, pending, active, ready_s, orders_s, sagas_s, outcome
    )


def seconds(value: float | None, minus: float = 0.0) -> str:
    """`value - minus` in seconds, or "not settled"."""
    return "not settled" if value is None else f"{value - minus:.2f}"


def print_table(results: list[Recovery]) -> None:
    """The results as a markdown table."""
    print("| sagas | accepted in s | answers | leases lost before kill | orders pending at kill ", end="")
    print("| sagas active at kill ", end="")
    print("| restart → ready s | restart → orders final s | ready → orders final s ", end="")
    print("| restart → sagas finished s | outcome |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in results:
        answers = ", ".join(f"{n} x {code}" for code, n in sorted(r.answers.items()))
        outcome = ", ".join(f"{n} {status}" for status, n in sorted(r.outcome.items()))
        print(
            f"| {r.sagas} | {r.accept_s:.2f} | {answers} | {r.leases_lost} | {r.pending_at_kill} "
            f"| {r.active_at_kill} "
            f"| {r.ready_s:.2f} | {seconds(r.orders_final_s)} | {seconds(r.orders_final_s, r.ready_s)} "
            f"| {seconds(r.sagas_final_s)} | {outcome} |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sagas", type=int, nargs="+", default=[10, 100, 500], help="orders in flight")
    parser.add_argument("--lease", type=float, default=2.0, help="SHOP_SAGA_LEASE_SECONDS (default 2)")
    parser.add_argument("--interval", type=float, default=0.5, help="SHOP_SAGA_RECOVERY_INTERVAL_SECONDS")
    parser.add_argument("--clients", type=int, default=32, help="concurrent connections posting orders")
    parser.add_argument("--url", help="a MongoDB URL (default: an embedded server in a temp folder)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="recovery-bench-"))
    estimate = len(args.sagas) * 8 + sum(args.sagas) / 30
    progress(
        f"about {estimate:.0f} s on two cores, up to {estimate + 90 * len(args.sagas):.0f} s; logs in {work}"
    )
    results = []
    started = time.monotonic()
    with database(args.url, work) as (mongo_url, embedded):
        database_s = time.monotonic() - started
        for sagas in args.sagas:
            progress(f"{sagas} sagas")
            results.append(recover(mongo_url, sagas, args, work))
    print(f"Machine: {machine()}\nDate: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    where = f"embedded, ready in {database_s:.2f} s" if embedded is not None else "--url"
    print(f"Database: {where}. App first start (launch → /readyz): ", end="")
    print(", ".join(f"{r.start_s:.2f} s" for r in results) + ".")
    print(f"Saga lease {args.lease:g} s, recovery interval {args.interval:g} s, ", end="")
    print(f"{args.clients} connections posting.\n")
    print_table(results)
    progress(f"done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
