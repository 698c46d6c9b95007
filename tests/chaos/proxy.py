"""A fault-injecting HTTP proxy on loopback: forwards to one upstream, or slows, fails or loses requests.

A `FaultProxy` runs an asyncio server on its own event loop in a background thread, so a
test (or a benchmark) can switch its mode at any time from any thread with a plain assignment::

    with FaultProxy("http://127.0.0.1:8001") as proxy:   # point a service's SHOP_*_URL at proxy.url
        proxy.mode = slow(1.5)               # hold each request 1.5 s, then forward it anyway
        proxy.mode = FAIL_503                # answer 503 problem+json; the upstream sees nothing
        proxy.mode = DROP                    # close the connection without answering
        proxy.mode = BLACKHOLE_RESPONSE      # forward, read the answer, close without sending it
        proxy.mode = PASS
        assert proxy.counts["blackhole_response"] > 0

Framing — one request per connection: the proxy reads one request (its head, then a body of
`Content-Length` bytes), forwards it with `Connection: close`, relays the upstream's response
(read until the upstream closes) with `Connection: close`, and closes. A keep-alive client
(httpx pools connections) sees the `close` and opens a new connection for its next request, so
the proxy never parses response bodies or tracks requests across a connection. The services'
clients send JSON bodies with `Content-Length`, never chunked ones (httpx chunks only streamed
bodies of unknown length); a chunked request is refused with 501 and counted as `unsupported`.

`counts` tells what was done, for assertions that a fault really happened: per mode, the requests
on which it took effect — `pass` and `blackhole_response` once the upstream answered, `slow` once
held, `fail503` and `drop` at once; `upstream_unreachable` counts the requests that could not be
forwarded (the upstream is down: the client's connection is reset, as a dead service's would be).

`proxied_split` starts the five services with a proxy between the order service and each participant.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx

from ecommerce_saga.db.embedded import free_port
from tests.e2e.conftest import Shop, start_split


@dataclass(frozen=True)
class Mode:
    """What the proxy does with each request: `name` is one of the modes below; `delay` for `slow`."""

    name: str
    delay: float = 0.0


PASS = Mode("pass")
"""Forward each request and relay its response."""
FAIL_503 = Mode("fail503")
"""Answer `503 Service Unavailable` (problem+json) without contacting the upstream."""
DROP = Mode("drop")
"""Close the connection without answering; the upstream sees nothing."""
BLACKHOLE_RESPONSE = Mode("blackhole_response")
"""Forward the request and read the upstream's response, then close without sending it: the effect
happens, the caller never hears of it."""


def slow(seconds: float) -> Mode:
    """Hold each request `seconds` before forwarding it (even if the caller has given up by then)."""
    return Mode("slow", seconds)


UNREACHABLE = "upstream_unreachable"
UNSUPPORTED = "unsupported"
_MAX_HEAD = 64 * 1024


def _problem(status: int, reason: str, code: str, detail: str) -> bytes:
    body = json.dumps({"type": "about:blank", "title": reason, "status": status, "code": code,
                       "detail": detail}).encode()  # fmt: skip
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/problem+json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


SERVICE_UNAVAILABLE = _problem(503, "Service Unavailable", "proxy.unavailable", "injected fault")
NOT_IMPLEMENTED = _problem(501, "Not Implemented", "proxy.chunked", "the proxy needs Content-Length")


def _with_connection_close(head: bytes) -> bytes:
    """A request or response head with any Connection/Keep-Alive header replaced by `close`."""
    lines = head.rstrip(b"\r\n").split(b"\r\n")
    kept = [
        line
        for line in lines[1:]
        if line.split(b":", 1)[0].strip().lower() not in (b"connection", b"keep-alive")
    ]
    return b"\r\n".join([lines[0], *kept, b"Connection: close"]) + b"\r\n\r\n"


def _header(head: bytes, name: bytes) -> bytes | None:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip()
    return None


class FaultProxy:
    """A loopback proxy to `upstream` (`http://host:port`) whose `mode` can be switched at runtime.

    Args:
        upstream: The service's URL.
        upstream_timeout: Longest wait for the upstream's answer before the client is cut off.
        idle_timeout: Longest wait for a client to send its request.
    """

    def __init__(self, upstream: str, *, upstream_timeout: float = 30.0, idle_timeout: float = 60.0) -> None:
        target = httpx.URL(upstream)
        self.upstream = (target.host, target.port or 80)
        self.mode = PASS
        self._upstream_timeout = upstream_timeout
        self._idle_timeout = idle_timeout
        self._counts: Counter[str] = Counter()
        self._by_request: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        """Where clients send their requests."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def counts(self) -> Counter[str]:
        """A snapshot of the requests handled, by mode (and `upstream_unreachable`, `unsupported`)."""
        with self._lock:
            return Counter(self._counts)

    @property
    def counts_by_request(self) -> Counter[tuple[str, str]]:
        """The same counts by (what was done, `METHOD /path`): `("pass", "POST /api/x")`, ..."""
        with self._lock:
            return Counter(self._by_request)

    def start(self) -> FaultProxy:
        """Listen on a free loopback port; returns when the proxy accepts connections."""
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(
            target=loop.run_forever, name=f"fault-proxy-{self.upstream[1]}", daemon=True
        )
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._listen(), loop).result(timeout=10)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop listening, cut every connection, and end the thread (idempotent)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._loop = self._thread = None
        if loop.is_running():
            asyncio.run_coroutine_threadsafe(self._close(), loop).result(timeout=10)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    async def _listen(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._server = await asyncio.start_server(self._handle, sock=sock, limit=_MAX_HEAD, backlog=512)
        self.port = int(sock.getsockname()[1])

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def _count(self, what: str, head: bytes) -> None:
        method, _, target = head.split(b"\r\n", 1)[0].decode("latin-1").partition(" ")
        request = f"{method} {target.split(' ', 1)[0].split('?', 1)[0]}"
        with self._lock:
            self._counts[what] += 1
            self._by_request[what, request] += 1

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._serve_one(reader, writer)
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            writer.transport.abort()  # a broken or silent client, or an upstream gone mid-answer
        finally:
            self._handlers.discard(task)
            writer.close()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with asyncio.timeout(self._idle_timeout):
            head = await reader.readuntil(b"\r\n\r\n")
            if _header(head, b"transfer-encoding") is not None:
                self._count(UNSUPPORTED, head)
                writer.write(NOT_IMPLEMENTED)
                await writer.drain()
                return
            body = await reader.readexactly(int(_header(head, b"content-length") or 0))
        mode = self.mode  # the mode when the request arrived decides its fate
        if mode.name in (FAIL_503.name, DROP.name):
            self._count(mode.name, head)
            if mode == FAIL_503:
                writer.write(SERVICE_UNAVAILABLE)
                await writer.drain()
            return  # `_handle` closes the connection
        if mode.name == "slow":
            await asyncio.sleep(mode.delay)
            self._count(mode.name, head)  # the caller has given up by now; the request goes on, late
        response = await self._forward(_with_connection_close(head) + body)
        if response is None:
            self._count(UNREACHABLE, head)
            writer.transport.abort()
        elif mode == BLACKHOLE_RESPONSE:
            self._count(mode.name, head)  # the upstream did the work; the caller never hears of it
        else:
            if mode == PASS:
                self._count(mode.name, head)
            await self._relay(writer, response)

    async def _forward(self, request: bytes) -> bytes | None:
        """Send `request` upstream and read its whole response (the upstream closes after it)."""
        try:
            async with asyncio.timeout(self._upstream_timeout):
                upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
                try:
                    upstream_writer.write(request)
                    await upstream_writer.drain()
                    response = await upstream_reader.read()
                finally:
                    upstream_writer.close()
        except (OSError, TimeoutError):
            return None
        return response or None  # no answer at all: the upstream died with the request

    @staticmethod
    async def _relay(writer: asyncio.StreamWriter, response: bytes) -> None:
        head, separator, body = response.partition(b"\r\n\r\n")
        if not separator:  # not HTTP: pass it on as it came
            writer.write(response)
        else:
            writer.write(_with_connection_close(head) + body)
        with contextlib.suppress(OSError):  # a caller that timed out has gone: nothing to tell it
            await writer.drain()


PARTICIPANTS = ("inventory", "payment", "shipping", "notification")
"""The modules the order service calls."""


@contextlib.contextmanager
def proxied_split(mongo_url: str, log_dir: Path, **env: str) -> Iterator[tuple[Shop, dict[str, FaultProxy]]]:
    """Five services; the order service reaches each participant through its own proxy."""
    ports = {module: free_port() for module in PARTICIPANTS}
    proxies: dict[str, FaultProxy] = {}
    shop: Shop | None = None
    try:
        for module in PARTICIPANTS:
            proxies[module] = FaultProxy(f"http://127.0.0.1:{ports[module]}").start()
        via_proxies = {"order": {module: proxy.url for module, proxy in proxies.items()}}
        shop = start_split(mongo_url, log_dir, ports, via_proxies, **env)
        yield shop, proxies
    finally:
        for app in shop.apps.values() if shop else ():
            app.stop()
        for proxy in proxies.values():
            proxy.stop()
