"""What one database command costs: the calling process's CPU, and the embedded server's.

    .venv/bin/python benchmarks/command_cost.py [--commands 3000] [--url mongodb://...]
        [--without-driver-tasks]

One task sends `--commands` commands of each kind in a row, on PyMongo's async client, and this
prints the CPU time per command of this process (under uvloop, as the app runs, and under plain
asyncio) and of the embedded database's process (not shown for `--url`, whose server is
elsewhere). The kinds: an insert of a small document into a collection without indexes, an
insert and a whole-document replace of a saga-sized document (about 1 KB, its history inside)
into a collection with the saga store's three indexes, and a `$set` of one field. The app's CPU
per order can be read against it: an order is its commands times the client's cost, plus the
request, the engine and the event loop.

`--without-driver-tasks` measures, in this process only, what PyMongo's async client would cost
without the three tasks it makes per command on Python 3.11 (the send through `asyncio.wait_for`,
the read raced against a task polling for cancellation): both replaced by `asyncio.timeout`.
The replacement drops the driver's interruption of in-use connections; the app does not use it.

It measures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvloop
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from ecommerce_saga.db.embedded import EmbeddedMongo

SAGA_INDEXES = [
    IndexModel([("status", ASCENDING)]),
    IndexModel([("correlation_id", ASCENDING)]),
    IndexModel([("created_at", DESCENDING)]),
]


def saga_like(version: int, steps: int) -> dict[str, Any]:
    """A document shaped like a stored saga of `steps` finished steps."""
    now = datetime.now(UTC)
    history = [
        {"step": f"step-{n}", "phase": "action", "attempt": 1, "status": "SUCCEEDED",
         "started_at": now, "ended_at": now, "worker": "worker-512ac1ece687"}
        for n in range(steps)
    ]  # fmt: skip
    return {
        "saga_type": "bench", "definition_version": 1, "definition_fingerprint": "ff04ca38b512614f",
        "status": "RUNNING", "input": {"amount": 1200},
        "outputs": {f"step-{n}": {"written": True} for n in range(steps)}, "current_step": steps,
        "history": history, "version": version, "lease_owner": "worker-512ac1ece687",
        "lease_expires_at_ms": 0, "fencing_token": 1, "created_at": now, "updated_at": now,
        "correlation_id": "order-1",
    }  # fmt: skip


def without_driver_tasks() -> None:
    """Replace PyMongo's async send and receive by task-free versions (an experiment, see above)."""
    from pymongo import network_layer  # noqa: PLC0415
    from pymongo.asynchronous import pool  # noqa: PLC0415 - only for this experiment

    network: Any = network_layer  # private names, for this experiment only
    largest: int = network.MAX_MESSAGE_SIZE

    async def sendall(conn: Any, buf: bytes) -> None:
        async with asyncio.timeout(conn.gettimeout):
            await conn.write(buf)

    async def receive(conn: Any, request_id: int | None, max_message_size: int = largest) -> Any:
        async with asyncio.timeout(conn.conn.gettimeout):
            data, op_code = await conn.conn.get_conn.read(request_id, max_message_size)
        return network._UNPACK_REPLY[op_code](data)

    setattr(pool, "async_sendall", sendall)  # noqa: B010 - a private name
    setattr(pool, "async_receive_message", receive)  # noqa: B010


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid`, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(
    db: AsyncDatabase[dict[str, Any]], db_pid: int | None, count: int
) -> list[tuple[str, float, float | None]]:
    """(kind, client CPU ms per command, server CPU ms per command) for each kind."""
    await db.sagas.create_indexes(SAGA_INDEXES)
    small, sagas = db.small, db.sagas
    kinds: list[tuple[str, Callable[[int], Awaitable[object]]]] = [
        ("insert, small", lambda n: small.insert_one({"_id": n, "step": "x", "saga_id": "s"})),
        ("insert, saga-sized", lambda n: sagas.insert_one({"_id": n, **saga_like(0, 1)})),
        ("replace, saga-sized", lambda n: sagas.replace_one({"_id": n, "version": 0}, saga_like(1, 4))),
        ("update, $set of one field", lambda n: small.update_one({"_id": n}, {"$set": {"status": "DONE"}})),
    ]  # fmt: skip
    rows = []
    for name, command in kinds:
        client, server = time.process_time(), process_cpu_seconds(db_pid) if db_pid else 0.0
        for n in range(count):
            await command(n)
        client_ms = (time.process_time() - client) * 1000 / count
        server_ms = (process_cpu_seconds(db_pid) - server) * 1000 / count if db_pid else None
        rows.append((name, client_ms, server_ms))
    return rows


async def run(
    url: str, db_pid: int | None, count: int, loop_name: str
) -> list[tuple[str, float, float | None]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, tz_aware=True)
    name = f"command_cost_{loop_name}_{os.getpid()}"
    try:
        await client[name].warm.insert_one({"_id": "warm"})
        return await measure(client[name], db_pid, count)
    finally:
        await client.drop_database(name)
        await client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=3000, help="commands of each kind")
    parser.add_argument("--url", help="a MongoDB URL (default: an embedded server started here)")
    parser.add_argument("--without-driver-tasks", action="store_true", help="the experiment described above")
    args = parser.parse_args()
    if args.without_driver_tasks:
        without_driver_tasks()
    embedded = None if args.url else EmbeddedMongo(Path(tempfile.mkdtemp(prefix="command-cost-")))
    if embedded is not None:
        embedded.start()
    try:
        url = args.url or embedded.url  # type: ignore[union-attr]
        db_pid = embedded.process.pid if embedded is not None and embedded.process else None
        print(f"{args.commands} commands of each kind, one after another; CPU ms per command\n")
        print("| kind | client, uvloop | client, asyncio | embedded server |")
        print("|---|---:|---:|---:|")
        on_uvloop = uvloop.run(run(url, db_pid, args.commands, "uvloop"))
        on_asyncio = asyncio.run(run(url, None, args.commands, "asyncio"))
        for (name, client_ms, server_ms), (_, asyncio_ms, _) in zip(on_uvloop, on_asyncio, strict=True):
            server = "n/a" if server_ms is None else f"{server_ms:.3f}"
            print(f"| {name} | {client_ms:.3f} | {asyncio_ms:.3f} | {server} |")
    finally:
        if embedded is not None:
            embedded.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
