"""Split topology under faults: participants killed, slowed, failing and losing answers while orders flow.

The order service (the saga coordinator) reaches each participant through a `FaultProxy`; the
test's own client reaches every service directly. While a load generator places orders, two
lanes of faults run side by side, in an order drawn from a seeded random generator (CHAOS_SEED
reruns a schedule; the timing around it is the machine's):

- every participant is killed with SIGKILL, kept down a moment, and started again on its port;
- through the proxies, one participant is slowed past the HTTP timeout (its requests still arrive,
  late), one answers 503, one drops connections unanswered, and one loses its answers after
  doing the work — the participants' idempotency must absorb every retry that follows.

Then the client retries what got no answer, every order it was told about must be final (the
failure kinds FAILED), and the audit must find the books balanced: no double charge, shipment or
notice, and stock conserved.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.chaos.load import (
    SPLIT_SETTINGS,
    Catalog,
    LoadGenerator,
    answered_more,
    audit_books,
    chaos_seed,
    check_outcomes,
    retry_unanswered,
    settle,
)
from tests.chaos.proxy import (
    BLACKHOLE_RESPONSE,
    DROP,
    FAIL_503,
    PARTICIPANTS,
    PASS,
    UNREACHABLE,
    FaultProxy,
    Mode,
    proxied_split,
    slow,
)
from tests.e2e.conftest import Shop
from tests.waiting import eventually_blocking

PLACEMENT_CALLS = {"POST /api/inventory/quote", "POST /api/payments/methods"}
"""What the order service calls to accept an order; every other call it makes is a saga's step."""
SLOW = slow(1.5)
"""Longer than the 1 s HTTP timeout: every call through the proxy times out, and arrives anyway."""


MAX_DOWN_SECONDS = 30.0
"""A killed participant stays down until a saga's call finds it dead, at most this long."""


@dataclass(frozen=True)
class Kill:
    """SIGKILL `module` after `pause` seconds, keep it down at least `down` seconds, then start it again."""

    module: str
    pause: float
    down: float


@dataclass(frozen=True)
class ProxyFault:
    """After `pause` seconds, put `module`'s proxy in `mode` for `seconds`."""

    module: str
    mode: Mode
    pause: float
    seconds: float


def plan(chance: random.Random) -> tuple[list[Kill], list[ProxyFault]]:
    """The whole schedule, drawn up front so that a seed gives the same one whatever the timing."""
    kills = [
        Kill(module, chance.uniform(0.2, 0.8), chance.uniform(0.3, 1.0))
        for module in chance.sample(PARTICIPANTS, len(PARTICIPANTS))
    ]
    faults = [
        (chance.choice(PARTICIPANTS), SLOW, 2.5),
        (chance.choice(PARTICIPANTS), FAIL_503, 2.5),
        (chance.choice(PARTICIPANTS), DROP, 2.0),
        (chance.choice(("inventory", "payment", "shipping")), BLACKHOLE_RESPONSE, 2.5),
    ]
    chance.shuffle(faults)
    return kills, [
        ProxyFault(module, mode, chance.uniform(0.2, 0.8), seconds) for module, mode, seconds in faults
    ]


async def _kill_lane(shop: Shop, proxies: dict[str, FaultProxy], kills: list[Kill]) -> None:
    for kill in kills:
        await asyncio.sleep(kill.pause)
        app = shop.apps[kill.module]
        met_dead = _saga_calls(proxies[kill.module], UNREACHABLE)
        app.process.kill()
        await asyncio.to_thread(app.process.wait, 10)
        await asyncio.sleep(kill.down)
        # and down until a saga's call met it dead (or MAX_DOWN_SECONDS): a loaded machine may
        # send no call within the drawn moment, and a kill that nothing met proves nothing
        deadline = time.monotonic() + MAX_DOWN_SECONDS
        while _saga_calls(proxies[kill.module], UNREACHABLE) == met_dead and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        shop.apps[kill.module] = await asyncio.to_thread(app.restart)


async def _proxy_lane(proxies: dict[str, FaultProxy], faults: list[ProxyFault]) -> None:
    for fault in faults:
        await asyncio.sleep(fault.pause)
        proxy = proxies[fault.module]
        hits = proxy.counts[fault.mode.name]
        proxy.mode = fault.mode
        try:
            await asyncio.sleep(fault.seconds)
            for _ in range(100):  # the service may have been down all along: keep the fault until it bites
                if proxy.counts[fault.mode.name] > hits:
                    break
                await asyncio.sleep(0.1)
        finally:
            proxy.mode = PASS


async def _load_under_faults(
    shop: Shop,
    proxies: dict[str, FaultProxy],
    load: LoadGenerator,
    kills: list[Kill],
    faults: list[ProxyFault],
) -> None:
    running = asyncio.create_task(load.run())
    try:
        await answered_more(load, than=3)  # orders in flight before the first fault
        await asyncio.gather(_kill_lane(shop, proxies, kills), _proxy_lane(proxies, faults))
        await answered_more(load, than=load.answered)  # and after the last: the healed shop takes orders
    finally:
        load.stop()
        await running


def _failed_attempts(orders: list[dict[str, Any]]) -> Counter[str]:
    """Failed action attempts, by step, over every order's history."""
    return Counter(
        entry["step"]
        for order in orders
        for entry in order["history"]
        if entry["phase"] == "action" and entry["status"] == "FAILED"
    )


def _saga_calls(proxy: FaultProxy, outcome: str) -> int:
    """Calls of saga steps (not of order placement) that met `outcome` at `proxy`."""
    return sum(
        n
        for (what, call), n in proxy.counts_by_request.items()
        if what == outcome and call not in PLACEMENT_CALLS
    )


def _errors_logged(log_dir: Path) -> list[str]:
    """ERROR and CRITICAL lines, and tracebacks, in every service's log (killed instances' too)."""
    return [
        f"{log.name}: {line[:300]}"
        for log in sorted(log_dir.glob("app-*.log"))
        for line in log.read_text(errors="replace").splitlines()
        if '"level": "ERROR"' in line or '"level": "CRITICAL"' in line or line.startswith("Traceback")
    ]


@pytest.mark.e2e
def test_balances_the_books_when_participants_are_killed_slowed_and_lose_answers(
    mongo_url: str, tmp_path: Path
) -> None:
    kills, faults = plan(random.Random(chaos_seed()))
    print("kills:", kills, "\nproxy faults:", faults)  # noqa: T201
    with proxied_split(mongo_url, tmp_path, **SPLIT_SETTINGS) as (shop, proxies):
        with shop.client() as client:
            catalog = Catalog.create(client)
        load = LoadGenerator(shop.async_client, catalog, concurrency=6)

        asyncio.run(_load_under_faults(shop, proxies, load, kills, faults))

        with shop.client() as client:
            retry_unanswered(client, load.sent)
            orders = settle(client, load.sent)
        statuses = check_outcomes(load.sent, orders)
        report = asyncio.run(audit_books(mongo_url, shop.apps["order"].db_name, catalog))
        counts = {module: dict(proxy.counts) for module, proxy in proxies.items()}
        down = {module: _saga_calls(proxy, UNREACHABLE) for module, proxy in proxies.items()}
        failed = _failed_attempts(orders)
        print(  # noqa: T201
            f"{len(load.sent)} requests, {load.answered} answered, {statuses}\nproxies: {counts}\n"
            f"saga calls to a dead service: {down}\nfailed attempts: {dict(failed)}\n{report.summary()}"
        )

    told = {request.order_id for request in load.sent}
    assert report.counts["orders"] == len(told), "the shop holds orders its client was never told about"
    errors = _errors_logged(tmp_path)
    assert not errors, f"a service logged errors (a 500 the retries hid?): {errors[:5]}"
    for fault in faults:  # every fault took effect on some request
        assert counts[fault.module].get(fault.mode.name, 0) > 0, (fault, counts[fault.module])
    felt = [kill.module for kill in kills if down[kill.module]]
    assert len(felt) >= 2, f"sagas in flight met only {felt} down"
    assert failed, "no fault hit a saga in flight"


class _Upstream(BaseHTTPRequestHandler):
    """Echoes each POST body as JSON, with the Connection header it came with."""

    protocol_version = "HTTP/1.1"
    received: list[bytes]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(body)
        answer = json.dumps({"body": body.decode(), "connection": self.headers["Connection"]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[tuple[str, list[bytes]]]:
    """A tiny HTTP server, and the bodies it received."""
    received: list[bytes] = []
    handler = type("Handler", (_Upstream,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_the_proxy_forwards_fails_drops_and_loses_answers_when_told(
    upstream: tuple[str, list[bytes]],
) -> None:
    url, received = upstream
    with FaultProxy(url) as proxy, httpx.Client(base_url=proxy.url, timeout=0.5) as client:
        answers = [client.post("/echo", json={"n": n}).json() for n in range(3)]  # one keep-alive client
        assert answers == [{"body": f'{{"n":{n}}}', "connection": "close"} for n in range(3)]
        proxy.mode = FAIL_503
        failed = client.post("/echo", json={"n": "503"})
        assert (failed.status_code, failed.headers["content-type"]) == (503, "application/problem+json")
        for mode in (DROP, BLACKHOLE_RESPONSE, slow(1.0)):
            proxy.mode = mode
            with pytest.raises(httpx.TransportError):
                client.post("/echo", json={"n": mode.name})
        proxy.mode = PASS
        eventually_blocking(
            lambda: len(received), lambda n: n == 5, timeout=5
        )  # the held request arrives, late
        assert client.post("/echo", json={"n": "again"}).status_code == 200
        counts = proxy.counts
    assert counts == {"pass": 4, "fail503": 1, "drop": 1, "blackhole_response": 1, "slow": 1}
    assert received == [b'{"n":0}', b'{"n":1}', b'{"n":2}', b'{"n":"blackhole_response"}',
                        b'{"n":"slow"}', b'{"n":"again"}']  # fmt: skip
