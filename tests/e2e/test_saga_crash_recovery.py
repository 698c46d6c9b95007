"""Crash and race tests on MongoDB: a worker killed mid-flight, and two workers recovering at once.

The workers are real processes (`saga_worker.py`); the tests read the outcome from the database.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from ecommerce_saga.saga import (
    HistoryEntry,
    Phase,
    SagaEngine,
    SagaQuery,
    SagaState,
    SagaStatus,
)
from ecommerce_saga.saga.stores.mongo import MongoSagaStore
from ecommerce_saga.saga.testing import invariant_violations
from tests.e2e.saga_worker import SAGA, Journal, MongoEffectLedger, order_saga, saga_input
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

WORKER = Path(__file__).with_name("saga_worker.py")
ACTIVE = ["RUNNING", "COMPENSATING"]
FINAL = ["COMPLETED", "COMPENSATED"]
Db = AsyncDatabase[dict[str, Any]]


def spawn_worker(
    mode: str, url: str, db: str, worker_id: str, log: Path, *extra: str
) -> subprocess.Popen[bytes]:
    command = [sys.executable, str(WORKER), mode, "--url", url, "--db", db, "--worker-id", worker_id, *extra]
    with log.open("ab") as out:
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=out)


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


async def wait_for_exit(process: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"worker did not finish in {timeout}s:\n{tail(log)}")
        await asyncio.sleep(0.05)
    assert process.returncode == 0, tail(log)


async def all_sagas(store: MongoSagaStore) -> list[SagaState]:
    sagas, _ = await store.find(SagaQuery(limit=1_000))
    return sagas


def interrupted(entry: HistoryEntry) -> bool:
    return entry.error is not None and entry.error.code == "saga.interrupted"


async def check_invariants(db: Db, sagas: list[SagaState]) -> None:
    ledger = MongoEffectLedger(db, "checker")
    definition = order_saga(ledger, Journal(db, "checker"), 0)
    problems = []
    for state in sagas:
        problems += invariant_violations(state, definition, await ledger.effects(state.saga_id))
    assert not problems, "\n".join(problems)


async def test_finishes_every_saga_consistently_when_the_worker_is_killed_mid_flight(
    mongo_url: str, db_name: str, mongo_db: Db, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    sagas = mongo_db["sagas"]
    options = ("--count", "60", "--interval-ms", "5", "--lease", "1")
    worker = spawn_worker("start", mongo_url, db_name, "doomed", log, *options)

    async def some_done_some_in_flight() -> bool:
        assert worker.poll() is None, tail(log)
        finished = await sagas.count_documents({"status": {"$in": FINAL}})
        in_flight = await sagas.count_documents({"status": {"$in": ACTIVE}})
        return finished >= 20 and in_flight >= 8

    try:
        await eventually(
            some_done_some_in_flight, timeout=30, what="some sagas finished and others are in flight"
        )
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    in_flight_at_kill = await sagas.count_documents({"status": {"$in": ACTIVE}})

    store = MongoSagaStore(sagas)
    rescuer = SagaEngine(
        store,
        [order_saga(MongoEffectLedger(mongo_db, "rescuer"), Journal(mongo_db, "rescuer"), 0.005)],
        worker_id="rescuer",
        lease_seconds=1,
        observers=[],
    )
    try:

        async def nothing_left() -> bool:
            await rescuer.recover_once()
            return await sagas.count_documents({"status": {"$nin": FINAL}}) == 0

        await eventually(nothing_left, timeout=30, what="every saga is finished")
    finally:
        await rescuer.stop()

    states = await all_sagas(store)
    statuses = {state.status for state in states}
    recovered = [s for s in states if any(interrupted(e) for e in s.history)]
    assert len(states) >= 25  # many sagas took part...
    assert in_flight_at_kill >= 3  # ...and several were cut off mid-flight
    assert statuses == {SagaStatus.COMPLETED, SagaStatus.COMPENSATED}
    assert len(recovered) >= in_flight_at_kill  # every in-flight saga re-ran its interrupted step
    assert {s.lease_owner for s in recovered} == {"rescuer"}
    for state in states:
        expected = SagaStatus.COMPENSATED if "fail_at" in state.input else SagaStatus.COMPLETED
        assert state.status is expected, state.saga_id
        assert state.input == saga_input(state.input["n"])
    await check_invariants(mongo_db, states)


async def seed_unfinished(store: MongoSagaStore, count: int) -> None:
    """Sagas as a dead worker leaves them: RUNNING, first step in flight, lease expired."""
    for n in range(count):
        saga_input: dict[str, Any] = {"n": n}
        if n % 4 == 1:
            saga_input["fail_at"] = "ship"
        if n % 8 == 2:
            saga_input |= {"slow_at": "charge", "slow_seconds": 2.5}  # outlasts the 2 s lease
        await store.create(
            SagaState(
                saga_id=f"race-{n:03d}",
                saga_type=SAGA,
                input=saga_input,
                lease_owner="ghost",
                fencing_token=1,
                history=[HistoryEntry(step="reserve", phase=Phase.ACTION, worker="ghost")],
            )
        )


def overlapping_runs(executions: list[dict[str, Any]]) -> list[str]:
    """Executions of the same step by different workers whose time windows overlap."""
    by_step: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for run in executions:
        by_step[(run["saga_id"], run["step"], run["phase"])].append(run)
    problems = []
    for key, runs in by_step.items():
        runs.sort(key=lambda run: run["start_ns"])
        for earlier, later in itertools.pairwise(runs):
            if earlier["worker"] != later["worker"] and later["start_ns"] < earlier["end_ns"]:
                problems.append(f"{key} ran on {earlier['worker']} and {later['worker']} at once")
    return problems


async def test_applies_each_effect_once_when_two_workers_race_to_recover(
    mongo_url: str, db_name: str, mongo_db: Db, tmp_path: Path
) -> None:
    store = MongoSagaStore(mongo_db["sagas"])
    await store.create_indexes()
    await seed_unfinished(store, 40)
    logs = [tmp_path / "racer-1.log", tmp_path / "racer-2.log"]
    options = ("--lease", "2", "--batch", "1", "--poll-ms", "10", "--timeout", "40")

    racers = [
        spawn_worker("recover", mongo_url, db_name, f"racer-{n}", log, *options)
        for n, log in ((1, logs[0]), (2, logs[1]))
    ]
    for racer, log in zip(racers, logs, strict=True):
        await wait_for_exit(racer, 50, log)

    states = await all_sagas(store)
    executions = await mongo_db["executions"].find({}, {"_id": 0}).to_list()
    ledger = MongoEffectLedger(mongo_db, "checker")
    assert len(states) == 40
    assert {s.status for s in states} == {SagaStatus.COMPLETED, SagaStatus.COMPENSATED}
    assert await ledger.duplicates() == 0  # no effect was attempted twice under one key
    assert overlapping_runs(executions) == []
    assert {run["worker"] for run in executions} == {"racer-1", "racer-2"}  # both took part
    runs_per_step: dict[tuple[str, str, str], int] = defaultdict(int)
    for run in executions:
        runs_per_step[(run["saga_id"], run["step"], run["phase"])] += 1
    assert set(runs_per_step.values()) == {1}  # no step ran twice, so no lease was lost
    await check_invariants(mongo_db, states)
