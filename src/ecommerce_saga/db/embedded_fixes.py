"""A fix to the embedded server (nx-27017), applied in its process before it serves.

nx-27017 runs each command under the lock of the database the command names in ``$db``, and all
of a database's commands share one SQLite connection. A client-level ``bulkWrite`` (MongoDB 8.0)
is always sent to ``admin``, so it ran under ``admin``'s lock while it wrote into another
database, at the same time as that database's own commands: on the same connection, from two
threads. Concurrent with inserts into the same collection it failed inserts that had been stored
("Failed to get last row id."), and ran the writes after an insert it reported refused
(`tests/integration/test_ordered_writes.py` has both). The fix takes, for a ``bulkWrite`` whose
writes all go to one database, that database's lock instead. Imported by the server's command
line only (`embedded.EmbeddedMongo.command`); it imports nothing of the app.
"""

from __future__ import annotations

from typing import Any


def _bulk_write_database(msg: Any) -> str | None:
    """The one database a client-level bulkWrite writes into, or None (not one, or not that)."""
    sections = msg.get("sections") if isinstance(msg, dict) else None
    if not sections:
        return None
    namespaces: list[Any] = []
    is_bulk_write = False
    for section_type, doc in sections:
        if not isinstance(doc, dict):
            continue
        if section_type == "body":
            is_bulk_write = "bulkWrite" in doc
            namespaces += doc.get("nsInfo") or []
        elif "nsInfo" in doc:
            namespaces += doc["nsInfo"] or []
    databases = {str(ns.get("ns", "")).partition(".")[0] for ns in namespaces if isinstance(ns, dict)}
    if not is_bulk_write or len(databases) != 1:
        return None
    database = databases.pop()
    return database or None


def apply() -> None:
    """Make nx-27017 run a bulkWrite into one database under that database's lock."""
    from nx_27017 import handler  # noqa: PLC0415 - only in the server's process

    lock_name = handler._msg_db_name  # the function `_serialize` picks its lock with

    def locked_database(msg: Any) -> str:
        return _bulk_write_database(msg) or lock_name(msg)

    handler._msg_db_name = locked_database
