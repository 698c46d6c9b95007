"""What one service-to-service call costs the caller: `ServiceClient` on aiohttp and on httpx.

    .venv/bin/python benchmarks/http_client_bench.py [--calls 3200] [--concurrency 1 16 64]

A stand-in remote runs as a uvicorn process of its own (a Starlette route that reads the body,
waits 5 ms and answers a small JSON document); this process calls it `--calls` times, with
`--concurrency` calls in flight, through `ServiceClient` on each transport: the production one
(`http_client`: aiohttp) and `HttpxTransport` on an `httpx.AsyncClient` pooled as the services'
client was before (100 connections, all kept alive). Printed per transport and concurrency:
calls/s and this process's CPU time per call (the remote's CPU is not counted). CPU per call is
what to compare on a shared machine; calls/s moves with the remote's share of the cores.

It measures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable

import httpx
import uvloop
from pydantic import BaseModel

from ecommerce_saga.db.embedded import free_port
from ecommerce_saga.shared.contracts import ServiceUnavailableError
from ecommerce_saga.web.service_client import ServiceClient, http_client

REMOTE = """
import asyncio
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

async def reserve(request):
    await request.body()
    await asyncio.sleep(0.005)
    body = b'{"ok": true, "reservation_id": "res_1", "items": [1, 2, 3]}'
    return Response(body, media_type="application/json")

app = Starlette(routes=[Route("/api/inventory/reserve", reserve, methods=["POST"])])
"""


class Answer(BaseModel):
    ok: bool
    reservation_id: str
    items: list[int]


class Command(BaseModel):
    order_id: str
    quantity: int


def httpx_client(url: str) -> ServiceClient:
    """`ServiceClient` on httpx, pooled as the services' client was before aiohttp."""
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    return ServiceClient("remote", httpx.AsyncClient(base_url=url, limits=limits, timeout=5.0), "token")


def aiohttp_client(url: str) -> ServiceClient:
    """`ServiceClient` as the services build it (`http_client`)."""
    return ServiceClient("remote", http_client(url, 5.0), "token")


async def measure(make: Callable[[str], ServiceClient], url: str, calls: int, concurrency: int) -> str:
    """Warm up, then `calls` calls with `concurrency` in flight: calls/s and CPU ms per call."""
    client = make(url)
    command = Command(order_id="ord_1", quantity=2)
    failures: Counter[str] = Counter()

    async def worker(count: int) -> None:
        for _ in range(count):
            try:
                await client.call("POST", "/api/inventory/reserve", Answer, json=command)
            except ServiceUnavailableError as exc:  # counted, not retried: what the saga would see
                failures[exc.detail] += 1

    try:
        await asyncio.gather(*(worker(10) for _ in range(concurrency)))
        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker(calls // concurrency) for _ in range(concurrency)))
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        await client.aclose()
    done = calls // concurrency * concurrency
    failed = "; ".join(f"{n} x {detail}" for detail, n in failures.items()) or "0"
    return f"| {concurrency} | {done / wall:.0f} | {cpu * 1000 / done:.2f} | {failed} |"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=3200)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    args = parser.parse_args()
    port = free_port()
    remote = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"{REMOTE}\nimport uvicorn\nuvicorn.run(app, port={port}, log_level='warning')",
        ]
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.post(f"{url}/api/inventory/reserve", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        for name, make in (("aiohttp (http_client)", aiohttp_client), ("httpx", httpx_client)):
            print(f"\n{name}, {args.calls} calls\n\n| concurrency | calls/s | client CPU ms/call | failed |")
            print("|---:|---:|---:|---|")
            for concurrency in args.concurrency:
                print(uvloop.run(measure(make, url, args.calls, concurrency)), flush=True)
    finally:
        remote.terminate()
        remote.wait(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
