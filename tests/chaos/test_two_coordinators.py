"""Two order services on one database: when one is killed, the other finishes its sagas.

Both processes run the saga engine on the same `sagas` collection, each under its own worker
id, and both take orders. Coordinator A is SIGKILLed mid-load and never comes back; B must claim
A's sagas once their leases expire and finish them. The saga histories then show that no saga
ran twice at once: no step succeeded twice, and the attempts of different workers never overlap
in time (the lease and its fencing token let only one worker drive a saga at a time).
"""

from __future__ import annotations

import asyncio
import random
import signal
from pathlib import Path
from typing import Any

from tests.chaos.load import (
    SETTINGS,
    Catalog,
    LoadGenerator,
    answered_more,
    audit_books,
    chaos_seed,
    check_outcomes,
    never_twice_at_once,
    retry_unanswered,
    saga_documents,
    sagas_in_flight,
    settle,
)
from tests.e2e.conftest import LiveApp, Shop, start_app


async def _load_both_then_kill_a(
    a: Shop, b: Shop, catalog: Catalog, chance: random.Random, mongo_url: str
) -> list[LoadGenerator]:
    loads = [LoadGenerator(shop.async_client, catalog, concurrency=4) for shop in (a, b)]
    running = [asyncio.create_task(load.run()) for load in loads]
    try:
        await asyncio.sleep(chance.uniform(0.5, 1.5))
        # a random moment, and then the condition that makes the kill a test: A holds sagas
        await sagas_in_flight(mongo_url, a.apps["order"].db_name, owner="coordinator-a")
        a.apps["order"].process.send_signal(signal.SIGKILL)
        answered = loads[1].answered
        await asyncio.sleep(2.0)  # B keeps taking orders while A's leases run out ...
        await answered_more(loads[1], than=answered)  # ... and answers some on a loaded machine too
    finally:
        for load in loads:
            load.stop()
        await asyncio.gather(*running)
    return loads


def _interrupted_on_a(saga: dict[str, Any]) -> bool:
    return any(
        h.get("worker") == "coordinator-a" and (h.get("error") or {}).get("code") == "saga.interrupted"
        for h in saga["history"]
    )


def test_the_surviving_coordinator_finishes_the_sagas_of_the_killed_one(
    mongo_url: str, tmp_path: Path
) -> None:
    chance = random.Random(chaos_seed())
    app_a: LiveApp = start_app(mongo_url, tmp_path, SHOP_WORKER_ID="coordinator-a", **SETTINGS)
    app_b = start_app(mongo_url, tmp_path, db_name=app_a.db_name, SHOP_WORKER_ID="coordinator-b", **SETTINGS)
    a = Shop.monolith(app_a)
    b = Shop.monolith(app_b)
    try:
        with b.client() as client:
            catalog = Catalog.create(client)

        loads = asyncio.run(_load_both_then_kill_a(a, b, catalog, chance, mongo_url))

        sent = [request for load in loads for request in load.sent]
        with b.client() as client:  # A is gone: its customers retry against B, with the same keys
            retry_unanswered(client, sent)
            orders = settle(client, sent)
        check_outcomes(sent, orders)
        asyncio.run(audit_books(mongo_url, app_a.db_name, catalog))
        sagas = asyncio.run(saga_documents(mongo_url, app_a.db_name))
        for saga in sagas:
            never_twice_at_once(saga)
        assert any(h.get("worker") == "coordinator-a" for saga in sagas for h in saga["history"]), (
            "A ran nothing"
        )
        taken_over = [saga for saga in sagas if _interrupted_on_a(saga)]
        assert taken_over, "the kill landed when A had no saga in flight"
        for saga in taken_over:  # B closed A's open attempt and drove the saga on to the end
            assert saga["history"][-1]["worker"] == "coordinator-b", saga["_id"]
    finally:
        app_a.stop()
        app_b.stop()
