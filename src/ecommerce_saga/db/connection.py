"""The MongoDB connection: a client with bounded waits, and the database the app opens and closes."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import pymongo
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConnectionFailure, PyMongoError

from ecommerce_saga.db.driver_patch import fix_pymongo_condition_wait
from ecommerce_saga.db.embedded import DatabaseStartupError, EmbeddedMongo, free_port

logger = logging.getLogger(__name__)

MongoDocument: TypeAlias = dict[str, Any]


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
        cls,
        url: str | None,
        db_name: str,
        data_dir: Path,
        start_timeout: float = 20.0,
        unreachable_after: float = 2.0,
        *,
        operation_timeout: float | None = None,
    ) -> Database:
        """`url`, or an embedded server in `data_dir` when `url` is None."""
        embedded = None
        if url is None:
            embedded = EmbeddedMongo(data_dir=data_dir, port=free_port())
            url = embedded.url
        client, db = connect(url, db_name, unreachable_after, operation_timeout)
        return cls(client=client, db=db, url=url, embedded=embedded, start_timeout=start_timeout)

    async def open(self) -> None:
        """Start the embedded server (if any) and wait until the database answers.

        Raises:
            DatabaseStartupError: If the data folder is unusable or the database does not answer.
        """
        if self.embedded is not None:
            self.embedded.start(self.start_timeout)
        deadline = time.monotonic() + self.start_timeout
        while not await self.ping():
            if time.monotonic() < deadline:
                await asyncio.sleep(0.25)  # a database starting alongside the app: give it time
                continue
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


def connect(
    url: str, db_name: str, unreachable_after: float = 2.0, operation_timeout: float | None = None
) -> tuple[AsyncMongoClient[MongoDocument], AsyncDatabase[MongoDocument]]:
    """A client and database for `url`; datetimes come back timezone-aware. No I/O yet.

    An operation that finds no server for `unreachable_after` seconds fails (and a request
    answers 503), rather than holding its caller for PyMongo's default of 30 seconds. With
    `operation_timeout`, every operation — server selection, connection check-out, and the wait
    for the answer — fails after that many seconds (PyMongo's client-side operation timeout,
    `timeoutMS`): a database that accepts connections but stops answering (a stalled primary, a
    frozen process) holds no caller longer. A `pymongo.timeout()` block overrides it.
    """
    fix_pymongo_condition_wait()
    options: dict[str, Any] = {"serverSelectionTimeoutMS": int(unreachable_after * 1000)}
    if operation_timeout is not None:
        options["timeoutMS"] = int(operation_timeout * 1000)
    client: AsyncMongoClient[MongoDocument] = AsyncMongoClient(url, tz_aware=True, connect=False, **options)
    return client, client[db_name]


def is_database_outage(exc: BaseException) -> bool:
    """True if `exc` says the database cannot be reached or did not answer in time.

    Such a failure decided nothing the caller can know of: retry later (a write may still have
    been applied, which idempotency keys and conditional writes absorb).
    """
    return isinstance(exc, ConnectionFailure) or (isinstance(exc, PyMongoError) and exc.timeout)


def _redact(url: str) -> str:
    """The URL without its credentials, for messages and logs."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"
