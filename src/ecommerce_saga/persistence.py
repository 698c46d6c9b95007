"""MongoDB connection, and the embedded MongoDB-wire server used when no URL is configured."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import pymongo
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_SERVER_MAIN = "import sys; from nx_27017.nx_27017 import main; sys.exit(main())"

MongoDocument: TypeAlias = dict[str, Any]


class DatabaseStartupError(RuntimeError):
    """The database could not be reached or the embedded server could not be started."""


def die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    """Ask the kernel to stop the server when the process that started it dies, even by SIGKILL."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _read_from(path: Path, offset: int) -> str:
    with path.open("rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _check_data_dir(data_dir: Path) -> Path:
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        probe = data_dir / ".write-probe"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        msg = f"the embedded database's data folder {str(data_dir)!r} is unusable: {exc.strerror}"
        raise DatabaseStartupError(msg) from exc
    return data_dir.resolve()


@dataclass
class EmbeddedMongo:
    """An `nx-27017` server (MongoDB wire protocol on SQLite) run as a child process.

    The child is bound to loopback on a free port, keeps its data in `data_dir`, and is stopped
    by `stop()`; if this process dies without stopping it (even by SIGKILL), the kernel sends it
    SIGTERM, so no orphan is left behind.
    """

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """The connection string of the running server."""
        return f"mongodb://{self.host}:{self.port}/?directConnection=true"

    def start(self, timeout: float = 20.0) -> None:
        """Start the server and return once it answers a ping."""
        data_dir = _check_data_dir(self.data_dir)
        self.port = self.port or free_port(self.host)
        log_path = data_dir / "nx-27017.log"
        command = [
            sys.executable,
            "-c",
            _SERVER_MAIN,
            "--data-dir",
            str(data_dir),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--log-file",
            str(log_path),
            "--pid-file",
            str(data_dir / "nx-27017.pid"),
        ]
        with log_path.open("ab") as log:
            offset = log.tell()
            self.process = subprocess.Popen(  # noqa: S603 - fixed command, our own interpreter
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                preexec_fn=die_with_parent,  # noqa: PLW1509 - only sets the death signal
                start_new_session=True,
            )
        self._wait_until_listening(timeout, log_path, offset)
        logger.info("embedded database started", extra={"url": self.url, "data_dir": str(data_dir)})

    def _wait_until_listening(self, timeout: float, log_path: Path, offset: int) -> None:
        """Wait until *our* child says it listens on our port.

        A bare TCP connect would also succeed against another process that holds the port (the
        port is chosen free, then released before the child binds it); the child's own log line
        proves it bound the port, and a child that could not bind exits, which is reported.
        """
        assert self.process is not None  # noqa: S101 - just started
        listening = f"[{self.process.pid}] - Listening on {self.host}:{self.port}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            written = _read_from(log_path, offset)
            if listening in written:
                return
            if self.process.poll() is not None:
                lines = [line for line in written.splitlines() if line.strip()]
                reason = lines[-1] if lines else "no output"
                msg = (
                    f"the embedded database exited with code {self.process.returncode}: {reason} "
                    f"(its log: {log_path})"
                )
                raise DatabaseStartupError(msg)
            time.sleep(0.05)
        self.stop()
        msg = f"the embedded database did not start listening on {self.host}:{self.port} in {timeout:.0f}s"
        raise DatabaseStartupError(msg)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server gracefully, killing it if it does not exit in time."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)


@dataclass
class Database:
    """A MongoDB connection, and the embedded server behind it if there is one.

    Built without I/O (the embedded server's port is chosen up front); `open()` starts the
    embedded server if any and checks that the database answers.
    """

    client: AsyncMongoClient[MongoDocument]
    db: AsyncDatabase[MongoDocument]
    url: str
    embedded: EmbeddedMongo | None = None
    start_timeout: float = 20.0

    @classmethod
    def configure(
        cls, url: str | None, db_name: str, data_dir: Path, start_timeout: float = 20.0
    ) -> Database:
        """`url`, or an embedded server in `data_dir` when `url` is None."""
        embedded = None
        if url is None:
            embedded = EmbeddedMongo(data_dir=data_dir, port=free_port())
            url = embedded.url
        client, db = connect(url, db_name)
        return cls(client=client, db=db, url=url, embedded=embedded, start_timeout=start_timeout)

    async def open(self) -> None:
        """Start the embedded server (if any) and wait until the database answers.

        Raises:
            DatabaseStartupError: If the data folder is unusable or the database does not answer.
        """
        if self.embedded is not None:
            self.embedded.start(self.start_timeout)
        if not await self.ping():
            await self.close()
            raise DatabaseStartupError(f"the database at {_redact(self.url)} does not answer")

    async def ping(self, timeout: float = 1.0) -> bool:
        """True when the database answers within `timeout` seconds."""
        try:
            with pymongo.timeout(timeout):
                await self.db.command("ping")
        except PyMongoError:
            return False
        return True

    async def close(self) -> None:
        """Close the client and stop the embedded server, if any."""
        await self.client.close()
        if self.embedded is not None:
            self.embedded.stop()


def connect(url: str, db_name: str) -> tuple[AsyncMongoClient[MongoDocument], AsyncDatabase[MongoDocument]]:
    """A client and database for `url`; datetimes come back timezone-aware. No I/O yet."""
    client: AsyncMongoClient[MongoDocument] = AsyncMongoClient(
        url, tz_aware=True, serverSelectionTimeoutMS=5000, connect=False
    )
    return client, client[db_name]


def _redact(url: str) -> str:
    """The URL without its credentials, for messages and logs."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"
