"""The management port: `/metrics` on a listener of its own, never on the API's port.

Prometheus scrapes it from inside the cluster; no Service behind a public Route exposes it, so no
path trick on the public side (`/%6detrics`) can reach it. It runs in the app's event loop as a
second uvicorn server that leaves signal handling to the API's server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator

import uvicorn
from starlette.types import ASGIApp

logger = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # SIGTERM and SIGINT belong to the API's server, which stops this one in its lifespan


class ManagementServer:
    """Serves `app` on `host:port` until `stop()`; the port is bound in `start()`, so errors surface there."""

    def __init__(self, app: ASGIApp, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Bind the port (an `OSError` if it is taken) and serve in the background."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, lifespan="off", log_config=None, access_log=False)
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        logger.info("metrics served on the management port", extra={"metrics_url": self.url})

    @property
    def url(self) -> str:
        """The management server's base URL."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        """Stop serving and wait for the server to close."""
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._server = self._task = None
