"""What one HTTP call between two of the shop's processes costs, and how much of it is the shop's.

In a split deployment each saga step is an HTTP call from the order service to a module. This
script measures one such call, `POST /api/shipping/schedule`, made by the client the order
service uses (`ServiceClient` on aiohttp, in this process, on uvloop) with `--concurrency` calls
in flight (1, then 16, unless told), against three servers, each a `uvicorn` process with the
shop's loop and parser (uvloop, httptools):

- ``bare``: a FastAPI app with only that route, which validates the `ScheduleShipment` and
  answers a `Shipment` built in memory: no middleware, no authentication, no database;
- ``shop, no insert``: the same route on the shop's app (`create_app`, every middleware, the
  service token checked, problem+json), its shipping service answering from memory;
- ``shipping``: the shop's shipping module as a split deployment runs it
  (``SHOP_MODULES=shipping``): the same, plus the shipment's insert into the embedded database.

Every call schedules a fresh order. CPU per call is the server process's and this process's (the
client's), user and system, from /proc; the database's for ``shipping``. It measures; it asserts
nothing.

    .venv/bin/python benchmarks/hop_bench.py [--calls 3000] [--concurrency 1 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvloop
from fastapi import FastAPI

from ecommerce_saga.db.embedded import free_port
from ecommerce_saga.modules.shipping.contract import (
    Address,
    ScheduleShipment,
    Shipment,
    ShipmentStatus,
    ShippingMethod,
)
from ecommerce_saga.shared.ids import new_id
from ecommerce_saga.web.service_client import ServiceClient, http_client
from orders_bench import (
    TOKEN,
    cpu_seconds,
    database,
    launch_app,
    machine,
    stop_app,
    wait_ready,
)

ADDRESS = Address(name="Ada", street="1 Main St", city="Springfield", postal_code="12345", country="US")


def _shipment(command: ScheduleShipment) -> Shipment:
    now = datetime.now(UTC)
    return Shipment(
        shipping_id=new_id("shp"), order_id=command.order_id, customer_id=command.customer_id,
        status=ShipmentStatus.SCHEDULED, method=command.method, carrier="UPS",
        tracking_number="1Z999AA10123456784", estimated_delivery=now.date(), address=command.address,
        created_at=now, updated_at=now,
    )  # fmt: skip


def bare_app() -> FastAPI:
    """The route alone: validation and serialization, nothing of the shop around it."""
    app = FastAPI()

    @app.post("/api/shipping/schedule", response_model=Shipment)
    async def schedule(command: ScheduleShipment) -> Shipment:
        return _shipment(command)

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    return app


def shop_app_without_insert() -> FastAPI:
    """The shop's app serving the shipping module, its service scheduling in memory."""
    from ecommerce_saga.main import create_app  # noqa: PLC0415 - only the server process needs it
    from ecommerce_saga.settings import Settings  # noqa: PLC0415

    app = create_app(Settings())
    started = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        async with started(app) as state:
            service = app.state.container.shipping  # the router calls this object's `schedule`

            async def schedule(command: ScheduleShipment) -> Shipment:
                return _shipment(command)

            vars(service)["schedule"] = schedule
            yield state

    app.router.lifespan_context = lifespan
    return app


def _server(target: str, port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "uvicorn", "--factory", target, "--port", str(port),
        "--loop", "uvloop", "--http", "httptools", "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    with log.open("ab") as out:
        return subprocess.Popen(
            command,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parent), **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def _calls(url: str, calls: int, concurrency: int) -> tuple[float, float]:
    """Make `calls` calls, `concurrency` at a time; return wall seconds and this process's CPU seconds."""
    client = ServiceClient("shipping", http_client(url, timeout=30), TOKEN)
    try:
        run = new_id("hop")
        for i in range(20):  # warm-up: connections, caches
            await client.call("POST", "/api/shipping/schedule", Shipment, json=_command(f"{run}-w{i}"))
        left = iter(range(calls))

        async def caller() -> None:
            for i in left:
                await client.call("POST", "/api/shipping/schedule", Shipment, json=_command(f"{run}-{i}"))

        wall, cpu = time.monotonic(), time.process_time()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        return time.monotonic() - wall, time.process_time() - cpu
    finally:
        await client.aclose()


def _command(order_id: str) -> ScheduleShipment:
    return ScheduleShipment(
        order_id=order_id, customer_id="cust-hop", address=ADDRESS, method=ShippingMethod.STANDARD,
        idempotency_key=f"{order_id}:schedule_shipping",
    )  # fmt: skip


def measure(
    name: str, process: subprocess.Popen[bytes], url: str, args: argparse.Namespace, db_pid: int | None
) -> list[str]:
    """One server's rows, one per concurrency."""
    return [_row(name, process, url, db_pid, calls=args.calls, concurrency=c) for c in args.concurrency]


def _row(
    name: str, process: subprocess.Popen[bytes], url: str, db_pid: int | None, *, calls: int, concurrency: int
) -> str:
    server, db = cpu_seconds(process.pid), cpu_seconds(db_pid) if db_pid else 0.0
    wall, client = uvloop.run(_calls(url, calls, concurrency))
    server = cpu_seconds(process.pid) - server
    per = 1000 / calls
    db_cell = f"{(cpu_seconds(db_pid) - db) * per:.2f}" if db_pid else "-"
    cpu = f"{server * per:.2f} | {client * per:.2f} | {db_cell}"
    return f"| {name} | {concurrency} | {calls / wall:.0f} | {cpu} |"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="hop-bench-"))
    rows = []
    with database(None, work) as (mongo_url, embedded):
        shop_env = {
            "SHOP_MONGODB_URL": mongo_url, "SHOP_MONGODB_DB": "hop", "SHOP_SERVICE_TOKEN": TOKEN,
            "SHOP_ADMIN_TOKEN": TOKEN, "SHOP_LOG_LEVEL": "WARNING", "SHOP_DEMO_CATALOG": "false",
            "SHOP_METRICS_PORT": "0", "SHOP_OIDC_ISSUER": "", "SHOP_MODULES": "shipping",
            "SHOP_DATA_DIR": str(work / "data"),
        }  # fmt: skip
        servers = [
            ("bare FastAPI route", "hop_bench:bare_app", {}),
            ("shop's app, no insert", "hop_bench:shop_app_without_insert", shop_env),
        ]
        for name, target, env in servers:
            port = free_port()
            process = _server(target, port, env, work / "server.log")
            try:
                wait_ready(f"http://127.0.0.1:{port}", process, work / "server.log")
                rows.extend(measure(name, process, f"http://127.0.0.1:{port}", args, None))
            finally:
                stop_app(process)
        process, url = launch_app(mongo_url, "hop", work / "shipping.log", env={"SHOP_MODULES": "shipping"})
        try:
            wait_ready(url, process, work / "shipping.log")
            db_pid = embedded.process.pid if embedded and embedded.process else None
            rows.extend(measure("shop's shipping module (one insert)", process, url, args, db_pid))
        finally:
            stop_app(process)
    print(f"Machine: {machine()}\nDate: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"{args.calls} calls of POST /api/shipping/schedule per row\n")
    print("| server | in flight | calls/s | server CPU ms/call | client CPU ms/call | database CPU ms/call |")
    print("|---|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
