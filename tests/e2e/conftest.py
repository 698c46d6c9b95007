"""End-to-end fixtures: the app started as a real process, over real HTTP, on the test database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from ecommerce_saga.db.embedded import free_port
from tests.conftest import process_is_alive
from tests.identity_provider import shared_provider

SERVICE_TOKEN = "e2e-service-token"
ADMIN_TOKEN = "e2e-admin-token"


@dataclass
class LiveApp:
    """A running app process."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path
    db_name: str
    metrics_url: str | None = None
    restart_args: dict[str, Any] = field(default_factory=dict)

    def restart(self) -> LiveApp:
        """Start the same service again, on the same port and database."""
        self.stop()
        return _launch(**self.restart_args)

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_app(
    mongo_url: str | None, log_dir: Path, db_name: str | None = None, port: int | None = None, **env: str
) -> LiveApp:
    """Start `ecommerce-saga serve` (on a free port unless given) and wait until /readyz answers 200.

    With `mongo_url` None the app starts its embedded database (in `SHOP_DATA_DIR`).
    """
    return _launch(mongo_url, log_dir, db_name, port, own_group=False, env=env)


def start_app_in_own_group(
    mongo_url: str | None, log_dir: Path, db_name: str | None = None, port: int | None = None, **env: str
) -> LiveApp:
    """`start_app`, in a process group of its own (and so are its restarts): a test can kill the group."""
    return _launch(mongo_url, log_dir, db_name, port, own_group=True, env=env)


def _launch(
    mongo_url: str | None,
    log_dir: Path,
    db_name: str | None,
    port: int | None,
    *,
    own_group: bool,
    env: dict[str, str],
) -> LiveApp:
    port = port or free_port()
    # A restart keeps its management port: a fresh pick could be the API port just freed by a kill.
    env = {"SHOP_METRICS_PORT": str(free_port()), **env}
    db_name = db_name or f"e2e_{uuid.uuid4().hex[:10]}"
    log = log_dir / f"app-{port}-{uuid.uuid4().hex[:6]}.log"
    environment = {
        **{name: value for name, value in os.environ.items() if name != "SHOP_MONGODB_URL"},
        **({"SHOP_MONGODB_URL": mongo_url} if mongo_url else {}),
        "SHOP_MONGODB_DB": db_name,
        "SHOP_SERVICE_TOKEN": SERVICE_TOKEN,
        "SHOP_ADMIN_TOKEN": ADMIN_TOKEN,
        "SHOP_DEMO_CATALOG": "false",
        "SHOP_LOG_FORMAT": "json",
        "SHOP_DATA_DIR": str(log_dir / "data"),  # the development outbox, never the working tree's
        **shared_provider().settings(),
        **env,
    }
    metrics_port = int(environment["SHOP_METRICS_PORT"])
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "ecommerce_saga", "serve", "--port", str(port)],
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=own_group,
        )
    app = LiveApp(
        url=f"http://127.0.0.1:{port}", process=process, log=log, db_name=db_name,
        metrics_url=f"http://127.0.0.1:{metrics_port}/metrics" if metrics_port else None,
        restart_args={"mongo_url": mongo_url, "log_dir": log_dir, "db_name": db_name, "port": port,
                      "own_group": own_group, "env": env},
    )  # fmt: skip
    try:
        wait_ready([app.url], process, timeout=30)
    except RuntimeError as exc:
        app.stop()
        raise RuntimeError(f"{exc}:\n{log.read_text()[-3000:]}") from None
    return app


def wait_ready(urls: list[str], process: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait until every URL's /readyz answers 200; fail if `process` exits first."""
    deadline = time.monotonic() + timeout
    pending = set(urls)
    while pending and time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the process exited with {process.returncode}")
        for url in sorted(pending):
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    pending.discard(url)
            except httpx.HTTPError:
                pass
        if pending:
            time.sleep(0.1)
    if pending:
        raise RuntimeError(f"not ready after {timeout:g}s: {', '.join(sorted(pending))}")


def descendants(pid: int) -> set[int]:
    """Every process below `pid`, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def stop_tree(process: subprocess.Popen[bytes], children: set[int], timeout: float = 20) -> list[int]:
    """SIGTERM `process`, wait for it and for `children` to exit; return those still alive."""
    process.send_signal(signal.SIGTERM)
    process.wait(60)
    deadline = time.monotonic() + timeout
    while any(process_is_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [pid for pid in children if process_is_alive(pid)]


PREFIXES = {
    "/api/orders": "order",
    "/api/inventory": "inventory",
    "/api/payments": "payment",
    "/api/shipping": "shipping",
    "/api/notifications": "notification",
}


@dataclass
class Shop:
    """The shop as a client sees it: one URL per module (the same one in the monolith)."""

    topology: str
    urls: dict[str, str]
    apps: dict[str, LiveApp]

    @classmethod
    def monolith(cls, app: LiveApp) -> Shop:
        """The shop as one process: every module at the app's URL (`apps["order"]` is the app)."""
        return cls("monolith", dict.fromkeys(MODULES, app.url), {"order": app})

    @property
    def url(self) -> str:
        """The order service's URL (the public entry point)."""
        return self.urls["order"]

    def url_for(self, path: str) -> str:
        """Where a request for `path` goes, as an API gateway would route it."""
        for prefix, module in PREFIXES.items():
            if path.startswith(prefix):
                return self.urls[module]
        return self.urls["order"]

    def client(self, token: str | None = ADMIN_TOKEN) -> httpx.Client:
        """A client that sends each request to the module that serves it, as `token`'s bearer.

        The default is the admin token: an operator, who may do anything for any customer (and
        names the customer in an order's body). Customers' own flows pass a customer's token.
        """
        return httpx.Client(
            base_url=self.url, timeout=60, transport=_Routing(self, httpx.HTTPTransport()),
            headers={"Authorization": f"Bearer {token}"} if token else None,
        )  # fmt: skip

    def async_client(self, token: str = ADMIN_TOKEN) -> httpx.AsyncClient:
        """An async client that sends each request to the module that serves it, as `token`'s bearer."""
        return httpx.AsyncClient(
            base_url=self.url, timeout=60, transport=_AsyncRouting(self, httpx.AsyncHTTPTransport()),
            headers={"Authorization": f"Bearer {token}"},
        )  # fmt: skip


def _reroute(shop: Shop, request: httpx.Request) -> None:
    target = httpx.URL(shop.url_for(request.url.path))
    request.url = request.url.copy_with(host=target.host, port=target.port)
    request.headers["Host"] = f"{target.host}:{target.port}"


class _Routing(httpx.BaseTransport):
    def __init__(self, shop: Shop, inner: httpx.BaseTransport) -> None:
        self._shop, self._inner = shop, inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        _reroute(self._shop, request)
        return self._inner.handle_request(request)

    def close(self) -> None:
        self._inner.close()


class _AsyncRouting(httpx.AsyncBaseTransport):
    def __init__(self, shop: Shop, inner: httpx.AsyncBaseTransport) -> None:
        self._shop, self._inner = shop, inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        _reroute(self._shop, request)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


MODULES = ("order", "inventory", "payment", "shipping", "notification")


def start_split(
    mongo_url: str,
    log_dir: Path,
    ports: Mapping[str, int] | None = None,
    url_overrides: Mapping[str, Mapping[str, str]] | None = None,
    **env: str,
) -> Shop:
    """The five modules as five processes on one database, each told where the others are.

    `ports` fixes where some modules listen (free ports otherwise); `url_overrides[a][b]` is the URL
    module `a` uses to reach module `b` instead of `b`'s own (a proxy in between, for instance).
    """
    ports = {module: (ports or {}).get(module) or free_port() for module in MODULES}
    urls = {module: f"http://127.0.0.1:{port}" for module, port in ports.items()}
    db_name = f"split_{uuid.uuid4().hex[:10]}"
    apps: dict[str, LiveApp] = {}
    try:
        for module in MODULES:
            seen = {**urls, **(url_overrides or {}).get(module, {})}
            others = {f"SHOP_{m.upper()}_URL": seen[m] for m in MODULES if m != module}
            apps[module] = start_app(
                mongo_url, log_dir, db_name, ports[module], SHOP_MODULES=module, **others, **env
            )
    except BaseException:
        for app in apps.values():
            app.stop()
        raise
    return Shop("split", urls, apps)


@pytest.fixture(scope="session")
def split_shop(mongo_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    """The shop as five processes."""
    shop = start_split(mongo_url, tmp_path_factory.mktemp("split"))
    try:
        yield shop
    finally:
        for app in shop.apps.values():
            app.stop()


@pytest.fixture(scope="session")
def monolith_shop(live_app: LiveApp) -> Shop:
    """The shop as one process."""
    return Shop.monolith(live_app)


@pytest.fixture(params=["monolith", "split"])
def shop(request: pytest.FixtureRequest) -> Shop:
    """Each shop test runs against both topologies."""
    fixture: Shop = request.getfixturevalue(f"{request.param}_shop")
    return fixture


@pytest.fixture(scope="session")
def live_app(mongo_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    """One app process shared by the end-to-end tests (each test uses its own products and customers)."""
    app = start_app(mongo_url, tmp_path_factory.mktemp("app"))
    try:
        yield app
    finally:
        app.stop()


@pytest.fixture
def client(shop: Shop) -> Iterator[httpx.Client]:
    """An HTTP client for the shop under test (routes each request to the module serving it)."""
    with shop.client() as http:
        yield http


@pytest.fixture
def admin_headers() -> dict[str, str]:
    """Headers carrying the admin token."""
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def service_headers() -> dict[str, str]:
    """Headers carrying the service token."""
    return {"Authorization": f"Bearer {SERVICE_TOKEN}"}
