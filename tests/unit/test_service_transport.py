"""`ServiceClient` on its production transport (aiohttp) against a real socket on localhost.

The remote is a few lines of asyncio speaking HTTP/1.1, so what is checked is what went over the
wire: one kept-alive connection for calls in a row, the pool's bound, the body and headers sent,
and every way of getting no answer (refused, never answered, dropped) ending as the retryable
`ServiceUnavailableError` the saga engine retries.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from pydantic import BaseModel

from ecommerce_saga.shared.contracts import NotFoundError, ServiceUnavailableError
from ecommerce_saga.web.service_client import ServiceClient, http_client

TOKEN = "service-secret"


class Echo(BaseModel):
    ok: bool


class Command(BaseModel):
    order_id: str
    quantity: int


@dataclass
class Request:
    line: str
    headers: dict[str, str]
    body: bytes


Behaviour = Callable[[Request, asyncio.StreamWriter], Awaitable[bool]]
"""Answers (or not) one request; returns whether to keep reading the connection."""


@dataclass
class Remote:
    """A scripted HTTP/1.1 server: every request and connection it saw."""

    behaviour: Behaviour
    requests: list[Request] = field(default_factory=list)
    connections: int = 0
    open_now: int = 0
    most_open: int = 0
    url: str = ""

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line, *lines = head.decode().split("\r\n")
                headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines if h)}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append(Request(line, headers, body))
                if not await self.behaviour(self.requests[-1], writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open_now -= 1
            writer.close()


def answer(status: int, body: dict[str, object], *, delay: float = 0.0) -> Behaviour:
    async def respond(request: Request, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(delay)
        payload = json.dumps(body).encode()
        head = f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {len(payload)}\r\n"
        writer.write(head.encode() + b"\r\n" + payload)
        await writer.drain()
        return True

    return respond


async def never_answer(request: Request, writer: asyncio.StreamWriter) -> bool:
    await asyncio.Event().wait()
    return False


async def hang_up(request: Request, writer: asyncio.StreamWriter) -> bool:
    return False


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Behaviour], Awaitable[Remote]]]:
    servers: list[asyncio.Server] = []

    async def start(behaviour: Behaviour) -> Remote:
        remote = Remote(behaviour)
        server = await asyncio.start_server(remote.serve, "127.0.0.1", 0)
        servers.append(server)
        remote.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        return remote

    yield start
    for server in servers:
        server.close()


@pytest.fixture
async def clients() -> AsyncIterator[list[ServiceClient]]:
    made: list[ServiceClient] = []
    yield made
    for client in made:
        await client.aclose()


def connect(
    clients: list[ServiceClient], url: str, *, timeout: float = 5.0, pool: int = 100
) -> ServiceClient:
    clients.append(ServiceClient("inventory", http_client(url, timeout, pool), TOKEN))
    return clients[-1]


async def test_sends_the_body_as_json_with_the_token_and_reads_the_answer(
    serve: Callable[[Behaviour], Awaitable[Remote]], clients: list[ServiceClient]
) -> None:
    remote = await serve(answer(200, {"ok": True}))
    client = connect(clients, remote.url)

    echo = await client.call(
        "POST", "/api/inventory/reserve", Echo, json=Command(order_id="ord_1", quantity=2),
        params={"inStock": True, "limit": 5, "category": None},
    )  # fmt: skip

    assert echo == Echo(ok=True)
    sent = remote.requests[0]
    assert sent.line == "POST /api/inventory/reserve?inStock=true&limit=5 HTTP/1.1"
    assert json.loads(sent.body) == {"order_id": "ord_1", "quantity": 2}
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"


async def test_reuses_one_connection_for_calls_in_a_row(
    serve: Callable[[Behaviour], Awaitable[Remote]], clients: list[ServiceClient]
) -> None:
    remote = await serve(answer(200, {"ok": True}))
    client = connect(clients, remote.url)

    for _ in range(5):
        await client.call("GET", "/api/x", Echo)

    assert len(remote.requests) == 5
    assert remote.connections == 1


async def test_opens_no_more_connections_than_its_pool_allows(
    serve: Callable[[Behaviour], Awaitable[Remote]], clients: list[ServiceClient]
) -> None:
    remote = await serve(answer(200, {"ok": True}, delay=0.05))
    client = connect(clients, remote.url, pool=2)

    answers = await asyncio.gather(*(client.call("GET", "/api/x", Echo) for _ in range(8)))

    assert answers == [Echo(ok=True)] * 8
    assert remote.most_open == 2


async def test_raises_the_contract_error_of_a_problem_answer(
    serve: Callable[[Behaviour], Awaitable[Remote]], clients: list[ServiceClient]
) -> None:
    remote = await serve(answer(404, {"status": 404, "code": NotFoundError.code, "detail": "no such thing"}))
    client = connect(clients, remote.url)

    with pytest.raises(NotFoundError, match="no such thing"):
        await client.call("GET", "/api/x", Echo)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.parametrize("failure", ["refused", "never answered", "hung up"])
async def test_raises_retryable_service_unavailable_when_no_answer_comes(
    serve: Callable[[Behaviour], Awaitable[Remote]], clients: list[ServiceClient], failure: str
) -> None:
    if failure == "refused":
        url = f"http://127.0.0.1:{_closed_port()}"
    else:
        url = (await serve(never_answer if failure == "never answered" else hang_up)).url
    client = connect(clients, url, timeout=0.3)

    with pytest.raises(ServiceUnavailableError, match="inventory service unreachable") as caught:
        await client.call("POST", "/api/inventory/reserve", Echo, json={"order_id": "ord_1"})

    assert caught.value.retryable is True
    assert caught.value.__cause__ is not None
