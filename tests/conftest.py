"""Shared fixtures: one MongoDB for the whole run — the embedded server, or SHOP_MONGODB_URL."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from ecommerce_saga.db.embedded import EmbeddedMongo

PROCESS_FOLDERS = frozenset({"e2e", "chaos"})
"""Test folders whose every test starts the app as a process."""
CHAOS_TIMEOUT_SECONDS = 900
"""The hang guard of a chaos test (pytest-timeout; the others have pyproject's 300 s). A chaos test
restarts processes many times under load; on a busy machine that takes minutes, not a hang."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark `e2e` every test that starts a process: the app (e2e, chaos) or the database (`mongo_url`).

    Marked by rule rather than by hand, so that no new test can forget it; `make test-fast` runs
    the rest (`-m "not e2e"`). Chaos tests get a longer hang guard (CHAOS_TIMEOUT_SECONDS).
    """
    for item in items:
        folder = Path(str(item.path)).parent.name
        if folder in PROCESS_FOLDERS or "mongo_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.e2e)
        if folder == "chaos":
            item.add_marker(pytest.mark.timeout(CHAOS_TIMEOUT_SECONDS))


def process_is_alive(pid: int) -> bool:
    """True if a process with `pid` exists (to check that nothing is left behind)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


STUBBORN_TASK_SECONDS = 10.0
"""How long the run's end waits for the tasks still running on its event loop once cancelled."""


@pytest_asyncio.fixture(scope="session", autouse=True, loop_scope="session")
async def _no_task_outlives_the_run(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """End the run with an error, not a hang, when a test left a task that ignores cancellation.

    The tests share one event loop (pyproject: loop scope "session"). Closing it cancels every
    task still running and waits for them without a bound, outside any test's pytest-timeout: a
    task a test left behind that swallows its cancellation (a failed assertion before the test
    released it, say) kept the suite waiting until the job's own limit. This fixture is set up
    first and torn down last, just before the loop closes: it cancels what is left, waits
    `STUBBORN_TASK_SECONDS`, and if a task is still running, prints its stack and ends the process
    (exit status 3; pytest's summary is lost with it, the test that failed shows as ``F``).
    """
    yield
    me = asyncio.current_task()
    left = [task for task in asyncio.all_tasks() if task is not me and not task.done()]
    if not left:
        return
    for task in left:
        task.cancel()
    _, stubborn = await asyncio.wait(left, timeout=STUBBORN_TASK_SECONDS)
    if stubborn:
        capture = request.config.pluginmanager.getplugin("capturemanager")
        if capture is not None:  # to the terminal, not to the last test's captured output
            capture.suspend_global_capture(in_=True)
        seconds = f"{STUBBORN_TASK_SECONDS:.0f} s"
        sys.stderr.write(f"\n{len(stubborn)} task(s) still running {seconds} after the run cancelled them:\n")
        for task in stubborn:
            task.print_stack(file=sys.stderr)
        sys.stderr.flush()
        os._exit(3)


@pytest.fixture(scope="session")
def mongo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A MongoDB URL: SHOP_MONGODB_URL if set, else an embedded server started for the run."""
    configured = os.environ.get("SHOP_MONGODB_URL")
    if configured:
        yield configured
        return
    server = EmbeddedMongo(data_dir=Path(tmp_path_factory.mktemp("mongo")))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def db_name() -> str:
    """A database name of the test's own, so tests never see each other's data."""
    return f"test_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def mongo_db(mongo_url: str, db_name: str) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    """A fresh database, dropped afterwards."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
    try:
        yield client[db_name]
    finally:
        await client.drop_database(db_name)
        await client.close()


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    """Spans a test finished (see `tests/spans.py`)."""
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    """A tracer provider whose spans go to `exporter`."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()
