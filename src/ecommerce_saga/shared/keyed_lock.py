"""`KeyedLock`: one asyncio lock per key, kept only while a task holds it or waits for it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class KeyedLock(Generic[K]):
    """Mutual exclusion per key within one process: `async with locks.holding(key): ...`.

    Tasks holding different keys run concurrently; tasks holding the same key run one after the
    other, in the order they asked. A key's lock is dropped when its last holder or waiter leaves,
    so the map stays as small as the number of keys in use at once.
    """

    def __init__(self) -> None:
        self._locks: dict[K, asyncio.Lock] = {}
        self._users: dict[K, int] = {}  # key → tasks holding or waiting for its lock

    @asynccontextmanager
    async def holding(self, key: K) -> AsyncIterator[None]:
        """Hold `key`'s lock for the duration of the block."""
        lock = self._locks.get(key) or self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key], self._locks[key]

    def __len__(self) -> int:
        """How many keys are held or waited for now."""
        return len(self._locks)
