"""Who holds an embedded database's data folder, and taking it over from a dead app's server.

The embedded server (`nx-27017`) writes its pid into a file in its data folder and refuses to
start while that file names a live process — any live process: after a crash the pid may have
been reused by a stranger. And the server of a killed app can outlive it for a while (it dies
by a death signal, or has not been reaped yet), or for good (a SIGTERM handler that failed).

Before starting a server, the supervisor reads the pid file and looks at the process it names
through `/proc`:

- no such process, or a zombie: the file is stale and removed;
- a process that is not an embedded server on *this* data folder (its command line says so):
  the pid was reused; the process is left alone and the stale file removed;
- an embedded server on this folder whose owner — the app that started it, named on its command
  line — is still its parent: another running app uses the folder; start-up is refused, since
  two servers must never share one folder's files;
- an embedded server on this folder whose owner is gone: the previous incarnation. It is given
  `wait` seconds to exit by itself, then stopped (SIGTERM, then SIGKILL).

Linux only (`/proc`), like the death signal the supervisor sets.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

OWNER_FLAG = "--ecommerce-saga-owner"
"""Put before `--data-dir` on the server's command line, followed by the pid of the app that owns it."""
PID_FILE = "nx-27017.pid"
START_LOCK = "nx-27017.start.lock"


class DataFolderInUseError(RuntimeError):
    """A live embedded server of another running app uses the data folder."""


@dataclass(frozen=True)
class ServerProcess:
    """A live process, as `/proc` describes it."""

    pid: int
    ppid: int
    argv: list[str]
    cwd: Path | None

    @property
    def is_embedded_server(self) -> bool:
        """True if the command line is an nx-27017 server's."""
        return any("nx_27017" in arg or arg.endswith("nx-27017") for arg in self.argv[:3])

    @property
    def data_dir(self) -> Path | None:
        """The folder given with `--data-dir`, resolved against the process's working folder."""
        if "--data-dir" not in self.argv[:-1]:
            return None
        given = Path(self.argv[self.argv.index("--data-dir") + 1])
        if not given.is_absolute() and self.cwd is not None:
            given = self.cwd / given
        return given.resolve()

    @property
    def owner(self) -> int | None:
        """The pid of the app that started the server, if its command line names one."""
        if OWNER_FLAG not in self.argv[:-1]:
            return None
        value = self.argv[self.argv.index(OWNER_FLAG) + 1]
        return int(value) if value.isdigit() else None

    @property
    def owner_is_running(self) -> bool:
        """True while the server's owner is alive and still its parent.

        A dead owner's server is re-parented (to init or a subreaper), so its parent no longer
        matches, whatever process has since taken the owner's pid. A server started by hand (no
        owner on its command line) counts as owned unless it was orphaned to init.
        """
        if self.owner is None:
            return self.ppid != 1
        return self.ppid == self.owner


def describe(pid: int) -> ServerProcess | None:
    """The live process `pid`, or None if there is none (a zombie counts as none)."""
    proc = Path(f"/proc/{pid}")
    try:
        stat = (proc / "stat").read_text()
        argv = (proc / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    state, ppid = fields[0], int(fields[1])
    if state in ("Z", "X"):
        return None
    try:
        cwd: Path | None = Path(os.readlink(proc / "cwd"))
    except OSError:
        cwd = None
    return ServerProcess(pid, ppid, [arg.decode(errors="replace") for arg in argv if arg], cwd)


def read_pid(pid_file: Path) -> int | None:
    """The pid the file names, or None if it is missing or unreadable."""
    try:
        text = pid_file.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


@contextlib.contextmanager
def start_lock(data_dir: Path) -> Iterator[None]:
    """Hold the folder's start lock: one supervisor at a time checks the pid file and starts a server."""
    with (data_dir / START_LOCK).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def take_over(data_dir: Path, wait: float, stop_timeout: float = 5.0) -> None:
    """Make `data_dir` free for a new server (see the module docstring).

    Raises:
        DataFolderInUseError: If a live embedded server of another running app uses the folder.
    """
    pid_file = data_dir / PID_FILE
    pid = read_pid(pid_file)
    if pid is None:
        return
    server = describe(pid)
    if server is None or not server.is_embedded_server or server.data_dir != data_dir.resolve():
        logger.info("removing a stale pid file", extra={"pid": pid, "pid_file": str(pid_file)})
        _remove_if_names(pid_file, pid)
        return
    if server.owner_is_running:
        owner = f"the running process {server.owner or server.ppid}"
        msg = (
            f"the data folder {str(data_dir)!r} is in use by the embedded database (pid {pid}) of "
            f"{owner}; stop that app, or give this one another SHOP_DATA_DIR"
        )
        raise DataFolderInUseError(msg)
    logger.warning(
        "the embedded database of a previous run still holds the data folder; waiting for it to exit",
        extra={"pid": pid, "data_dir": str(data_dir)},
    )
    if not _gone(server, wait):
        _stop(server, stop_timeout)
    _remove_if_names(pid_file, pid)


def _same_process(server: ServerProcess) -> bool:
    """True while `server.pid` is still that server (not exited, and not reused since)."""
    now = describe(server.pid)
    return now is not None and now.argv == server.argv


def _gone(server: ServerProcess, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _same_process(server):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _stop(server: ServerProcess, timeout: float) -> None:
    for signum in (signal.SIGTERM, signal.SIGKILL):
        if not _same_process(server):
            return
        logger.warning(
            "stopping the embedded database of a previous run",
            extra={"pid": server.pid, "signal": signal.Signals(signum).name},
        )
        with contextlib.suppress(ProcessLookupError):
            os.kill(server.pid, signum)
        if _gone(server, timeout):
            return
    raise DataFolderInUseError(f"the embedded database of a previous run (pid {server.pid}) would not stop")


def _remove_if_names(pid_file: Path, pid: int) -> None:
    if read_pid(pid_file) == pid:
        with contextlib.suppress(FileNotFoundError):
            pid_file.unlink()
