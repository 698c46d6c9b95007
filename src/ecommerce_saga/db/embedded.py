"""The embedded MongoDB-wire server (nx-27017) used when no URL is configured: its supervisor."""

from __future__ import annotations

import collections
import contextlib
import ctypes
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias, TypeVar

from ecommerce_saga.db.embedded_owner import OWNER_FLAG, PID_FILE, DataFolderInUseError, start_lock, take_over

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
LOG_FILE = "nx-27017.log"
# The owner's pid rides on the command line, where the next start-up on the folder reads it
# (`embedded_owner`); it is taken off again before nx-27017 parses its arguments.
_SERVER_MAIN = (
    "import sys; from ecommerce_saga.db.embedded_fixes import apply; apply(); "
    "from nx_27017.nx_27017 import main; del sys.argv[1:3]; sys.exit(main())"
)

MongoDocument: TypeAlias = dict[str, Any]
T = TypeVar("T")


class DatabaseStartupError(RuntimeError):
    """The database could not be reached or the embedded server could not be started."""


def die_with_parent(signum: int = signal.SIGTERM) -> None:  # pragma: no cover - in the forked child
    """Ask the kernel to send `signum` to this child when the process that started it dies, even by SIGKILL.

    The kernel ties this to the *thread* that started the child: start it from a thread that
    lives as long as the child should (the app starts the database from its event loop's thread).
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signum)


def die_at_once_with_parent() -> None:  # pragma: no cover - runs in the forked child
    """The embedded database's death signal: SIGKILL, not SIGTERM.

    A SIGTERM is only a request to nx-27017: its handler raises SystemExit, which is lost when it
    lands while Python runs a `__del__` (seen: an orphaned server held the data folder for 11
    minutes). SIGKILL cannot be ignored, and loses nothing: SQLite in WAL mode makes each
    transaction durable in the WAL file before the write is acknowledged, and a killed
    process's writes are in the OS's hands already (only a power loss could drop the last ones
    with `synchronous=NORMAL`). The next start replays the WAL. The graceful stop (`stop()`)
    still sends SIGTERM first, so a normal shutdown checkpoints the WAL.
    """
    die_with_parent(signal.SIGKILL)


def _read_from(path: Path, offset: int) -> str:
    with path.open("rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


EPHEMERAL_PORTS = Path("/proc/sys/net/ipv4/ip_local_port_range")
"""Where Linux keeps the range its outgoing connections take their local ports from."""
LOWEST_PORT = 10_000
"""`free_port` chooses no port below this one."""


def ephemeral_ports(source: Path = EPHEMERAL_PORTS) -> tuple[int, int] | None:
    """The kernel's range of ports for outgoing connections (first, last), or None if unknown."""
    try:
        first, last = (int(part) for part in source.read_text().split())
    except (OSError, ValueError):
        return None
    return first, last


def free_port(host: str = "127.0.0.1", ephemeral: tuple[int, int] | None = None) -> int:
    """A TCP port that is free on `host` right now, chosen below the ephemeral range when it can be.

    The port is released again before the process that asked binds it. A port of the ephemeral
    range (what binding port 0 gives) can be taken meanwhile by any outgoing connection on the
    machine: a module of a benchmark's split deployment failed to start that way, "address
    already in use". Outgoing connections never take a port below the range, so one is chosen
    there at random and checked free. None of the last `_HANDED_OUT.maxlen` ports this process was
    given is given again, so that callers who ask for several before binding any get different
    ones. Where the range is unknown (`ephemeral`, default: the kernel's) or leaves no room below
    it, the kernel chooses (port 0).
    """
    first = (ephemeral or ephemeral_ports() or (0, 0))[0]
    port = 0
    if first > LOWEST_PORT:
        for _ in range(100):
            candidate = random.randrange(LOWEST_PORT, first)
            if candidate not in _HANDED_OUT and _bindable(host, candidate):
                port = candidate
                break
    if not port:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
    _HANDED_OUT.append(port)
    return port


_HANDED_OUT: collections.deque[int] = collections.deque(maxlen=64)
"""The ports `free_port` gave last, most recent last."""


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


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
    by `stop()`; if this process dies without stopping it (even by SIGKILL), the kernel kills it
    too (`die_at_once_with_parent`). A server of a previous run still holding the folder when
    this one starts is waited for up to `takeover_seconds`, then stopped (`embedded_owner`).
    """

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    takeover_seconds: float = 10.0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """The connection string of the running server."""
        return f"mongodb://{self.host}:{self.port}/?directConnection=true"

    def start(self, timeout: float = 20.0) -> None:
        """Start the server and return once it listens.

        Raises:
            DatabaseStartupError: If the data folder is unusable or used by another running app's
                server, or the server does not start.
        """
        data_dir = _check_data_dir(self.data_dir)
        self.port = self.port or free_port(self.host)
        with start_lock(data_dir):  # until the new server has written its pid file
            try:
                take_over(data_dir, self.takeover_seconds)
            except DataFolderInUseError as exc:
                raise DatabaseStartupError(str(exc)) from exc
            self._spawn(data_dir, timeout)
        logger.info("embedded database started", extra={"url": self.url, "data_dir": str(data_dir)})

    def command(self, data_dir: Path, owner: int) -> list[str]:
        """The server's command line: nx-27017 on `data_dir` and this server's port, owned by `owner`."""
        return [
            sys.executable,
            "-c",
            _SERVER_MAIN,
            OWNER_FLAG,
            str(owner),
            "--data-dir",
            str(data_dir),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--log-file",
            str(data_dir / LOG_FILE),
            "--pid-file",
            str(data_dir / PID_FILE),
        ]

    def _spawn(self, data_dir: Path, timeout: float) -> None:
        log_path = data_dir / LOG_FILE
        command = self.command(data_dir, owner=os.getpid())
        with log_path.open("ab") as log:
            offset = log.tell()
            self.process = subprocess.Popen(  # noqa: S603 - fixed command, our own interpreter
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                preexec_fn=die_at_once_with_parent,  # noqa: PLW1509 - only sets the death signal
                start_new_session=True,
            )
        self._wait_until_listening(timeout, log_path, offset)

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

    def stop(self, timeout: float = 5.0) -> None:
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
