"""Load and scaling benchmark: the shop as one process, two workers and five services, under an order mix.

    .venv/bin/python benchmarks/load_bench.py [--seconds 10] [--concurrency 1 16 64]
        [--topologies monolith monolith-2w split] [--url mongodb://...] [--chart docs/images/load-bench.png]
        [--profile DIR]

Topologies, all on one database:

- ``monolith``: ``ecommerce-saga serve``, one uvicorn worker;
- ``monolith-2w``: ``ecommerce-saga serve --workers 2``;
- ``split``: the five modules as five ``serve`` processes (``SHOP_MODULES``), load sent to the order one.

wrk posts a fixed mix: of every ten orders eight complete and two fail, the three failure branches
in rotation (a product with no stock, a declined card, a country shipping does not serve). Each
concurrency level gets a 2 s warm-up, then the measured run; after it the script waits for every
saga to finish and counts the run's orders by status in the database. CPU per order is the
topology's processes' (all of them, worker children included) and the embedded database's, from
/proc, divided by the orders the run placed. In the same run, the hand-rolled baseline of
``orders_bench.py`` (PyMongo writes only, every order succeeds) gives the ceiling at each level.

The machine, the numbers and the observed outcomes go to stdout as markdown; a chart (throughput
and latency against concurrency) is saved when matplotlib is installed (``pip install -e '.[bench]'``).
With ``--profile DIR`` every process of the topology is sampled by py-spy (``pip install py-spy``;
it needs ptrace rights) during each measured run, and what each process spent its samples on is
summed by part of the request (see ``summarize_profile``) into ``DIR/summary.md``; the raw
collapsed stacks stay in DIR. Sampling costs CPU: compare profiled runs only with profiled runs.

It measures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from pymongo import MongoClient
from pymongo.database import Database

import spy
from ecommerce_saga.db.embedded import free_port
from ecommerce_saga.modules.order.contract import FailureReason, OrderStatus
from ecommerce_saga.saga import SagaStatus
from ecommerce_saga.settings import MODULE_NAMES
from orders_bench import (
    ORDER,
    PRODUCT,
    TOKEN,
    WRK_DONE,
    WrkResult,
    baseline,
    cpu_seconds,
    customer_token,
    database,
    launch_app,
    lua_string,
    machine,
    run_wrk,
    start_app,
    stop_app,
    wait_ready,
)

TOPOLOGIES = {
    "monolith": "monolith, 1 worker",
    "monolith-2w": "monolith, 2 workers",
    "split": "split, 5 processes",
}
WARMUP_SECONDS = 2
CHART = Path(__file__).resolve().parent.parent / "docs" / "images" / "load-bench.png"
SOLD_OUT = {**PRODUCT, "product_id": "bench-sold-out", "quantity": 0}
SOLD_OUT_ITEMS = [{"product_id": SOLD_OUT["product_id"], "quantity": 1}]
DECLINED = "4000000000000002"
UNSERVED_ADDRESS = {**ORDER["shipping_address"], "country": "BR"}  # not a default SHOP_SHIPPING_COUNTRIES
FAILURES: dict[FailureReason, dict[str, Any]] = {
    FailureReason.INVENTORY_UNAVAILABLE: {**ORDER, "items": SOLD_OUT_ITEMS},
    FailureReason.PAYMENT_DECLINED: {**ORDER, "payment": {**ORDER["payment"], "card_number": DECLINED}},
    FailureReason.SHIPPING_UNAVAILABLE: {**ORDER, "shipping_address": UNSERVED_ADDRESS},
}
"""One order body per failure branch: nothing in stock, a declined card, a country shipping does not serve."""
ACTIVE_SAGA = [str(status) for status in SagaStatus if status.is_active]
MIX_SCRIPT = """
-- The order mix, cycled through in order; "@CUSTOMER@" becomes the script's first argument, and
-- the second is that customer's access token.
local bodies = {%s}
local requests, last = {}, 0
counts, samples = {}, {}

function init(args)
  local customer = args[1] or "load-bench"
  for i, body in ipairs(bodies) do
    local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. args[2]}
    requests[i] = wrk.format("POST", nil, headers, (body:gsub("@CUSTOMER@", customer)))
  end
end

function request()
  last = last %% #requests + 1
  return requests[last]
end

-- Counts answers as "201 COMPLETED", "201 FAILED PAYMENT_DECLINED", "202 PENDING", "503", ...
function response(status, headers, body)
  local key = tostring(status)
  if status < 300 then
    key = key .. " " .. (body:match('"status":"(%%u+)"') or "?")
    local reason = body:match('"failure_reason":"([%%u_]+)"')
    if reason then key = key .. " " .. reason end
  elseif #samples < 3 then
    samples[#samples + 1] = key .. " " .. body:sub(1, 400):gsub("%%s+", " ")
  end
  counts[key] = (counts[key] or 0) + 1
end
"""


def order_mix() -> list[dict[str, Any]]:
    """Thirty order bodies: each ten are eight that complete and two that fail, failures in rotation."""
    failures = list(FAILURES.values())
    bodies = []
    for cycle in range(len(failures)):
        bodies += [ORDER] * 8 + [failures[(2 * cycle) % 3], failures[(2 * cycle + 1) % 3]]
    return [{**body, "customer_id": "@CUSTOMER@"} for body in bodies]


def mix_script() -> str:
    """The wrk script that posts `order_mix()` and counts the answers."""
    bodies = ", ".join(lua_string(json.dumps(body)) for body in order_mix())
    return MIX_SCRIPT % bodies + WRK_DONE


def process_tree(root: int) -> list[int]:
    """`root` and all its descendants, found by scanning /proc for parent pids."""
    children: defaultdict[int, list[int]] = defaultdict(list)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # the process has gone
        children[parent].append(int(stat.parent.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def tree_cpu_seconds(roots: list[int]) -> float:
    """CPU time used so far by the processes `roots` and their live descendants."""
    total = 0.0
    for pid in (pid for root in roots for pid in process_tree(root)):
        try:
            total += cpu_seconds(pid)
        except OSError:
            continue  # exited between the scan and the read
    return total


@dataclass
class Deployment:
    """One topology's running processes."""

    order_url: str
    inventory_url: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    """Each process's name (its module in split mode), in the order of `processes`."""

    def cpu_seconds(self) -> float:
        """CPU time of every process of the topology (worker children included)."""
        return tree_cpu_seconds([process.pid for process in self.processes])

    def cpu_seconds_by_process(self) -> dict[str, float]:
        """Each process's CPU time (its worker children included), by name."""
        return {
            name: tree_cpu_seconds([process.pid])
            for name, process in zip(self.names, self.processes, strict=True)
        }

    def stop(self) -> None:
        """Stop every process."""
        for process in self.processes:
            stop_app(process)


def start_topology(name: str, mongo_url: str, db: str, work: Path) -> Deployment:
    """Start `name` on database `db` and wait until every process is ready."""
    if name != "split":
        process, url = start_app(mongo_url, db, work / f"{name}.log", workers=2 if name.endswith("2w") else 1)
        return Deployment(url, url, [process], [name])
    urls = {module: f"http://127.0.0.1:{free_port()}" for module in MODULE_NAMES}
    deployment = Deployment(urls["order"], urls["inventory"])
    try:
        for module in MODULE_NAMES:  # all five start at once, then each is waited for
            others = {f"SHOP_{other.upper()}_URL": urls[other] for other in MODULE_NAMES if other != module}
            process, _ = launch_app(
                mongo_url, db, work / f"split-{module}.log", port=httpx.URL(urls[module]).port,
                env={"SHOP_MODULES": module, **others},
            )  # fmt: skip
            deployment.processes.append(process)
            deployment.names.append(module)
        for module, process in zip(MODULE_NAMES, deployment.processes, strict=True):
            wait_ready(urls[module], process, work / f"split-{module}.log")
    except BaseException:
        deployment.stop()
        raise
    return deployment


@dataclass(frozen=True)
class Row:
    """One topology at one concurrency."""

    topology: str
    concurrency: int
    wrk: WrkResult
    outcomes: Counter[str]
    """The run's orders in the database, by "STATUS" or "STATUS REASON"."""
    app_cpu_ms: float
    db_cpu_ms: float | None
    unsettled: int
    """Sagas still running or compensating 60 s after the run."""
    cpu_ms_by_process: dict[str, float] = field(default_factory=dict)
    """CPU per order of each of the topology's processes (split mode: by module)."""

    def answers(self, prefix: str) -> int:
        """wrk's answers whose status code starts with `prefix`."""
        return sum(n for key, n in self.wrk.counts.items() if key.startswith(prefix))

    @property
    def errors(self) -> int:
        """Transport errors and 5xx answers (business failures are 201 FAILED, not errors)."""
        return self.wrk.transport_errors + self.answers("5")


def settle(db: Database[dict[str, Any]], timeout: float = 60) -> int:
    """Wait until no saga is running or compensating and no order is PENDING; return how many
    sagas still are active after `timeout`.

    The requests in flight when wrk stops are still served: their orders may be stored a moment
    before their sagas, so both are waited for.
    """
    deadline = time.monotonic() + timeout
    while True:
        active = db.sagas.count_documents({"status": {"$in": ACTIVE_SAGA}})
        pending = db.orders.count_documents({"status": "PENDING"})
        if not (active or pending) or time.monotonic() > deadline:
            return active
        time.sleep(0.1)


def outcomes(db: Database[dict[str, Any]], customer_id: str) -> Counter[str]:
    """`customer_id`'s orders by status and failure reason."""
    found = db.orders.find({"customer_id": customer_id}, {"status": 1, "failure_reason": 1})
    return Counter(" ".join(filter(None, (doc["status"], doc.get("failure_reason")))) for doc in found)


def measure(
    name: str, deployment: Deployment, db: Database[dict[str, Any]], *, db_pid: int | None, concurrency: int,
    seconds: int, script: Path, profile: Path | None = None,
) -> Row:  # fmt: skip
    """Warm up, then load the order service for `seconds` and settle; CPU spans the run and the settling.

    With `profile`, every process is sampled during the measured run (not the settling) and a
    summary is appended to `profile`/summary.md.
    """
    url = f"{deployment.order_url}/api/orders"
    run_wrk(
        url, concurrency, WARMUP_SECONDS, script, "load-bench-warm-up", customer_token("load-bench-warm-up")
    )
    settle(db)
    customer = f"load-bench-c{concurrency}"

    def db_cpu() -> float:
        return tree_cpu_seconds([db_pid]) if db_pid else 0.0

    app_before, db_before = deployment.cpu_seconds(), db_cpu()
    each_before = deployment.cpu_seconds_by_process()
    with contextlib.ExitStack() as stack:
        if profile is not None:
            pids = dict(zip(deployment.names, (p.pid for p in deployment.processes), strict=True))
            files = stack.enter_context(spy.sampling(pids, seconds, profile / f"{name}-c{concurrency}"))
        result = run_wrk(url, concurrency, seconds, script, customer, customer_token(customer))
    if profile is not None:
        answered = sum(result.counts.values())
        with (profile / "summary.md").open("a") as out:
            out.write(spy.summary_table(f"\n{TOPOLOGIES[name]}, c={concurrency}", files, answered) + "\n")
    unsettled = settle(db)
    app_ms, db_ms = (deployment.cpu_seconds() - app_before) * 1000, (db_cpu() - db_before) * 1000
    each_after = deployment.cpu_seconds_by_process()
    placed = outcomes(db, customer)
    count = max(sum(placed.values()), 1)
    by_process = {name: (each_after[name] - each_before[name]) * 1000 / count for name in each_after}
    return Row(
        topology=name, concurrency=concurrency, wrk=result, outcomes=placed, app_cpu_ms=app_ms / count,
        db_cpu_ms=db_ms / count if db_pid else None, unsettled=unsettled, cpu_ms_by_process=by_process,
    )  # fmt: skip


def run_topology(
    name: str, mongo_url: str, *, db_pid: int | None, concurrencies: list[int], seconds: int, work: Path,
    profile: Path | None = None,
) -> list[Row]:  # fmt: skip
    """Every concurrency level against one deployment of `name`, on a database of its own."""
    db_name = f"load_{name.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
    script = work / "mix.lua"
    script.write_text(mix_script())
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_url, tz_aware=True)
    deployment = start_topology(name, mongo_url, db_name, work)
    try:
        admin = {"Authorization": f"Bearer {TOKEN}"}
        for product in (PRODUCT, SOLD_OUT):
            httpx.post(
                f"{deployment.inventory_url}/api/inventory", json=product, headers=admin
            ).raise_for_status()
        rows = []
        for concurrency in concurrencies:
            progress(f"{name}, concurrency {concurrency}")
            rows.append(
                measure(
                    name,
                    deployment,
                    client[db_name],
                    db_pid=db_pid,
                    concurrency=concurrency,
                    seconds=seconds,
                    script=script,
                    profile=profile,
                )
            )
        return rows
    finally:
        deployment.stop()
        client.drop_database(db_name)
        client.close()


def progress(message: str) -> None:
    """A progress line on stderr (stdout carries the results)."""
    sys.stderr.write(f"[{datetime.now(UTC):%H:%M:%S}] {message}\n")


def estimate_seconds(topologies: list[str], concurrencies: int, seconds: int) -> float:
    """Start-up, warm-up, runs and settling, and the baseline's runs: measured on two cores."""
    start = {"monolith": 2, "monolith-2w": 5, "split": 10}
    return sum(start[name] + concurrencies * (WARMUP_SECONDS + seconds + 3) for name in topologies) + (
        concurrencies * (seconds + 1)
    )


def print_load_table(rows: list[Row], baselines: dict[int, dict[str, float]]) -> None:
    """Throughput, latency, errors and CPU per order, against the baseline: markdown."""
    print("| topology | concurrency | orders/s | p50 ms | p95 ms | p99 ms | errors ", end="")
    print("| app CPU ms/order | DB CPU ms/order | baseline orders/s | API / baseline |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        w, ceiling = row.wrk, baselines[row.concurrency]["rps"]
        db_cpu = "n/a" if row.db_cpu_ms is None else f"{row.db_cpu_ms:.1f}"
        print(
            f"| {TOPOLOGIES[row.topology]} | {row.concurrency} | {w.rps:.0f} | {w.p50:.1f} | {w.p95:.1f} "
            f"| {w.p99:.1f} | {row.errors} | {row.app_cpu_ms:.1f} | {db_cpu} | {ceiling:.0f} "
            f"| {w.rps / ceiling:.0%} |"
        )


def print_process_table(rows: list[Row]) -> None:
    """App CPU per order by process, for topologies of more than one process: markdown."""
    split = [row for row in rows if len(row.cpu_ms_by_process) > 1]
    if not split:
        return
    names = list(split[0].cpu_ms_by_process)
    print("\nApp CPU per order by process, ms:\n")
    print("| topology | concurrency | " + " | ".join(names) + " | all |")
    print("|---|---:|" + "---:|" * (len(names) + 1))
    for row in split:
        cells = " | ".join(f"{row.cpu_ms_by_process[name]:.1f}" for name in names)
        print(f"| {TOPOLOGIES[row.topology]} | {row.concurrency} | {cells} | {row.app_cpu_ms:.1f} |")


def print_outcome_table(rows: list[Row]) -> None:
    """The run's orders by outcome (from the database) and wrk's answers by status: markdown, then notes."""
    print("| topology | concurrency | orders | completed | out of stock | declined | no shipping ", end="")
    print("| other | 201 | 202 | 4xx | 5xx | transport errors |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    known = [str(OrderStatus.COMPLETED), *(f"{OrderStatus.FAILED} {reason}" for reason in FAILURES)]
    notes = []
    for row in rows:
        where, total = f"{TOPOLOGIES[row.topology]}, c={row.concurrency}", sum(row.outcomes.values())
        shares = " | ".join(f"{row.outcomes[key] / max(total, 1):.1%}" for key in known)
        other = {key: n for key, n in row.outcomes.items() if key not in known}
        if other or row.unsettled:
            notes.append(f"not settled as expected ({where}): {other}, {row.unsettled} sagas still active")
        notes += [f"error answer ({where}): {sample}" for sample in row.wrk.samples]
        print(
            f"| {TOPOLOGIES[row.topology]} | {row.concurrency} | {total} | {shares} | {sum(other.values())} "
            f"| {row.answers('201')} | {row.answers('202')} | {row.answers('4')} | {row.answers('5')} "
            f"| {row.wrk.transport_errors} |"
        )
    if notes:
        print("\n" + "\n".join(f"- {note}" for note in notes))


def print_baseline_table(baselines: dict[int, dict[str, float]]) -> None:
    """The baseline's numbers: markdown."""
    print("| concurrency | orders/s | p50 ms | p95 ms | p99 ms |\n|---:|---:|---:|---:|---:|")
    for concurrency, base in baselines.items():
        print(
            f"| {concurrency} | {base['rps']:.0f} | {base['p50']:.1f} | {base['p95']:.1f} "
            f"| {base['p99']:.1f} |"
        )


def draw_chart(rows: list[Row], baselines: dict[int, dict[str, float]], path: Path) -> str:
    """Throughput, and p50 (solid) and p99 (dashed) latency, against concurrency: one colour per topology."""
    try:
        import matplotlib  # noqa: PLC0415 - optional (the `bench` extra)

        matplotlib.use("Agg")
        from matplotlib import pyplot  # noqa: PLC0415
        from matplotlib.ticker import NullLocator  # noqa: PLC0415
    except ImportError:
        return f"no chart: matplotlib is missing (.venv/bin/pip install -e '.[bench]'); {path} unchanged"
    figure, (throughput, latency) = pyplot.subplots(1, 2, figsize=(11, 4.4), layout="constrained")
    for name, label in TOPOLOGIES.items():
        xs, runs = (
            [r.concurrency for r in rows if r.topology == name],
            [r.wrk for r in rows if r.topology == name],
        )
        if xs:
            (line,) = throughput.plot(xs, [run.rps for run in runs], marker="o", label=label)
            latency.plot(xs, [run.p50 for run in runs], marker="o", color=line.get_color())
            latency.plot(xs, [run.p99 for run in runs], "--", marker="o", color=line.get_color())
    xs, base = list(baselines), list(baselines.values())
    throughput.plot(xs, [b["rps"] for b in base], "k-", marker="s", label="baseline (PyMongo, no saga)")
    latency.plot(xs, [b["p50"] for b in base], "k-", marker="s")
    latency.plot(xs, [b["p99"] for b in base], "k--", marker="s")
    throughput.set(title="Throughput", ylabel="orders/s")
    latency.set(title="Latency: p50 solid, p99 dashed (log scale)", ylabel="ms", yscale="log")
    for axes in (throughput, latency):
        axes.set(xlabel="concurrency (wrk connections)", xscale="log")
        axes.xaxis.set_minor_locator(NullLocator())  # a log axis labels 2x10^1...: only the levels run
        axes.set_xticks(xs, [str(x) for x in xs])
        axes.grid(alpha=0.3)
    throughput.legend(fontsize=8)
    throughput.set_ylim(bottom=0)
    figure.suptitle(
        f"POST /api/orders, 80 % complete / 20 % fail — {machine()} — {datetime.now(UTC):%Y-%m-%d}",
        fontsize=9,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    return f"chart: {path}"


def parse_args() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10, help="measured seconds per row (default 10)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--topologies", nargs="+", choices=list(TOPOLOGIES), default=list(TOPOLOGIES))
    parser.add_argument("--url", help="a MongoDB URL (default: an embedded server in a temp folder)")
    parser.add_argument("--chart", type=Path, default=CHART, help=f"where the PNG goes (default {CHART})")
    parser.add_argument(
        "--profile", type=Path, help="sample every app process with py-spy during the runs; results in DIR"
    )
    return parser.parse_args()


def measure_all(args: argparse.Namespace, work: Path) -> tuple[list[Row], dict[int, dict[str, float]]]:
    """Every topology at every concurrency, then the baseline at every concurrency, on one database server."""
    rows: list[Row] = []
    baselines = {}
    with database(args.url, work) as (mongo_url, embedded):
        db_pid = embedded.process.pid if embedded is not None and embedded.process else None
        for name in args.topologies:
            rows += run_topology(
                name,
                mongo_url,
                db_pid=db_pid,
                concurrencies=args.concurrency,
                seconds=args.seconds,
                work=work,
                profile=args.profile,
            )
        for concurrency in args.concurrency:
            progress(f"baseline, concurrency {concurrency}")
            db_name = f"load_base_{uuid.uuid4().hex[:8]}"
            baselines[concurrency] = asyncio.run(baseline(mongo_url, db_name, concurrency, args.seconds))
    return rows, baselines


def main() -> int:
    args = parse_args()
    if shutil.which("wrk") is None:
        sys.stderr.write("wrk is needed: apt-get install wrk\n")
        return 2
    work = Path(tempfile.mkdtemp(prefix="load-bench-"))
    estimate = estimate_seconds(args.topologies, len(args.concurrency), args.seconds)
    progress(f"about {estimate / 60:.1f} min on two cores; logs in {work}")
    started = time.monotonic()
    rows, baselines = measure_all(args, work)
    print(f"Machine: {machine()}\nDate: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"Each row: {WARMUP_SECONDS} s warm-up, then {args.seconds} s measured; wrk threads: min(c, 2)\n")
    print_load_table(rows, baselines)
    print_process_table(rows)
    print("\nOutcomes: the run's orders in the database once every saga has finished, and wrk's answers.\n")
    print_outcome_table(rows)
    print("\nBaseline (PyMongo writes only: no API, saga or idempotency; every order succeeds):\n")
    print_baseline_table(baselines)
    print(f"\n{draw_chart(rows, baselines, args.chart)}")
    if args.profile is not None:
        print(f"profiles: {args.profile}/summary.md")
    progress(f"done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
