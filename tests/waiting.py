"""Waiting in tests: poll a condition with a deadline, never sleep for an outcome.

`eventually` is for async tests and `eventually_blocking` for synchronous ones (e2e tests over
`httpx.Client`); both take the same arguments and behave the same way. `read` returns a value
(or, for `eventually`, an awaitable of one); polling stops when `done(value)` holds and returns
that value. When `timeout` passes first, an `AssertionError` names `what` and the last value.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar, cast

T = TypeVar("T")

DEFAULT_TIMEOUT = 15.0
"""Generous: a passing test waits only as long as its condition takes; a loaded machine is slow."""
_INTERVAL = 0.01
_BLOCKING_INTERVAL = 0.05


async def eventually(
    read: Callable[[], T | Awaitable[T]],
    done: Callable[[T], bool] = bool,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    what: str = "the condition holds",
) -> T:
    """Poll `read` until `done` holds for its value; return that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        result = cast(T, await value if inspect.isawaitable(value) else value)
        if done(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g}s: {what} (last seen: {result!r:.500})")
        await asyncio.sleep(_INTERVAL)


def eventually_blocking(
    read: Callable[[], T],
    done: Callable[[T], bool] = bool,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    what: str = "the condition holds",
) -> T:
    """`eventually` for synchronous tests: the same polling, sleeping the thread in between."""
    deadline = time.monotonic() + timeout
    while True:
        result = read()
        if done(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g}s: {what} (last seen: {result!r:.500})")
        time.sleep(_BLOCKING_INTERVAL)
