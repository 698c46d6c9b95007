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
        self._locks: dict[K, tuple[asyncio.Lock, list[int]]] = {}  # key → (lock, [users])

    @asynccontextmanager
    async def holding(self, key: K) -> AsyncIterator[None]:
        """Hold `key`'s lock for the duration of the block."""
        entry = self._locks.get(key)
        if entry is None:
            entry = self._locks[key] = (asyncio.Lock(), [0])
        lock, users = entry
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._locks[key]

    def __len__(self) -> int:
        """How many keys are held or waited for now."""
        return len(self._locks)
