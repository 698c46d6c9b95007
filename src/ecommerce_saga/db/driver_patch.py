"""A fix to PyMongo's async client on Python 3.11 (its condition waits), applied by `connect`."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


def fix_pymongo_condition_wait() -> None:
    """On Python 3.11, make PyMongo's async client survive cancellations during an outage.

    PyMongo's async client waits on its condition variables (server selection, the connection
    pool) through `asyncio.wait_for`. On Python 3.11, a wait that times out while the waiting task
    is also cancelled (a request or step timeout while the database is unreachable) can release
    the client's topology lock twice: "RuntimeError: Lock is not acquired", after which every
    operation of that client waits forever, and the app stays wedged after the database is back.
    Python 3.12 reimplemented `wait_for` on `asyncio.timeout`; this gives PyMongo the same on
    3.11 (`tests/chaos/test_database_outage.py` is the test that found it).
    """
    if sys.version_info >= (3, 12):
        return
    import pymongo.lock  # noqa: PLC0415 - only on 3.11

    async def wait_for(awaitable: Awaitable[T], timeout: float | None) -> T:
        async with asyncio.timeout(timeout):
            return await awaitable

    pymongo.lock.wait_for = wait_for  # type: ignore[attr-defined,assignment]
