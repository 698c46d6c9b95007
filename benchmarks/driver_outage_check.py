"""Does PyMongo's async client survive a database outage while its callers time out?

Thirty tasks insert and read in a loop, each call under a timeout (as requests and saga steps
are); the embedded server is SIGKILLed for four seconds and started again on the same port and
data. A client that survived keeps working after the restart; a wedged one does no operation
at all. On Python 3.11, PyMongo's condition waits (`asyncio.wait_for`) can release the topology
lock twice ("Lock is not acquired") and wedge the client for good; `--fixed` applies the app's
fix (`ecommerce_saga.db.connection.fix_pymongo_condition_wait`) first.

    .venv/bin/python benchmarks/driver_outage_check.py [--rounds 4] [--fixed]

It prints, per round, the operations done in the 8 s after the restart and the errors seen. Each
round runs in a process of its own: a wedged client never lets its tasks finish, so that process
reports and then exits without waiting for them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from ecommerce_saga.db.driver_patch import fix_pymongo_condition_wait
from ecommerce_saga.db.embedded import EmbeddedMongo, free_port

TASKS = 30


async def worker(db: Any, number: int, done: Counter[str], errors: Counter[str]) -> None:
    """Insert and read back, each pair under a timeout of 0.3 to 2.1 s."""
    while True:

        async def operation() -> None:
            await db.t.insert_one({"n": number, "t": time.time()})
            await db.t.find_one({"n": number})

        try:
            await asyncio.wait_for(operation(), 0.3 + (number % 10) / 5)
            done["ops"] += 1
        except Exception as exc:  # noqa: BLE001 - counted, as a caller would see them
            errors[f"{type(exc).__name__}: {str(exc)[:40]}"] += 1
            await asyncio.sleep(0.05)


async def one_round(data_dir: Path) -> tuple[int, Counter[str]]:
    """Operations done in the 8 s after the restart, and the errors seen in the round."""
    server = EmbeddedMongo(data_dir=data_dir, port=free_port())
    server.start()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(server.url, serverSelectionTimeoutMS=2000)
    done: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    tasks = [asyncio.create_task(worker(client.test, n, done, errors)) for n in range(TASKS)]
    try:
        await asyncio.sleep(2)
        assert server.process is not None
        server.process.send_signal(signal.SIGKILL)
        server.process.wait()
        await asyncio.sleep(4)
        server.start()  # from this thread: the server's parent-death signal follows it
        before = done["ops"]
        await asyncio.sleep(8)
        return done["ops"] - before, errors
    finally:
        for task in tasks:
            task.cancel()
        server.stop()


async def round_in_this_process(fixed: bool) -> None:
    """Run one round, print its line, and leave at once (a wedged client's tasks never end, so
    neither would the event loop's shutdown)."""
    if fixed:
        fix_pymongo_condition_wait()
    folder = Path(tempfile.mkdtemp(prefix="outage-"))
    ops, errors = await one_round(folder)
    print(f"{ops} operations in the 8 s after the restart; errors {dict(errors.most_common(4))}", flush=True)
    shutil.rmtree(folder, ignore_errors=True)
    os._exit(0)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--fixed", action="store_true", help="apply the app's fix first")
    parser.add_argument("--one-round", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_round:
        asyncio.run(round_in_this_process(args.fixed))
    print(f"Python {sys.version.split()[0]}, fix {'applied' if args.fixed else 'not applied'}")
    wedged = 0
    for number in range(1, args.rounds + 1):
        command = [sys.executable, __file__, "--one-round", *(["--fixed"] if args.fixed else [])]
        line = subprocess.run(
            command, capture_output=True, text=True, timeout=120, check=False
        ).stdout.strip()
        wedged += line.startswith("0 operations")
        print(f"round {number}: {line or 'no result'}", flush=True)
    print(f"wedged: {wedged} of {args.rounds} rounds")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
