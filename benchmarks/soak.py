"""Soak: minutes of mixed orders while faults come and go; memory watched, the books audited at the end.

Run from the repository root (not in CI)::

    .venv/bin/python benchmarks/soak.py --minutes 1 [--topology monolith|split] [--seed N] [--no-kills]

It starts its own embedded database in a temporary folder and the shop on it — five services
(split, the default; the order service reaches each participant through a fault proxy) or one
app (monolith) — with the client's orders going through a fault proxy too. A load generator
(tests/chaos/load.py) places orders, 84 % that should complete and the rest over the three
failure branches, while a seeded random schedule injects one fault at a time for a few seconds:

- kill -9 a service (any of them, the order service included) and start it again on its port;
- freeze a service (SIGSTOP, then SIGCONT): it answers everything at once when it thaws;
- between the order service and a participant: slow past the 1 s HTTP timeout, 503, dropped
  connections, answers lost after the work was done;
- between the client and the order service: 503, dropped connections, lost answers (the
  client then retries with the same Idempotency-Key, and must get the same order back).

Every `--every` seconds it prints the orders accepted per second over the interval, the totals,
and the resident memory (VmRSS) of every process. At the end it stops the load, retries what got
no answer, waits for every order to be final, runs the consistency audit and prints its summary
and each process's memory growth (a service killed and restarted is a new process: its growth is
counted from its last start; `--no-kills` keeps every process up for the whole run). The exit
status is 1 if the audit or any check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from ecommerce_saga.db.embedded import EmbeddedMongo

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the chaos harness lives in tests/chaos

from tests.chaos.load import (  # noqa: E402
    SPLIT_SETTINGS,
    Catalog,
    LoadGenerator,
    check_outcomes,
    retry_unanswered,
    settle,
    settled_audit,
    stock_lost,
)
from tests.chaos.proxy import (  # noqa: E402
    BLACKHOLE_RESPONSE,
    DROP,
    FAIL_503,
    PASS,
    FaultProxy,
    Mode,
    proxied_split,
    slow,
)
from tests.e2e.conftest import Shop, start_app  # noqa: E402

PRODUCTS_PER_MINUTE = 30
"""Products to create per minute of soak, so that the stock (400 units each) outlasts ~120 orders/s."""


@dataclass
class Soak:
    """The shop under soak, the proxies that inject faults into it, and what was seen."""

    shop: Shop
    front: FaultProxy
    proxies: dict[str, FaultProxy]
    embedded: EmbeddedMongo
    chance: random.Random
    fault: str = "-"
    stopping: bool = False
    """Set when the load generator died (a check failed): the faults stop early."""
    faults: Counter[str] = field(default_factory=Counter)
    restarts: Counter[str] = field(default_factory=Counter)
    rss: dict[tuple[str, int], list[int]] = field(default_factory=dict)
    """VmRSS samples in KiB, by (process name, pid): a restarted service is a new process."""

    def processes(self) -> dict[str, int | None]:
        """The pid of every process: each service (None while it is down) and the database."""
        pids: dict[str, int | None] = {
            name: app.process.pid if app.process.poll() is None else None
            for name, app in self.shop.apps.items()
        }
        pids["database"] = self.embedded.process.pid if self.embedded.process else None
        return pids

    def sample_rss(self) -> dict[str, int | None]:
        """Read every process's VmRSS now (KiB) and keep it."""
        sample = {name: vm_rss(pid) if pid else None for name, pid in self.processes().items()}
        for name, kib in sample.items():
            pid = self.processes()[name]
            if kib is not None and pid is not None:
                self.rss.setdefault((name, pid), []).append(kib)
        return sample


def vm_rss(pid: int) -> int | None:
    """The resident memory of `pid` in KiB, from /proc/<pid>/status (None if it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    line = next((line for line in status.splitlines() if line.startswith("VmRSS:")), None)
    return int(line.split()[1]) if line else None


# --- faults: each one is applied for `seconds`, then healed


async def kill(soak: Soak, name: str, seconds: float) -> None:
    """SIGKILL a service, leave it down `seconds`, start it again on the same port and database."""
    app = soak.shop.apps[name]
    app.process.kill()
    await asyncio.to_thread(app.process.wait, 10)
    await asyncio.sleep(seconds)
    soak.shop.apps[name] = await asyncio.to_thread(app.restart)
    soak.restarts[name] += 1


async def freeze(soak: Soak, name: str, seconds: float) -> None:
    """SIGSTOP a service for `seconds`: its callers time out, then it answers everything at once."""
    pid = soak.shop.apps[name].process.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        await asyncio.sleep(seconds)
    finally:
        os.kill(pid, signal.SIGCONT)


async def proxy_fault(proxy: FaultProxy, mode: Mode, seconds: float) -> None:
    """Put `proxy` in `mode` for `seconds`."""
    proxy.mode = mode
    try:
        await asyncio.sleep(seconds)
    finally:
        proxy.mode = PASS


Fault = Callable[[float], Awaitable[None]]


def catalogue(soak: Soak, kills: bool = True) -> list[tuple[str, Fault]]:
    """Every fault the schedule draws from, by name."""
    faults: list[tuple[str, Fault]] = []
    for name in soak.shop.apps:
        if kills:
            faults.append((f"kill {name}", partial(kill, soak, name)))
        faults.append((f"freeze {name}", partial(freeze, soak, name)))
    for module, proxy in soak.proxies.items():
        for mode in (slow(1.5), FAIL_503, DROP, BLACKHOLE_RESPONSE):
            faults.append((f"{mode.name} order->{module}", partial(proxy_fault, proxy, mode)))
    for mode in (FAIL_503, DROP, BLACKHOLE_RESPONSE):
        faults.append((f"{mode.name} client->order", partial(proxy_fault, soak.front, mode)))
    return faults


async def inject_faults(soak: Soak, until: float, kills: bool) -> None:
    """One fault at a time, drawn at random, for 2-4 s, with 1-3 s of calm in between."""
    faults = catalogue(soak, kills)
    while time.monotonic() < until and not soak.stopping:
        await asyncio.sleep(soak.chance.uniform(1.0, 3.0))
        name, apply = soak.chance.choice(faults)
        soak.fault = name
        soak.faults[name] += 1
        try:
            await apply(soak.chance.uniform(2.0, 4.0))
        finally:
            soak.fault = "-"


# --- reporting


def mib(kib: int | None) -> str:
    """KiB as MiB, or '-' for a process that is down."""
    return "-" if kib is None else f"{kib / 1024:.0f}"


async def report_every(
    soak: Soak, load: LoadGenerator, running: asyncio.Task[None], every: float, until: float
) -> None:
    """Print a progress line every `every` seconds until `until` (or until the load dies)."""
    start = last_time = time.monotonic()
    last_accepted = 0
    soak.sample_rss()
    while time.monotonic() < until:
        await asyncio.sleep(min(every, max(until - time.monotonic(), 0.1)))
        if running.done():  # a check in the load generator failed: stop, and let it raise
            soak.stopping = True
            return
        now, accepted = time.monotonic(), load.answered
        refused = sum(1 for request in load.sent if request.status == 503)
        unanswered = sum(1 for request in load.sent if request.status is None) - load.concurrency
        memory = " ".join(f"{name} {mib(kib)}" for name, kib in soak.sample_rss().items())
        print(
            f"[{now - start:5.0f}s] {(accepted - last_accepted) / (now - last_time):5.1f} orders/s | "
            f"accepted {accepted} | not answered {refused + max(unanswered, 0)} "
            f"(503 {refused}, none {max(unanswered, 0)}) | fault {soak.fault} | RSS MiB: {memory}",
            flush=True,
        )
        last_time, last_accepted = now, accepted


def memory_growth(soak: Soak) -> list[str]:
    """One line per process: its first and last RSS (a restarted service: since its last start)."""
    lines = []
    for name, pid in soak.processes().items():
        samples = soak.rss.get((name, pid or 0), [])
        if not samples:
            lines.append(f"  {name:<12} not running")
            continue
        first, last = samples[0], samples[-1]
        line = (
            f"  {name:<12} {first / 1024:7.1f} -> {last / 1024:7.1f} MiB "
            f"({(last - first) / 1024:+.1f} MiB, {len(samples)} samples)"
        )
        if soak.restarts[name]:
            line += f"; restarted {soak.restarts[name]}x, so since its last start"
        lines.append(line)
    return lines


# --- the run


async def soak_for(soak: Soak, load: LoadGenerator, seconds: float, every: float, kills: bool) -> None:
    """Load and faults for `seconds`, with a progress line every `every` seconds."""
    until = time.monotonic() + seconds
    running = asyncio.create_task(load.run())
    try:
        await asyncio.gather(
            inject_faults(soak, until, kills), report_every(soak, load, running, every, until)
        )
    finally:
        load.stop()
        await running


def finish(soak: Soak, load: LoadGenerator, catalog: Catalog, mongo_url: str) -> bool:
    """Retry, settle, check and audit; print the outcome. True if every check passed."""
    started = time.monotonic()
    print(
        f"\nstopped: {len(load.sent)} requests sent, {load.answered} answered; retrying the rest", flush=True
    )
    try:
        with soak.shop.client() as client:
            patience = 300 + 0.05 * len(load.sent)  # long soaks leave many requests to replay
            retry_unanswered(client, load.sent, deadline_seconds=patience)
            orders = settle(client, load.sent, timeout=patience)
        statuses = check_outcomes(load.sent, orders)
    except AssertionError as failure:
        print(f"CHECK FAILED: {failure}")
        return False
    print(f"settled in {time.monotonic() - started:.0f}s: {len(orders)} orders, {dict(statuses)}")
    report = asyncio.run(settled_audit(mongo_url, soak.shop.apps["order"].db_name, timeout=300))
    print(report.summary())
    lost = stock_lost(report, catalog)
    print("stock conserved" if not lost else f"STOCK NOT CONSERVED: {lost[:10]}")
    told = {request.order_id for request in load.sent}
    unknown = report.counts["orders"] - len(told)  # e.g. a key that made two orders: one never told
    print(f"orders the client was never told about: {unknown}")
    soak.sample_rss()  # once more, after the retries and the settling
    print("memory growth (VmRSS):", *memory_growth(soak), sep="\n")
    print("faults injected:", dict(sorted(soak.faults.items())))
    return report.ok and not lost and unknown == 0


@contextlib.contextmanager
def shop_on(topology: str, mongo_url: str, work: Path) -> Iterator[tuple[Shop, dict[str, FaultProxy]]]:
    """The shop in `topology`: the split one with a proxy before each participant, or one app."""
    if topology == "split":
        with proxied_split(mongo_url, work, **SPLIT_SETTINGS) as (shop, proxies):
            yield shop, proxies
        return
    app = start_app(mongo_url, work, None, None, **SPLIT_SETTINGS)
    shop = Shop.monolith(app)
    try:
        yield shop, {}
    finally:
        for running in shop.apps.values():  # the one started last, after the kills
            running.stop()


def run(args: argparse.Namespace, work: Path) -> bool:
    """Start everything, soak, finish; stop everything whatever happens."""
    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    print(f"soak: {args.minutes:g} min, {args.topology}, seed {seed}, work folder {work}", flush=True)
    with contextlib.ExitStack() as stack:
        embedded = EmbeddedMongo(data_dir=work / "db")
        embedded.start()
        stack.callback(embedded.stop)
        shop, proxies = stack.enter_context(shop_on(args.topology, embedded.url, work))
        front = stack.enter_context(FaultProxy(shop.url))
        with shop.client() as client:
            catalog = Catalog.create(client, products=max(3, math.ceil(args.minutes * PRODUCTS_PER_MINUTE)))
        through_front = Shop(shop.topology, {**shop.urls, "order": front.url}, shop.apps)
        load = LoadGenerator(through_front.async_client, catalog, concurrency=args.concurrency)
        soak = Soak(shop, front, proxies, embedded, random.Random(seed))
        try:
            asyncio.run(soak_for(soak, load, args.minutes * 60, args.every, not args.no_kills))
        except AssertionError as failure:  # the shop answered what it must never answer
            print(f"CHECK FAILED during the load: {failure!r}")
            return False
        return finish(soak, load, catalog, embedded.url)


def main() -> int:
    """Parse the arguments and soak; 0 if the books balanced, 1 if not."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10, help="how long to load (default 10)")
    parser.add_argument("--topology", choices=["split", "monolith"], default="split")
    parser.add_argument("--every", type=float, default=10, help="seconds between progress lines (default 10)")
    parser.add_argument("--concurrency", type=int, default=6, help="concurrent clients (default 6)")
    parser.add_argument("--seed", type=int, default=None, help="the fault schedule's seed (default: random)")
    parser.add_argument(
        "--no-kills",
        action="store_true",
        help="every fault but kill -9, so that each process's memory growth spans the whole run",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, database)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="soak-"))
    ok = False
    try:
        ok = run(args, work)
    finally:
        if args.keep or not ok:
            print(f"logs and database kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print("SOAK PASSED" if ok else "SOAK FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
