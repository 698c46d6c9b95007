"""kill -9 the whole shop, several times, while a client keeps placing orders.

The app runs with a short saga lease. A load generator places orders over HTTP (80 % that
complete, 20 % over the three failure branches) while the app is SIGKILLed at random moments and
started again on the same database and port, for several rounds. Afterwards the client retries
what got no answer, with the same keys; every order it was ever told about must exist and be
final, replays must return the same orders, and the audit must pass.
"""

from __future__ import annotations

import asyncio
import random
import signal
from pathlib import Path

from tests.chaos.load import (
    SETTINGS,
    Catalog,
    LoadGenerator,
    answered_more,
    audit_books,
    chaos_seed,
    check_outcomes,
    retry_unanswered,
    sagas_in_flight,
    settle,
)
from tests.e2e.conftest import Shop, start_app

ROUNDS = 3


async def _kill_rounds(shop: Shop, load: LoadGenerator, chance: random.Random, mongo_url: str) -> list[int]:
    """Kill and restart the app ROUNDS times at random moments; return the answers seen at each kill.

    Each kill waits first for a random moment, then for the conditions that make it a test: the
    (restarted) shop has answered new orders since the last kill, and sagas are in flight. A timer
    alone could fire, on a loaded machine, before the restarted app has taken a single order.
    """
    running = asyncio.create_task(load.run())
    seen_at_kill: list[int] = []
    try:
        for _ in range(ROUNDS):
            await asyncio.sleep(chance.uniform(0.2, 1.0))
            app = shop.apps["order"]
            await answered_more(load, than=seen_at_kill[-1] if seen_at_kill else 0)
            await sagas_in_flight(mongo_url, app.db_name)
            app.process.send_signal(signal.SIGKILL)
            seen_at_kill.append(load.answered)
            await asyncio.to_thread(app.process.wait, 10)
            await asyncio.sleep(chance.uniform(0, 0.5))  # the client keeps knocking on a dead port
            shop.apps["order"] = await asyncio.to_thread(app.restart)
        await answered_more(load, than=seen_at_kill[-1])  # the last restart takes orders again
    finally:
        load.stop()
        await running
    return seen_at_kill


def test_no_accepted_order_is_lost_when_the_shop_is_killed_again_and_again(
    mongo_url: str, tmp_path: Path
) -> None:
    chance = random.Random(chaos_seed())
    app = start_app(mongo_url, tmp_path, **SETTINGS)
    shop = Shop.monolith(app)
    try:
        with shop.client() as client:
            catalog = Catalog.create(client)
        load = LoadGenerator(shop.async_client, catalog, concurrency=6)

        seen_at_kill = asyncio.run(_kill_rounds(shop, load, chance, mongo_url))

        with shop.client() as client:
            retry_unanswered(client, load.sent)
            orders = settle(client, load.sent)
        statuses = check_outcomes(load.sent, orders)
        asyncio.run(audit_books(mongo_url, shop.apps["order"].db_name, catalog))
        interrupted = [o for o in orders if any(h["error_code"] == "saga.interrupted" for h in o["history"])]
        print(f"{len(load.sent)} requests, {statuses}, answers at each kill {seen_at_kill}, "  # noqa: T201
              f"{len(interrupted)} sagas interrupted")  # fmt: skip
        assert interrupted, "no kill landed while a saga was in flight"
    finally:
        shop.apps["order"].stop()
