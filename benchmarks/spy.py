"""Sampling running app processes with py-spy, and where their CPU went, summed by part of the request.

`sampling(...)` starts one ``py-spy record`` per process for the length of a run and leaves each
process's collapsed stacks in a file; `summarize(...)` sums the samples of such files by the part
of the request they were spent in (`PARTS`): each sample is charged to the innermost frame that
belongs to one of them, so "the HTTP client" is time spent inside aiohttp/httpx, not the caller's.

py-spy (``pip install py-spy``) needs ptrace rights on the processes (root, or
``kernel.yama.ptrace_scope=0``). It leaves out threads that sleep (an event loop waiting in
epoll), but counts a thread that is runnable and waiting for a core: on a loaded machine the
samples are more than the CPU time, most of the surplus in "event loop" (a process that has just
woken up, still inside uvloop's C code). Read the parts as shares, not as CPU to the millisecond.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

RATE = 200
"""Samples per second and process: 5 ms apart, a few hundred per order-second on two cores."""

PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("logging", ("/logging/", "ecommerce_saga/observability/logs")),
    ("metrics and tracing", ("prometheus_client/", "opentelemetry/", "ecommerce_saga/observability/")),
    ("FastAPI telemetry hooks", ("fastapi/telemetry/",)),
    ("JSON encode/decode (stdlib json, orjson)", ("/json/", "orjson")),
    ("pydantic (validation, serialization)", ("pydantic/", "pydantic_core/")),
    ("HTTP client (aiohttp, httpx)", ("aiohttp/", "yarl/", "multidict/", "httpx/", "httpcore/", "h11/")),
    ("HTTP server (uvicorn, httptools)", ("uvicorn/", "httptools/")),
    ("FastAPI routing, dependencies", ("fastapi/",)),
    ("Starlette (routing, middleware, responses)", ("starlette/",)),
    ("bearer token, identity", ("ecommerce_saga/identity/", "ecommerce_saga/web/auth", "jwt/")),
    ("MongoDB driver (PyMongo, bson)", ("pymongo/", "bson/")),
    ("Beanie ODM", ("beanie/", "lazy_model/")),
    ("saga engine", ("ecommerce_saga/saga/",)),
    ("shop modules", ("ecommerce_saga/",)),
    ("event loop (asyncio, uvloop)", ("asyncio/", "uvloop/", "anyio/")),
)
"""(name, path fragments) in the order they are tried for a frame; the first match wins."""
OTHER = "other"


@contextlib.contextmanager
def sampling(processes: dict[str, int], seconds: int, out: Path) -> Iterator[dict[str, Path]]:
    """Sample each named pid for `seconds` (one py-spy each); yields the files they write to.

    On exit waits for the samplers (they stop by themselves after `seconds`).
    """
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if spy is None:
        raise RuntimeError("py-spy is needed for --profile: pip install py-spy")
    out.mkdir(parents=True, exist_ok=True)
    files = {name: out / f"{name}.txt" for name in processes}
    samplers = [
        subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(seconds),
                "--rate",
                str(RATE),
                "--format",
                "raw",
                "--nonblocking",
                "--subprocesses",
                "--output",
                str(files[name]),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in processes.items()
    ]
    try:
        yield files
    finally:
        for sampler in samplers:
            try:
                sampler.wait(seconds + 30)
            except subprocess.TimeoutExpired:
                sampler.kill()


def part_of(stack: str) -> str:
    """The part a collapsed stack (``outer;...;inner``) was spent in: its innermost frame's."""
    for frame in reversed(stack.split(";")):
        for name, fragments in PARTS:
            if any(fragment in frame for fragment in fragments):
                return name
    return OTHER


def summarize(path: Path) -> Counter[str]:
    """Samples per part in one py-spy ``--format raw`` file (lines ``stack count``)."""
    parts: Counter[str] = Counter()
    if not path.exists():
        return parts
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            parts[part_of(stack)] += int(count)
    return parts


def summary_table(title: str, files: dict[str, Path], orders: int) -> str:
    """A markdown table: CPU ms per order by part (rows) and process (columns), from sampled files."""
    by_process = {name: summarize(path) for name, path in files.items()}
    names = [name for name, _ in PARTS] + [OTHER]
    per_order = 1000 / RATE / max(orders, 1)
    lines = [
        f"{title}: py-spy, {RATE} samples/s per process; ms of samples per order answered ({orders})\n",
        "| part | " + " | ".join(by_process) + " | all |",
        "|---|" + "---:|" * (len(by_process) + 1),
    ]
    for part in [*names, "all"]:
        counts = [sum(c.values()) if part == "all" else c[part] for c in by_process.values()]
        if sum(counts) == 0:
            continue
        cells = " | ".join(f"{n * per_order:.1f}" for n in counts)
        lines.append(f"| {part} | {cells} | {sum(counts) * per_order:.1f} |")
    return "\n".join(lines) + "\n"
