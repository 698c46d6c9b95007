"""How a `ServiceClient` sends its requests: aiohttp's connection pool between services, httpx in tests.

Between the services of a split deployment every saga step is an HTTP call, so the client's own
cost is paid on every step. httpx spent 2.5-3.3 ms of CPU per call here, and more as calls ran
concurrently: its connection pool scans every connection (and polls each socket) whenever a
request starts or ends, so with 64 calls in flight the order service spent most of its CPU in the
pool. aiohttp's pool hands out a kept-alive connection from a per-host queue, and its HTTP parser
is compiled: about 0.2 ms per call in the same measurement (docs/performance.md, "The HTTP path
and split mode"). `HttpxTransport` stays for what drives an app in process
(`httpx.ASGITransport`) or scripts a remote (`httpx.MockTransport`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import httpx

if TYPE_CHECKING:
    import aiohttp

Query = Sequence[tuple[str, str]]


@dataclass(frozen=True)
class Answer:
    """A remote's answer, read whole."""

    status: int
    reason: str
    body: bytes


class TransportError(Exception):
    """The request got no answer: connection refused or dropped, or a timeout.

    Attributes:
        kind: The underlying error's class name (``ConnectError``, ``ServerTimeoutError``...).
    """

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


class Transport(Protocol):
    """Sends one request to a module's base URL and reads the whole answer."""

    async def send(
        self, method: str, path: str, *, body: bytes | None, query: Query, headers: Mapping[str, str]
    ) -> Answer:
        """The answer; `TransportError` if none came."""
        ...

    async def aclose(self) -> None:
        """Close the connections."""
        ...


class HttpxTransport:
    """A `Transport` on an `httpx.AsyncClient` (its ``base_url`` is the module's)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def send(
        self, method: str, path: str, *, body: bytes | None, query: Query, headers: Mapping[str, str]
    ) -> Answer:
        """See `Transport.send`."""
        try:
            response = await self._client.request(
                method, path, content=body, params=list(query), headers=dict(headers)
            )
        except httpx.TransportError as exc:
            raise TransportError(type(exc).__name__, str(exc)) from exc
        return Answer(response.status_code, response.reason_phrase, response.content)

    async def aclose(self) -> None:
        """See `Transport.aclose`."""
        await self._client.aclose()


KEEPALIVE_SECONDS = 4.0
"""How long an idle connection is kept: below uvicorn's 5 s, so it is never reused as the server closes it."""


class AiohttpTransport:
    """A `Transport` on an aiohttp session, made on first use (inside the running event loop).

    Args:
        base_url: The module's URL.
        timeout: Seconds to wait for a pooled connection, for the answer to start and between its
            chunks; connecting itself gets at most 2 s.
        max_connections: Connections to the module at most; further calls wait for one.
    """

    def __init__(self, base_url: str, timeout: float, max_connections: int = 100) -> None:
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._client_error: type[Exception] = Exception  # aiohttp.ClientError, once aiohttp is loaded

    def _open(self) -> aiohttp.ClientSession:
        # imported here: a process that calls no other module (the monolith) never loads aiohttp
        import aiohttp  # noqa: PLC0415

        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, limit_per_host=0, keepalive_timeout=KEEPALIVE_SECONDS
            )
            timeout = aiohttp.ClientTimeout(
                total=None,
                connect=self._timeout,
                sock_connect=min(self._timeout, 2.0),
                sock_read=self._timeout,
            )
            self._session = aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False)
            self._client_error = aiohttp.ClientError
        return self._session

    async def send(
        self, method: str, path: str, *, body: bytes | None, query: Query, headers: Mapping[str, str]
    ) -> Answer:
        """See `Transport.send`."""
        session = self._open()
        try:
            async with session.request(
                method, self._base_url + path, data=body, params=query or None, headers=headers
            ) as response:
                return Answer(response.status, response.reason or "", await response.read())
        except self._client_error as exc:  # refused, dropped, timed out (ServerTimeoutError)
            raise TransportError(type(exc).__name__, str(exc)) from exc

    async def aclose(self) -> None:
        """See `Transport.aclose`."""
        if self._session is not None:
            await self._session.close()
            self._session = None
