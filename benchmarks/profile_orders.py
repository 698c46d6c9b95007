"""Profile the order path: sequential orders placed in process, as `orders_bench.py` counts commands.

Starts the embedded database, builds the app in this process (the database stays a separate
process), places a few warm-up orders, then profiles `--orders` more, one after the other, with
pyinstrument (`pip install -e '.[bench]'`), and prints its call tree: wall time, so the waits for
the database show next to the CPU spent here.

    .venv/bin/python benchmarks/profile_orders.py [--orders 100]

It measures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from pyinstrument import Profiler

from ecommerce_saga.db.embedded import EmbeddedMongo
from orders_bench import ORDER, in_process_shop


async def profile(mongo_url: str, orders: int) -> Profiler:
    """Place `orders` orders in process under the profiler; return it."""
    profiler = Profiler(interval=0.0005, async_mode="enabled")
    async with in_process_shop(mongo_url, "prof") as client:
        for _ in range(5):  # warm-up
            await client.post("/api/orders", json=ORDER)
        await asyncio.sleep(0.5)
        profiler.start()
        for _ in range(orders):
            response = await client.post("/api/orders", json=ORDER)
            assert response.json()["status"] == "COMPLETED", response.text
        await asyncio.sleep(0.3)  # the last confirmation
        profiler.stop()
    return profiler


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=100)
    args = parser.parse_args()
    embedded = EmbeddedMongo(data_dir=Path(tempfile.mkdtemp(prefix="profile-orders-")) / "db")
    embedded.start()
    try:
        profiler = asyncio.run(profile(embedded.url, args.orders))
    finally:
        embedded.stop()
    print(f"{args.orders} orders, one after the other\n")
    print(profiler.output_text(unicode=False, color=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
