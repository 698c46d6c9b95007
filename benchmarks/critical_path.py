"""Where one order's answer waits: its database commands in a row, and the app's time between them.

Starts the embedded database, builds the app in this process (the database stays a separate
process, as in `orders_bench.py`), and places orders one at a time. For each order it records,
with a PyMongo `CommandListener` and a timer around the app (outermost, where the request comes in
and where its answer starts to go out), when each database command started and ended. It prints,
by position in the order's path, the median time the app spent before the command (since the
previous one ended, or since the request came in) and the command's own median time (from
PyMongo's started to succeeded events: the driver's send and read, the server's work and the wait
for it); then the commands that came after the answer (the order's confirmation and the saga's
last save). The hand-rolled baseline of `orders_bench.py` is timed the same way.

    .venv/bin/python benchmarks/critical_path.py [--orders 300] [--pause-ms 20] [--url mongodb://...]

With the default pause, each order starts once the previous one's saga has finished: the answer's
own path on an idle shop. With ``--pause-ms 0`` each order starts as soon as the previous one is
answered, as `orders_bench.py` at concurrency 1 does, so it meets the previous order's last
commands. The client is httpx in this process (its own time is outside the app's timer). It
measures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvloop
from pymongo import AsyncMongoClient, monitoring
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orders_bench import (
    ORDER,
    baseline_order,
    command_label,
    database,
    in_process_shop,
    machine,
    seed_baseline,
)

REQUEST_IN, ANSWER_OUT = "request in", "answer out"


@dataclass
class Timeline:
    """What happened during one order, in `time.perf_counter()` seconds: (what, start, end)."""

    events: list[tuple[str, float, float]] = field(default_factory=list)
    _started: dict[int, tuple[str, float]] = field(default_factory=dict)

    def started(self, request_id: int, name: str) -> None:
        self._started[request_id] = (name, time.perf_counter())

    def ended(self, request_id: int) -> None:
        started = self._started.pop(request_id, None)
        if started is not None:  # a command of an earlier order's that ends during this one: not counted
            self.events.append((started[0], started[1], time.perf_counter()))

    def mark(self, name: str) -> None:
        now = time.perf_counter()
        self.events.append((name, now, now))


class _Listener(monitoring.CommandListener):
    """Reports every command to the current timeline, named by command and collections."""

    def __init__(self) -> None:
        self.timeline = Timeline()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.timeline.started(event.request_id, command_label(event))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self.timeline.ended(event.request_id)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self.timeline.ended(event.request_id)


LISTENER = _Listener()


def timed(app: ASGIApp) -> ASGIApp:
    """`app`, with the moment each request comes in and its answer starts marked on the timeline."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        LISTENER.timeline.mark(REQUEST_IN)

        async def marking(message: Message) -> None:
            if message["type"] == "http.response.start":
                LISTENER.timeline.mark(ANSWER_OUT)
            await send(message)

        await app(scope, receive, marking)

    return wrapped


@dataclass(frozen=True)
class Step:
    """One event of an order's path: the time before it since the previous one ended, and its own."""

    name: str
    before_ms: float
    own_ms: float
    answered: bool
    """True if it ended before the answer went out."""


def steps(timeline: Timeline, start: float | None = None) -> list[Step]:
    """`timeline`'s events in the order they began, each with its own time and the time before it:
    since the last earlier event ended (a command still in flight does not count), or `start`."""
    events = sorted(timeline.events, key=lambda event: event[1])
    answer = next((end for name, _, end in events if name == ANSWER_OUT), float("inf"))
    first = events[0][1] if start is None else start
    found = []
    for i, (name, began, ended) in enumerate(events):
        previous = max((end for _, _, end in events[:i] if end <= began), default=first)
        found.append(Step(name, (began - previous) * 1000, (ended - began) * 1000, ended <= answer))
    return found


def medians(orders: list[list[Step]]) -> list[tuple[str, float, float, bool]]:
    """By position, the name and the median times of the orders whose path has the usual shape."""
    shape = statistics.mode(tuple(step.name for step in path) for path in orders)
    usual = [path for path in orders if tuple(step.name for step in path) == shape]
    return [
        (
            name,
            statistics.median(path[i].before_ms for path in usual),
            statistics.median(path[i].own_ms for path in usual),
            sum(path[i].answered for path in usual) * 2 > len(usual),
        )
        for i, name in enumerate(shape)
    ]


async def shop_paths(mongo_url: str, orders: int, pause: float) -> list[list[Step]]:
    """The paths of `orders` orders placed one at a time, `pause` seconds apart."""
    paths = []
    async with in_process_shop(mongo_url, "path", wrap=timed) as client:
        for _ in range(20):  # warm-up: connections, caches, indexes
            await client.post("/api/orders", json=ORDER)
        await asyncio.sleep(0.5)
        for _ in range(orders):
            LISTENER.timeline = Timeline()
            response = await client.post("/api/orders", json=ORDER)
            assert response.json()["status"] == "COMPLETED", response.text
            await asyncio.sleep(pause)
            paths.append(steps(LISTENER.timeline))
    return paths


async def baseline_paths(mongo_url: str, orders: int, pause: float) -> list[list[Step]]:
    """The same for the hand-rolled baseline (its order starts when it is called)."""
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
    db = mongo[f"path_base_{uuid.uuid4().hex[:8]}"]
    await seed_baseline(db)
    paths = []
    try:
        for _ in range(20):
            await baseline_order(db)
        for _ in range(orders):
            LISTENER.timeline = Timeline()
            start = time.perf_counter()
            await baseline_order(db)
            LISTENER.timeline.mark(ANSWER_OUT)
            paths.append(steps(LISTENER.timeline, start))
            await asyncio.sleep(pause)
    finally:
        await mongo.drop_database(db.name)
        await mongo.close()
    return paths


def table(title: str, rows: list[tuple[str, float, float, bool]]) -> str:
    """Markdown: each event's median times, then the answer's path in sum."""
    lines = [
        f"{title}\n",
        "| # | event | app before it, ms | its own, ms | before the answer |",
        "|---:|---|---:|---:|---|",
    ]
    for i, (name, before, own, answered) in enumerate(rows, 1):
        lines.append(f"| {i} | {name} | {before:.2f} | {own:.2f} | {'yes' if answered else 'no'} |")
    path = [row for row in rows if row[3]]
    commands = [row for row in path if row[0] not in (REQUEST_IN, ANSWER_OUT)]
    app_ms = sum(row[1] for row in path if row[0] != REQUEST_IN)
    command_ms = sum(row[2] for row in commands)
    lines.append(
        f"\nUp to the answer: {len(commands)} commands, {command_ms:.2f} ms in them and "
        f"{app_ms:.2f} ms of the app's between them (sums of medians: {command_ms + app_ms:.2f} ms)."
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--pause-ms", type=float, default=20.0, help="between orders; 0 for back to back")
    parser.add_argument("--url", help="a MongoDB URL (default: an embedded server in a temp folder)")
    args = parser.parse_args()
    pause = args.pause_ms / 1000
    monitoring.register(LISTENER)  # for the clients made from here on
    with database(args.url, Path(tempfile.mkdtemp(prefix="critical-path-"))) as (mongo_url, _):
        shop = uvloop.run(shop_paths(mongo_url, args.orders, pause))
        base = uvloop.run(baseline_paths(mongo_url, args.orders, pause))
    print(f"Machine: {machine()}\n{args.orders} orders one at a time, {args.pause_ms:g} ms apart\n")
    print(table("The shop (POST /api/orders, in process):", medians(shop)) + "\n")
    print(table("The baseline (PyMongo writes only):", medians(base)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
