"""A saga worker process for the crash and race tests: order-like sagas on MongoDB.

    python tests/e2e/saga_worker.py start --url URL --db DB --count 60 --worker-id w-1
    python tests/e2e/saga_worker.py recover --url URL --db DB --worker-id w-2

``start`` starts `count` sagas at a steady pace and waits for them; ``recover`` keeps claiming
unfinished sagas (a few at a time) until none is left. Every step applies its effect through a
`MongoEffectLedger` keyed by the step's idempotency key, and journals each execution's time window,
so a test can prove that effects were applied once and no step ran on two workers at once.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from ecommerce_saga.saga import (
    NonRetryableError,
    RetryPolicy,
    Saga,
    SagaEngine,
    SagaQuery,
    SagaStatus,
    SagaStep,
    StepContext,
)
from ecommerce_saga.saga.stores.mongo import MongoSagaStore
from ecommerce_saga.saga.testing import DO, UNDO, Effect

STEPS = ("reserve", "charge", "ship", "notify")
SAGA = "e2e-order"
ACTIVE = [SagaStatus.RUNNING, SagaStatus.COMPENSATING]
logger = logging.getLogger("saga_worker")

Db = AsyncDatabase[dict[str, Any]]


class MongoEffectLedger:
    """An `EffectLedger` in MongoDB: one document per effect, `_id` = the idempotency key."""

    def __init__(self, db: Db, worker_id: str) -> None:
        self._effects = db["effects"]
        self._duplicates = db["duplicate_effects"]
        self._worker_id = worker_id

    async def apply(self, effect: Effect) -> bool:
        """Insert the effect; a duplicate key means it was applied already (and is counted)."""
        doc = {"_id": effect.key, "saga_id": effect.saga_id, "step": effect.step, "kind": effect.kind}
        try:
            await self._effects.insert_one({**doc, "at_ns": effect.at_ns, "worker": self._worker_id})
        except DuplicateKeyError:
            await self._duplicates.insert_one({"key": effect.key, "worker": self._worker_id})
            return False
        return True

    async def effects(self, saga_id: str) -> list[Effect]:
        """Every effect of the saga, in the order applied."""
        cursor = self._effects.find({"saga_id": saga_id}).sort("at_ns", ASCENDING)
        return [Effect(d["saga_id"], d["step"], d["kind"], d["_id"], d["at_ns"]) async for d in cursor]

    async def was_done(self, saga_id: str, step: str) -> bool:
        """Whether the step's action applied its effect."""
        return await self._effects.find_one({"saga_id": saga_id, "step": step, "kind": DO}) is not None

    async def duplicates(self) -> int:
        """How many applications were refused because their key had been seen."""
        return await self._duplicates.count_documents({})


class Journal:
    """Each execution of an action or compensation, with its worker and time window."""

    def __init__(self, db: Db, worker_id: str) -> None:
        self._executions = db["executions"]
        self._worker_id = worker_id

    async def record(self, ctx: StepContext, started_ns: int) -> None:
        await self._executions.insert_one(
            {
                "saga_id": ctx.saga_id,
                "step": ctx.step,
                "phase": "compensation" if ctx.compensating else "action",
                "attempt": ctx.attempt,
                "worker": self._worker_id,
                "start_ns": started_ns,
                "end_ns": time.time_ns(),
            }
        )


def order_saga(ledger: MongoEffectLedger, journal: Journal, step_seconds: float) -> Saga:
    """Four compensatable steps. Input ``fail_at`` makes that step refuse (a business failure);
    ``slow_at``/``slow_seconds`` make that step's action take that long."""
    return Saga(
        SAGA,
        [_step(name, ledger, journal, step_seconds) for name in STEPS],
        compensation_retry=RetryPolicy(initial_interval=0.01, maximum_interval=0.1, maximum_attempts=20),
    )


def _step(name: str, ledger: MongoEffectLedger, journal: Journal, step_seconds: float) -> SagaStep:
    async def action(ctx: StepContext) -> dict[str, Any]:
        started = time.time_ns()
        await asyncio.sleep(step_seconds)
        if ctx.input.get("fail_at") == name:
            raise NonRetryableError(f"{name} refused", code="e2e.refused")
        if ctx.input.get("slow_at") == name:
            await asyncio.sleep(float(ctx.input["slow_seconds"]))
        applied = await ledger.apply(Effect(ctx.saga_id, name, DO, ctx.idempotency_key, time.time_ns()))
        await journal.record(ctx, started)
        return {"applied": applied}

    async def compensation(ctx: StepContext) -> None:
        started = time.time_ns()
        await asyncio.sleep(step_seconds)
        if await ledger.was_done(ctx.saga_id, name):
            await ledger.apply(Effect(ctx.saga_id, name, UNDO, ctx.idempotency_key, time.time_ns()))
        await journal.record(ctx, started)

    retry = RetryPolicy(initial_interval=0.01, maximum_interval=0.1, maximum_attempts=20)
    return SagaStep(name, action, compensation, retry=retry, timeout=10)


def saga_input(n: int) -> dict[str, Any]:
    """Every third saga is refused at `ship` and every seventh at `notify`; the rest complete."""
    if n % 7 == 3:
        return {"n": n, "fail_at": "notify"}
    if n % 3 == 0:
        return {"n": n, "fail_at": "ship"}
    return {"n": n}


async def start(engine: SagaEngine, count: int, interval: float) -> None:
    ids = [f"saga-{n:03d}" for n in range(count)]
    for n, saga_id in enumerate(ids):
        await engine.start(SAGA, saga_input(n), saga_id=saga_id)
        await asyncio.sleep(interval)
    for saga_id in ids:
        await engine.wait(saga_id, timeout=60)


async def recover(engine: SagaEngine, batch: int, poll: float, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await engine.recover_once(limit=batch)
        _, active = await engine.find(SagaQuery(statuses=ACTIVE, limit=1))
        if active == 0:
            return
        await asyncio.sleep(poll)
    raise TimeoutError(f"sagas still active after {timeout}s")


async def main(args: argparse.Namespace) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(args.url, tz_aware=True)
    db = client[args.db]
    ledger, journal = MongoEffectLedger(db, args.worker_id), Journal(db, args.worker_id)
    store = MongoSagaStore(db["sagas"])
    await store.create_indexes()
    saga = order_saga(ledger, journal, args.step_ms / 1000)
    engine = SagaEngine(store, [saga], worker_id=args.worker_id, lease_seconds=args.lease, observers=[])
    try:
        if args.mode == "start":
            await start(engine, args.count, args.interval_ms / 1000)
        else:
            await recover(engine, args.batch, args.poll_ms / 1000, args.timeout)
    finally:
        await engine.stop()
        await client.close()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["start", "recover"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--worker-id", required=True)
    parser.add_argument("--lease", type=float, default=1.0, help="lease seconds")
    parser.add_argument("--step-ms", type=float, default=5.0, help="how long each step takes")
    parser.add_argument("--count", type=int, default=60, help="start: sagas to start")
    parser.add_argument("--interval-ms", type=float, default=20.0, help="start: pause between starts")
    parser.add_argument("--batch", type=int, default=2, help="recover: sagas claimed per pass")
    parser.add_argument("--poll-ms", type=float, default=20.0, help="recover: pause between passes")
    parser.add_argument("--timeout", type=float, default=40.0, help="recover: give up after")
    return parser.parse_args(argv)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(main(parse()))
