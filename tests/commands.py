"""The commands the app sends to a database, as PyMongo's command monitoring sees them.

One listener for the whole test run (PyMongo listeners cannot be removed, and apply to clients
made after they are registered: this module registers it when it is imported, before any test
makes a client). It counts the commands sent to one database at a time, by name and collection
(``"insert orders"``), leaving out the driver's own ``ping`` and ``endSessions``. A client-level
``bulkWrite`` (sent to ``admin``, writes into several collections) counts for the database its
collections are in, as ``"bulkWrite reservations+products"``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pymongo import monitoring


class CommandLog(monitoring.CommandListener):
    """Counts the commands sent to `database` (None: none counted)."""

    def __init__(self) -> None:
        self.database: str | None = None
        self.seen: Counter[str] = Counter()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "bulkWrite" and event.database_name == "admin":
            namespaces = [str(ns["ns"]) for ns in event.command.get("nsInfo", [])]
            ours = [ns.partition(".")[2] for ns in namespaces if ns.partition(".")[0] == self.database]
            if ours:
                self.seen[f"bulkWrite {'+'.join(ours)}"] += 1
        elif event.database_name == self.database and event.command_name not in ("ping", "endSessions"):
            target = event.command.get(event.command_name)
            self.seen[f"{event.command_name} {target if isinstance(target, str) else ''}".strip()] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


class Started(monitoring.CommandListener):
    """Keeps every command a client starts, by name, as sent (give it to a client of the test's
    own in `event_listeners`: it sees that client's commands only)."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, dict[str, Any]]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.commands.append((event.command_name, dict(event.command)))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def named(self, *names: str) -> list[dict[str, Any]]:
        """The commands of those names, in the order they were started."""
        return [command for name, command in self.commands if name in names]


COMMANDS = CommandLog()
monitoring.register(COMMANDS)


@contextmanager
def counting(database: str) -> Iterator[Counter[str]]:
    """The commands sent to `database` while the block runs."""
    COMMANDS.database, COMMANDS.seen = database, Counter()
    try:
        yield COMMANDS.seen
    finally:
        COMMANDS.database = None
