"""What one recovery pass's reads cost as the saga store grows (a script, not a test).

Every few seconds each worker looks for sagas whose lease expired: it claims one it can run
(`MongoSagaStore.claim_expired`) and lists those no registered definition runs
(`find_unrunnable`); at start-up it reads the fingerprints unfinished sagas recorded
(`fingerprints`). This script stores finished sagas (COMPLETED, of the shape the shop stores)
in growing numbers and times each of the three with none expired, as in a healthy shop: the
least wall time of `--repeat` calls, from this process, against the embedded nx-27017 server
(a separate process, started in a temporary folder) or `--url`. It measures; it asserts nothing.

    .venv/bin/python benchmarks/recovery_scan.py [--sagas 1000 5000 20000] [--repeat 5] [--url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from ecommerce_saga.db.embedded import EmbeddedMongo
from ecommerce_saga.saga import DefinitionRef
from ecommerce_saga.saga.stores.mongo import MongoSagaStore

DEFINITIONS = [
    DefinitionRef("place-order", 3, "fp-3"),
    DefinitionRef("place-order", 2, "fp-2"),
    DefinitionRef("place-order", 1, "fp-1"),
    DefinitionRef("cancel-order", 1, "fp-c"),
]
"""What the shop registers: three versions of place-order and cancel-order."""


def finished_saga() -> dict[str, Any]:
    """A COMPLETED place-order saga, about the size the shop stores (2 KB)."""
    return {
        "_id": f"ord_{uuid.uuid4().hex}",
        "saga_type": "place-order",
        "definition_version": 3,
        "definition_fingerprint": "fp-3",
        "status": "COMPLETED",
        "version": 2,
        "fencing_token": 1,
        "lease_expires_at_ms": 0,
        "input": {"order_id": "ord", "items": [{"product_id": "p", "quantity": 1}], "note": "x" * 600},
        "history": [{"step": f"step_{n}", "status": "SUCCEEDED", "worker": "w" * 20} for n in range(5)],
    }


async def least_ms(call: Callable[[], Awaitable[object]], repeat: int) -> float:
    """The least wall time of `repeat` calls, in ms."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        await call()
        times.append((time.perf_counter() - start) * 1000)
    return min(times)


async def measure(url: str, sizes: list[int], repeat: int) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, tz_aware=True)
    db = client[f"recovery_scan_{uuid.uuid4().hex[:8]}"]
    store = MongoSagaStore(db["sagas"])
    await store.create_indexes()
    now_ms = int(time.time() * 1000)
    print("| sagas stored | claim_expired ms | find_unrunnable ms | fingerprints ms |")
    print("|---:|---:|---:|---:|")
    stored = 0
    try:
        for size in sizes:
            while stored < size:
                batch = [finished_saga() for _ in range(min(1000, size - stored))]
                await db["sagas"].insert_many(batch)
                stored += len(batch)
            claim = await least_ms(
                lambda: store.claim_expired("w-1", now_ms, 30_000, definitions=DEFINITIONS), repeat
            )
            unrunnable = await least_ms(
                lambda: store.find_unrunnable(now_ms, definitions=DEFINITIONS, limit=100), repeat
            )
            fingerprints = await least_ms(lambda: store.fingerprints("place-order", 3), repeat)
            print(f"| {stored} | {claim:.1f} | {unrunnable:.1f} | {fingerprints:.1f} |")
    finally:
        await client.drop_database(db.name)
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sagas", type=int, nargs="+", default=[1000, 5000, 20000])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--url", help="a MongoDB URL (default: an embedded server in a temp folder)")
    args = parser.parse_args()
    if args.url:
        asyncio.run(measure(args.url, sorted(args.sagas), args.repeat))
        return
    with tempfile.TemporaryDirectory(prefix="recovery-scan-") as work:
        server = EmbeddedMongo(data_dir=Path(work))
        server.start()
        try:
            asyncio.run(measure(server.url, sorted(args.sagas), args.repeat))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
