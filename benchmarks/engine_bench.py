"""Saga engine throughput and latency against a hand-rolled durable baseline (a script, not a test).

    .venv/bin/python benchmarks/engine_bench.py [--sagas 2400] [--rounds 3] [--levels 1,16,64] [--url URL]

Every saga has four steps and each step does one business write (an insert into a business
collection). Three ways to run it, at each concurrency level:

- ``baseline``: no engine. One saga-log insert, the four business inserts, one status update.
- ``engine/memory``: the engine on `InMemorySagaStore` (its state is not durable).
- ``engine/mongo``: the engine on `MongoSagaStore` (the create plus one save per step, N + 1 = 5).
- ``engine/mongo-riding``: ``engine/mongo`` whose steps' inserts ride on the save that opens
  each step, or on the saga's insert for the first (``SagaStep.riding``): they go in the saga
  store's commands (its group commit), and the actions do not run.
- ``engine/mongo-deferred``: the same saga with ``Saga(save_compensatable_steps=False)``: its four
  compensatable steps are saved with the final save, so the store writes the create and the end
  (2), as the baseline writes its log. After a crash the steps run again; a saga that then
  compensates undoes all four.

A saga's latency runs from `engine.start` to the return of `engine.wait` (which reads the saga
only if its run has already ended); the baseline's from its first write to its last. CPU time
per saga: this process's (engine, driver, event loop) and the embedded database's; and the
commands the saga store sent per saga (``saga commands``: 5 when each write is its own command,
fewer when the writes of sagas running at once share one). Observers
are off (``observers=[]``) so that logging is not measured. Without ``--url`` an embedded
nx-27017 server is started in a temporary folder; it runs as a separate process on the same
machine.

``--profile`` runs ``engine/mongo`` once at the first level under cProfile instead, and prints
where this process's CPU time goes, by part, per saga (the profiler slows everything down, so
read the shares, not the milliseconds).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import cProfile
import os
import platform
import pstats
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from ecommerce_saga.db.embedded import EmbeddedMongo
from ecommerce_saga.saga import Saga, SagaEngine, SagaStatus, SagaStep, StepContext, StepWrites
from ecommerce_saga.saga.stores.memory import InMemorySagaStore
from ecommerce_saga.saga.stores.mongo import MongoSagaStore
from ecommerce_saga.saga.stores.ordered import Insert

STEPS = ("reserve", "charge", "ship", "notify")
Db = AsyncDatabase[dict[str, Any]]
RunOne = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class Result:
    mode: str
    concurrency: int
    sagas: int
    seconds: float
    latencies_ms: list[float]
    app_cpu_s: float = 0.0
    db_cpu_s: float = 0.0
    saga_commands: int = 0

    @property
    def throughput(self) -> float:
        return self.sagas / self.seconds

    @property
    def app_cpu_ms(self) -> float:
        """This process's CPU time per saga (the engine, the driver, the event loop)."""
        return self.app_cpu_s * 1000 / self.sagas

    @property
    def db_cpu_ms(self) -> float:
        """The embedded database's CPU time per saga (0 with --url)."""
        return self.db_cpu_s * 1000 / self.sagas

    @property
    def saga_commands_per_saga(self) -> float:
        """Commands the saga store sent per saga (several sagas' writes may share one)."""
        return self.saga_commands / self.sagas

    def percentile(self, p: int) -> float:
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[p - 1]


Input = Mapping[str, Any]  # the benchmark's sagas are untyped: their input is a mapping

DB_PID: int | None = None
"""The embedded database's process, whose CPU time the runs count (None with --url)."""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def db_cpu_seconds() -> float:
    return 0.0 if DB_PID is None else cpu_seconds(DB_PID)


class SagaCommands(monitoring.CommandListener):
    """Counts the commands sent to saga collections (``*_sagas``): the saga store's writes and reads."""

    def __init__(self) -> None:
        self.count = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        target = event.command.get(event.command_name)
        if isinstance(target, str) and target.endswith("_sagas"):
            self.count += 1
        elif event.command_name == "bulkWrite":  # a save with a step's writes (engine/mongo-riding)
            namespaces = [str(ns["ns"]) for ns in event.command.get("nsInfo", [])]
            self.count += any(ns.endswith("_sagas") for ns in namespaces)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        """Not counted."""

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        """Not counted."""


SAGA_COMMANDS = SagaCommands()


def business_saga(
    db: Db, collection: str, *, save_compensatable_steps: bool = True, riding: bool = False
) -> Saga[Input]:
    business = db[collection]

    def step(name: str) -> SagaStep[Input, dict[str, Any]]:
        def record(ctx: StepContext[Input]) -> dict[str, Any]:
            return {"_id": ctx.idempotency_key, "saga_id": ctx.saga_id, "step": name}

        async def action(ctx: StepContext[Input]) -> dict[str, Any]:
            with contextlib.suppress(DuplicateKeyError):  # made already (by its writes, say)
                await business.insert_one(record(ctx))
            return {"written": True}

        def writes(ctx: StepContext[Input]) -> StepWrites[dict[str, Any]]:
            return StepWrites([Insert(business, record(ctx))], {"written": True})

        return SagaStep(name, action).riding(writes) if riding else SagaStep(name, action)

    return Saga("bench", [step(name) for name in STEPS], save_compensatable_steps=save_compensatable_steps)


async def drive(run_one: RunOne, mode: str, count: int, concurrency: int, prefix: str) -> Result:
    """Run `count` sagas, `concurrency` at a time, timing each and the whole."""
    numbers = iter(range(count))
    latencies: list[float] = []

    async def lane() -> None:
        for n in numbers:
            began = time.perf_counter()
            await run_one(f"{prefix}-{n:06d}")
            latencies.append((time.perf_counter() - began) * 1000)

    app, db, commands = time.process_time(), db_cpu_seconds(), SAGA_COMMANDS.count
    began = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    seconds = time.perf_counter() - began
    app, db, commands = time.process_time() - app, db_cpu_seconds() - db, SAGA_COMMANDS.count - commands
    return Result(mode, concurrency, count, seconds, latencies, app, db, commands)


def baseline(db: Db, tag: str) -> RunOne:
    log, business = db[f"{tag}_log"], db[f"{tag}_business"]

    async def run_one(saga_id: str) -> None:
        await log.insert_one({"_id": saga_id, "status": "RUNNING", "created_at": datetime.now(UTC)})
        for name in STEPS:
            await business.insert_one({"_id": f"{saga_id}:{name}", "saga_id": saga_id, "step": name})
        await log.update_one({"_id": saga_id}, {"$set": {"status": "COMPLETED"}})

    return run_one


def through_engine(engine: SagaEngine) -> RunOne:
    async def run_one(saga_id: str) -> None:
        await engine.start("bench", {"amount": 1200}, saga_id=saga_id)
        state = await engine.wait(saga_id, timeout=120)
        if state.status is not SagaStatus.COMPLETED:
            raise RuntimeError(f"saga {saga_id} ended {state.status}")

    return run_one


async def run_mode(db: Db, mode: str, count: int, concurrency: int, tag: str) -> Result:
    if mode == "baseline":
        return await drive(baseline(db, tag), mode, count, concurrency, tag)
    if mode == "engine/memory":
        store: InMemorySagaStore | MongoSagaStore = InMemorySagaStore()
    else:
        store = MongoSagaStore(db[f"{tag}_sagas"])
        await store.create_indexes()
    saga = business_saga(
        db,
        f"{tag}_business",
        save_compensatable_steps=mode != "engine/mongo-deferred",
        riding=mode == "engine/mongo-riding",
    )
    engine = SagaEngine(store, [saga], observers=[])
    try:
        return await drive(through_engine(engine), mode, count, concurrency, tag)
    finally:
        await engine.stop()


async def run_clean(db: Db, mode: str, count: int, concurrency: int, tag: str) -> Result:
    """One run on fresh collections, dropped afterwards so every run meets the same database."""
    try:
        return await run_mode(db, mode, count, concurrency, tag)
    finally:
        for suffix in ("log", "business", "sagas"):
            await db.drop_collection(f"{tag}_{suffix}")


def merge(runs: list[Result]) -> Result:
    first = runs[0]
    latencies = [ms for run in runs for ms in run.latencies_ms]
    seconds = sum(run.seconds for run in runs)
    app, db = sum(run.app_cpu_s for run in runs), sum(run.db_cpu_s for run in runs)
    commands = sum(run.saga_commands for run in runs)
    return Result(first.mode, first.concurrency, len(latencies), seconds, latencies, app, db, commands)


def _tag(mode: str) -> str:
    """The mode as part of a collection name (letters, digits and underscores only)."""
    return mode.replace("/", "_").replace("-", "_")


async def benchmark(db: Db, count: int, levels: list[int], modes: list[str], rounds: int) -> list[Result]:
    """Each mode runs `count` sagas per level, in `rounds` interleaved rounds so drift hits all alike."""
    for mode in modes:  # warm up connections, caches and the server
        await run_clean(db, mode, 50, 8, f"warm_{_tag(mode)}")
    results = []
    for concurrency in levels:
        runs: dict[str, list[Result]] = {mode: [] for mode in modes}
        for round_ in range(rounds):
            for mode in modes[round_ % len(modes) :] + modes[: round_ % len(modes)]:
                tag = f"c{concurrency}_r{round_}_{_tag(mode)}"
                runs[mode].append(await run_clean(db, mode, count // rounds, concurrency, tag))
        for mode in modes:
            result = merge(runs[mode])
            results.append(result)
            print(
                f"  {mode:<21} c={concurrency:<3} {result.throughput:8.1f} sagas/s "
                f"p50 {result.percentile(50):7.1f} ms  CPU/saga app {result.app_cpu_ms:5.2f} ms "
                f"db {result.db_cpu_ms:5.2f} ms",
                flush=True,
            )
    return results


PARTS = [  # (part, where its functions live); the first that matches wins
    ("saga engine: runner, transitions, state", "ecommerce_saga/saga/"),
    ("PyMongo and BSON", "pymongo/"),
    ("PyMongo and BSON", "bson/"),
    ("pydantic (model_dump, validation, copies)", "pydantic"),
    ("asyncio event loop and tasks", "asyncio/"),
    ("asyncio event loop and tasks", "selectors.py"),
    ("asyncio event loop and tasks", "_weakrefset.py"),
    ("deep copies (copy.py)", "copy.py"),
    ("the benchmark's own steps", "engine_bench.py"),
]
BUILTIN_PARTS = [  # C functions, by name
    ("socket I/O", ("socket", "epoll")),
    ("PyMongo and BSON", ("pymongo", "bson")),
    ("pydantic (model_dump, validation, copies)", ("pydantic",)),
    ("asyncio event loop and tasks", ("_asyncio", "_contextvars", "heapq", "deque")),
]


def part_of(file: str, function: str) -> str:
    if file == "~":
        for part, words in BUILTIN_PARTS:
            if any(word in function for word in words):
                return part
        return "other built-ins"
    for part, where in PARTS:
        if where in file:
            return part
    return "other Python"


async def profile(db: Db, count: int, concurrency: int) -> None:
    """Run engine/mongo under cProfile; print this process's CPU time by part, per saga."""
    await run_clean(db, "engine/mongo", 50, 8, "warm_profile")
    profiler = cProfile.Profile()
    profiler.enable()
    result = await run_clean(db, "engine/mongo", count, concurrency, "profile")
    profiler.disable()
    parts: collections.Counter[str] = collections.Counter()
    stats: dict[tuple[str, int, str], tuple[Any, ...]] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    for (file, _, function), (_, _, own_seconds, *_) in stats.items():
        parts[part_of(file, function)] += own_seconds
    total = sum(parts.values())
    print(
        f"engine/mongo c={concurrency}: {result.sagas} sagas, "
        f"{result.throughput:.1f} sagas/s under the profiler"
    )
    print("\n| part | CPU ms/saga (profiled) | share |\n|---|---:|---:|")
    for part, seconds in parts.most_common():
        print(f"| {part} | {seconds * 1000 / result.sagas:.2f} | {seconds / total:.0%} |")


def table(results: list[Result]) -> str:
    lines = [
        "| run | c | sagas | sagas/s | p50 ms | p95 ms | p99 ms | app CPU ms | db CPU ms | saga commands |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.mode} | {r.concurrency} | {r.sagas} | {r.throughput:.1f} | "
            f"{r.percentile(50):.1f} | {r.percentile(95):.1f} | {r.percentile(99):.1f} | "
            f"{r.app_cpu_ms:.2f} | {r.db_cpu_ms:.2f} | {r.saga_commands_per_saga:.2f} |"
        )
    compared = ("engine/mongo", "engine/mongo-riding", "engine/mongo-deferred", "engine/memory")
    lines += ["", "| concurrency | " + " | ".join(f"{mode} ÷ baseline" for mode in compared) + " |"]
    lines += ["|---:|" + "---:|" * len(compared)]
    by = {(r.mode, r.concurrency): r for r in results}
    for level in sorted({r.concurrency for r in results}):
        base = by.get(("baseline", level))
        if base is None:
            continue
        ratios = [by.get((mode, level)) for mode in compared]
        cells = [f"{r.throughput / base.throughput:.0%}" if r else "-" for r in ratios]
        lines.append(f"| {level} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine(url: str | None) -> str:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    server = f"embedded nx-27017 {metadata.version('nx-27017')}"
    if url is not None:
        server = url.rpartition("@")[2]  # without credentials
    return (
        f"nproc {os.cpu_count()}, CPU {cpu}, Python {platform.python_version()}, "
        f"pymongo {metadata.version('pymongo')}, database: {server}"
    )


@contextlib.asynccontextmanager
async def database(url: str | None) -> AsyncIterator[Db]:
    global DB_PID  # noqa: PLW0603 - one database per run of the script
    with tempfile.TemporaryDirectory(prefix="saga-bench-") as folder:
        server = None
        if url is None:
            server = EmbeddedMongo(data_dir=Path(folder))
            server.start()
            url = server.url
            DB_PID = server.process.pid if server.process else None
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            url, tz_aware=True, event_listeners=[SAGA_COMMANDS]
        )
        name = f"saga_bench_{os.getpid()}"
        try:
            yield client[name]
        finally:
            await client.drop_database(name)
            await client.close()
            if server is not None:
                server.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sagas", type=int, default=2400, help="sagas per mode and level (default 2400: about 100 s in all)"
    )
    parser.add_argument("--levels", default="1,16,64", help="concurrency levels (default 1,16,64)")
    parser.add_argument("--url", help="a MongoDB URL; default: start an embedded nx-27017")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per level (default 3)")
    parser.add_argument(
        "--modes", default="baseline,engine/mongo,engine/mongo-riding,engine/mongo-deferred,engine/memory"
    )
    parser.add_argument("--profile", action="store_true", help="profile engine/mongo at the first level")
    args = parser.parse_args()
    levels = [int(level) for level in args.levels.split(",")]
    print(machine(args.url), flush=True)
    began = time.perf_counter()
    async with database(args.url) as db:
        if args.profile:
            await profile(db, args.sagas, levels[0])
            return
        results = await benchmark(db, args.sagas, levels, args.modes.split(","), args.rounds)
    print(f"\n{table(results)}\n\n(total {time.perf_counter() - began:.0f} s)")


if __name__ == "__main__":
    asyncio.run(main())
